// "Out of stock now": every product whose latest INVENTORY_CHANGE says it is unavailable. Filled
// from the gateway's snapshot (the latest event per entity) and kept current by the stream.
// Both sources are applied by sequence, so whichever arrives first, the newer event wins: a
// snapshot read while live events come in cannot bring back an older state.
import { isOutOfStock } from "../src/client/inventory";
import type { SequencedEvent } from "../src/generated/schema";

export { isOutOfStock };

/** Out-of-stock products kept at most; past it the list says it is cut (`truncated`). */
export const OUT_OF_STOCK_CAP = 5_000;
/** Sequences remembered for products in stock, so an older snapshot entry cannot win. */
const IN_STOCK_MEMORY = 20_000;

export interface OutOfStockEntry {
  id: string;
  seq: number;
  /** The worker's timestamp of the event that said so. */
  since: string;
  stock: number | null;
}

function stockOf(event: SequencedEvent): number | null {
  const stock = event.payload.data?.["stock"] ?? event.payload.data?.["quantity"];
  return typeof stock === "number" ? stock : null;
}

export class StockBoard {
  /** Out of stock now, by product id (insertion order = when it went out, oldest first). */
  private readonly out = new Map<string, OutOfStockEntry>();
  /** The sequence of the latest event applied for products in stock (bounded, oldest dropped). */
  private readonly inStockSeq = new Map<string, number>();
  private cut = false;
  /** The snapshot said `partial`: products may be missing whatever the cap. */
  private mayMiss = false;
  private version = 0;

  /** Applies an INVENTORY_CHANGE (others are ignored); true when the list changed. */
  apply(event: SequencedEvent): boolean {
    if (event.type !== "INVENTORY_CHANGE") return false;
    const id = event.payload.id;
    const known = this.out.get(id)?.seq ?? this.inStockSeq.get(id);
    if (known !== undefined && known >= event.seq) return false;
    if (isOutOfStock(event)) {
      this.inStockSeq.delete(id);
      const was = this.out.get(id);
      if (!was && this.out.size >= OUT_OF_STOCK_CAP) {
        this.cut = true;
        return false;
      }
      this.out.set(id, { id, seq: event.seq, since: was?.since ?? event.timestamp, stock: stockOf(event) });
      this.version += 1;
      return true;
    }
    const removed = this.out.delete(id);
    this.inStockSeq.set(id, event.seq);
    if (this.inStockSeq.size > IN_STOCK_MEMORY) {
      const oldest = this.inStockSeq.keys().next();
      if (!oldest.done) this.inStockSeq.delete(oldest.value);
    }
    if (removed) this.version += 1;
    return removed;
  }

  /** A reset: what was shown may be wrong; start again from a new snapshot. */
  clear(): void {
    this.out.clear();
    this.inStockSeq.clear();
    this.cut = false;
    this.mayMiss = false;
    this.version += 1;
  }

  /** Marks the list as incomplete (the snapshot was not read to the end). */
  markTruncated(): void {
    this.cut = true;
    this.version += 1;
  }

  /**
   * The gateway's snapshot said `partial`: its latest-state store is at LATEST_MAX_ENTITIES and
   * dropped the least recently changed products, so a product out of stock for a long time may
   * be missing until its next change. Also marks the list truncated.
   */
  markPartial(): void {
    this.mayMiss = true;
    this.markTruncated();
  }

  get truncated(): boolean {
    return this.cut;
  }

  /** The snapshot was partial (see `markPartial`); cleared with the list. */
  get partial(): boolean {
    return this.mayMiss;
  }

  get size(): number {
    return this.out.size;
  }

  /** Changes with every change of the list: a cheap "did anything change" for rendering. */
  get revision(): number {
    return this.version;
  }

  /** The most recently out first, at most `limit`. */
  list(limit: number): OutOfStockEntry[] {
    const all = [...this.out.values()];
    all.sort((a, b) => b.seq - a.seq);
    return all.slice(0, limit);
  }

  has(id: string): boolean {
    return this.out.has(id);
  }
}
