import { afterEach, describe, expect, it, vi } from "vitest";
import type { Heartbeat, SequencedEvent } from "../generated/schema";
import { ListenerSet, RealtimeListeners } from "./listeners";
import type { ConnectionState, RealtimeFrame, ResetCause } from "./types";

afterEach(() => {
  vi.useRealTimers();
});

function event(type: SequencedEvent["type"], seq: number): SequencedEvent {
  return { type, seq, payload: { id: `id_${seq}`, action: "updated" }, timestamp: "t" };
}

/** The notify methods are for the class that extends it; a test opens them up. */
class Speaker extends RealtimeListeners {
  event(e: SequencedEvent): void {
    this.notifyEvent(e);
  }
  frame(f: RealtimeFrame): void {
    this.notifyFrame(f);
  }
  reset(r: ResetCause): void {
    this.notifyReset(r);
  }
  state(s: ConnectionState): void {
    this.notifyState(s);
  }
  heartbeat(h: Heartbeat): void {
    this.notifyHeartbeat(h);
  }
  get count(): number {
    return this.countListeners();
  }
}

describe("ListenerSet", () => {
  it("calls each subscription, in order, until it unsubscribes", () => {
    const set = new ListenerSet<number>();
    const heard: string[] = [];
    const offA = set.add((n) => heard.push(`a${n}`));
    set.add((n) => heard.push(`b${n}`));
    set.emit(1);
    offA();
    offA(); // twice is harmless
    set.emit(2);
    expect(heard).toEqual(["a1", "b1", "b2"]);
    expect(set.size).toBe(1);
  });

  it("counts one function subscribed twice as two subscriptions, each with its own unsubscribe", () => {
    const set = new ListenerSet<number>();
    const listener = vi.fn();
    const first = set.add(listener);
    set.add(listener);
    set.emit(1);
    expect(listener).toHaveBeenCalledTimes(2);
    first();
    set.emit(2);
    expect(listener).toHaveBeenCalledTimes(3);
  });

  it("calls the listeners it had when the emit began, whoever unsubscribes or subscribes meanwhile", () => {
    const set = new ListenerSet<number>();
    const heard: string[] = [];
    let offB: () => void = () => {};
    set.add(() => {
      heard.push("a");
      offB();
      set.add(() => heard.push("late"));
    });
    offB = set.add(() => heard.push("b"));
    set.emit(1);
    expect(heard).toEqual(["a", "b"]);
    set.emit(2);
    expect(heard).toEqual(["a", "b", "a", "late"]);
  });

  it("keeps calling the others when one throws, and rethrows its error from a timer", () => {
    vi.useFakeTimers();
    const set = new ListenerSet<number>();
    const after = vi.fn();
    set.add(() => {
      throw new Error("boom");
    });
    set.add(after);
    expect(() => set.emit(1)).not.toThrow();
    expect(after).toHaveBeenCalledWith(1);
    expect(() => vi.runOnlyPendingTimers()).toThrow("boom");
  });
});

describe("RealtimeListeners", () => {
  it("sends an event to its type's listeners, then to '*'", () => {
    const speaker = new Speaker();
    const heard: string[] = [];
    speaker.on("*", (e) => heard.push(`*:${e.seq}`));
    speaker.on("ORDER_RECEIVED", (e) => heard.push(`order:${e.seq}`));
    speaker.on("PRICE_CHANGE", (e) => heard.push(`price:${e.seq}`));
    speaker.event(event("ORDER_RECEIVED", 1));
    speaker.event(event("INVENTORY_CHANGE", 2));
    expect(heard).toEqual(["order:1", "*:1", "*:2"]);
  });

  it("has one listener kind for each of frames, resets, states and heartbeats", () => {
    const speaker = new Speaker();
    const heard: unknown[] = [];
    const offs = [
      speaker.onFrame((f) => heard.push(["frame", f.count])),
      speaker.onReset((r) => heard.push(["reset", r])),
      speaker.onState((s) => heard.push(["state", s])),
      speaker.onHeartbeat((h) => heard.push(["heartbeat", h.instance])),
      speaker.on("*", (e) => heard.push(["event", e.seq])),
    ];
    expect(speaker.count).toBe(5);
    speaker.frame({ type: "ORDER_RECEIVED", batch: true, count: 3, events: [] });
    speaker.reset("stream_recreated");
    speaker.state("open");
    speaker.heartbeat({ instance: "gw-1", seq: 4, time: "t", degraded: false });
    speaker.event(event("ORDER_RECEIVED", 5));
    expect(heard).toEqual([
      ["frame", 3],
      ["reset", "stream_recreated"],
      ["state", "open"],
      ["heartbeat", "gw-1"],
      ["event", 5],
    ]);
    for (const off of offs) off();
    expect(speaker.count).toBe(0);
    speaker.heartbeat({ instance: "gw-2", seq: 5, time: "t", degraded: false });
    expect(heard).toHaveLength(5);
  });
});
