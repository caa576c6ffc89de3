// "Out of stock now": from the snapshot of the latest event per product, kept current live.
import { memo } from "react";
import { AppLink, type Navigate } from "./Feed";
import { formatAgo } from "./format";
import type { OpeningState } from "./useOpeningState";

export const OutOfStockPanel = memo(function OutOfStockPanel({
  state,
  navigate,
  now,
}: {
  state: OpeningState;
  navigate: Navigate;
  now: number;
}) {
  const { outOfStock, outOfStockTotal, outOfStockTruncated, outOfStockPartial, snapshotLoaded } = state;
  return (
    <section className="card stock-card" aria-label="Out of stock now" data-loaded={snapshotLoaded ? "true" : "false"}>
      <h2 className="card-title">
        Out of stock now{" "}
        <span className="card-sub">
          <span data-testid="out-of-stock-count">{outOfStockTotal}</span>
          {outOfStockTruncated ? "+" : ""} products
          {outOfStock.length < outOfStockTotal ? ` · newest ${outOfStock.length} shown` : ""}
        </span>
      </h2>
      {outOfStockPartial && (
        <p
          className="card-warn"
          data-testid="out-of-stock-partial"
          title="The gateway's latest-state store is full (LATEST_MAX_ENTITIES) and dropped the least recently changed products; raise LATEST_MAX_ENTITIES to list them all."
        >
          May be incomplete: products unchanged for a long time may be missing.
        </p>
      )}
      <ol className="stock-list" data-testid="out-of-stock">
        {!snapshotLoaded && outOfStock.length === 0 && <li className="feed-empty">Loading…</li>}
        {snapshotLoaded && outOfStock.length === 0 && <li className="feed-empty">Everything is in stock.</li>}
        {outOfStock.map((entry) => (
          <li key={entry.id} className="stock-row" data-testid="out-of-stock-row" data-id={entry.id}>
            <AppLink href={`/products/${encodeURIComponent(entry.id)}`} navigate={navigate} className="stock-id">
              {entry.id}
            </AppLink>
            <span className="stock-since" title={entry.since}>
              {formatAgo(Date.parse(entry.since), now)}
            </span>
          </li>
        ))}
      </ol>
    </section>
  );
});
