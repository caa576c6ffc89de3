// Accumulates frames outside React. Frames are counted and queued here as they arrive (cheap,
// no rendering); the dashboard takes a snapshot a few times a second. A burst of 2,000 events —
// as a few batch frames or as 2,000 single frames — costs 2,000 cheap calls and one render.
import type { EventType, SequencedEvent } from "../src/generated/schema";
import type { RealtimeFrame } from "../src/client/types";
import { COUNTED_TYPES, isCountedType, type CountedType } from "./format";

export const FEED_CAP = 200;
export const SPARK_SECONDS = 60;
/** Seconds averaged for the events/second figure. */
export const RATE_WINDOW_SECONDS = 5;

export type FeedRow =
  | {
      kind: "event";
      key: number;
      /** Local arrival time (ms). */
      receivedAt: number;
      type: EventType;
      batch: boolean;
      /** Events the row stands for (the frame's exact count). */
      count: number;
      /** The newest event listed (for the entity link); null for a batch that lists none. */
      latest: SequencedEvent | null;
      /** Every event listed in the frame, newest last (as delivered). */
      events: SequencedEvent[];
    }
  | { kind: "notice"; key: number; receivedAt: number; text: string };

export type Counts = Record<CountedType, number>;

export interface LiveSnapshot {
  counts: Counts;
  total: number;
  /** Newest first, at most FEED_CAP. */
  rows: FeedRow[];
  /** Events per second, oldest first, SPARK_SECONDS values; the last is the current second. */
  perSecond: number[];
  /** Average events/second over the last RATE_WINDOW_SECONDS complete seconds. */
  rate: number;
  /** Local time of the last frame or heartbeat (ms). */
  lastHeardAt: number | null;
  now: number;
}

const RING = 128;

function zeroCounts(): Counts {
  const counts = {} as Counts;
  for (const type of COUNTED_TYPES) counts[type] = 0;
  return counts;
}

export class LiveStore {
  private counts: Counts = zeroCounts();
  private total = 0;
  private rows: FeedRow[] = [];
  /** Rows since the last snapshot, oldest first (capped: older ones would be cut anyway). */
  private pending: FeedRow[] = [];
  /** History rows since the last snapshot, sorted by seq when taken (bounded like `pending`). */
  private history: FeedRow[] = [];
  private nextKey = 1;
  private readonly bucketSecond = new Float64Array(RING).fill(-1);
  private readonly bucketCount = new Float64Array(RING);
  private lastHeardAt: number | null = null;
  private dirty = true;

  /** Handles one frame; returns nothing, renders nothing. */
  addFrame(frame: RealtimeFrame, now: number = Date.now()): void {
    if (!isCountedType(frame.type)) return;
    if (frame.history) {
      this.addHistory(frame, now);
      return;
    }
    // `count` is exact: a batch's list may be shortened (latest per id, cap) or even empty
    // (every listed event a duplicate), yet its count still covers the folded events.
    const latest = frame.events[frame.events.length - 1] ?? null;
    const count = frame.batch ? frame.count : Math.max(frame.count, frame.events.length);
    if (!(count > 0)) return;

    this.counts[frame.type] += count;
    this.total += count;
    this.addToBucket(now, count);
    this.lastHeardAt = now;
    this.push({
      kind: "event",
      key: this.nextKey++,
      receivedAt: now,
      type: frame.type,
      batch: frame.batch && count > 1,
      count,
      latest,
      events: frame.events,
    });
  }

  /**
   * Recent history (a backfill, a resume's catch-up) is the past, not traffic: it does not
   * count towards the rate, and a replayed batch is shown as one row per event it lists, in
   * stream order, so the feed reads as it would have live.
   */
  private addHistory(frame: RealtimeFrame, now: number): void {
    const type = frame.type;
    if (!isCountedType(type)) return;
    for (const event of frame.events) {
      this.history.push({
        kind: "event",
        key: this.nextKey++,
        receivedAt: now,
        type,
        batch: false,
        count: 1,
        latest: event,
        events: [event],
      });
    }
    if (this.history.length > FEED_CAP * 2) this.history.splice(0, this.history.length - FEED_CAP);
    this.lastHeardAt = now;
    this.dirty = true;
  }

  addNotice(text: string, now: number = Date.now()): void {
    this.push({ kind: "notice", key: this.nextKey++, receivedAt: now, text });
  }

  /** A heartbeat (or anything else) was heard from the gateway. */
  heard(now: number = Date.now()): void {
    if (this.lastHeardAt === null || now > this.lastHeardAt) {
      this.lastHeardAt = now;
      this.dirty = true;
    }
  }

  get isDirty(): boolean {
    return this.dirty;
  }

  snapshot(now: number = Date.now()): LiveSnapshot {
    if (this.history.length > 0) {
      // Replayed frames come one per type; the feed wants them interleaved as they happened.
      const ordered = this.history.sort((a, b) => rowSeq(a) - rowSeq(b));
      this.history = [];
      this.pending = ordered.concat(this.pending);
    }
    if (this.pending.length > 0) {
      const fresh = this.pending.reverse();
      this.pending = [];
      this.rows = fresh.length >= FEED_CAP ? fresh.slice(0, FEED_CAP) : fresh.concat(this.rows);
      if (this.rows.length > FEED_CAP) this.rows.length = FEED_CAP;
    }
    this.dirty = false;

    const nowSecond = Math.floor(now / 1000);
    const perSecond: number[] = [];
    for (let s = nowSecond - SPARK_SECONDS + 1; s <= nowSecond; s++) perSecond.push(this.bucket(s));
    let windowSum = 0;
    for (let s = nowSecond - RATE_WINDOW_SECONDS; s < nowSecond; s++) windowSum += this.bucket(s);

    return {
      counts: { ...this.counts },
      total: this.total,
      rows: this.rows,
      perSecond,
      rate: windowSum / RATE_WINDOW_SECONDS,
      lastHeardAt: this.lastHeardAt,
      now,
    };
  }

  private push(row: FeedRow): void {
    this.pending.push(row);
    if (this.pending.length > FEED_CAP * 2) this.pending.splice(0, this.pending.length - FEED_CAP);
    this.dirty = true;
  }

  private addToBucket(now: number, count: number): void {
    const second = Math.floor(now / 1000);
    const index = second % RING;
    if (this.bucketSecond[index] !== second) {
      this.bucketSecond[index] = second;
      this.bucketCount[index] = 0;
    }
    this.bucketCount[index] = (this.bucketCount[index] ?? 0) + count;
  }

  private bucket(second: number): number {
    const index = ((second % RING) + RING) % RING;
    return this.bucketSecond[index] === second ? (this.bucketCount[index] ?? 0) : 0;
  }
}

function rowSeq(row: FeedRow): number {
  return row.kind === "event" ? (row.latest?.seq ?? 0) : 0;
}
