// What a toast says about a frame, and where clicking it leads. Pure, so apps that draw their
// own notifications can reuse the wording and the routes.
import { isOutOfStock } from "../client/inventory";
import type { RealtimeFrame } from "../client/types";
import type { EventType, SequencedEvent } from "../generated/schema";

export interface FrameDescription {
  text: string;
  /** The detail page of the entity, or the list page for a batch or a deletion. */
  path: string;
}

interface Kind {
  /** List page; the detail page is `${list}/${id}`. */
  list: string;
  /** "37 inventory changes" */
  plural: string;
  /** "Product deleted: prod_1" */
  entity: string;
  single: (event: SequencedEvent) => string;
}

// CANARY is the gateway's internal health probe: no page and nothing a user should see.
const KINDS: Partial<Record<EventType, Kind>> = {
  INVENTORY_CHANGE: {
    list: "/products",
    plural: "inventory changes",
    entity: "Product",
    single: (event) =>
      isOutOfStock(event)
        ? `Out of stock: ${event.payload.id}`
        : `Inventory change: ${event.payload.id}`,
  },
  ORDER_RECEIVED: {
    list: "/orders",
    plural: "orders",
    entity: "Order",
    // The type is the arrival of an order, whatever the action says.
    single: (event) => `New order ${event.payload.id}`,
  },
  PRICE_CHANGE: {
    list: "/products",
    plural: "price changes",
    entity: "Product",
    single: (event) => `Price change: ${event.payload.id}`,
  },
  LISTING_UPDATE: {
    list: "/listings",
    plural: "listing updates",
    entity: "Listing",
    single: (event) => `Listing updated: ${event.payload.id}`,
  },
};

/** Null for frames that should not be shown (internal types, an empty frame). */
export function describeFrame(frame: RealtimeFrame): FrameDescription | null {
  const kind = KINDS[frame.type];
  if (kind && frame.type === "INVENTORY_CHANGE" && frame.count > 1 && frame.events.length === frame.count && frame.events.every(isOutOfStock)) {
    // A toast policy that kept only the products that went out of stock.
    return { text: `${frame.count} products out of stock`, path: kind.list };
  }
  if (!kind) return null;
  const only = frame.events.length === 1 ? frame.events[0] : undefined;
  // A batch that stands for one event (a lone straggler of a debounce window) reads and
  // links like a single event; `count` is exact, `events` may list fewer.
  if (frame.count <= 1 && only) {
    const id = only.payload.id;
    if (only.payload.action === "deleted") {
      // The detail page of a deleted entity would be a 404.
      return { text: `${kind.entity} deleted: ${id}`, path: kind.list };
    }
    return { text: kind.single(only), path: `${kind.list}/${encodeURIComponent(id)}` };
  }
  const count = Math.max(frame.count, frame.events.length);
  if (count === 0) return null;
  return { text: `${count} ${kind.plural}`, path: kind.list };
}
