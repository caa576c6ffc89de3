import { describe, expect, it } from "vitest";
import type { SequencedEvent } from "../generated/schema";
import { AvailabilityMemory } from "./availability";
import type { RealtimeFrame } from "./types";

function inv(id: string, seq: number, data: Record<string, unknown>, action: "updated" | "deleted" = "updated"): SequencedEvent {
  return { type: "INVENTORY_CHANGE", seq, payload: { id, action, data }, timestamp: "2026-12-01T00:00:00.000Z" };
}

describe("AvailabilityMemory", () => {
  it("announces the change into out of stock, not the events that repeat it", () => {
    const memory = new AvailabilityMemory();
    expect(memory.observe(inv("a", 1, { isAvailable: false }))).toBe(true);
    expect(memory.observe(inv("a", 2, { stock: 0 }))).toBe(false);
    // Says nothing about stock: keeps "out".
    expect(memory.observe(inv("a", 3, { note: "moved to shelf 4" }))).toBe(false);
    expect(memory.isOut("a")).toBe(true);
    expect(memory.observe(inv("a", 4, { stock: 2 }))).toBe(false);
    expect(memory.observe(inv("a", 5, { quantity: 0 }))).toBe(true);
  });

  it("lets the newer event win: an older snapshot entry or a duplicate changes nothing", () => {
    const memory = new AvailabilityMemory();
    memory.observe(inv("a", 9, { isAvailable: true }));
    memory.seed([inv("a", 5, { isAvailable: false })]);
    expect(memory.isOut("a")).toBe(false);
    expect(memory.observe(inv("a", 10, { isAvailable: false }))).toBe(true);
    expect(memory.observe(inv("a", 10, { isAvailable: false }))).toBe(false);
  });

  it("forgets a deleted product and, past its cap, the least recently changed", () => {
    const memory = new AvailabilityMemory(3);
    for (const [i, id] of ["a", "b", "c"].entries()) memory.observe(inv(id, i + 1, { isAvailable: false }));
    memory.observe(inv("a", 4, { isAvailable: false }));
    memory.observe(inv("d", 5, { isAvailable: false }));
    expect(memory.size).toBe(3);
    // "b" was the least recently changed: forgotten, so its next "out" is announced again.
    expect(memory.observe(inv("b", 6, { isAvailable: false }))).toBe(true);
    expect(memory.observe(inv("a", 7, { isAvailable: false }))).toBe(false);
    memory.observe(inv("a", 8, {}, "deleted"));
    expect(memory.isOut("a")).toBe(false);
  });

  it("reads a batch in seq order and returns the events that went out", () => {
    const memory = new AvailabilityMemory();
    memory.seed([inv("a", 1, { isAvailable: false }), inv("b", 2, { isAvailable: true })]);
    const frame: RealtimeFrame = {
      type: "INVENTORY_CHANGE",
      batch: true,
      count: 30,
      events: [inv("c", 12, { stock: 0 }), inv("a", 10, { stock: 0 }), inv("b", 11, { stock: 0 }), inv("d", 13, { stock: 1 })],
    };
    expect(memory.wentOutOfStock(frame).map((e) => e.payload.id)).toEqual(["b", "c"]);
    expect(memory.wentOutOfStock({ ...frame, type: "PRICE_CHANGE" })).toEqual([]);
  });
});
