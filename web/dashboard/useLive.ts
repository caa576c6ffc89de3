// Connects the LiveStore to the realtime client and re-renders the dashboard at most four times
// a second (and once a second regardless, so the sparkline and "last heard" keep moving: that
// clock is the display's own; frames, heartbeats and states come from the client's listeners).
import { useEffect, useRef, useState } from "react";
import type { ConnectionState, RealtimeClientApi } from "../src/client/types";
import type { Heartbeat } from "../src/generated/schema";
import { LiveStore, type LiveSnapshot } from "./liveStore";

const FLUSH_MS = 250;

export interface LiveView extends LiveSnapshot {
  state: ConnectionState;
  instance: string | null;
  /** Whether the connection has been open at least once since the page loaded. */
  everOpened: boolean;
  /** The last heartbeat said the gateway's end-to-end canary is not coming back. */
  degraded: boolean;
}

/** `client` is null until the provider has created it (its first effect after mount). */
export function useLive(client: RealtimeClientApi | null): { view: LiveView; store: LiveStore } {
  const storeRef = useRef<LiveStore | null>(null);
  if (storeRef.current === null) storeRef.current = new LiveStore();
  const store = storeRef.current;

  const [view, setView] = useState<LiveView>(() => ({
    ...store.snapshot(),
    state: client?.state ?? "connecting",
    instance: client?.instance ?? null,
    everOpened: client?.state === "open",
    degraded: client?.lastHeartbeat?.degraded === true,
  }));

  useEffect(() => {
    if (client === null) return;
    const unsubscribeFrame = client.onFrame((frame) => store.addFrame(frame));
    const unsubscribeReset = client.onReset((reason) =>
      store.addNotice(`Stream reset (${reason}): some events were missed; counters may be low`),
    );

    let state = client.state;
    let everOpened = state === "open";
    let lastHeartbeat: Heartbeat | null = null;
    let lastSecond = -1;

    const flush = (force: boolean): void => {
      const now = Date.now();
      const second = Math.floor(now / 1000);
      if (!force && !store.isDirty && second === lastSecond) return;
      lastSecond = second;
      setView({
        ...store.snapshot(now),
        state,
        instance: client.instance,
        everOpened,
        degraded: client.lastHeartbeat?.degraded === true,
      });
    };

    /** Returns whether `degraded` changed, which must show at once, not at the next second. */
    const hear = (heartbeat: Heartbeat): boolean => {
      const changed = heartbeat.degraded !== lastHeartbeat?.degraded;
      lastHeartbeat = heartbeat;
      store.heard();
      return changed;
    };
    // Shown at the next tick, like frames, unless `degraded` changed.
    const unsubscribeHeartbeat = client.onHeartbeat((heartbeat) => {
      if (hear(heartbeat)) flush(true);
    });

    const unsubscribeState = client.onState((next) => {
      state = next;
      if (next === "open") everOpened = true;
      flush(true);
    });
    // The state may have moved between the first render and this effect.
    state = client.state;
    if (state === "open") everOpened = true;
    // So may a heartbeat have come.
    if (client.lastHeartbeat !== null) hear(client.lastHeartbeat);
    flush(true);

    const timer = window.setInterval(() => flush(false), FLUSH_MS);
    return () => {
      window.clearInterval(timer);
      unsubscribeFrame();
      unsubscribeReset();
      unsubscribeState();
      unsubscribeHeartbeat();
    };
  }, [client, store]);

  return { view, store };
}
