// What an INVENTORY_CHANGE says about a product, shared by the toast policy and the dashboard.
import type { SequencedEvent } from "../generated/schema";

/**
 * Whether an INVENTORY_CHANGE says the product can be sold: "out" for `isAvailable: false`, or
 * a stock (or quantity) of 0 without `isAvailable: true`; "in" for `isAvailable: true` or a
 * positive stock; null when the event says neither (another type, a deletion, no such field).
 */
export function availabilityOf(event: SequencedEvent): "in" | "out" | null {
  if (event.type !== "INVENTORY_CHANGE" || event.payload.action === "deleted") return null;
  const data = event.payload.data;
  if (!data) return null;
  const available = data["isAvailable"];
  if (available === false) return "out";
  if (available === true) return "in";
  const stock = data["stock"] ?? data["quantity"];
  if (stock === 0) return "out";
  return typeof stock === "number" && stock > 0 ? "in" : null;
}

/**
 * Whether an INVENTORY_CHANGE says the product cannot be sold now: `isAvailable: false`, or a
 * stock (or quantity) of 0 without `isAvailable: true`. A deleted product is not "out of stock".
 */
export function isOutOfStock(event: SequencedEvent): boolean {
  return availabilityOf(event) === "out";
}
