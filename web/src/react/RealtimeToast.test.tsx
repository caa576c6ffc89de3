// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { QueryClientProvider } from "@tanstack/react-query";
import type { RealtimeFrame } from "../client/types";
import { AvailabilityMemory, RealtimeProvider, RealtimeToast, type RealtimeToastProps, type ToastPolicy } from "./index";
import { TOAST_FLUSH_MS } from "./RealtimeToast";
import { FakeRealtimeClient, batch, event, single, testQueryClient } from "./fakeClient.test-helper";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  cleanup();
  vi.useRealTimers();
});

/** The wording tests show every frame; the default policy has tests of its own below. */
function renderToasts(props: RealtimeToastProps = {}) {
  return renderWithPolicy({ policy: "all", ...props });
}

function renderWithPolicy(props: RealtimeToastProps, providerProps: { toastPolicy?: ToastPolicy } = {}) {
  const client = new FakeRealtimeClient();
  const onNavigate = vi.fn<(path: string) => void>();
  render(
    <QueryClientProvider client={testQueryClient()}>
      <RealtimeProvider client={client} {...providerProps}>
        <RealtimeToast onNavigate={onNavigate} {...props} />
      </RealtimeProvider>
    </QueryClientProvider>,
  );
  return { client, onNavigate };
}

const toasts = (): HTMLElement[] => screen.queryAllByTestId("realtime-toast");
const texts = (): (string | null)[] => toasts().map((t) => t.textContent);
const advance = (ms: number): void => {
  act(() => {
    vi.advanceTimersByTime(ms);
  });
};

describe("RealtimeToast", () => {
  it.each<[string, RealtimeFrame, string, string]>([
    ["a new order", single(event("ORDER_RECEIVED", "ord_42", { action: "created" })), "New order ord_42", "/orders/ord_42"],
    [
      "a product out of stock",
      single(event("INVENTORY_CHANGE", "prod_123", { data: { isAvailable: false } })),
      "Out of stock: prod_123",
      "/products/prod_123",
    ],
    [
      "another inventory change",
      single(event("INVENTORY_CHANGE", "prod_7", { data: { isAvailable: true, quantity: 3 } })),
      "Inventory change: prod_7",
      "/products/prod_7",
    ],
    ["a price change", single(event("PRICE_CHANGE", "prod_9")), "Price change: prod_9", "/products/prod_9"],
    ["a listing update", single(event("LISTING_UPDATE", "lst_3")), "Listing updated: lst_3", "/listings/lst_3"],
    ["a deleted listing", single(event("LISTING_UPDATE", "lst_4", { action: "deleted" })), "Listing deleted: lst_4", "/listings"],
  ])("shows %s and opens its page on click", (_name, frame, text, path) => {
    const { client, onNavigate } = renderToasts();
    client.emitFrame(frame);
    expect(texts()).toEqual([text]);
    fireEvent.click(screen.getByRole("button", { name: text }));
    expect(onNavigate).toHaveBeenCalledWith(path);
    expect(toasts()).toHaveLength(0);
  });

  it.each<[RealtimeFrame, string, string]>([
    [batch("INVENTORY_CHANGE", 37, "prod"), "37 inventory changes", "/products"],
    [batch("ORDER_RECEIVED", 12, "ord"), "12 orders", "/orders"],
    [batch("PRICE_CHANGE", 5, "prod"), "5 price changes", "/products"],
    [batch("LISTING_UPDATE", 2, "lst"), "2 listing updates", "/listings"],
  ])("shows one toast for a batch: %#", (frame, text, path) => {
    const { client, onNavigate } = renderToasts();
    client.emitFrame(frame);
    expect(texts()).toEqual([text]);
    fireEvent.click(toasts()[0] as HTMLElement);
    expect(onNavigate).toHaveBeenCalledWith(path);
  });

  it("counts a truncated batch by its exact count, not by the events listed", () => {
    const { client } = renderToasts();
    const listed = batch("INVENTORY_CHANGE", 10, "prod");
    client.emitFrame({ ...listed, count: 250 });
    expect(texts()).toEqual(["250 inventory changes"]);
  });

  it("encodes the id in the path", () => {
    const { client, onNavigate } = renderToasts();
    client.emitFrame(single(event("ORDER_RECEIVED", "ord/1 2")));
    fireEvent.click(toasts()[0] as HTMLElement);
    expect(onNavigate).toHaveBeenCalledWith("/orders/ord%2F1%202");
  });

  it("dismisses a toast after 5 s", () => {
    const { client } = renderToasts();
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1")));
    advance(4999);
    expect(toasts()).toHaveLength(1);
    advance(1);
    expect(toasts()).toHaveLength(0);
  });

  it("honours durationMs, per toast", () => {
    const { client } = renderToasts({ durationMs: 1000 });
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1")));
    advance(600);
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_2")));
    advance(400);
    expect(texts()).toEqual(["New order ord_2"]);
    advance(600);
    expect(toasts()).toHaveLength(0);
  });

  it("keeps a toast while it is hovered or focused, then gives it the full duration again", () => {
    const { client } = renderToasts();
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1")));
    const toast = toasts()[0] as HTMLElement;
    fireEvent.mouseEnter(toast);
    advance(10_000);
    expect(toasts()).toHaveLength(1);
    fireEvent.mouseLeave(toast);
    act(() => toast.focus());
    advance(10_000);
    expect(toasts()).toHaveLength(1);
    act(() => toast.blur());
    advance(4999);
    expect(toasts()).toHaveLength(1);
    advance(1);
    expect(toasts()).toHaveLength(0);
  });

  it("dismisses a focused toast with Escape", () => {
    const { client, onNavigate } = renderToasts();
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1")));
    fireEvent.keyDown(toasts()[0] as HTMLElement, { key: "Escape" });
    expect(toasts()).toHaveLength(0);
    expect(onNavigate).not.toHaveBeenCalled();
  });

  it("shows at most 4 at once, dropping the oldest", () => {
    const { client } = renderToasts();
    for (let i = 1; i <= 6; i += 1) client.emitFrame(single(event("ORDER_RECEIVED", `ord_${i}`)));
    advance(TOAST_FLUSH_MS);
    expect(texts()).toEqual(["New order ord_3", "New order ord_4", "New order ord_5", "New order ord_6"]);
  });

  it("honours max", () => {
    const { client } = renderToasts({ max: 2 });
    for (let i = 1; i <= 3; i += 1) client.emitFrame(single(event("PRICE_CHANGE", `prod_${i}`)));
    advance(TOAST_FLUSH_MS);
    expect(texts()).toEqual(["Price change: prod_2", "Price change: prod_3"]);
  });

  it("ignores the internal CANARY type", () => {
    const { client } = renderToasts();
    client.emitFrame(single(event("CANARY", "canary")));
    expect(toasts()).toHaveLength(0);
  });

  it("announces politely and renders toasts as buttons", () => {
    const { client } = renderToasts();
    const region = screen.getByRole("region", { name: "Live updates" });
    expect(region.getAttribute("aria-live")).toBe("polite");
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1")));
    const button = screen.getByRole("button", { name: "New order ord_1" });
    expect(region.contains(button)).toBe(true);
    expect(button.getAttribute("type")).toBe("button");
  });
});

describe("RealtimeToast under a burst", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    cleanup();
    vi.useRealTimers();
  });

  it("renders a burst of single frames a few times, not once per frame", () => {
    const client = new FakeRealtimeClient();
    let renders = 0;
    function Counting() {
      renders += 1;
      return <RealtimeToast />;
    }
    render(
      <QueryClientProvider client={testQueryClient()}>
        <RealtimeProvider client={client}>
          <Counting />
        </RealtimeProvider>
      </QueryClientProvider>,
    );
    const before = renders;
    for (let i = 0; i < 500; i += 1) client.emitFrame(single(event("ORDER_RECEIVED", `ord_${i}`)));
    act(() => {
      vi.advanceTimersByTime(TOAST_FLUSH_MS);
    });
    expect(screen.queryAllByTestId("realtime-toast")).toHaveLength(4);
    expect(screen.queryAllByTestId("realtime-toast").map((t) => t.textContent)).toContain("New order ord_499");
    expect(renders - before).toBeLessThan(10);
  });
});

describe("toast policy", () => {
  const order = single(event("ORDER_RECEIVED", "ord_1", { action: "created" }));
  const outOfStock = single(event("INVENTORY_CHANGE", "prod_1", { data: { isAvailable: false } }));
  const restocked = single(event("INVENTORY_CHANGE", "prod_2", { data: { isAvailable: true, stock: 4 } }));
  const price = single(event("PRICE_CHANGE", "prod_3"));

  it("by default shows new orders and products going out of stock, nothing else", () => {
    const { client } = renderWithPolicy({});
    for (const frame of [price, restocked, order, outOfStock, single(event("LISTING_UPDATE", "lst_1"))]) {
      client.emitFrame(frame);
      advance(TOAST_FLUSH_MS);
    }
    expect(texts()).toEqual(["New order ord_1", "Out of stock: prod_1"]);
  });

  it("by default narrows an inventory batch to the products that went out of stock", () => {
    const { client } = renderWithPolicy({});
    client.emitFrame({
      type: "INVENTORY_CHANGE",
      batch: true,
      count: 40,
      events: [
        event("INVENTORY_CHANGE", "prod_a", { data: { isAvailable: false } }),
        event("INVENTORY_CHANGE", "prod_b", { data: { stock: 5 } }),
        event("INVENTORY_CHANGE", "prod_c", { data: { stock: 0 } }),
      ],
    });
    expect(texts()).toEqual(["2 products out of stock"]);
  });

  const stock = (id: string, data: Record<string, unknown>) => event("INVENTORY_CHANGE", id, { data });

  it("toasts a product going out of stock once, not again while it stays out", () => {
    const { client } = renderWithPolicy({});
    const frames = [
      single(stock("prod_1", { isAvailable: false, stock: 0 })),
      // Still out: a price change and the inventory events that repeat it say nothing new.
      single(event("PRICE_CHANGE", "prod_1")),
      single(stock("prod_1", { isAvailable: false, stock: 0, warehouse: "b" })),
      single(stock("prod_1", { stock: 0 })),
      single(stock("prod_1", { isAvailable: true, stock: 3 })),
      // Back in and out again: a new change, a new toast.
      single(stock("prod_1", { isAvailable: false })),
    ];
    for (const frame of frames) {
      client.emitFrame(frame);
      advance(TOAST_FLUSH_MS);
    }
    expect(texts()).toEqual(["Out of stock: prod_1", "Out of stock: prod_1"]);
  });

  it("says how many products of a batch newly went out of stock: 12 products, 3 new", () => {
    const { client } = renderWithPolicy({});
    const ids = Array.from({ length: 12 }, (_, i) => `prod_${i}`);
    // The backfill: prod_0..4 already out, the rest in stock. History is learnt, never toasted.
    client.emitFrame({
      type: "INVENTORY_CHANGE",
      batch: true,
      count: 12,
      history: true,
      events: ids.map((id, i) => stock(id, i < 5 ? { isAvailable: false } : { isAvailable: true, stock: 4 })),
    });
    advance(TOAST_FLUSH_MS);
    expect(texts()).toEqual([]);
    // Live: prod_0..4 still out, prod_5..7 newly out, the rest in stock.
    client.emitFrame({
      type: "INVENTORY_CHANGE",
      batch: true,
      count: 12,
      events: ids.map((id, i) => stock(id, i < 8 ? { stock: 0 } : { stock: 9 })),
    });
    expect(texts()).toEqual(["3 products out of stock"]);
  });

  it("does not announce a product the seeded snapshot already had out of stock; a reset forgets", () => {
    const availability = new AvailabilityMemory();
    availability.seed([stock("prod_9", { isAvailable: false })]);
    const { client } = renderWithPolicy({ availability });
    client.emitFrame(single(stock("prod_9", { isAvailable: false, stock: 0 })));
    advance(TOAST_FLUSH_MS);
    expect(texts()).toEqual([]);
    client.emitReset("stream_recreated");
    client.emitFrame(single(stock("prod_9", { isAvailable: false, stock: 0 })));
    expect(texts()).toEqual(["Out of stock: prod_9"]);
  });

  it("never toasts history (a backfill or a resume's catch-up) by default", () => {
    const { client } = renderWithPolicy({});
    client.emitFrame({ ...order, history: true });
    expect(texts()).toEqual([]);
  });

  it("follows the provider's toastPolicy, and a RealtimeToast's own policy wins", () => {
    const first = renderWithPolicy({}, { toastPolicy: "all" });
    first.client.emitFrame(price);
    expect(texts()).toEqual(["Price change: prod_3"]);
    cleanup();
    const second = renderWithPolicy({ policy: "none" }, { toastPolicy: "all" });
    second.client.emitFrame(order);
    expect(texts()).toEqual([]);
    cleanup();
    const onlyPrices = (frame: RealtimeFrame): RealtimeFrame | null => (frame.type === "PRICE_CHANGE" ? frame : null);
    const third = renderWithPolicy({}, { toastPolicy: onlyPrices });
    third.client.emitFrame(order);
    third.client.emitFrame(price);
    advance(TOAST_FLUSH_MS);
    expect(texts()).toEqual(["Price change: prod_3"]);
  });
});
