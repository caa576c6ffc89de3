// @vitest-environment jsdom
// The opening picture against a fake gateway: how often the summary is fetched again, and what
// the page says when the gateway's answers are partial (stream limits, latest-state cap).
import { afterEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, render, renderHook } from "@testing-library/react";
import { AvailabilityMemory } from "../src/client/availability";
import { HistoryError, type RealtimeHistory, type Summary } from "../src/client/history";
import { RESET_REFETCH_SPREAD_MS } from "../src/client/spread";
import type { SequencedEvent } from "../src/generated/schema";
import { FakeRealtimeClient, event, single } from "../src/react/fakeClient.test-helper";
import { Counters } from "./Counters";
import { OutOfStockPanel } from "./OutOfStockPanel";
import { RESUMMARY_MAX_MS, RESUMMARY_MS, RETRY_MS, useOpeningState } from "./useOpeningState";

afterEach(() => {
  cleanup();
  vi.useRealTimers();
});

const BASE: Summary = {
  timezone: "Asia/Tokyo",
  todaySince: "2026-11-30T15:00:00Z",
  lastHourSince: "2026-12-01T04:00:00Z",
  today: { ORDER_RECEIVED: 7 },
  lastHour: {},
  throughSeq: 10,
  exact: true,
  todayComplete: true,
  lastHourComplete: true,
  firstHeldSeq: 1,
  firstHeldAt: "2026-11-29T00:00:00Z",
  computedAt: "2026-12-01T05:00:00Z",
};

/** A history whose summary answers take `latencyMs`; counts calls and the most at once. */
function fakeHistory(
  summaryOf: (call: number) => Summary,
  snapshot: { events: SequencedEvent[]; complete: boolean; partial: boolean } = { events: [], complete: true, partial: false },
  latencyMs = 500,
) {
  const calls = { summary: 0, inFlight: 0, maxInFlight: 0 };
  const history = {
    summary: () => {
      calls.summary += 1;
      calls.inFlight += 1;
      calls.maxInFlight = Math.max(calls.maxInFlight, calls.inFlight);
      const answer = summaryOf(calls.summary);
      return new Promise<Summary>((resolve) =>
        setTimeout(() => {
          calls.inFlight -= 1;
          resolve(answer);
        }, latencyMs),
      );
    },
    snapshot: async (_request: unknown, onEvents: (events: SequencedEvent[]) => void) => {
      if (snapshot.events.length > 0) onEvents(snapshot.events);
      return { complete: snapshot.complete, partial: snapshot.partial, read: snapshot.events.length };
    },
  };
  return { history: history as unknown as RealtimeHistory, calls };
}

/** Runs the page for `seconds`, an order arriving each second (so it keeps re-rendering). */
async function runFor(client: FakeRealtimeClient, seconds: number, fromSeq: number): Promise<void> {
  for (let i = 0; i < seconds; i += 1) {
    await act(async () => {
      const seq = fromSeq + i;
      client.deliver({ ...single(event("ORDER_RECEIVED", `o${seq}`, { seq })), afterSeq: seq - 1 });
      await vi.advanceTimersByTimeAsync(1_000);
    });
  }
}

function open(history: RealtimeHistory) {
  const client = new FakeRealtimeClient();
  const availability = new AvailabilityMemory();
  const hook = renderHook(() => useOpeningState(client, history, availability));
  return { client, hook };
}

describe("useOpeningState", () => {
  it("does not fetch again a summary the stream's limits made partial, and says where today's count starts", async () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-01T05:00:00Z") });
    // STREAM_MAX_MESSAGES removed today's events before 09:12 Tokyo: `exact` is false for good.
    const trimmed: Summary = { ...BASE, exact: false, todayComplete: false, firstHeldSeq: 4, firstHeldAt: "2026-12-01T00:12:00Z" };
    const { history, calls } = fakeHistory(() => trimmed);
    const { client, hook } = open(history);
    await runFor(client, 180, 11);
    expect(calls.summary).toBe(1);
    expect(hook.result.current.counts?.ORDER_RECEIVED).toBe(7 + 180);
    expect(hook.result.current.exact).toBe(false);
    expect(hook.result.current.countedSince).toBe("2026-12-01T00:12:00Z");
  });

  it("fetches again a summary counted while events kept arriving: one at a time, less and less often", async () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-01T05:00:00Z") });
    // Not settled through the first seven answers, exact from the eighth on.
    const { history, calls } = fakeHistory((call) => ({ ...BASE, exact: call > 7, throughSeq: 10 }), undefined, 3_000);
    const { client, hook } = open(history);
    // Waits of 6, 6, 6, then 12, 24 and 48 s between an answer and the next request (3 s each).
    await runFor(client, 3 + 6 + 3 + 6 + 3 + 6 + 3 + 12 + 3 + 24 + 3 + 48 - 2, 11);
    expect(calls.summary).toBe(6);
    await runFor(client, 10, 200);
    expect(calls.summary).toBe(7);
    // The seventh answer is still not exact: the next wait is capped.
    await runFor(client, 3 + RESUMMARY_MAX_MS / 1_000, 300);
    expect(calls.summary).toBe(8);
    expect(calls.maxInFlight).toBe(1);
    await runFor(client, 5, 500);
    expect(hook.result.current.exact).toBe(true);
    // Exact now: no more requests.
    await runFor(client, 120, 600);
    expect(calls.summary).toBe(8);
    expect(RESUMMARY_MS).toBeGreaterThan(5_000);
  });

  it("marks the out-of-stock list as possibly incomplete when the snapshot was partial", async () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-01T05:00:00Z") });
    const out = event("INVENTORY_CHANGE", "p1", { seq: 5, data: { isAvailable: false } });
    const { history } = fakeHistory(() => BASE, { events: [out], complete: false, partial: true });
    const { client, hook } = open(history);
    await runFor(client, 2, 11);
    const state = hook.result.current;
    expect(state.snapshotLoaded).toBe(true);
    expect(state.outOfStockPartial).toBe(true);
    const panel = render(<OutOfStockPanel state={state} navigate={() => {}} now={Date.now()} />);
    expect(panel.getByTestId("out-of-stock-partial").textContent).toContain("May be incomplete");
    expect(panel.getByTestId("out-of-stock-count").textContent).toBe("1");
  });
});

/** A history that answers at once and counts requests; `fail(call)` refuses a summary call. */
function countingHistory(fail: (call: number) => HistoryError | null = () => null) {
  const calls = { summary: 0, snapshot: 0 };
  const history = {
    summary: async () => {
      calls.summary += 1;
      const error = fail(calls.summary);
      if (error) throw error;
      return BASE;
    },
    snapshot: async () => {
      calls.snapshot += 1;
      return { complete: true, partial: false, read: 0 };
    },
  };
  return { history: history as unknown as RealtimeHistory, calls };
}

describe("refetching after a reset", () => {
  it("clears at once but asks again only after a random wait within RESET_REFETCH_SPREAD_MS, once", async () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-01T05:00:00Z") });
    vi.spyOn(Math, "random").mockReturnValue(0.6); // 1,500 ms of the 2,500 ms window
    const { history, calls } = countingHistory();
    const { client, hook } = open(history);
    await act(async () => {
      await vi.advanceTimersByTimeAsync(500);
    });
    expect(calls).toEqual({ summary: 1, snapshot: 1 });
    expect(hook.result.current.counts?.ORDER_RECEIVED).toBe(7);

    client.emitReset("source_gap");
    await act(async () => {
      await vi.advanceTimersByTimeAsync(500);
    });
    expect(hook.result.current.counts).toBeNull(); // what it showed may be wrong: gone at once
    expect(hook.result.current.snapshotLoaded).toBe(false);
    client.emitReset("source_gap"); // another before the refetch: covered by the same one
    await act(async () => {
      await vi.advanceTimersByTimeAsync(999); // 1,499 ms after the first reset
    });
    expect(calls).toEqual({ summary: 1, snapshot: 1 });
    await act(async () => {
      await vi.advanceTimersByTimeAsync(1);
    });
    expect(calls).toEqual({ summary: 2, snapshot: 2 });
    await act(async () => {
      await vi.advanceTimersByTimeAsync(RESET_REFETCH_SPREAD_MS);
    });
    expect(calls).toEqual({ summary: 2, snapshot: 2 });
    expect(hook.result.current.counts?.ORDER_RECEIVED).toBe(7);
    expect(hook.result.current.snapshotLoaded).toBe(true);
    vi.restoreAllMocks();
  });

  it("spreads pages reset together over the whole window by their random draws", async () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-01T05:00:00Z") });
    const random = vi.spyOn(Math, "random");
    const draws = [0, 0.3, 0.7, 0.9999];
    const pages = draws.map(() => {
      const { history, calls } = countingHistory();
      return { ...open(history), calls };
    });
    await act(async () => {
      await vi.advanceTimersByTimeAsync(500);
    });
    for (const [index, page] of pages.entries()) {
      random.mockReturnValueOnce(draws[index] ?? 0);
      page.client.emitReset("source_gap");
    }
    // When each page asked again, to the 250 ms step: at 0, 750, 1,750 and 2,499 ms.
    const askedBy = pages.map(() => -1);
    for (let ms = 250; ms <= RESET_REFETCH_SPREAD_MS; ms += 250) {
      await act(async () => {
        await vi.advanceTimersByTimeAsync(250);
      });
      pages.forEach((page, index) => {
        if (askedBy[index] === -1 && page.calls.summary === 2) askedBy[index] = ms;
      });
    }
    expect(pages.map((page) => page.calls.summary)).toEqual([2, 2, 2, 2]);
    expect(askedBy).toEqual([250, 750, 1750, 2500]);
    vi.restoreAllMocks();
  });

  it("tries a refused request again no sooner than its Retry-After, and with jitter", async () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-01T05:00:00Z") });
    vi.spyOn(Math, "random").mockReturnValue(0);
    const refused = new HistoryError("HTTP 503: history_budget", 503, 3_000);
    const { history, calls } = countingHistory((call) => (call === 1 ? refused : null));
    open(history);
    await act(async () => {
      await vi.advanceTimersByTimeAsync(2_999); // the retry alone (random 0) would be 1 s
    });
    expect(calls.summary).toBe(1);
    await act(async () => {
      await vi.advanceTimersByTimeAsync(1);
    });
    expect(calls.summary).toBe(2);
    vi.restoreAllMocks();
  });

  it("tries a failed request again at a random moment in [RETRY_MS/2, RETRY_MS]", async () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-01T05:00:00Z") });
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    const { history, calls } = countingHistory((call) => (call === 1 ? new HistoryError("network", 0) : null));
    open(history);
    await act(async () => {
      await vi.advanceTimersByTimeAsync((RETRY_MS * 3) / 4 - 1);
    });
    expect(calls.summary).toBe(1);
    await act(async () => {
      await vi.advanceTimersByTimeAsync(1);
    });
    expect(calls.summary).toBe(2);
    vi.restoreAllMocks();
  });
});

describe("Counters", () => {
  it("says where today's count starts when the stream no longer holds all of today", () => {
    const counts = { INVENTORY_CHANGE: 1, ORDER_RECEIVED: 7, PRICE_CHANGE: 0, LISTING_UPDATE: 0 };
    const view = render(<Counters counts={counts} exact={false} timezone="Asia/Tokyo" countedSince="2026-12-01T00:12:00Z" />);
    expect(view.getByTestId("counter-ORDER_RECEIVED").textContent).toBe("7");
    expect(view.getByTestId("counter-ORDER_RECEIVED").dataset.exact).toBe("false");
    expect(view.getByTestId("counter-since-ORDER_RECEIVED").textContent).toBe(
      "counted since 09:12 (Asia/Tokyo) · not all of today",
    );
    cleanup();
    const whole = render(<Counters counts={counts} exact timezone="Asia/Tokyo" countedSince={null} />);
    expect(whole.queryByTestId("counter-since-ORDER_RECEIVED")).toBeNull();
  });
});
