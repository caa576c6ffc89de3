// publishRealtimeEventHttp against a fetch mock that answers as docs/PROTOCOL.md ("Publishing
// over HTTP") documents; the bridge side of the contract is tested against the real stack in
// bridge/tests/http_publish.rs.
import { describe, expect, it, vi } from "vitest";

import { InvalidRealtimeEvent, publishRealtimeEventHttp } from "./index.js";
import type { FetchLike } from "./index.js";

const target = { url: "https://rt.example/api/realtime/publish", key: "k".repeat(24) };
const event = {
  type: "INVENTORY_CHANGE",
  payload: { id: "prod_1", action: "updated" },
  timestamp: "2026-11-22T10:00:00.000Z",
} as const;

function answering(status: number, body: unknown) {
  return vi.fn<FetchLike>(async () => ({ status, json: async () => body }));
}

describe("publishRealtimeEventHttp", () => {
  it("POSTs the checked JSON with the key and the idempotency key, and returns the seq", async () => {
    const fetchLike = answering(200, { status: "stored", seq: 42, duplicate: false });
    const outcome = await publishRealtimeEventHttp(
      fetchLike,
      { ...target, idempotencyKey: "order-1" },
      event,
    );
    expect(outcome).toEqual({ status: "stored", seq: 42, duplicate: false });
    const [url, init] = fetchLike.mock.calls[0]!;
    expect(url).toBe(target.url);
    expect(init.method).toBe("POST");
    expect(init.headers).toEqual({
      "content-type": "application/json",
      authorization: `Bearer ${target.key}`,
      "idempotency-key": "order-1",
    });
    expect(init.body).toBe(
      '{"type":"INVENTORY_CHANGE","payload":{"id":"prod_1","action":"updated"},"timestamp":"2026-11-22T10:00:00.000Z"}',
    );
  });

  it("reports duplicates, rejections, refusals and missing acks", async () => {
    expect(
      await publishRealtimeEventHttp(answering(200, { status: "stored", seq: 42, duplicate: true }), target, event),
    ).toEqual({ status: "stored", seq: 42, duplicate: true });
    expect(
      await publishRealtimeEventHttp(
        answering(422, { status: "rejected", reason: "stream_rejected", message: "too big" }),
        target,
        event,
      ),
    ).toEqual({ status: "rejected", reason: "stream_rejected", message: "too big" });
    expect(
      await publishRealtimeEventHttp(
        answering(403, { error: "read_credential", message: "read keys cannot publish" }),
        target,
        event,
      ),
    ).toEqual({ status: "refused", httpStatus: 403, error: "read_credential", message: "read keys cannot publish" });
    expect(
      await publishRealtimeEventHttp(
        answering(503, { status: "unacknowledged", message: "publish it again" }),
        target,
        event,
      ),
    ).toEqual({ status: "unacknowledged", message: "publish it again" });
  });

  it("refuses an invalid event before sending anything", async () => {
    const fetchLike = answering(200, {});
    await expect(
      publishRealtimeEventHttp(fetchLike, target, { ...event, payload: { id: "", action: "updated" } }),
    ).rejects.toBeInstanceOf(InvalidRealtimeEvent);
    expect(fetchLike).not.toHaveBeenCalled();
  });
});
