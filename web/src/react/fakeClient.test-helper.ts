// A RealtimeClientApi the tests drive by hand: emit frames, resets, state changes, heartbeats.
// Its listener surface is the real clients' own (RealtimeListeners).
import { act } from "@testing-library/react";
import { QueryClient } from "@tanstack/react-query";
import { RealtimeListeners } from "../client/listeners";
import type { ConnectionState, RealtimeClientApi, RealtimeClientOptions, RealtimeFrame, ResetCause } from "../client/types";
import type { Action, EventType, Heartbeat, SequencedEvent } from "../generated/schema";

export class FakeRealtimeClient extends RealtimeListeners implements RealtimeClientApi {
  state: ConnectionState;
  lastEvent: SequencedEvent | null = null;
  lastEventAt: Date | null = null;
  lastHeartbeat: Heartbeat | null = null;
  instance: string | null = null;
  starts = 0;
  stops = 0;

  /** Every instance, in creation order: the provider tests mock RealtimeClient with this class. */
  static created: FakeRealtimeClient[] = [];

  /**
   * Made by a test: already "connecting". Made by the provider from options (RealtimeClient
   * mocked): "closed" until start(), like the real client.
   */
  constructor(readonly options?: RealtimeClientOptions) {
    super();
    this.state = options ? "closed" : "connecting";
    FakeRealtimeClient.created.push(this);
  }

  start(): void {
    this.starts += 1;
    if (this.state !== "closed") return;
    this.state = "connecting";
    this.deliverState();
  }
  stop(): void {
    this.stops += 1;
    this.state = "closed";
    this.deliverState();
  }
  /** Started and not stopped since. */
  get running(): boolean {
    return this.starts > this.stops;
  }

  /** Subscriptions of every kind still live (a component that unmounted leaves none). */
  get listenerCount(): number {
    return this.countListeners();
  }

  /** Delivers a frame as the real client does: fields first, then listeners. Not wrapped in act. */
  deliver(frame: RealtimeFrame, at: Date = new Date()): void {
    const last = frame.events[frame.events.length - 1];
    if (last) {
      this.lastEvent = last;
      this.lastEventAt = at;
    }
    for (const event of frame.events) this.notifyEvent(event);
    this.notifyFrame(frame);
  }

  emitFrame(frame: RealtimeFrame, at?: Date): void {
    act(() => this.deliver(frame, at));
  }
  emitReset(reason: ResetCause = "stream_recreated"): void {
    act(() => this.notifyReset(reason));
  }
  setState(state: ConnectionState): void {
    act(() => {
      this.state = state;
      this.deliverState();
    });
  }
  /** Tells state listeners about `state`. Not wrapped in act. */
  deliverState(): void {
    this.notifyState(this.state);
  }
  /** A heartbeat from gateway `instance`, as the real client takes one: fields, then listeners. */
  heartbeat(instance: string, seq = 0, degraded = false): Heartbeat {
    const heartbeat: Heartbeat = { instance, seq, time: new Date().toISOString(), degraded };
    act(() => {
      this.instance = instance;
      this.lastHeartbeat = heartbeat;
      this.notifyHeartbeat(heartbeat);
    });
    return heartbeat;
  }
}

let nextSeq = 1000;

export function event(
  type: EventType,
  id: string,
  overrides: { seq?: number; action?: Action; data?: Record<string, unknown> } = {},
): SequencedEvent {
  nextSeq += 1;
  return {
    type,
    seq: overrides.seq ?? nextSeq,
    payload: { id, action: overrides.action ?? "updated", data: overrides.data ?? {} },
    timestamp: new Date().toISOString(),
  };
}

export function single(e: SequencedEvent): RealtimeFrame {
  return { type: e.type, batch: false, count: 1, events: [e] };
}

/** A batch of `count` events of one type (ids `${prefix}_1`...), all listed. */
export function batch(type: EventType, count: number, prefix = "id"): RealtimeFrame {
  const events = Array.from({ length: count }, (_, i) => event(type, `${prefix}_${i + 1}`));
  return { type, batch: true, count, events };
}

/** One QueryClient per test, without retries or garbage-collection timers in the way. */
export function testQueryClient(): QueryClient {
  return new QueryClient({ defaultOptions: { queries: { retry: false, gcTime: Infinity } } });
}
