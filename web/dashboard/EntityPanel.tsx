import { useMemo } from "react";
import type { SequencedEvent } from "../src/generated/schema";
import { AppLink, TypeBadge, type Navigate } from "./Feed";
import { detailPath, eventSummary, formatClock, typesOfKind, type DetailKind } from "./format";
import type { FeedRow } from "./liveStore";

const KIND_TITLES: Record<DetailKind, { one: string; many: string }> = {
  products: { one: "Product", many: "Products" },
  orders: { one: "Order", many: "Orders" },
  listings: { one: "Listing", many: "Listings" },
};

const MAX_EVENTS = 60;

/**
 * What the page has seen of one entity (/products/:id, /orders/:id, /listings/:id) or of one
 * kind (/products, ... where batch toasts lead), from the events in the feed.
 */
export function EntityPanel({
  kind,
  id,
  rows,
  navigate,
  homeHref,
}: {
  kind: DetailKind;
  id: string | null;
  rows: FeedRow[];
  navigate: Navigate;
  homeHref: string;
}) {
  const events = useMemo(() => {
    const types = typesOfKind(kind);
    const found: SequencedEvent[] = [];
    for (const row of rows) {
      if (row.kind !== "event" || !types.includes(row.type)) continue;
      // A row's events are oldest first; the feed is newest first.
      for (let i = row.events.length - 1; i >= 0 && found.length < MAX_EVENTS; i--) {
        const event = row.events[i];
        if (event && (id === null || event.payload.id === id)) found.push(event);
      }
      if (found.length >= MAX_EVENTS) break;
    }
    return found;
  }, [kind, id, rows]);

  const titles = KIND_TITLES[kind];
  const label = id === null ? titles.many : `${titles.one} ${id}`;

  return (
    <aside className="card entity-panel" aria-label={label}>
      <header className="entity-head">
        <h2 className="card-title">
          {id === null ? (
            <>
              {titles.many} <span className="card-sub">recent events in the feed</span>
            </>
          ) : (
            <>
              {titles.one} <span className="entity-id">{id}</span>
            </>
          )}
        </h2>
        <AppLink href={homeHref} navigate={navigate} className="entity-close">
          Close
        </AppLink>
      </header>
      {events.length === 0 ? (
        <p className="entity-empty">
          No events for {id === null ? titles.many.toLowerCase() : `this ${titles.one.toLowerCase()}`} in
          the feed since this page opened.
        </p>
      ) : (
        <ol className={`entity-events${id === null ? " with-entity" : ""}`}>
          {events.map((event) => {
            const path = detailPath(event.type, event.payload.id);
            return (
              <li key={`${event.type}-${event.seq}`} className="entity-event">
                <time className="feed-time" dateTime={event.timestamp}>
                  {formatClock(event.timestamp)}
                </time>
                <TypeBadge type={event.type} />
                {id === null && (
                  <span className="feed-entity">
                    {path ? (
                      <AppLink href={path} navigate={navigate}>
                        {event.payload.id}
                      </AppLink>
                    ) : (
                      event.payload.id
                    )}
                  </span>
                )}
                <span className="feed-summary">{eventSummary(event)}</span>
              </li>
            );
          })}
        </ol>
      )}
    </aside>
  );
}
