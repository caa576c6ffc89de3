import { afterEach, describe, expect, it, vi } from "vitest";
import type { ConnectionState } from "../client/types";
import { ClientRelay } from "./relay";
import { FakeRealtimeClient, event, single } from "./fakeClient.test-helper";

afterEach(() => {
  vi.useRealTimers();
});

describe("ClientRelay", () => {
  it("reports its idle state until a client is attached, then the client's", () => {
    const relay = new ClientRelay("connecting");
    const states: ConnectionState[] = [];
    relay.onState((s) => states.push(s));
    expect(relay.state).toBe("connecting");

    const client = new FakeRealtimeClient();
    relay.attach(client, "closed"); // fake starts "connecting": no change to report
    client.state = "open";
    client.deliverState();
    relay.attach(null, "closed");
    expect(states).toEqual(["open", "closed"]);
  });

  it("forwards events by type and frames, and stops when detached", () => {
    const relay = new ClientRelay("closed");
    const client = new FakeRealtimeClient();
    const orders: string[] = [];
    const all: string[] = [];
    const frames: number[] = [];
    relay.on("ORDER_RECEIVED", (e) => orders.push(e.payload.id));
    relay.on("*", (e) => all.push(e.payload.id));
    relay.onFrame((f) => frames.push(f.count));
    relay.attach(client, "closed");

    client.deliver(single(event("ORDER_RECEIVED", "ord_1")));
    client.deliver(single(event("PRICE_CHANGE", "prod_1")));
    relay.attach(null, "closed");
    client.deliver(single(event("ORDER_RECEIVED", "ord_2")));

    expect(orders).toEqual(["ord_1"]);
    expect(all).toEqual(["ord_1", "prod_1"]);
    expect(frames).toEqual([1, 1]);
    expect(client.listenerCount).toBe(0);
  });

  it("forwards heartbeats, and tells of a newly attached client's last one", () => {
    const relay = new ClientRelay("closed");
    const heard: string[] = [];
    relay.onHeartbeat((h) => heard.push(`${h.instance}/${h.seq}`));
    const first = new FakeRealtimeClient();
    relay.attach(first, "closed");
    first.heartbeat("gw-1", 1);
    first.heartbeat("gw-1", 2);
    expect(relay.lastHeartbeat?.seq).toBe(2);

    // One that already heard from its gateway: the listeners learn its instance at once.
    const second = new FakeRealtimeClient();
    second.heartbeat("gw-2", 9);
    relay.attach(second, "closed");
    relay.attach(second, "closed"); // the same client again: nothing new
    first.heartbeat("gw-1", 3); // detached
    second.heartbeat("gw-2", 10);

    expect(heard).toEqual(["gw-1/1", "gw-1/2", "gw-2/9", "gw-2/10"]);
    relay.attach(null, "closed");
    expect(second.listenerCount).toBe(0);
  });

  it("tells onAttach listeners of each client swap, and only of swaps", () => {
    const relay = new ClientRelay("closed");
    const swaps: (FakeRealtimeClient | null)[] = [];
    relay.onAttach((target) => swaps.push(target as FakeRealtimeClient | null));
    const client = new FakeRealtimeClient();
    relay.attach(client, "closed");
    relay.attach(client, "closed");
    relay.attach(null, "closed");
    relay.attach(null, "closed");
    expect(swaps).toEqual([client, null]);
  });

  it("keeps delivering to the other listeners when one throws", () => {
    vi.useFakeTimers();
    const relay = new ClientRelay("closed");
    const client = new FakeRealtimeClient();
    relay.attach(client, "closed");
    const heard = vi.fn();
    relay.onFrame(() => {
      throw new Error("boom");
    });
    relay.onFrame(heard);
    client.deliver(single(event("ORDER_RECEIVED", "ord_1")));
    expect(heard).toHaveBeenCalledTimes(1);
    // The error is rethrown from a timer so it still reaches error reporting.
    expect(() => vi.runOnlyPendingTimers()).toThrow("boom");
  });
});
