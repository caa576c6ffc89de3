import { afterEach, describe, expect, it, vi } from "vitest";
import type { RealtimeClientApi } from "../client/types";
import { ListenerSet } from "../client/listeners";
import { FakeRealtimeClient, event, single } from "./fakeClient.test-helper";
import { FRAME_NOTIFY_MS, createStatusStore } from "./statusStore";

afterEach(() => {
  vi.useRealTimers();
});

/** The fake behind a proxy that counts every read of the client, listener calls included. */
function watched(client: FakeRealtimeClient): { client: RealtimeClientApi; reads: () => number } {
  let reads = 0;
  const proxy = new Proxy(client, {
    get(target, key, receiver) {
      reads += 1;
      const value: unknown = Reflect.get(target, key, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { client: proxy, reads: () => reads };
}

describe("createStatusStore", () => {
  it("never reads the client on a timer: time passing alone changes nothing", () => {
    vi.useFakeTimers();
    const fake = new FakeRealtimeClient();
    const { client, reads } = watched(fake);
    const store = createStatusStore(client);
    const onChange = vi.fn();
    const off = store.subscribe(onChange);
    const before = reads();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10 * 60_000);
    expect(reads()).toBe(before);
    expect(onChange).not.toHaveBeenCalled();
    off();
  });

  it("takes the instance from a heartbeat at once", () => {
    vi.useFakeTimers();
    const client = new FakeRealtimeClient();
    const store = createStatusStore(client);
    const onChange = vi.fn();
    store.subscribe(onChange);
    expect(store.getSnapshot().instance).toBeNull();
    client.heartbeat("gw-2");
    expect(onChange).toHaveBeenCalledTimes(1);
    expect(store.getSnapshot().instance).toBe("gw-2");
  });

  it("tells of states and resets at once, and of frames at most every FRAME_NOTIFY_MS", () => {
    vi.useFakeTimers();
    const client = new FakeRealtimeClient();
    const store = createStatusStore(client);
    const onChange = vi.fn();
    store.subscribe(onChange);
    client.setState("open");
    client.emitReset();
    expect(onChange).toHaveBeenCalledTimes(2);
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_1")));
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_2")));
    client.emitFrame(single(event("ORDER_RECEIVED", "ord_3")));
    expect(onChange).toHaveBeenCalledTimes(3);
    vi.advanceTimersByTime(FRAME_NOTIFY_MS);
    expect(onChange).toHaveBeenCalledTimes(4);
    expect(store.getSnapshot().lastEvent?.payload.id).toBe("ord_3");
  });

  it("tells of a swapped client through onSwap, and lets go of everything on unsubscribe", () => {
    const client = new FakeRealtimeClient();
    const swaps = new ListenerSet<null>();
    const store = createStatusStore(client, (listener) => swaps.add(listener));
    const onChange = vi.fn();
    const off = store.subscribe(onChange);
    swaps.emit(null);
    expect(onChange).toHaveBeenCalledTimes(1);
    off();
    expect(client.listenerCount).toBe(0);
    expect(swaps.size).toBe(0);
  });
});
