// Which frames become toasts. A toast interrupts: by default only what an operator acts on at
// once (a new order, a product going out of stock) does; everything else goes to the feed.
// Apps choose another policy with RealtimeProvider's `toastPolicy` (or RealtimeToast's `policy`).
import type { AvailabilityMemory } from "../client/availability";
import type { RealtimeFrame } from "../client/types";

/**
 * "important" (default): new orders and products going out of stock (the change, not every
 * event that repeats it); "all": every frame; "none"; or a function that returns the frame to
 * show (possibly narrowed to some of its events) or null. The built-in policies never toast
 * history (a backfill or a resume's catch-up): that is the past, shown in the feed.
 */
export type ToastPolicy = "important" | "all" | "none" | ((frame: RealtimeFrame) => RealtimeFrame | null);

export const DEFAULT_TOAST_POLICY: ToastPolicy = "important";

/**
 * The frame a toast should show under `policy`, or null for none. Every frame (history too)
 * passes through `stock`, whatever the policy, so that it always knows each product's last
 * availability: a policy changed later starts from the truth.
 */
export function applyToastPolicy(
  policy: ToastPolicy,
  frame: RealtimeFrame,
  stock: AvailabilityMemory,
): RealtimeFrame | null {
  const wentOut = stock.wentOutOfStock(frame);
  if (typeof policy === "function") return policy(frame);
  if (policy === "none" || frame.history) return null;
  if (policy === "all") return frame;
  return importantOnly(frame, wentOut);
}

/**
 * New orders as they are; of inventory changes, only `wentOut`: the listed events that took
 * their product out of stock (from `AvailabilityMemory.wentOutOfStock`).
 */
export function importantOnly(frame: RealtimeFrame, wentOut: RealtimeFrame["events"]): RealtimeFrame | null {
  if (frame.type === "ORDER_RECEIVED") return frame;
  if (frame.type !== "INVENTORY_CHANGE" || wentOut.length === 0) return null;
  // Only the listed events are known to say "out of stock"; folded ones are not counted.
  return { ...frame, events: wentOut, count: wentOut.length, batch: wentOut.length > 1 };
}
