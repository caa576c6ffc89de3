// A stable stand-in for the provider's client. The real RealtimeClient is created in an effect
// (never during render, so server rendering and StrictMode open no connections) and replaced
// when the connection settings change; the relay exists from the first render and forwards to
// whichever client is current. Components can therefore rely on a non-null client and
// subscribe once, and their listeners survive a client being replaced.
import type {
  ConnectionState,
  RealtimeClientApi,
  RealtimeFrame,
  ResetCause,
  Unsubscribe,
} from "../client/types";
import { addTo, emit, type Listener } from "../client/listeners";
import type { EventType, Heartbeat, SequencedEvent } from "../generated/schema";

export class ClientRelay implements RealtimeClientApi {
  private target: RealtimeClientApi | null = null;
  private detachTarget: Unsubscribe | null = null;
  /** The state reported while no client is attached. */
  private idleState: ConnectionState;
  private reportedState: ConnectionState;

  private readonly eventListeners = new Map<EventType | "*", Set<Listener<SequencedEvent>>>();
  private readonly frameListeners = new Set<Listener<RealtimeFrame>>();
  private readonly resetListeners = new Set<Listener<ResetCause>>();
  private readonly stateListeners = new Set<Listener<ConnectionState>>();

  constructor(idleState: ConnectionState) {
    this.idleState = idleState;
    this.reportedState = idleState;
  }

  /** The client currently attached (null before the provider's effect ran). */
  get current(): RealtimeClientApi | null {
    return this.target;
  }

  /**
   * Forward to `target` from now on (null: none, reporting `idleState`). Listeners stay
   * registered; they hear a state change if the new client's state differs.
   */
  attach(target: RealtimeClientApi | null, idleState: ConnectionState): void {
    this.idleState = idleState;
    if (target !== this.target) {
      this.detachTarget?.();
      this.detachTarget = null;
      this.target = target;
      if (target) {
        const offs = [
          target.on("*", (event) => {
            emit(this.eventListeners.get(event.type), event);
            emit(this.eventListeners.get("*"), event);
          }),
          target.onFrame((frame) => emit(this.frameListeners, frame)),
          target.onReset((reason) => emit(this.resetListeners, reason)),
          target.onState(() => this.reportState()),
        ];
        this.detachTarget = () => {
          for (const off of offs) off();
        };
      }
    }
    this.reportState();
  }

  get state(): ConnectionState {
    return this.target?.state ?? this.idleState;
  }
  get lastEvent(): SequencedEvent | null {
    return this.target?.lastEvent ?? null;
  }
  get lastEventAt(): Date | null {
    return this.target?.lastEventAt ?? null;
  }
  get lastHeartbeat(): Heartbeat | null {
    return this.target?.lastHeartbeat ?? null;
  }
  get instance(): string | null {
    return this.target?.instance ?? null;
  }

  start(): void {
    this.target?.start();
  }
  stop(): void {
    this.target?.stop();
  }

  on(type: EventType | "*", listener: (event: SequencedEvent) => void): Unsubscribe {
    let set = this.eventListeners.get(type);
    if (!set) {
      set = new Set();
      this.eventListeners.set(type, set);
    }
    return addTo(set, listener);
  }
  onFrame(listener: (frame: RealtimeFrame) => void): Unsubscribe {
    return addTo(this.frameListeners, listener);
  }
  onReset(listener: (reason: ResetCause) => void): Unsubscribe {
    return addTo(this.resetListeners, listener);
  }
  onState(listener: (state: ConnectionState) => void): Unsubscribe {
    return addTo(this.stateListeners, listener);
  }

  /** Tells listeners about the state only when it changed: a swap may keep it. */
  private reportState(): void {
    const state = this.state;
    if (state === this.reportedState) return;
    this.reportedState = state;
    emit(this.stateListeners, state);
  }
}
