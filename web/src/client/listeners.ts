// The listener surface every client shares: `on`, `onFrame`, `onReset`, `onState` and
// `onHeartbeat` are written once, here, and RealtimeClient, SharedRealtimeClient, the React relay
// and the tests' fake client inherit them. One way to subscribe and one way to call, so a
// listener that throws or unsubscribes while being called behaves the same everywhere.
import type { EventType, Heartbeat, SequencedEvent } from "../generated/schema";
import type { ConnectionState, RealtimeFrame, ResetCause, Unsubscribe } from "./types";

export type Listener<T> = (value: T) => void;

/** Calls `listener`; one that throws is rethrown from a fresh task, so it still reaches the
 * console / error reporting without stopping the others. */
export function safeCall<T>(listener: Listener<T>, value: T): void {
  try {
    listener(value);
  } catch (error) {
    setTimeout(() => {
      throw error;
    }, 0);
  }
}

/** The listeners of one kind of news. */
export class ListenerSet<T> {
  private readonly listeners = new Set<Listener<T>>();

  /**
   * Adds `listener`. Wrapped, so the same function subscribed twice is two subscriptions, each
   * removed by its own `Unsubscribe`.
   */
  add(listener: Listener<T>): Unsubscribe {
    const entry: Listener<T> = (value) => listener(value);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  /** Calls every listener (a copy: one may unsubscribe itself or another while they are called). */
  emit(value: T): void {
    if (this.listeners.size === 0) return;
    for (const listener of [...this.listeners]) safeCall(listener, value);
  }

  get size(): number {
    return this.listeners.size;
  }
}

/**
 * The subscription half of RealtimeClientApi. A client extends it and tells its listeners with
 * the `notify*` methods, in the order its own deliveries need (RealtimeClient, for one, records
 * each event as `lastEvent` before that event's listeners run).
 */
export class RealtimeListeners {
  private readonly eventListeners = new Map<EventType | "*", ListenerSet<SequencedEvent>>();
  private readonly frameListeners = new ListenerSet<RealtimeFrame>();
  private readonly resetListeners = new ListenerSet<ResetCause>();
  private readonly stateListeners = new ListenerSet<ConnectionState>();
  private readonly heartbeatListeners = new ListenerSet<Heartbeat>();

  /** Every event of a type ("*" for all), batches unpacked, duplicates dropped. */
  on(type: EventType | "*", listener: (event: SequencedEvent) => void): Unsubscribe {
    let set = this.eventListeners.get(type);
    if (!set) {
      set = new ListenerSet();
      this.eventListeners.set(type, set);
    }
    return set.add(listener);
  }

  /** Once per frame (a batch is one call), after `on`'s listeners heard its events. */
  onFrame(listener: (frame: RealtimeFrame) => void): Unsubscribe {
    return this.frameListeners.add(listener);
  }

  /** The server said events were missed that cannot be replayed: refetch everything. */
  onReset(listener: (reason: ResetCause) => void): Unsubscribe {
    return this.resetListeners.add(listener);
  }

  /** Every change of `state`. */
  onState(listener: (state: ConnectionState) => void): Unsubscribe {
    return this.stateListeners.add(listener);
  }

  /** Every heartbeat, as it arrives (`lastHeartbeat` holds the last one). */
  onHeartbeat(listener: (heartbeat: Heartbeat) => void): Unsubscribe {
    return this.heartbeatListeners.add(listener);
  }

  /** The listeners of `event`'s type, then those of "*". */
  protected notifyEvent(event: SequencedEvent): void {
    this.eventListeners.get(event.type)?.emit(event);
    this.eventListeners.get("*")?.emit(event);
  }

  /** The `onFrame` listeners only: a frame's events go to `notifyEvent` first, one by one. */
  protected notifyFrame(frame: RealtimeFrame): void {
    this.frameListeners.emit(frame);
  }

  protected notifyReset(reason: ResetCause): void {
    this.resetListeners.emit(reason);
  }

  protected notifyState(state: ConnectionState): void {
    this.stateListeners.emit(state);
  }

  protected notifyHeartbeat(heartbeat: Heartbeat): void {
    this.heartbeatListeners.emit(heartbeat);
  }

  /** How many subscriptions are live, of every kind (for tests that check for leaks). */
  protected countListeners(): number {
    let count = this.frameListeners.size + this.resetListeners.size + this.stateListeners.size + this.heartbeatListeners.size;
    for (const set of this.eventListeners.values()) count += set.size;
    return count;
  }
}
