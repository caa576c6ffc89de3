// A RealtimeClientApi the tests drive by hand: emit frames, resets, state changes, heartbeats.
import { act } from "@testing-library/react";
import { QueryClient } from "@tanstack/react-query";
import type {
  ConnectionState,
  RealtimeClientApi,
  RealtimeClientOptions,
  RealtimeFrame,
  ResetCause,
  Unsubscribe,
} from "../client/types";
import type { Action, EventType, Heartbeat, SequencedEvent } from "../generated/schema";

export class FakeRealtimeClient implements RealtimeClientApi {
  state: ConnectionState;
  lastEvent: SequencedEvent | null = null;
  lastEventAt: Date | null = null;
  lastHeartbeat: Heartbeat | null = null;
  instance: string | null = null;
  starts = 0;
  stops = 0;

  private readonly eventListeners = new Set<(event: SequencedEvent) => void>();
  private readonly frameListeners = new Set<(frame: RealtimeFrame) => void>();
  private readonly resetListeners = new Set<(reason: string) => void>();
  private readonly stateListeners = new Set<(state: ConnectionState) => void>();

  /** Every instance, in creation order: the provider tests mock RealtimeClient with this class. */
  static created: FakeRealtimeClient[] = [];

  /**
   * Made by a test: already "connecting". Made by the provider from options (RealtimeClient
   * mocked): "closed" until start(), like the real client.
   */
  constructor(readonly options?: RealtimeClientOptions) {
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
  on(type: EventType | "*", listener: (event: SequencedEvent) => void): Unsubscribe {
    const filtered = (event: SequencedEvent): void => {
      if (type === "*" || event.type === type) listener(event);
    };
    return add(this.eventListeners, filtered);
  }
  onFrame(listener: (frame: RealtimeFrame) => void): Unsubscribe {
    return add(this.frameListeners, listener);
  }
  onReset(listener: (reason: ResetCause) => void): Unsubscribe {
    return add(this.resetListeners, listener);
  }
  onState(listener: (state: ConnectionState) => void): Unsubscribe {
    return add(this.stateListeners, listener);
  }

  get listenerCount(): number {
    return (
      this.eventListeners.size +
      this.frameListeners.size +
      this.resetListeners.size +
      this.stateListeners.size
    );
  }

  /** Delivers a frame as the real client does: fields first, then listeners. Not wrapped in act. */
  deliver(frame: RealtimeFrame, at: Date = new Date()): void {
    const last = frame.events[frame.events.length - 1];
    if (last) {
      this.lastEvent = last;
      this.lastEventAt = at;
    }
    for (const event of frame.events) for (const l of [...this.eventListeners]) l(event);
    for (const l of [...this.frameListeners]) l(frame);
  }

  emitFrame(frame: RealtimeFrame, at?: Date): void {
    act(() => this.deliver(frame, at));
  }
  emitReset(reason: ResetCause = "stream_recreated"): void {
    act(() => {
      for (const l of [...this.resetListeners]) l(reason);
    });
  }
  setState(state: ConnectionState): void {
    act(() => {
      this.state = state;
      this.deliverState();
    });
  }
  /** Tells state listeners about `state`. Not wrapped in act. */
  deliverState(): void {
    for (const l of [...this.stateListeners]) l(this.state);
  }
  /** Heartbeats have no listener in the API: the provider picks them up by polling. */
  heartbeat(instance: string, seq = 0, degraded = false): void {
    this.instance = instance;
    this.lastHeartbeat = { instance, seq, time: new Date().toISOString(), degraded };
  }
}

function add<T>(set: Set<T>, listener: T): Unsubscribe {
  set.add(listener);
  return () => {
    set.delete(listener);
  };
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
