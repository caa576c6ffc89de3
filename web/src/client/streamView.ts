// What a client knows of its stream (state, last event, last heartbeat, the instance serving
// it) and how it tells its listeners, written once for RealtimeClient and SharedRealtimeClient:
// each records what it heard through these methods, so the getters and the listeners can never
// disagree about what was last heard.
import type { Heartbeat, SequencedEvent } from "../generated/schema";
import { RealtimeListeners } from "./listeners";
import type { ConnectionState, RealtimeFrame } from "./types";

export class StreamView extends RealtimeListeners {
  protected _state: ConnectionState = "closed";
  protected _lastEvent: SequencedEvent | null = null;
  protected _lastEventAt: Date | null = null;
  protected _lastHeartbeat: Heartbeat | null = null;
  protected _instance: string | null = null;

  get state(): ConnectionState {
    return this._state;
  }
  get lastEvent(): SequencedEvent | null {
    return this._lastEvent;
  }
  get lastEventAt(): Date | null {
    return this._lastEventAt;
  }
  get lastHeartbeat(): Heartbeat | null {
    return this._lastHeartbeat;
  }
  get instance(): string | null {
    return this._instance;
  }

  /** A change of state, told once (the same state again is no news). */
  protected setState(state: ConnectionState): void {
    if (state === this._state) return;
    this._state = state;
    this.notifyState(state);
  }

  /** A heartbeat: it also names the instance serving the stream. */
  protected recordHeartbeat(heartbeat: Heartbeat): void {
    this._lastHeartbeat = heartbeat;
    this._instance = heartbeat.instance;
    this.notifyHeartbeat(heartbeat);
  }

  /** Each of `frame`'s events as `lastEvent` before its listeners hear it, then the frame. */
  protected deliverEvents(events: SequencedEvent[], frame: RealtimeFrame): void {
    for (const event of events) {
      this._lastEvent = event;
      this._lastEventAt = new Date();
      this.notifyEvent(event);
    }
    this.notifyFrame(frame);
  }
}
