import { memo, type MouseEvent, type ReactNode } from "react";
import type { EventType } from "../src/generated/schema";
import { batchSummary, detailPath, eventSummary, formatAgo, formatClock, TYPE_LABELS } from "./format";
import type { FeedRow } from "./liveStore";

export type Navigate = (path: string) => void;

/** A plain link that the dashboard handles itself on an unmodified left click. */
export function AppLink({
  href,
  navigate,
  className,
  children,
  title,
}: {
  href: string;
  navigate: Navigate;
  className?: string;
  children: ReactNode;
  title?: string;
}) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>): void => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) {
      return;
    }
    e.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={onClick} className={className} title={title}>
      {children}
    </a>
  );
}

export function TypeBadge({ type }: { type: EventType }) {
  return (
    <span className={`badge type-${type}`} title={type}>
      {TYPE_LABELS[type].badge}
    </span>
  );
}

/** How old the event is: from the worker's timestamp to now. */
function Age({ timestamp, now }: { timestamp: string | undefined; now: number }) {
  const then = timestamp ? Date.parse(timestamp) : Number.NaN;
  if (!Number.isFinite(then)) return <span className="feed-age">—</span>;
  return (
    <span className="feed-age" data-testid="feed-age" data-age-ms={Math.max(0, now - then)}>
      {formatAgo(then, now)}
    </span>
  );
}

const Row = memo(function Row({ row, navigate, now }: { row: FeedRow; navigate: Navigate; now: number }) {
  if (row.kind === "notice") {
    return (
      <li className="feed-row notice" data-testid="feed-notice" role="alert">
        <time className="feed-time">{formatClock(row.receivedAt)}</time>
        <span className="badge notice-badge">RESET</span>
        <span className="feed-summary">{row.text}</span>
      </li>
    );
  }

  const { latest, type } = row;
  const path = latest ? detailPath(type, latest.payload.id) : null;
  const summary = row.batch ? batchSummary(type, row.count) : latest ? eventSummary(latest) : batchSummary(type, row.count);
  return (
    <li
      className={`feed-row${row.batch ? " batch" : ""}`}
      data-testid="feed-row"
      data-type={type}
      data-count={row.count}
      data-batch={row.batch ? "true" : "false"}
    >
      <time className="feed-time" dateTime={latest?.timestamp}>
        {formatClock(latest?.timestamp ?? row.receivedAt)}
      </time>
      <TypeBadge type={type} />
      <span className="feed-entity">
        {latest && path ? (
          <AppLink
            href={path}
            navigate={navigate}
            title={row.batch ? `Latest in this batch: ${latest.payload.id}` : latest.payload.id}
          >
            {latest.payload.id}
          </AppLink>
        ) : latest ? (
          latest.payload.id
        ) : (
          "—"
        )}
        {row.batch && latest && <span className="feed-more"> latest</span>}
      </span>
      <span className="feed-summary">{summary}</span>
      <Age timestamp={latest?.timestamp} now={now} />
    </li>
  );
});

/** The event feed, newest first. Rows are memoised by key: a flush only mounts new rows. */
export const Feed = memo(function Feed({ rows, navigate, now }: { rows: FeedRow[]; navigate: Navigate; now: number }) {
  return (
    <ol className="feed" data-testid="event-feed" aria-label="Event feed, newest first" aria-live="off">
      {rows.length === 0 && <li className="feed-empty">Waiting for events…</li>}
      {rows.map((row) => (
        <Row key={row.key} row={row} navigate={navigate} now={now} />
      ))}
    </ol>
  );
});
