// Whether the screen can be trusted. Stale when nothing (no event, no heartbeat) has come for
// two heartbeat intervals, or when the gateway says its end-to-end canary is not coming back
// (`degraded`: the bridge, Redis or NATS is down, so no event can arrive however healthy the
// connection looks).
import type { LiveView } from "./useLive";

export function isStale(view: Pick<LiveView, "lastHeardAt" | "now" | "degraded">, heartbeatIntervalMs: number): boolean {
  if (view.degraded) return true;
  return view.lastHeardAt !== null && view.now - view.lastHeardAt > heartbeatIntervalMs * 2;
}

export function Freshness({
  view,
  heartbeatIntervalMs,
  silentFor,
}: {
  view: LiveView;
  heartbeatIntervalMs: number;
  silentFor: number | null;
}) {
  const silent = silentFor !== null && silentFor > heartbeatIntervalMs * 2;
  if (!view.degraded && !silent) {
    return <p className="freshness fresh" data-testid="freshness" data-stale="false" hidden />;
  }
  const text = view.degraded
    ? "Stale: the gateway reports that events are not flowing end to end (its canary has not come back). What you see may be out of date."
    : `Stale: nothing heard from the gateway for ${Math.round((silentFor ?? 0) / 1000)} s. What you see may be out of date.`;
  return (
    <p
      className="freshness stale-banner"
      role="alert"
      data-testid="freshness"
      data-stale="true"
      data-reason={view.degraded ? "degraded" : "silent"}
    >
      {text}
    </p>
  );
}
