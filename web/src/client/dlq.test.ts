import { describe, expect, it, vi } from "vitest";
import { dlqQuery, parseDlqPage } from "./dlq";
import { HistoryError, RealtimeHistory } from "./history";

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

const PAGE = {
  events: [
    {
      seq: 7,
      time: "2026-12-01T05:00:00.000Z",
      channel: "rakuda:realtime:orders",
      reason: "invalid_json",
      message: "expected value at line 1 column 1",
      head: "not json",
      truncated: false,
      size: 8,
      producer: null,
    },
  ],
  next: null,
  lastSeq: 7,
  lastHour: { since: "2026-12-01T04:00:00.000Z", total: 3, byReason: { invalid_json: 2, too_large: 1 }, complete: true },
};

describe("the DLQ client", () => {
  it("asks with the API key as a header and reads the page", async () => {
    const fetchImpl = vi.fn<typeof fetch>(async () => json(PAGE));
    const page = await new RealtimeHistory({ baseUrl: "https://gw", apiKey: "k1", fetchImpl }).rejected({ limit: 5, before: 9 });
    expect(page.events[0]?.reason).toBe("invalid_json");
    expect(page.lastHour.byReason).toEqual({ invalid_json: 2, too_large: 1 });
    const [url, init] = fetchImpl.mock.calls[0] ?? [];
    expect(url).toBe("https://gw/api/realtime/dlq?before=9&limit=5");
    expect((init?.headers as Record<string, string>)["X-API-Key"]).toBe("k1");
  });

  it("says 403 when the credential has no admin scope", async () => {
    const fetchImpl = vi.fn<typeof fetch>(async () => json({ error: "admin_required", message: "…" }, 403));
    const history = new RealtimeHistory({ baseUrl: "", apiKey: "k", fetchImpl });
    const refused = await history.rejected().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(HistoryError);
    expect((refused as HistoryError).status).toBe(403);
    expect((refused as HistoryError).message).toBe("HTTP 403: admin_required");
  });

  it("brings the query into range rather than sending one the gateway refuses", () => {
    expect(dlqQuery({ limit: 0 }).toString()).toBe("limit=1");
    expect(dlqQuery({ limit: 500, before: 0 }).toString()).toBe("limit=50");
    expect(dlqQuery({ before: 12.7 }).toString()).toBe("before=12");
  });

  it("rejects a body that is not a page and drops malformed items", () => {
    expect(parseDlqPage(null)).toBeNull();
    expect(parseDlqPage({ events: [], next: null, lastSeq: 0 })).toBeNull();
    const page = parseDlqPage({ ...PAGE, events: [...PAGE.events, { seq: "x" }] });
    expect(page?.events).toHaveLength(1);
    expect(page?.events[0]?.producer).toBeNull();
  });
});
