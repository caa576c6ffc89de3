// A stable stand-in for the provider's client. The real RealtimeClient is created in an effect
// (never during render, so server rendering and StrictMode open no connections) and replaced
// when the connection settings change; the relay exists from the first render and forwards to
// whichever client is current. Components can therefore rely on a non-null client and
// subscribe once, and their listeners survive a client being replaced.
import type { ConnectionState, RealtimeClientApi, Unsubscribe } from "../client/types";
import { ListenerSet, RealtimeListeners } from "../client/listeners";
import type { Heartbeat, SequencedEvent } from "../generated/schema";

export class ClientRelay extends RealtimeListeners implements RealtimeClientApi {
  private target: RealtimeClientApi | null = null;
  private detachTarget: Unsubscribe | null = null;
  /** The state reported while no client is attached. */
  private idleState: ConnectionState;
  private reportedState: ConnectionState;
  /** The last heartbeat the listeners heard, so a replaced client's is told only if new. */
  private reportedHeartbeat: Heartbeat | null = null;
  private readonly attachListeners = new ListenerSet<RealtimeClientApi | null>();

  constructor(idleState: ConnectionState) {
    super();
    this.idleState = idleState;
    this.reportedState = idleState;
  }

  /** The client currently attached (null before the provider's effect ran). */
  get current(): RealtimeClientApi | null {
    return this.target;
  }

  /**
   * Forward to `target` from now on (null: none, reporting `idleState`). Listeners stay
   * registered; they hear a state change if the new client's state differs, and the new
   * client's last heartbeat if it has one they have not heard.
   */
  attach(target: RealtimeClientApi | null, idleState: ConnectionState): void {
    this.idleState = idleState;
    const replaced = target !== this.target;
    if (replaced) {
      this.detachTarget?.();
      this.detachTarget = null;
      this.target = target;
      if (target) {
        const offs = [
          target.on("*", (event) => this.notifyEvent(event)),
          target.onFrame((frame) => this.notifyFrame(frame)),
          target.onReset((reason) => this.notifyReset(reason)),
          target.onState(() => this.reportState()),
          target.onHeartbeat((heartbeat) => this.reportHeartbeat(heartbeat)),
        ];
        this.detachTarget = () => {
          for (const off of offs) off();
        };
      }
    }
    this.reportState();
    if (target?.lastHeartbeat) this.reportHeartbeat(target.lastHeartbeat);
    if (replaced) this.attachListeners.emit(target);
  }

  /**
   * Every change of the attached client, after the state and heartbeat listeners heard about
   * it: what the relay reports (instance, last event) may have changed with no event at all.
   */
  onAttach(listener: (target: RealtimeClientApi | null) => void): Unsubscribe {
    return this.attachListeners.add(listener);
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

  /** Tells listeners about the state only when it changed: a swap may keep it. */
  private reportState(): void {
    const state = this.state;
    if (state === this.reportedState) return;
    this.reportedState = state;
    this.notifyState(state);
  }

  private reportHeartbeat(heartbeat: Heartbeat): void {
    if (heartbeat === this.reportedHeartbeat) return;
    this.reportedHeartbeat = heartbeat;
    this.notifyHeartbeat(heartbeat);
  }
}
