// What the gateway's messages say, read defensively (see docs/PROTOCOL.md for the wire format),
// and which events the client has already delivered. Both transports hand the client the same
// IncomingMessage; everything here is independent of the transport.
import { CHANNELS, RESET_REASONS } from "../generated/schema";
import type { BatchFrame, EventType, Heartbeat, ResetReason, SequencedEvent } from "../generated/schema";
import { isRecord } from "./tokenRequest";
import type { RealtimeFrame, ResetCause } from "./types";

/**
 * The event names a client listens for. Internal channels (the canary) are not for browsers,
 * so only the public types are taken from the channel table.
 */
export const PUBLIC_EVENT_TYPES: readonly EventType[] = CHANNELS.filter((c) => !c.internal).map(
  (c) => c.eventType,
);

/** Whether `name` is an event type a browser receives. */
export function isPublicEventType(name: string): boolean {
  return (PUBLIC_EVENT_TYPES as readonly string[]).includes(name);
}

function isSequencedEvent(value: unknown): value is SequencedEvent {
  return isRecord(value) && typeof value.type === "string" && typeof value.seq === "number";
}

function isBatchFrame(value: unknown): value is BatchFrame {
  return (
    isRecord(value) &&
    value.batch === true &&
    typeof value.type === "string" &&
    typeof value.count === "number" &&
    Array.isArray(value.events)
  );
}

function isHeartbeatLike(value: unknown): value is Record<string, unknown> & { instance: string; seq: number } {
  return isRecord(value) && typeof value.instance === "string" && typeof value.seq === "number";
}

/** A heartbeat as the application sees it; a gateway that predates `degraded` never is. */
export function toHeartbeat(value: unknown): Heartbeat | null {
  if (!isHeartbeatLike(value)) return null;
  return {
    instance: value.instance,
    seq: value.seq,
    time: typeof value.time === "string" ? value.time : "",
    degraded: value.degraded === true,
  };
}

function isResetReason(value: unknown): value is ResetReason {
  return (RESET_REASONS as readonly unknown[]).includes(value);
}

/** The reason of a `reset` message; `unknown` for one this client predates. */
export function resetCauseOf(data: unknown): ResetCause {
  return isRecord(data) && isResetReason(data.reason) ? data.reason : "unknown";
}

/** The sequence in a cursor `<epoch>-<seq>`; null for none or another shape. */
export function cursorSeq(cursor: string | null): number | null {
  if (cursor === null) return null;
  const match = /^\d+-(\d+)$/.exec(cursor);
  return match && match[1] !== undefined ? Number(match[1]) : null;
}

/** JSON text to a value; null for anything that is not JSON text. */
export function parseJson(text: unknown): unknown {
  if (typeof text !== "string") return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/**
 * The seqs seen recently. A window rather than a high-water mark: debounce holds each type back
 * separately, so frames of different types legitimately arrive out of seq order.
 */
export class RecentSeqs {
  private readonly seqs = new Set<number>();

  constructor(private readonly capacity: number) {}

  /** Records `seq`; false when it was already seen. */
  add(seq: number): boolean {
    if (this.seqs.has(seq)) return false;
    this.seqs.add(seq);
    if (this.seqs.size > this.capacity) {
      // A Set iterates in insertion order, so the first value is the oldest.
      const oldest = this.seqs.values().next();
      if (!oldest.done) this.seqs.delete(oldest.value);
    }
    return true;
  }

  clear(): void {
    this.seqs.clear();
  }
}

/**
 * The frame an event message's data stands for, with the events `seen` before dropped (and the
 * others recorded); null when it is not a frame, or a single event seen before.
 */
export function toFrame(data: unknown, seen: RecentSeqs): RealtimeFrame | null {
  const fresh = (events: readonly unknown[]): SequencedEvent[] =>
    events.filter(isSequencedEvent).filter((event) => seen.add(event.seq));
  if (isBatchFrame(data)) return { type: data.type, batch: true, count: data.count, events: fresh(data.events) };
  if (!isSequencedEvent(data)) return null;
  const events = fresh([data]);
  // A single frame that was a duplicate says nothing new. A batch still does: its count covers
  // folded events that were never listed, so it is delivered even when empty.
  if (events.length === 0) return null;
  return { type: data.type, batch: false, count: 1, events };
}
