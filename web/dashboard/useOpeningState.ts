// What the page shows the moment it opens besides the feed: today's counters (summary + the
// stream's frames after it) and "out of stock now" (snapshot + the stream's inventory events).
// Both are kept current by the stream and fetched again after a reset, after local midnight
// (the counters) and when a newer summary can make the counters exact (a frame could not be
// placed against it, or the gateway counted while events kept arriving): at most one request
// at a time, RESUMMARY_MS apart for the first RESUMMARY_STEADY in a row (a busy stream, even
// its canary alone, often makes one answer unsettled and the next one fine), then each further
// one waiting twice as long up to RESUMMARY_MAX_MS. A summary the stream's limits made partial (`todayComplete` false) is
// not fetched again for that: the page says where today's count starts instead.
//
// After a reset the page clears what it shows at once but asks again only after a random
// wait in [0, RESET_REFETCH_SPREAD_MS): a source gap resets every page of every gateway in the
// same instant, and they must not all ask in the same second. A failed request is tried again
// after a random wait too, and never before the refusal's Retry-After.
import { useEffect, useRef, useState } from "react";
import type { AvailabilityMemory } from "../src/client/availability";
import type { RealtimeHistory } from "../src/client/history";
import { afterRetryAfter, clampUnit, resetRefetchDelay, retryAfterOf } from "../src/client/spread";
import type { RealtimeClientApi } from "../src/client/types";
import { OUT_OF_STOCK_CAP, StockBoard, type OutOfStockEntry } from "./stockBoard";
import { TodayCounts, nextLocalMidnight, type Counts } from "./todayCounts";

/** Entities read from the snapshot at most (pages of SNAPSHOT_PAGE): the panel's memory bound. */
const SNAPSHOT_MAX_EVENTS = 50_000;
const SNAPSHOT_PAGE = 1_000;
/** Rows the panel shows; the count above it is the full figure. */
export const OUT_OF_STOCK_SHOWN = 50;
/**
 * A failed request is tried again after a random wait in [RETRY_MS / 2, RETRY_MS] (the gateway
 * may be restarting; the pages that failed together must not retry together), or after the
 * refusal's Retry-After plus up to a second when that is longer.
 */
export const RETRY_MS = 2_000;

function retryDelay(error: unknown): number {
  const backoff = RETRY_MS / 2 + clampUnit(Math.random()) * (RETRY_MS / 2);
  return afterRetryAfter(retryAfterOf(error), backoff);
}
/** More than the gateway's SUMMARY_CACHE_TTL (5 s), so a refetch gets a newer summary. */
export const RESUMMARY_MS = 6_000;
/** Refetches in a row RESUMMARY_MS apart before the waits grow. */
export const RESUMMARY_STEADY = 3;
/** The longest wait between refetches while each newer summary still is not exact. */
export const RESUMMARY_MAX_MS = 60_000;
const RENDER_MS = 250;

export interface OpeningState {
  /** Today's totals; null until the first summary arrived. */
  counts: Counts | null;
  /**
   * False while the counts are not the exact truth: a frame could not be placed against the
   * summary or the gateway's counts were not exact (a refetch is due unless `countedSince`).
   */
  exact: boolean;
  /** Set when the stream no longer holds all of today: where today's counts start (RFC 3339). */
  countedSince: string | null;
  /** The summary's timezone, for the label. */
  timezone: string | null;
  outOfStock: OutOfStockEntry[];
  outOfStockTotal: number;
  /** The list is incomplete: more entities than the panel keeps, or the snapshot was cut. */
  outOfStockTruncated: boolean;
  /** The snapshot said `partial` (LATEST_MAX_ENTITIES reached): products may be missing. */
  outOfStockPartial: boolean;
  /** The snapshot has been read (the panel can be trusted). */
  snapshotLoaded: boolean;
}

/**
 * `availability` (the toasts' memory) is seeded from the snapshot too, so that a product already
 * out of stock when the page opened is not announced as going out when it changes again.
 */
export function useOpeningState(
  client: RealtimeClientApi,
  history: RealtimeHistory | null,
  availability: AvailabilityMemory,
): OpeningState {
  const todayRef = useRef<TodayCounts | null>(null);
  const boardRef = useRef<StockBoard | null>(null);
  if (todayRef.current === null) todayRef.current = new TodayCounts();
  if (boardRef.current === null) boardRef.current = new StockBoard();
  const today = todayRef.current;
  const board = boardRef.current;
  const [state, setState] = useState<OpeningState>(() => read(today, board, false));

  useEffect(() => {
    if (history === null) return;
    let disposed = false;
    let dirty = true;
    let snapshotLoaded = false;
    const timers = new Set<ReturnType<typeof setTimeout>>();
    const later = (ms: number, run: () => void): void => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!disposed) run();
      }, ms);
      timers.add(timer);
    };
    let summaryInFlight = false;
    let summaryGeneration = 0;
    let midnightTimer: ReturnType<typeof setTimeout> | null = null;

    const loadSummary = (): void => {
      if (summaryInFlight) return;
      summaryInFlight = true;
      const generation = summaryGeneration;
      history
        .summary()
        .then((summary) => {
          // A reset since the request: its summary may predate what the reset says was lost,
          // and a newer request is under way.
          if (disposed || generation !== summaryGeneration) return;
          summaryInFlight = false;
          today.setSummary(summary);
          dirty = true;
          scheduleMidnight(summary.timezone);
        })
        .catch((error: unknown) => {
          if (generation !== summaryGeneration) return;
          summaryInFlight = false;
          later(retryDelay(error), loadSummary);
        });
    };
    const scheduleMidnight = (timezone: string): void => {
      if (midnightTimer !== null) clearTimeout(midnightTimer);
      const now = Date.now();
      let at: number;
      try {
        at = nextLocalMidnight(now, timezone);
      } catch {
        // A timezone this browser does not know: a day from now is the best guess.
        at = now + 24 * 3_600_000;
      }
      // A second past midnight, so the gateway's clock is surely in the new day too.
      midnightTimer = setTimeout(() => {
        midnightTimer = null;
        if (!disposed) loadSummary();
      }, Math.min(2 ** 31 - 1, at - now + 1_000));
    };

    let snapshotGeneration = 0;
    const loadSnapshot = (): void => {
      const generation = ++snapshotGeneration;
      snapshotLoaded = false;
      history
        .snapshot(
          { channels: ["inventory"], limit: SNAPSHOT_PAGE, maxEvents: SNAPSHOT_MAX_EVENTS },
          (events) => {
            if (disposed || generation !== snapshotGeneration) return;
            for (const event of events) board.apply(event);
            availability.seed(events);
            dirty = true;
          },
        )
        .then(({ complete, partial }) => {
          if (disposed || generation !== snapshotGeneration) return;
          if (partial) board.markPartial();
          if (!complete || board.size >= OUT_OF_STOCK_CAP) board.markTruncated();
          snapshotLoaded = true;
          dirty = true;
        })
        .catch((error: unknown) => {
          if (!disposed && generation === snapshotGeneration) later(retryDelay(error), loadSnapshot);
        });
    };

    // Refetches for exactness: one scheduled at a time (and none while one is in flight), the
    // waits growing after a few in a row, so a gateway that keeps answering "not exact" is not
    // hammered.
    let resummaryTimer: ReturnType<typeof setTimeout> | null = null;
    let resummaryRun = 0;
    const stopResummary = (): void => {
      if (resummaryTimer !== null) clearTimeout(resummaryTimer);
      resummaryTimer = null;
      resummaryRun = 0;
    };
    const paceResummary = (): void => {
      if (!today.needsNewerSummary) {
        if (resummaryTimer === null && !summaryInFlight) resummaryRun = 0;
        return;
      }
      if (resummaryTimer !== null || summaryInFlight) return;
      const growth = Math.max(0, resummaryRun - RESUMMARY_STEADY + 1);
      const delay = Math.min(RESUMMARY_MAX_MS, RESUMMARY_MS * 2 ** growth);
      resummaryRun += 1;
      resummaryTimer = setTimeout(() => {
        resummaryTimer = null;
        if (!disposed) loadSummary();
      }, delay);
    };

    // Listening first, fetching second: no frame can fall between the two.
    const offFrame = client.onFrame((frame) => {
      today.addFrame(frame);
      if (frame.type === "INVENTORY_CHANGE") for (const event of frame.events) board.apply(event);
      dirty = true;
    });
    // The refetch after a reset, waiting for its random moment; one at a time (a second reset
    // meanwhile is covered by it: the requests go out after both).
    let refetchTimer: ReturnType<typeof setTimeout> | null = null;
    const offReset = client.onReset(() => {
      // Events were missed for good: what is on screen may be wrong. Start again: clear now,
      // and make every answer already on its way stale (it may predate the loss).
      today.clear();
      board.clear();
      stopResummary();
      summaryGeneration += 1;
      summaryInFlight = false;
      snapshotGeneration += 1;
      snapshotLoaded = false;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      dirty = true;
      if (refetchTimer !== null) return;
      refetchTimer = setTimeout(() => {
        refetchTimer = null;
        if (disposed) return;
        loadSummary();
        loadSnapshot();
      }, resetRefetchDelay());
    });
    loadSummary();
    loadSnapshot();

    const render = setInterval(() => {
      if (!dirty) return;
      dirty = false;
      const next = read(today, board, snapshotLoaded);
      paceResummary();
      setState(next);
    }, RENDER_MS);

    return () => {
      disposed = true;
      offFrame();
      offReset();
      clearInterval(render);
      for (const timer of timers) clearTimeout(timer);
      stopResummary();
      if (midnightTimer !== null) clearTimeout(midnightTimer);
      if (refetchTimer !== null) clearTimeout(refetchTimer);
    };
  }, [client, history, today, board, availability]);

  return state;
}

function read(today: TodayCounts, board: StockBoard, snapshotLoaded: boolean): OpeningState {
  const counts = today.totals();
  return {
    counts,
    exact: counts !== null && today.exact,
    countedSince: today.countedSince,
    timezone: today.current?.timezone ?? null,
    outOfStock: board.list(OUT_OF_STOCK_SHOWN),
    outOfStockTotal: board.size,
    outOfStockTruncated: board.truncated,
    outOfStockPartial: board.partial,
    snapshotLoaded,
  };
}
