import { memo } from "react";
import { COUNTED_TYPES, TYPE_LABELS, formatTimeIn } from "./format";
import type { Counts } from "./todayCounts";

/**
 * Today's counters: every event since local midnight in the gateway's SUMMARY_TIMEZONE, exact
 * (the gateway's summary plus the live events after it). The number element's text is digits
 * only, or "…" until the summary has arrived. When the stream no longer holds all of today
 * (`countedSince`), the foot says where the count starts and that it is not all of today: a
 * smaller number is never shown as if it were the day's.
 */
export const Counters = memo(function Counters({
  counts,
  exact,
  timezone,
  countedSince,
}: {
  counts: Counts | null;
  exact: boolean;
  timezone: string | null;
  /** The instant today's counts start from when the stream no longer holds all of today. */
  countedSince: string | null;
}) {
  const zone = timezone ? ` (${timezone})` : "";
  const since = countedSince === null ? "" : formatTimeIn(countedSince, timezone);
  return (
    <>
      {COUNTED_TYPES.map((type) => (
        <section key={type} className={`card counter type-${type}`} aria-label={`${TYPE_LABELS[type].title} today`}>
          <h2 className="card-title">
            <span className="type-swatch" aria-hidden="true" />
            {TYPE_LABELS[type].title}
          </h2>
          <p className="counter-value">
            <span data-testid={`counter-${type}`} data-ready={counts ? "true" : "false"} data-exact={exact ? "true" : "false"}>
              {counts ? counts[type] : "…"}
            </span>
          </p>
          {countedSince === null ? (
            <p className="card-foot">today{zone}</p>
          ) : (
            <p
              className="card-foot card-warn"
              data-testid={`counter-since-${type}`}
              title="The event stream no longer holds today's earlier events (STREAM_MAX_MESSAGES / STREAM_MAX_AGE removed them): this counts from the oldest one it holds. Raise those limits to count the whole day."
            >
              counted since {since || "the oldest event held"}
              {zone} · not all of today
            </p>
          )}
        </section>
      ))}
    </>
  );
});
