// A useSyncExternalStore source for the client's connection status. The provider is its only
// subscriber, so there is one subscription (and one poll timer) per app however many
// components show the status.
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

/**
 * Heartbeats update `instance` but the client API has no heartbeat listener, so the store also
 * re-reads the client on a timer. A tick that finds nothing new costs a few comparisons and no
 * render: getSnapshot returns the same object and React bails out.
 */
export const STATUS_POLL_MS = 1000;

/** The status re-renders for new frames at most this often. */
export const FRAME_NOTIFY_MS = 250;

export function createStatusStore(
  client: RealtimeClientApi,
  pollMs: number = STATUS_POLL_MS,
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
      const offs = [client.onState(onChange), client.onFrame(onFrame), client.onReset(onChange)];
      const timer = setInterval(onChange, pollMs);
      return () => {
        clearInterval(timer);
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
