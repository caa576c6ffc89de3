// What an INVENTORY_CHANGE says about a product, shared by the toast policy and the dashboard.
import type { SequencedEvent } from "../generated/schema";

/**
 * Whether an INVENTORY_CHANGE says the product cannot be sold now: `isAvailable: false`, or a
 * stock (or quantity) of 0 without `isAvailable: true`. A deleted product is not "out of stock".
 */
export function isOutOfStock(event: SequencedEvent): boolean {
  if (event.type !== "INVENTORY_CHANGE" || event.payload.action === "deleted") return false;
  const data = event.payload.data;
  if (!data) return false;
  const available = data["isAvailable"];
  if (available === false) return true;
  if (available === true) return false;
  const stock = data["stock"] ?? data["quantity"];
  return stock === 0;
}
