// A useSyncExternalStore source for the client's connection status. The provider is its only
// subscriber, so there is one subscription per app however many components show the status.
// Driven by the client's listeners alone (state, frames, resets, heartbeats): it never reads the
// client on a timer. A display that shows a clock ("12 s ago") ticks on its own.
import type { ConnectionState, RealtimeClientApi, Unsubscribe } from "../client/types";
import type { SequencedEvent } from "../generated/schema";

/** What the header, hooks and components show about the connection. */
export interface RealtimeStatus {
  state: ConnectionState;
  /** The gateway instance of the last heartbeat ("gw-2"), null until one arrived. */
  instance: string | null;
  /** The last event the client delivered (of any type). */
  lastEvent: SequencedEvent | null;
  /** When that event arrived. */
  lastEventAt: Date | null;
}

export interface StatusStore {
  subscribe(onChange: () => void): Unsubscribe;
  getSnapshot(): RealtimeStatus;
}

/** The status re-renders for new frames at most this often. */
export const FRAME_NOTIFY_MS = 250;

/**
 * `onSwap`: news of the client behind `client` being replaced (ClientRelay.onAttach), after
 * which instance and last event may differ with no event to say so.
 */
export function createStatusStore(
  client: RealtimeClientApi,
  onSwap?: (listener: () => void) => Unsubscribe,
): StatusStore {
  let snapshot = read(client);
  return {
    subscribe(onChange) {
      // Frames can come thousands a second (debounce off); the status needs at most a few
      // renders a second: the first frame notifies at once, later ones at most every
      // FRAME_NOTIFY_MS.
      let frameTimer: ReturnType<typeof setTimeout> | null = null;
      let lastNotified = Number.NEGATIVE_INFINITY;
      const notifyFrame = (): void => {
        frameTimer = null;
        lastNotified = Date.now();
        onChange();
      };
      const onFrame = (): void => {
        if (frameTimer !== null) return;
        const wait = lastNotified + FRAME_NOTIFY_MS - Date.now();
        if (wait <= 0) notifyFrame();
        else frameTimer = setTimeout(notifyFrame, wait);
      };
      // A heartbeat is what sets `instance`; one comes every SSE_HEARTBEAT_INTERVAL, and one
      // that changes nothing costs a few comparisons and no render (getSnapshot returns the
      // same object and React bails out).
      const offs = [
        client.onState(onChange),
        client.onFrame(onFrame),
        client.onReset(onChange),
        client.onHeartbeat(onChange),
      ];
      if (onSwap) offs.push(onSwap(onChange));
      return () => {
        if (frameTimer !== null) clearTimeout(frameTimer);
        for (const off of offs) off();
      };
    },
    // Reads the client every time (so a render never shows stale fields) but returns the cached
    // object while nothing changed: useSyncExternalStore requires a stable snapshot.
    getSnapshot() {
      const next = read(client);
      if (!sameStatus(next, snapshot)) snapshot = next;
      return snapshot;
    },
  };
}

function read(client: RealtimeClientApi): RealtimeStatus {
  return {
    state: client.state,
    instance: client.instance,
    lastEvent: client.lastEvent,
    lastEventAt: client.lastEventAt,
  };
}

function sameStatus(a: RealtimeStatus, b: RealtimeStatus): boolean {
  return (
    a.state === b.state &&
    a.instance === b.instance &&
    a.lastEvent === b.lastEvent &&
    a.lastEventAt?.getTime() === b.lastEventAt?.getTime()
  );
}
