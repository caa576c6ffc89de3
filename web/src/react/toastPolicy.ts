// Which frames become toasts. A toast interrupts: by default only what an operator acts on at
// once (a new order, a product going out of stock) does; everything else goes to the feed.
// Apps choose another policy with RealtimeProvider's `toastPolicy` (or RealtimeToast's `policy`).
import { isOutOfStock } from "../client/inventory";
import type { RealtimeFrame } from "../client/types";

/**
 * "important" (default): new orders and products going out of stock; "all": every frame;
 * "none"; or a function that returns the frame to show (possibly narrowed to some of its
 * events) or null. The built-in policies never toast history (a backfill or a resume's
 * catch-up): that is the past, shown in the feed.
 */
export type ToastPolicy = "important" | "all" | "none" | ((frame: RealtimeFrame) => RealtimeFrame | null);

export const DEFAULT_TOAST_POLICY: ToastPolicy = "important";

/** The frame a toast should show under `policy`, or null for none. */
export function applyToastPolicy(policy: ToastPolicy, frame: RealtimeFrame): RealtimeFrame | null {
  if (typeof policy === "function") return policy(frame);
  if (policy === "none" || frame.history) return null;
  if (policy === "all") return frame;
  return importantOnly(frame);
}

/** New orders as they are; of inventory changes, only the products that went out of stock. */
export function importantOnly(frame: RealtimeFrame): RealtimeFrame | null {
  if (frame.type === "ORDER_RECEIVED") return frame;
  if (frame.type !== "INVENTORY_CHANGE") return null;
  const out = frame.events.filter(isOutOfStock);
  if (out.length === 0) return null;
  // Only the listed events are known to say "out of stock"; folded ones are not counted.
  return { ...frame, events: out, count: out.length, batch: out.length > 1 };
}
