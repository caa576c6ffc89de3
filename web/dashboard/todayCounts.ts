// Today's counters, exact: the gateway's summary counts every event stored up to `throughSeq`;
// the stream adds the ones after it. The two overlap (a backfill replays events the summary
// already counted; the summary may be computed while frames are on their way), so each frame
// is kept in a short log and counted only for its events above the summary's `throughSeq`.
// A new summary (after local midnight, after a reset) is applied to the same log, which is what
// keeps the figures exact across a refetch.
import type { Summary } from "../src/client/history";
import type { RealtimeFrame } from "../src/client/types";
import { COUNTED_TYPES, isCountedType, type CountedType } from "./format";

export type Counts = Record<CountedType, number>;

/** Frames kept for recounting against a newer summary; older ones are folded into a tally. */
export const FRAME_LOG_CAP = 5_000;

interface FrameRecord {
  type: CountedType;
  count: number;
  /** The listed events' sequences. */
  listed: number[];
  /** Every event of the frame is above this (the cursor before it); null when unknown. */
  afterSeq: number | null;
}

/** How many of a frame's events lie above `through`, and whether that is certain. */
export function countAbove(record: FrameRecord, through: number): { count: number; exact: boolean } {
  if (record.afterSeq !== null && record.afterSeq >= through) return { count: record.count, exact: true };
  let max = Number.NEGATIVE_INFINITY;
  let min = Number.POSITIVE_INFINITY;
  let above = 0;
  for (const seq of record.listed) {
    if (seq > max) max = seq;
    if (seq < min) min = seq;
    if (seq > through) above += 1;
  }
  // Events a batch folded away are older than the ones it lists (latest per id; the cap keeps
  // the newest), so a batch whose newest listed event is counted is counted whole.
  if (record.listed.length > 0 && max <= through) return { count: 0, exact: true };
  if (record.listed.length === record.count) return { count: above, exact: true };
  // Folded events on both sides of `through` are possible: the best guess, flagged.
  return { count: min > through ? record.count : above, exact: false };
}

function zero(): Counts {
  const counts = {} as Counts;
  for (const type of COUNTED_TYPES) counts[type] = 0;
  return counts;
}

export class TodayCounts {
  private summary: Summary | null = null;
  private log: FrameRecord[] = [];
  /** What frames dropped from the log added, against the current summary. */
  private folded: Counts = zero();
  /** The highest sequence a folded frame touched: a summary through it makes `folded` moot. */
  private foldedThrough = 0;
  private uncertain = false;

  /** Records a frame of the stream. */
  addFrame(frame: RealtimeFrame): void {
    if (!isCountedType(frame.type)) return;
    const record: FrameRecord = {
      type: frame.type,
      count: frame.count,
      listed: frame.events.map((event) => event.seq),
      afterSeq: frame.afterSeq ?? null,
    };
    this.log.push(record);
    if (this.log.length > FRAME_LOG_CAP) this.fold(this.log.shift());
  }

  /** A newer summary: the counts start again from it, and the log is counted against it. */
  setSummary(summary: Summary): void {
    this.summary = summary;
    if (summary.throughSeq >= this.foldedThrough) this.folded = zero();
    // Frames entirely at or below it will never count again (summaries only move forward
    // until a reset, which clears everything).
    this.log = this.log.filter((record) => !isBelow(record, summary.throughSeq));
  }

  /** The stream was reset: seqs may start again and events were missed; wait for a summary. */
  clear(): void {
    this.summary = null;
    this.log = [];
    this.folded = zero();
    this.foldedThrough = 0;
    this.uncertain = false;
  }

  get hasSummary(): boolean {
    return this.summary !== null;
  }

  get current(): Summary | null {
    return this.summary;
  }

  /**
   * Whether a newer summary could make the counts exact: a frame could not be placed against
   * this one (it straddles `throughSeq`), or the gateway counted while events kept arriving.
   * Not when the stream no longer holds a whole window (`todayComplete`/`lastHourComplete`
   * false, which also makes `exact` false): every refetch would say the same, until the
   * stream's limits are raised. The gateway's `exact` does not say which of the two it was, so
   * such a summary is taken as settled (and shown as not exact anyway).
   */
  get needsNewerSummary(): boolean {
    if (this.uncertain) return true;
    const summary = this.summary;
    if (summary === null || summary.exact) return false;
    return summary.todayComplete !== false && summary.lastHourComplete !== false;
  }

  /** Whether `totals()` is the exact truth: no refetch due, and the gateway vouches for it. */
  get exact(): boolean {
    return this.summary !== null && !this.uncertain && this.summary.exact;
  }

  /**
   * When the stream no longer holds all of today (STREAM_MAX_MESSAGES/STREAM_MAX_AGE removed
   * events of it), the instant (RFC 3339) today's counts really start from ("" if the summary
   * does not say); null when today is whole.
   */
  get countedSince(): string | null {
    const summary = this.summary;
    if (summary?.todayComplete !== false) return null;
    return summary.firstHeldAt ?? "";
  }

  /** Today's totals by type; null until the first summary. */
  totals(): Counts | null {
    const summary = this.summary;
    if (summary === null) return null;
    const counts = zero();
    for (const type of COUNTED_TYPES) counts[type] = (summary.today[type] ?? 0) + this.folded[type];
    let uncertain = false;
    for (const record of this.log) {
      const { count, exact } = countAbove(record, summary.throughSeq);
      counts[record.type] += count;
      if (!exact) uncertain = true;
    }
    this.uncertain = uncertain;
    return counts;
  }

  private fold(record: FrameRecord | undefined): void {
    if (!record) return;
    const through = this.summary?.throughSeq ?? 0;
    this.folded[record.type] += countAbove(record, through).count;
    // Folded events are older than the listed ones; a batch listing none has no known bound.
    if (record.listed.length === 0) this.foldedThrough = Number.POSITIVE_INFINITY;
    for (const seq of record.listed) if (seq > this.foldedThrough) this.foldedThrough = seq;
  }
}

/** Whether every event of the frame is certainly at or below `through`. */
function isBelow(record: FrameRecord, through: number): boolean {
  return record.listed.length > 0 && record.listed.every((seq) => seq <= through);
}

/**
 * The first instant of the next local day in `timeZone` after `now` (ms). Where a DST change
 * skips midnight, the first instant that exists. Intl has no "start of day", so the offset is
 * read for a guess and the guess corrected, twice (the offset may differ across the change).
 */
export function nextLocalMidnight(now: number, timeZone: string): number {
  const today = localParts(now, timeZone);
  const targetWall = Date.UTC(today.year, today.month - 1, today.day + 1);
  let guess = targetWall - offsetAt(targetWall, timeZone);
  guess = targetWall - offsetAt(guess, timeZone);
  // A skipped midnight (the wall clock jumps from 23:59:59 to 01:00) lands the guess before the
  // day; the first instant of the day is then the change itself, an hour later at most.
  if (localParts(guess, timeZone).day === today.day) guess += 60 * 60_000;
  return guess;
}

interface Parts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function localParts(at: number, timeZone: string): Parts {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(timeZone, format);
  }
  const parts: Parts = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  for (const part of format.formatToParts(new Date(at))) {
    if (part.type in parts) parts[part.type as keyof Parts] = Number(part.value);
  }
  return parts;
}

/** Local wall time minus UTC at `at`, in ms. */
function offsetAt(at: number, timeZone: string): number {
  const p = localParts(at, timeZone);
  const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return wall - Math.floor(at / 1000) * 1000;
}
