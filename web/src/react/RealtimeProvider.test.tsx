// @vitest-environment jsdom
import { StrictMode, useEffect, type ReactNode } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, render, renderHook } from "@testing-library/react";
import { QueryClientProvider, type QueryClient } from "@tanstack/react-query";
import type { EventType } from "../generated/schema";
import type { RealtimeClientOptions } from "../client/types";
import { RESET_REFETCH_SPREAD_MS } from "../client/spread";
import {
  DEFAULT_INVALIDATION,
  RealtimeProvider,
  useRealtime,
  useRealtimeClient,
  type InvalidationMap,
} from "./index";
import {
  FakeRealtimeClient,
  batch,
  event,
  single,
  testQueryClient,
} from "./fakeClient.test-helper";

// The provider builds its own client from `options`; here that client is a fake.
vi.mock("../client", async () => ({
  RealtimeClient: (await import("./fakeClient.test-helper")).FakeRealtimeClient,
}));

let queryClient: QueryClient;

beforeEach(() => {
  queryClient = testQueryClient();
  FakeRealtimeClient.created = [];
});
afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
});

function setup(props: { invalidation?: InvalidationMap } = {}) {
  const client = new FakeRealtimeClient();
  const spy = vi.spyOn(queryClient, "invalidateQueries");
  const view = render(
    <QueryClientProvider client={queryClient}>
      <RealtimeProvider client={client} invalidation={props.invalidation}>
        <p>app</p>
      </RealtimeProvider>
    </QueryClientProvider>,
  );
  return { client, spy, view };
}

/** The keys each invalidateQueries call was given (undefined for "everything"). */
function invalidatedKeys(spy: ReturnType<typeof setup>["spy"]): unknown[] {
  return spy.mock.calls.map(([filters]) => filters?.queryKey);
}

describe("RealtimeProvider invalidation", () => {
  it.each<[EventType, unknown[][]]>([
    ["INVENTORY_CHANGE", [["products"], ["inventory"]]],
    ["ORDER_RECEIVED", [["orders"]]],
    ["PRICE_CHANGE", [["listings"], ["pricing"]]],
    ["LISTING_UPDATE", [["listings"]]],
  ])("a %s frame invalidates %j by default", (type, keys) => {
    const { client, spy } = setup();
    client.emitFrame(single(event(type, "x_1")));
    expect(invalidatedKeys(spy)).toEqual(keys);
  });

  it("marks the matching queries (by prefix) invalidated and leaves the others fresh", () => {
    const { client } = setup();
    queryClient.setQueryData(["products", "prod_1"], { stock: 3 });
    queryClient.setQueryData(["inventory"], []);
    queryClient.setQueryData(["orders"], []);
    client.emitFrame(single(event("INVENTORY_CHANGE", "prod_1")));
    expect(queryClient.getQueryState(["products", "prod_1"])?.isInvalidated).toBe(true);
    expect(queryClient.getQueryState(["inventory"])?.isInvalidated).toBe(true);
    expect(queryClient.getQueryState(["orders"])?.isInvalidated).toBe(false);
  });

  it("invalidates once per mapped key for a batch of 37 events, not once per event", () => {
    const { client, spy } = setup();
    client.emitFrame(batch("INVENTORY_CHANGE", 37, "prod"));
    expect(invalidatedKeys(spy)).toEqual([["products"], ["inventory"]]);
  });

  // A source gap (no bridge was subscribed for a while) and a resume over the replay budget
  // are resets like any other: whatever reason, the screen refetches.
  // Every page of every gateway is reset in the same instant by a source gap: each marks its
  // queries stale at once but refetches at its own random moment within the spread.
  it.each(["cursor_expired", "source_gap", "replay_budget"] as const)(
    "invalidates every query on reset (%s), refetching after a random wait",
    async (reason) => {
      vi.useFakeTimers();
      try {
        vi.spyOn(Math, "random").mockReturnValue(0.5);
        const { client, spy } = setup();
        queryClient.setQueryData(["orders"], []);
        queryClient.setQueryData(["unrelated", 1], "x");
        client.emitReset(reason);
        expect(spy.mock.calls).toEqual([[{ refetchType: "none" }]]);
        expect(queryClient.getQueryState(["orders"])?.isInvalidated).toBe(true);
        expect(queryClient.getQueryState(["unrelated", 1])?.isInvalidated).toBe(true);
        client.emitReset(reason); // a second one before the refetch: no second refetch
        await vi.advanceTimersByTimeAsync(RESET_REFETCH_SPREAD_MS / 2 - 1);
        expect(spy.mock.calls.filter((call) => call.length === 0)).toHaveLength(0);
        await vi.advanceTimersByTimeAsync(1);
        expect(spy.mock.calls.filter((call) => call.length === 0)).toHaveLength(1);
        await vi.advanceTimersByTimeAsync(RESET_REFETCH_SPREAD_MS);
        expect(spy.mock.calls.filter((call) => call.length === 0)).toHaveLength(1);
      } finally {
        vi.useRealTimers();
      }
    },
  );

  it("spreads the refetch over the window by the random draw, and drops it on unmount", async () => {
    vi.useFakeTimers();
    try {
      const random = vi.spyOn(Math, "random").mockReturnValue(0);
      const first = setup();
      first.client.emitReset("source_gap");
      await vi.advanceTimersByTimeAsync(0);
      expect(first.spy.mock.calls.filter((call) => call.length === 0)).toHaveLength(1);
      first.view.unmount();

      random.mockReturnValue(0.9999);
      queryClient = testQueryClient();
      const second = setup();
      second.spy.mockClear();
      second.client.emitReset("source_gap");
      await vi.advanceTimersByTimeAsync(RESET_REFETCH_SPREAD_MS - 2);
      expect(second.spy.mock.calls.filter((call) => call.length === 0)).toHaveLength(0);
      second.view.unmount();
      await vi.advanceTimersByTimeAsync(RESET_REFETCH_SPREAD_MS);
      expect(second.spy.mock.calls.filter((call) => call.length === 0)).toHaveLength(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("lets a custom map replace the default one", () => {
    const { client, spy } = setup({ invalidation: { ORDER_RECEIVED: [["dashboard", "orders"]] } });
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1")));
    client.emitFrame(single(event("INVENTORY_CHANGE", "prod_1")));
    expect(invalidatedKeys(spy)).toEqual([["dashboard", "orders"]]);
  });

  it("uses a changed map without resubscribing", () => {
    const { client, spy, view } = setup();
    const listeners = client.listenerCount;
    view.rerender(
      <QueryClientProvider client={queryClient}>
        <RealtimeProvider client={client} invalidation={{ ...DEFAULT_INVALIDATION, ORDER_RECEIVED: [["feed"]] }}>
          <p>app</p>
        </RealtimeProvider>
      </QueryClientProvider>,
    );
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1")));
    expect(invalidatedKeys(spy)).toEqual([["feed"]]);
    expect(client.listenerCount).toBe(listeners);
  });

  it("invalidates nothing for the internal CANARY type", () => {
    const { client, spy } = setup();
    client.emitFrame(single(event("CANARY", "canary")));
    expect(spy).not.toHaveBeenCalled();
  });

  it("stops listening to an injected client on unmount, and leaves starting/stopping it to its owner", () => {
    const { client, view } = setup();
    expect(client.listenerCount).toBeGreaterThan(0);
    view.unmount();
    expect(client.listenerCount).toBe(0);
    expect(client.starts).toBe(0);
    expect(client.stops).toBe(0);
  });
});

describe("RealtimeProvider with options", () => {
  const options: RealtimeClientOptions = { baseUrl: "https://rakuda.example", apiKey: "k" };

  function Tree({ opts, children }: { opts: RealtimeClientOptions; children?: ReactNode }) {
    return (
      <QueryClientProvider client={queryClient}>
        <RealtimeProvider options={opts}>{children}</RealtimeProvider>
      </QueryClientProvider>
    );
  }

  it("creates and starts one client, and stops it on unmount", () => {
    const view = render(<Tree opts={options} />);
    expect(FakeRealtimeClient.created).toHaveLength(1);
    const [client] = FakeRealtimeClient.created;
    expect(client?.options).toMatchObject(options);
    expect(client?.running).toBe(true);
    view.unmount();
    expect(client?.running).toBe(false);
  });

  it("keeps its client when re-rendered with equal options, and replaces it when they change", () => {
    const view = render(<Tree opts={{ ...options }} />);
    view.rerender(<Tree opts={{ ...options }} />);
    expect(FakeRealtimeClient.created).toHaveLength(1);
    view.rerender(<Tree opts={{ ...options, transport: "ws" }} />);
    expect(FakeRealtimeClient.created).toHaveLength(2);
    const [first, second] = FakeRealtimeClient.created;
    expect(first?.running).toBe(false);
    expect(second?.running).toBe(true);
  });

  it("under StrictMode leaves exactly one client running", () => {
    render(
      <StrictMode>
        <Tree opts={options} />
      </StrictMode>,
    );
    expect(FakeRealtimeClient.created.filter((c) => c.running)).toHaveLength(1);
  });

  it("calls the latest getToken after a re-render with a new closure", async () => {
    const first = vi.fn(async () => ({ token: "t1", expiresAt: "2030-01-01T00:00:00Z" }));
    const second = vi.fn(async () => ({ token: "t2", expiresAt: "2030-01-01T00:00:00Z" }));
    const view = render(<Tree opts={{ baseUrl: "", getToken: first }} />);
    view.rerender(<Tree opts={{ baseUrl: "", getToken: second }} />);
    const client = FakeRealtimeClient.created[0];
    await expect(client?.options?.getToken?.()).resolves.toMatchObject({ token: "t2" });
    expect(first).not.toHaveBeenCalled();
  });

  it("gives components a stable client whose listeners survive a replaced connection", () => {
    const seen: string[] = [];
    let stable: unknown = null;
    function Listener() {
      const client = useRealtimeClient();
      stable ??= client;
      expect(client).toBe(stable);
      return null;
    }
    const view = render(
      <Tree opts={options}>
        <Listener />
      </Tree>,
    );
    act(() => {
      (stable as ReturnType<typeof useRealtimeClient>).on("ORDER_RECEIVED", (e) => seen.push(e.payload.id));
    });
    FakeRealtimeClient.created[0]?.emitFrame(single(event("ORDER_RECEIVED", "ord_1")));
    view.rerender(
      <Tree opts={{ ...options, baseUrl: "https://other.example" }}>
        <Listener />
      </Tree>,
    );
    FakeRealtimeClient.created[1]?.emitFrame(single(event("ORDER_RECEIVED", "ord_2")));
    expect(seen).toEqual(["ord_1", "ord_2"]);
  });

  it("goes from connecting to open without a closed in between", () => {
    const states: string[] = [];
    function Recorder() {
      const client = useRealtimeClient();
      useEffect(() => client.onState((state) => states.push(state)), [client]);
      return null;
    }
    render(
      <Tree opts={options}>
        <Recorder />
      </Tree>,
    );
    FakeRealtimeClient.created[0]?.setState("open");
    expect(states).toEqual(["open"]);
  });

  it("invalidates from frames of the client it created", () => {
    const spy = vi.spyOn(queryClient, "invalidateQueries");
    render(<Tree opts={options} />);
    FakeRealtimeClient.created[0]?.emitFrame(single(event("ORDER_RECEIVED", "ord_1")));
    expect(invalidatedKeys(spy)).toEqual([["orders"]]);
  });

  it("reports the client's state through the context", () => {
    const { result } = renderHook(() => useRealtime().state, {
      wrapper: ({ children }) => <Tree opts={options}>{children}</Tree>,
    });
    expect(result.current).toBe("connecting");
    FakeRealtimeClient.created[0]?.setState("open");
    expect(result.current).toBe("open");
  });
});

describe("outside the provider", () => {
  it("useRealtime throws a clear error", () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    expect(() => renderHook(() => useRealtime())).toThrow(/inside <RealtimeProvider>/);
  });
});
