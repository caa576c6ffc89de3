import { describe, expect, it } from "vitest";
import type { SequencedEvent } from "../src/generated/schema";
import { OUT_OF_STOCK_CAP, StockBoard, isOutOfStock } from "./stockBoard";

function inv(id: string, seq: number, data: Record<string, unknown>, action: "updated" | "deleted" = "updated"): SequencedEvent {
  return { type: "INVENTORY_CHANGE", seq, payload: { id, action, data }, timestamp: "2026-12-01T00:00:00.000Z" };
}

describe("isOutOfStock", () => {
  it("reads isAvailable first, then a stock or quantity of 0", () => {
    expect(isOutOfStock(inv("p", 1, { isAvailable: false }))).toBe(true);
    expect(isOutOfStock(inv("p", 1, { isAvailable: true, stock: 0 }))).toBe(false);
    expect(isOutOfStock(inv("p", 1, { stock: 0 }))).toBe(true);
    expect(isOutOfStock(inv("p", 1, { quantity: 0 }))).toBe(true);
    expect(isOutOfStock(inv("p", 1, { stock: 3 }))).toBe(false);
    expect(isOutOfStock(inv("p", 1, { isAvailable: false }, "deleted"))).toBe(false);
  });
});

describe("StockBoard", () => {
  it("lists the products whose latest event says unavailable, newest first", () => {
    const board = new StockBoard();
    board.apply(inv("a", 1, { isAvailable: false }));
    board.apply(inv("b", 2, { isAvailable: false }));
    board.apply(inv("c", 3, { isAvailable: true }));
    expect(board.list(10).map((e) => e.id)).toEqual(["b", "a"]);
    board.apply(inv("a", 4, { isAvailable: true, stock: 8 }));
    expect(board.list(10).map((e) => e.id)).toEqual(["b"]);
  });

  it("lets the newer event win whichever source comes first (snapshot vs live)", () => {
    const board = new StockBoard();
    // Live: back in stock at seq 9; the snapshot, read a moment before, still says out at 5.
    board.apply(inv("a", 9, { isAvailable: true }));
    expect(board.apply(inv("a", 5, { isAvailable: false }))).toBe(false);
    expect(board.size).toBe(0);
    board.apply(inv("b", 7, { isAvailable: false }));
    board.apply(inv("b", 6, { isAvailable: true }));
    expect(board.has("b")).toBe(true);
  });

  it("is bounded and says so", () => {
    const board = new StockBoard();
    for (let i = 0; i <= OUT_OF_STOCK_CAP; i += 1) board.apply(inv(`p${i}`, i + 1, { isAvailable: false }));
    expect(board.size).toBe(OUT_OF_STOCK_CAP);
    expect(board.truncated).toBe(true);
    expect(board.list(50)).toHaveLength(50);
  });

  it("remembers a partial snapshot (products may be missing) until cleared", () => {
    const board = new StockBoard();
    board.apply(inv("a", 1, { isAvailable: false }));
    expect(board.partial).toBe(false);
    board.markPartial();
    expect(board.partial).toBe(true);
    expect(board.truncated).toBe(true);
    board.clear();
    expect(board.partial).toBe(false);
    expect(board.truncated).toBe(false);
  });

  it("ignores other types and forgets everything on clear", () => {
    const board = new StockBoard();
    const price: SequencedEvent = { type: "PRICE_CHANGE", seq: 1, payload: { id: "a", action: "updated", data: { stock: 0 } }, timestamp: "t" };
    expect(board.apply(price)).toBe(false);
    board.apply(inv("a", 2, { isAvailable: false }));
    board.clear();
    expect(board.size).toBe(0);
  });
});
