import { describe, expect, it, vi } from "vitest";
import { HistoryError, RealtimeHistory, parseSummary, type SnapshotChannel } from "./history";

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

const SUMMARY = {
  timezone: "Asia/Tokyo",
  todaySince: "2026-11-30T15:00:00Z",
  lastHourSince: "2026-12-01T04:00:00Z",
  today: { ORDER_RECEIVED: 12 },
  lastHour: { ORDER_RECEIVED: 2 },
  throughSeq: 99,
  computedAt: "2026-12-01T05:00:00Z",
};

describe("RealtimeHistory", () => {
  it("sends the API key as a header, never in the URL", async () => {
    const fetchImpl = vi.fn<typeof fetch>(async () => json(SUMMARY));
    const summary = await new RealtimeHistory({ baseUrl: "https://gw/", apiKey: "k1", fetchImpl }).summary();
    expect(summary.throughSeq).toBe(99);
    const [url, init] = fetchImpl.mock.calls[0] ?? [];
    expect(url).toBe("https://gw/api/realtime/summary");
    expect((init?.headers as Record<string, string>)["X-API-Key"]).toBe("k1");
  });

  it("sends a token from getToken as ?token=", async () => {
    const fetchImpl = vi.fn<typeof fetch>(async () => json({ events: [], next: null }));
    const getToken = async () => ({ token: "tok", expiresAt: "2099-01-01T00:00:00Z" });
    await new RealtimeHistory({ baseUrl: "", getToken, fetchImpl }).snapshotPage({ channels: ["inventory"], limit: 10 });
    expect(fetchImpl.mock.calls[0]?.[0]).toBe("/api/realtime/snapshot?channels=inventory&limit=10&token=tok");
  });

  it("follows `next` page by page and stops at its memory bound", async () => {
    const event = (seq: number) => ({ type: "INVENTORY_CHANGE", seq, payload: { id: `p${seq}`, action: "updated" }, timestamp: "t" });
    const pages = [
      { events: [event(1), event(2)], next: 2 },
      { events: [event(3), event(4)], next: 4 },
      { events: [event(5)], next: null },
    ];
    const fetchImpl = vi.fn<typeof fetch>(async (input) => {
      const after = Number(new URL(String(input), "http://x").searchParams.get("after") ?? 0);
      return json(pages[after / 2]);
    });
    const history = new RealtimeHistory({ baseUrl: "", apiKey: "k", fetchImpl });
    const seen: number[] = [];
    expect(await history.snapshot({ maxEvents: 100 }, (events) => seen.push(...events.map((e) => e.seq)))).toEqual({ complete: true, partial: false, read: 5 });
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    const bounded: number[] = [];
    expect(await history.snapshot({ maxEvents: 3 }, (events) => bounded.push(...events.map((e) => e.seq)))).toEqual({ complete: false, partial: false, read: 3 });
    expect(bounded).toEqual([1, 2, 3]);
  });

  it("reports a snapshot with a partial page as not complete, though read to the end", async () => {
    const event = (seq: number) => ({ type: "INVENTORY_CHANGE", seq, payload: { id: `p${seq}`, action: "updated" }, timestamp: "t" });
    const pages = [
      { events: [event(1), event(2)], next: 2, partial: true },
      { events: [event(3)], next: null, partial: false },
    ];
    const fetchImpl = vi.fn<typeof fetch>(async (input) => {
      const after = Number(new URL(String(input), "http://x").searchParams.get("after") ?? 0);
      return json(pages[after / 2]);
    });
    const history = new RealtimeHistory({ baseUrl: "", apiKey: "k", fetchImpl });
    expect(await history.snapshot({ maxEvents: 100 }, () => {})).toEqual({ complete: false, partial: true, read: 3 });
    // The same pages without `partial` (an older gateway): complete.
    for (const page of pages) delete (page as { partial?: boolean }).partial;
    expect(await history.snapshot({ maxEvents: 100 }, () => {})).toEqual({ complete: true, partial: false, read: 3 });
  });

  it("never asks the gateway for a snapshot of orders (it has none: 400 no_latest_state)", async () => {
    const fetchImpl = vi.fn<typeof fetch>(async () => json({ error: "no_latest_state" }, 400));
    const history = new RealtimeHistory({ baseUrl: "", apiKey: "k", fetchImpl });
    // A JavaScript caller (or a cast) gets past the type; the request is refused before it is sent.
    const orders = ["inventory", "orders"] as unknown as SnapshotChannel[];
    const error = await history.snapshotPage({ channels: orders }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HistoryError);
    expect((error as HistoryError).status).toBe(400);
    expect((error as HistoryError).message).toContain("no_latest_state");
    expect(fetchImpl).not.toHaveBeenCalled();
  });

  it("reports a refusal with its status and error", async () => {
    const fetchImpl = vi.fn<typeof fetch>(async () => json({ error: "history_unavailable", message: "later" }, 503));
    const error = await new RealtimeHistory({ baseUrl: "", apiKey: "k", fetchImpl }).summary().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HistoryError);
    expect((error as HistoryError).status).toBe(503);
    expect((error as HistoryError).message).toContain("history_unavailable");
  });

  it("refuses a malformed summary", () => {
    expect(parseSummary({ ...SUMMARY, throughSeq: "99" })).toBeNull();
    expect(parseSummary(SUMMARY)?.today.ORDER_RECEIVED).toBe(12);
  });

  it("reads whether the counts are exact, taking an older gateway's answer as exact", () => {
    expect(parseSummary({ ...SUMMARY, exact: false })?.exact).toBe(false);
    expect(parseSummary(SUMMARY)?.exact).toBe(true);
  });
});
