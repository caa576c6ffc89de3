// Which TanStack Query keys a realtime frame makes stale. Kept out of the "use client" modules
// so server code can import the constant itself rather than a client reference to it.
import type { EventType } from "../generated/schema";

/**
 * Event type -> query keys to invalidate (each key is a prefix, as `invalidateQueries` matches).
 * A type that is absent invalidates nothing.
 */
export type InvalidationMap = Partial<Record<EventType, readonly (readonly unknown[])[]>>;

/**
 * The keys RAKUDA's web app uses. A custom `invalidation` prop replaces this map rather than
 * merging with it, so a type can be switched off by leaving it out; to extend it, spread it:
 * `{ ...DEFAULT_INVALIDATION, ORDER_RECEIVED: [["orders"], ["dashboard"]] }`.
 */
export const DEFAULT_INVALIDATION: InvalidationMap = Object.freeze({
  INVENTORY_CHANGE: [["products"], ["inventory"]],
  ORDER_RECEIVED: [["orders"]],
  PRICE_CHANGE: [["listings"], ["pricing"]],
  LISTING_UPDATE: [["listings"]],
});
