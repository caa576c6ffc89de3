import { describe, expect, it } from "vitest";
import type { DlqPage } from "../src/client/dlq";
import { HistoryError } from "../src/client/history";
import { MAX_BACKOFF_MS, POLL_MS, RejectedWatch, pollDelay, type RejectedState } from "./rejectedWatch";

const PAGE: DlqPage = {
  events: [],
  next: null,
  lastSeq: 0,
  lastHour: { since: "2026-12-01T04:00:00.000Z", total: 0, byReason: {}, complete: true },
};

/** Timers run by hand: the test says when the next read happens and sees each wait. */
class ManualTimers {
  waits: number[] = [];
  private pending: (() => void) | null = null;
  set = (callback: () => void, ms: number): unknown => {
    this.waits.push(ms);
    this.pending = callback;
    return this.waits.length;
  };
  clear = (): void => {
    this.pending = null;
  };
  fire(): void {
    const callback = this.pending;
    this.pending = null;
    callback?.();
  }
  get armed(): boolean {
    return this.pending !== null;
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("RejectedWatch", () => {
  it("waits POLL_MS between reads, twice as long after each failure, capped", () => {
    expect(pollDelay(0)).toBe(POLL_MS);
    expect(pollDelay(1)).toBe(2 * POLL_MS);
    expect(pollDelay(2)).toBe(4 * POLL_MS);
    expect(pollDelay(50)).toBe(MAX_BACKOFF_MS);
  });

  it("polls, backs off while the gateway fails, and returns to POLL_MS once it answers", async () => {
    const answers: Array<DlqPage | Error> = [PAGE, new HistoryError("HTTP 503: history_unavailable", 503), new HistoryError("network", 0), PAGE];
    const source = { rejected: async () => { const next = answers.shift(); if (next instanceof Error) throw next; return next ?? PAGE; } };
    const states: RejectedState[] = [];
    const timers = new ManualTimers();
    const watch = new RejectedWatch(source, (state) => states.push(state), timers);
    watch.start();
    for (let i = 0; i < 3; i += 1) {
      await settle();
      timers.fire();
    }
    await settle();
    expect(states.map((state) => state.status)).toEqual(["ok", "failing", "failing", "ok"]);
    // The last page is kept while reads fail.
    expect(states[2]?.page).toBe(PAGE);
    expect(timers.waits).toEqual([POLL_MS, 2 * POLL_MS, 4 * POLL_MS, POLL_MS]);
    watch.stop();
    expect(timers.armed).toBe(false);
  });

  it("stops for good on 403: no admin scope, asking again cannot help", async () => {
    const source = { rejected: async (): Promise<DlqPage> => { throw new HistoryError("HTTP 403: admin_required", 403); } };
    const states: RejectedState[] = [];
    const timers = new ManualTimers();
    new RejectedWatch(source, (state) => states.push(state), timers).start();
    await settle();
    expect(states.map((state) => state.status)).toEqual(["forbidden"]);
    expect(timers.armed).toBe(false);
  });
});
