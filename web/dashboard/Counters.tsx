import { memo } from "react";
import { COUNTED_TYPES, TYPE_LABELS } from "./format";
import type { Counts } from "./liveStore";

/** The four live counters since the page opened. The number element's text is digits only. */
export const Counters = memo(function Counters({ counts }: { counts: Counts }) {
  return (
    <>
      {COUNTED_TYPES.map((type) => (
        <section key={type} className={`card counter type-${type}`} aria-label={TYPE_LABELS[type].title}>
          <h2 className="card-title">
            <span className="type-swatch" aria-hidden="true" />
            {TYPE_LABELS[type].title}
          </h2>
          <p className="counter-value">
            <span data-testid={`counter-${type}`}>{counts[type]}</span>
          </p>
          <p className="card-foot">since page opened</p>
        </section>
      ))}
    </>
  );
});
