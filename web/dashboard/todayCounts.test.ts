import { describe, expect, it } from "vitest";
import type { Summary } from "../src/client/history";
import type { RealtimeFrame } from "../src/client/types";
import type { EventType, SequencedEvent } from "../src/generated/schema";
import { FRAME_LOG_CAP, TodayCounts, countAbove, nextLocalMidnight } from "./todayCounts";

function ev(type: EventType, seq: number, id = `id_${seq}`): SequencedEvent {
  return { type, seq, payload: { id, action: "updated", data: {} }, timestamp: "2026-12-01T00:00:00.000Z" };
}

function frame(type: EventType, seqs: number[], count = seqs.length, afterSeq?: number): RealtimeFrame {
  const f: RealtimeFrame = { type, batch: count > 1, count, events: seqs.map((seq) => ev(type, seq)) };
  if (afterSeq !== undefined) f.afterSeq = afterSeq;
  return f;
}

function summary(
  throughSeq: number,
  today: Partial<Record<EventType, number>>,
  exact = true,
): Summary {
  return {
    exact,
    timezone: "Asia/Tokyo",
    todaySince: "2026-11-30T15:00:00Z",
    lastHourSince: "2026-12-01T04:00:00Z",
    today,
    lastHour: {},
    throughSeq,
    computedAt: "2026-12-01T05:00:00Z",
  };
}

describe("countAbove", () => {
  it("counts a whole frame whose cursor before it is at or past the summary", () => {
    expect(countAbove({ type: "ORDER_RECEIVED", count: 9, listed: [12], afterSeq: 10 }, 10)).toEqual({ count: 9, exact: true });
  });
  it("counts nothing of a batch whose newest listed event the summary already has", () => {
    expect(countAbove({ type: "INVENTORY_CHANGE", count: 50, listed: [3, 7], afterSeq: null }, 7)).toEqual({ count: 0, exact: true });
  });
  it("counts the listed events above the summary when nothing was folded", () => {
    expect(countAbove({ type: "ORDER_RECEIVED", count: 3, listed: [5, 6, 7], afterSeq: null }, 5)).toEqual({ count: 2, exact: true });
  });
  it("flags a batch with folded events on both sides of the summary", () => {
    expect(countAbove({ type: "INVENTORY_CHANGE", count: 10, listed: [4, 9], afterSeq: null }, 5).exact).toBe(false);
  });
});

describe("TodayCounts", () => {
  it("is null until a summary, then the summary plus only the frames after throughSeq", () => {
    const today = new TodayCounts();
    // A backfill (no cursor yet) overlapping the summary, then live frames.
    today.addFrame(frame("ORDER_RECEIVED", [8, 9, 10, 11]));
    expect(today.totals()).toBeNull();
    today.setSummary(summary(10, { ORDER_RECEIVED: 10, PRICE_CHANGE: 4 }));
    today.addFrame(frame("ORDER_RECEIVED", [13], 1, 11));
    today.addFrame(frame("PRICE_CHANGE", [12, 14], 5, 11));
    const totals = today.totals();
    expect(totals?.ORDER_RECEIVED).toBe(12);
    expect(totals?.PRICE_CHANGE).toBe(9);
    expect(totals?.INVENTORY_CHANGE).toBe(0);
    expect(today.needsNewerSummary).toBe(false);
  });

  it("stays exact when a newer summary replaces the old one (midnight, or after an unsure frame)", () => {
    const today = new TodayCounts();
    today.setSummary(summary(10, { ORDER_RECEIVED: 10 }));
    today.addFrame(frame("ORDER_RECEIVED", [11], 1, 10));
    today.addFrame(frame("ORDER_RECEIVED", [12], 1, 11));
    // After local midnight: the new day has two events up to 12, then one more arrives.
    today.setSummary(summary(12, { ORDER_RECEIVED: 2 }));
    today.addFrame(frame("ORDER_RECEIVED", [13], 1, 12));
    expect(today.totals()?.ORDER_RECEIVED).toBe(3);
  });

  it("asks for a newer summary when the gateway says its counts are not exact", () => {
    const today = new TodayCounts();
    today.setSummary(summary(10, { ORDER_RECEIVED: 10 }, false));
    expect(today.needsNewerSummary).toBe(true);
    today.setSummary(summary(12, { ORDER_RECEIVED: 12 }));
    expect(today.needsNewerSummary).toBe(false);
  });

  it("does not ask again when the stream no longer holds all of today, and says where the count starts", () => {
    const today = new TodayCounts();
    // STREAM_MAX_MESSAGES removed today's events before 09:12 Tokyo (00:12 UTC): every newer
    // summary would say the same, so asking again would only ask for ever.
    const trimmed: Summary = {
      ...summary(10, { ORDER_RECEIVED: 7 }, false),
      todayComplete: false,
      lastHourComplete: true,
      firstHeldSeq: 4,
      firstHeldAt: "2026-12-01T00:12:00Z",
    };
    today.setSummary(trimmed);
    today.addFrame(frame("ORDER_RECEIVED", [11], 1, 10));
    expect(today.totals()?.ORDER_RECEIVED).toBe(8);
    expect(today.needsNewerSummary).toBe(false);
    expect(today.exact).toBe(false);
    expect(today.countedSince).toBe("2026-12-01T00:12:00Z");
    // Only the last hour trimmed (just after midnight): not exact either, nothing to fetch.
    today.setSummary({ ...trimmed, todayComplete: true, lastHourComplete: false });
    expect(today.needsNewerSummary).toBe(false);
    expect(today.countedSince).toBeNull();
    // A frame straddling throughSeq is still a reason: a newer summary places it.
    today.setSummary({ ...trimmed, throughSeq: 12 });
    today.addFrame(frame("INVENTORY_CHANGE", [11, 15], 6));
    today.totals();
    expect(today.needsNewerSummary).toBe(true);
  });

  it("is exact only when the gateway says so and every frame is placed", () => {
    const today = new TodayCounts();
    expect(today.exact).toBe(false);
    today.setSummary(summary(10, { ORDER_RECEIVED: 10 }));
    expect(today.exact).toBe(true);
    expect(today.countedSince).toBeNull();
    today.setSummary(summary(11, { ORDER_RECEIVED: 11 }, false));
    expect(today.exact).toBe(false);
    expect(today.needsNewerSummary).toBe(true);
  });

  it("asks for a newer summary when a batch straddles throughSeq, and is exact again with it", () => {
    const today = new TodayCounts();
    today.setSummary(summary(5, { INVENTORY_CHANGE: 5 }));
    today.addFrame(frame("INVENTORY_CHANGE", [4, 9], 10));
    today.totals();
    expect(today.needsNewerSummary).toBe(true);
    today.setSummary(summary(9, { INVENTORY_CHANGE: 13 }));
    expect(today.totals()?.INVENTORY_CHANGE).toBe(13);
    expect(today.needsNewerSummary).toBe(false);
  });

  it("keeps a bounded log and still counts what it folded", () => {
    const today = new TodayCounts();
    today.setSummary(summary(0, {}));
    for (let seq = 1; seq <= FRAME_LOG_CAP + 10; seq += 1) today.addFrame(frame("LISTING_UPDATE", [seq], 1, seq - 1));
    expect(today.totals()?.LISTING_UPDATE).toBe(FRAME_LOG_CAP + 10);
  });

  it("forgets everything on clear (a reset)", () => {
    const today = new TodayCounts();
    today.setSummary(summary(3, { ORDER_RECEIVED: 3 }));
    today.addFrame(frame("ORDER_RECEIVED", [4], 1, 3));
    today.clear();
    expect(today.totals()).toBeNull();
    today.setSummary(summary(1, { ORDER_RECEIVED: 1 }));
    expect(today.totals()?.ORDER_RECEIVED).toBe(1);
  });
});

describe("nextLocalMidnight", () => {
  const at = (iso: string): number => Date.parse(iso);

  it("is midnight in Tokyo (15:00 UTC), not in UTC", () => {
    // 08:30 on the 2nd in Tokyo: the next day starts at 15:00 UTC on the 2nd.
    expect(nextLocalMidnight(at("2026-12-01T23:30:00Z"), "Asia/Tokyo")).toBe(at("2026-12-02T15:00:00Z"));
    // One second before Tokyo's midnight the new day is a second away...
    expect(nextLocalMidnight(at("2026-12-01T14:59:59Z"), "Asia/Tokyo")).toBe(at("2026-12-01T15:00:00Z"));
    // ...and at midnight itself it is a whole day away.
    expect(nextLocalMidnight(at("2026-12-01T15:00:00Z"), "Asia/Tokyo")).toBe(at("2026-12-02T15:00:00Z"));
  });

  it("follows daylight saving time", () => {
    // New York: summer time from 8 March 2026; the night of the 7th to the 8th is 05:00 UTC.
    expect(nextLocalMidnight(at("2026-03-07T12:00:00Z"), "America/New_York")).toBe(at("2026-03-08T05:00:00Z"));
    expect(nextLocalMidnight(at("2026-03-08T12:00:00Z"), "America/New_York")).toBe(at("2026-03-09T04:00:00Z"));
  });

  it("is UTC midnight in UTC", () => {
    expect(nextLocalMidnight(at("2026-12-01T05:00:00Z"), "UTC")).toBe(at("2026-12-02T00:00:00Z"));
  });
});
