// The last known availability of each product, so that "went out of stock" can be told from
// "is still out of stock": a product that stays out of stock through price or listing changes
// must not be announced again with every INVENTORY_CHANGE that repeats it.
import type { RealtimeFrame } from "./types";
import type { SequencedEvent } from "../generated/schema";
import { availabilityOf } from "./inventory";

/**
 * Products remembered at most. Past it the least recently changed is forgotten; a forgotten
 * product counts as unknown, so its next "out of stock" is announced again (once).
 */
export const AVAILABILITY_MEMORY_CAP = 10_000;

interface Known {
  out: boolean;
  /** The newest event applied: an older one (a snapshot read before a live event) loses. */
  seq: number;
}

export class AvailabilityMemory {
  /** Insertion order is recency: a product seen again moves to the end. */
  private readonly known = new Map<string, Known>();

  constructor(private readonly cap: number = AVAILABILITY_MEMORY_CAP) {}

  /**
   * Records an INVENTORY_CHANGE (other types are ignored). True when it takes the product out
   * of stock from in stock or from unknown (never seen, or forgotten); false for a product that
   * was already out, an event older than the one known, and anything that is not a change.
   */
  observe(event: SequencedEvent): boolean {
    if (event.type !== "INVENTORY_CHANGE") return false;
    const id = event.payload.id;
    const before = this.known.get(id);
    if (before !== undefined && before.seq >= event.seq) return false;
    if (event.payload.action === "deleted") {
      this.known.delete(id);
      return false;
    }
    const availability = availabilityOf(event);
    // An event that says nothing about stock keeps what was known, at its newer seq.
    const out = availability === null ? (before?.out ?? false) : availability === "out";
    if (availability === null && before === undefined) return false;
    this.known.delete(id);
    this.known.set(id, { out, seq: event.seq });
    if (this.known.size > this.cap) {
      const oldest = this.known.keys().next();
      if (!oldest.done) this.known.delete(oldest.value);
    }
    return out && before?.out !== true;
  }

  /**
   * The events of an INVENTORY_CHANGE frame that took their product out of stock, every listed
   * event recorded (in seq order, as they happened). Empty for other types.
   */
  wentOutOfStock(frame: RealtimeFrame): SequencedEvent[] {
    if (frame.type !== "INVENTORY_CHANGE") return [];
    const events = [...frame.events].sort((a, b) => a.seq - b.seq);
    return events.filter((event) => this.observe(event));
  }

  /** Records events (e.g. a snapshot's) without announcing anything. */
  seed(events: Iterable<SequencedEvent>): void {
    for (const event of events) this.observe(event);
  }

  /** Whether the product is known to be out of stock. */
  isOut(id: string): boolean {
    return this.known.get(id)?.out === true;
  }

  get size(): number {
    return this.known.size;
  }

  /** After a reset: seqs may start again and states may be stale; start from nothing. */
  clear(): void {
    this.known.clear();
  }
}
