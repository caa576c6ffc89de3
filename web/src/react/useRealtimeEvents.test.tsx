// @vitest-environment jsdom
import type { ReactNode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, renderHook } from "@testing-library/react";
import { QueryClientProvider } from "@tanstack/react-query";
import { RealtimeProvider, useRealtimeEvents, type UseRealtimeEventsOptions } from "./index";
import { FakeRealtimeClient, event, single, testQueryClient } from "./fakeClient.test-helper";

afterEach(() => {
  cleanup();
  vi.useRealTimers();
  vi.restoreAllMocks();
});

function renderEvents(options?: UseRealtimeEventsOptions) {
  const client = new FakeRealtimeClient();
  const queryClient = testQueryClient();
  const wrapper = ({ children }: { children: ReactNode }) => (
    <QueryClientProvider client={queryClient}>
      <RealtimeProvider client={client}>{children}</RealtimeProvider>
    </QueryClientProvider>
  );
  const hook = renderHook(() => useRealtimeEvents(options), { wrapper });
  return { client, hook };
}

const seqs = (events: { seq: number }[]): number[] => events.map((e) => e.seq);

describe("useRealtimeEvents", () => {
  it("lists events newest first, across single and batch frames", () => {
    const { client, hook } = renderEvents();
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1", { seq: 1 })));
    client.emitFrame({
      type: "INVENTORY_CHANGE",
      batch: true,
      count: 3,
      events: [2, 3, 4].map((seq) => event("INVENTORY_CHANGE", `prod_${seq}`, { seq })),
    });
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_5", { seq: 5 })));
    expect(seqs(hook.result.current.events)).toEqual([5, 4, 3, 2, 1]);
    expect(hook.result.current.lastEvent?.seq).toBe(5);
  });

  it("keeps only the requested types", () => {
    const { client, hook } = renderEvents({ types: ["ORDER_RECEIVED", "PRICE_CHANGE"] });
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1", { seq: 1 })));
    client.emitFrame(single(event("INVENTORY_CHANGE", "prod_1", { seq: 2 })));
    client.emitFrame(single(event("PRICE_CHANGE", "prod_1", { seq: 3 })));
    client.emitFrame(single(event("LISTING_UPDATE", "lst_1", { seq: 4 })));
    expect(hook.result.current.events.map((e) => e.type)).toEqual(["PRICE_CHANGE", "ORDER_RECEIVED"]);
    // The client's last event is a LISTING_UPDATE; the hook reports the last one it asked for.
    expect(hook.result.current.lastEvent?.seq).toBe(3);
  });

  it("caps the list at `limit`, dropping the oldest", () => {
    const { client, hook } = renderEvents({ limit: 3 });
    for (let seq = 1; seq <= 5; seq += 1) {
      client.emitFrame(single(event("ORDER_RECEIVED", `ord_${seq}`, { seq })));
    }
    client.emitFrame({
      type: "INVENTORY_CHANGE",
      batch: true,
      count: 2,
      events: [6, 7].map((seq) => event("INVENTORY_CHANGE", `prod_${seq}`, { seq })),
    });
    expect(seqs(hook.result.current.events)).toEqual([7, 6, 5]);
  });

  it("caps at 100 by default", () => {
    const { client, hook } = renderEvents();
    client.emitFrame({
      type: "ORDER_RECEIVED",
      batch: true,
      count: 150,
      events: Array.from({ length: 150 }, (_, i) => event("ORDER_RECEIVED", `ord_${i}`, { seq: i + 1 })),
    });
    expect(hook.result.current.events).toHaveLength(100);
    expect(hook.result.current.events[0]?.seq).toBe(150);
  });

  it("drops an event seen twice (a replay after a replaced connection)", () => {
    const { client, hook } = renderEvents();
    const e = event("ORDER_RECEIVED", "ord_1", { seq: 7 });
    client.emitFrame(single(e));
    client.emitFrame(single(e));
    expect(seqs(hook.result.current.events)).toEqual([7]);
  });

  it("follows the client's state", () => {
    const { client, hook } = renderEvents();
    expect(hook.result.current).toMatchObject({ state: "connecting", isConnected: false });
    client.setState("open");
    expect(hook.result.current).toMatchObject({ state: "open", isConnected: true });
    client.setState("reconnecting");
    expect(hook.result.current).toMatchObject({ state: "reconnecting", isConnected: false });
    client.setState("open");
    expect(hook.result.current.isConnected).toBe(true);
    client.setState("closed");
    expect(hook.result.current).toMatchObject({ state: "closed", isConnected: false });
  });

  it("reports when the last event arrived", () => {
    const { client, hook } = renderEvents();
    const at = new Date(2026, 10, 22, 10, 42, 7);
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1")), at);
    expect(hook.result.current.lastEventAt).toEqual(at);
  });

  it("picks up the gateway instance from heartbeats, as they come (no timer)", () => {
    vi.useFakeTimers();
    const { client, hook } = renderEvents();
    expect(hook.result.current.instance).toBeNull();
    client.heartbeat("gw-2");
    expect(hook.result.current.instance).toBe("gw-2");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("keeps the list when re-rendered with an equal inline `types` array", () => {
    const client = new FakeRealtimeClient();
    const queryClient = testQueryClient();
    const hook = renderHook(
      ({ types }: { types: UseRealtimeEventsOptions["types"] }) => useRealtimeEvents({ types }),
      {
        initialProps: { types: ["ORDER_RECEIVED"] },
        wrapper: ({ children }: { children: ReactNode }) => (
          <QueryClientProvider client={queryClient}>
            <RealtimeProvider client={client}>{children}</RealtimeProvider>
          </QueryClientProvider>
        ),
      },
    );
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1", { seq: 1 })));
    hook.rerender({ types: ["ORDER_RECEIVED"] });
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_2", { seq: 2 })));
    expect(seqs(hook.result.current.events)).toEqual([2, 1]);
  });

  it("throws a clear error outside RealtimeProvider", () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    expect(() => renderHook(() => useRealtimeEvents())).toThrow(
      "useRealtimeEvents must be used inside <RealtimeProvider>",
    );
  });
});
