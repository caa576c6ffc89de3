import { memo } from "react";
import { COUNTED_TYPES, TYPE_LABELS } from "./format";
import type { Counts } from "./todayCounts";

/**
 * Today's counters: every event since local midnight in the gateway's SUMMARY_TIMEZONE, exact
 * (the gateway's summary plus the live events after it). The number element's text is digits
 * only, or "…" until the summary has arrived.
 */
export const Counters = memo(function Counters({
  counts,
  exact,
  timezone,
}: {
  counts: Counts | null;
  exact: boolean;
  timezone: string | null;
}) {
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
          <p className="card-foot">today{timezone ? ` (${timezone})` : ""}</p>
        </section>
      ))}
    </>
  );
});
