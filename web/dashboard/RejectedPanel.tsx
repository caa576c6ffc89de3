// "Rejected": what the bridge refused in the last hour, by reason, and the last few refused
// messages (time, channel, reason, first bytes), read from GET /api/realtime/dlq every few
// seconds. Reasons are written out (never colour alone). The route needs admin scope; the
// dashboard sends the API key it was opened with, which has it. A credential without it (403)
// hides the figures and says so.
import { memo, useEffect, useState } from "react";
import { REDIS_CHANNEL_PREFIX } from "../src/generated/schema";
import type { RealtimeHistory } from "../src/client/history";
import { formatAgo, formatClock } from "./format";
import { POLL_MS, RejectedWatch, type RejectedState } from "./rejectedWatch";

export function useRejected(history: RealtimeHistory | null): RejectedState {
  const [state, setState] = useState<RejectedState>({ status: "loading", page: null, error: null });
  useEffect(() => {
    if (history === null) return;
    const watch = new RejectedWatch(history, setState);
    watch.start();
    return () => watch.stop();
  }, [history]);
  return state;
}

/** The channel without the common prefix: "orders" for "rakuda:realtime:orders". */
function shortChannel(channel: string): string {
  return channel.startsWith(REDIS_CHANNEL_PREFIX) ? channel.slice(REDIS_CHANNEL_PREFIX.length) : channel || "—";
}

export const RejectedPanel = memo(function RejectedPanel({ state, now }: { state: RejectedState; now: number }) {
  const { status, page, error } = state;
  const counts = page === null ? [] : Object.entries(page.lastHour.byReason).sort((a, b) => b[1] - a[1]);
  return (
    <section className="card rejected-card" aria-label="Rejected events" data-testid="rejected-panel" data-status={status}>
      <h2 className="card-title">
        Rejected{" "}
        <span className="card-sub" aria-live="polite">
          last hour: <span data-testid="rejected-total">{page === null ? "…" : page.lastHour.total}</span>
        </span>
      </h2>
      {status === "forbidden" && (
        <p className="card-warn" data-testid="rejected-forbidden">
          Hidden: this credential may not read rejected events (admin scope needed; open the page with an API key).
        </p>
      )}
      {status === "failing" && (
        <p className="card-warn" data-testid="rejected-failing">
          Cannot read rejected events just now ({error}); retrying{page === null ? "" : ", showing the last figures"}.
        </p>
      )}
      {page !== null && !page.lastHour.complete && (
        <p className="card-warn">Too many to count them all: the counts by reason are of the newest only.</p>
      )}
      {status !== "forbidden" && (
        <>
          <ul className="rejected-counts" data-testid="rejected-counts">
            {counts.map(([reason, count]) => (
              <li key={reason} data-testid="rejected-count" data-reason={reason}>
                <span className="badge notice-badge">{reason}</span> <span className="rejected-count">{count}</span>
              </li>
            ))}
          </ul>
          <ol className="rejected-list" data-testid="rejected-list">
            {page === null && <li className="feed-empty">Loading…</li>}
            {page !== null && page.events.length === 0 && <li className="feed-empty">Nothing rejected.</li>}
            {page?.events.map((event) => (
              <li key={event.seq} className="rejected-row" data-testid="rejected-row" data-reason={event.reason} data-seq={event.seq}>
                <span className="rejected-meta">
                  <time dateTime={event.time} title={`${event.time} · ${formatAgo(Date.parse(event.time), now)}`}>
                    {formatClock(event.time)}
                  </time>{" "}
                  <span className="rejected-channel">{shortChannel(event.channel)}</span>{" "}
                  <span className="rejected-reason">{event.reason}</span>
                  {event.producer !== null && <span className="rejected-producer"> · {event.producer}</span>}
                </span>
                <code className="rejected-head" title={event.message}>
                  {event.head}
                  {event.truncated ? `… (${event.size} bytes)` : ""}
                </code>
              </li>
            ))}
          </ol>
          <p className="card-foot">newest first · read every {POLL_MS / 1000} s</p>
        </>
      )}
    </section>
  );
});
