import { describe, expect, it, vi } from "vitest";
import type { Heartbeat } from "../generated/schema";
import type { ChannelLike, LeaderClient, LockManagerLike } from "./SharedRealtimeClient";
import { SharedRealtimeClient } from "./SharedRealtimeClient";
import type { ConnectionState, RealtimeClientOptions, RealtimeFrame, ResetCause } from "./types";

// ---- an in-memory browser: one lock queue and one broadcast bus for every "tab" ----

class Locks implements LockManagerLike {
  private queue: { run: () => void; signal?: AbortSignal }[] = [];
  private held = false;
  request(_name: string, options: { signal?: AbortSignal }, callback: (lock: unknown) => Promise<void>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const run = (): void => {
        this.held = true;
        void callback(null).then(() => {
          this.held = false;
          resolve(undefined);
          this.next();
        });
      };
      options.signal?.addEventListener("abort", () => {
        this.queue = this.queue.filter((entry) => entry.run !== run);
        reject(new DOMException("aborted", "AbortError"));
      });
      this.queue.push({ run, signal: options.signal });
      if (!this.held) this.next();
    });
  }
  private next(): void {
    const entry = this.queue.shift();
    if (entry) entry.run();
  }
}

class Bus {
  readonly members = new Set<ChannelLike>();
  channel(): ChannelLike {
    const bus = this;
    const channel: ChannelLike = {
      onmessage: null,
      postMessage(message: unknown) {
        // Structured clone and asynchronous delivery, as BroadcastChannel does; not to itself.
        const copy: unknown = structuredClone(message);
        for (const other of bus.members) {
          if (other !== channel) queueMicrotask(() => other.onmessage?.({ data: copy } as MessageEvent));
        }
      },
      close() {
        bus.members.delete(channel);
      },
    };
    this.members.add(channel);
    return channel;
  }
}

/** A leader's connection, driven by the test. */
class FakeConnection implements LeaderClient {
  state: ConnectionState = "closed";
  cursor: string | null = null;
  lastEvent = null;
  lastEventAt = null;
  lastHeartbeat: Heartbeat | null = null;
  instance: string | null = null;
  frames = new Set<(frame: RealtimeFrame) => void>();
  heartbeats = new Set<(heartbeat: Heartbeat) => void>();
  states = new Set<(state: ConnectionState) => void>();
  constructor(readonly options: RealtimeClientOptions) {}
  start(): void {
    this.state = "open";
    for (const l of this.states) l("open");
  }
  stop(): void {
    this.state = "closed";
  }
  on() {
    return () => {};
  }
  onFrame(l: (frame: RealtimeFrame) => void) {
    this.frames.add(l);
    return () => this.frames.delete(l);
  }
  onReset(_l: (reason: ResetCause) => void) {
    return () => {};
  }
  onState(l: (state: ConnectionState) => void) {
    this.states.add(l);
    return () => this.states.delete(l);
  }
  onHeartbeat(l: (heartbeat: Heartbeat) => void) {
    this.heartbeats.add(l);
    return () => this.heartbeats.delete(l);
  }
  emit(seqs: number[], cursor: string): void {
    this.cursor = cursor;
    const frame: RealtimeFrame = {
      type: "ORDER_RECEIVED",
      batch: seqs.length > 1,
      count: seqs.length,
      events: seqs.map((seq) => ({ type: "ORDER_RECEIVED", seq, payload: { id: `ord_${seq}`, action: "created" }, timestamp: "t" })),
    };
    for (const l of this.frames) l(frame);
  }
}

function browser() {
  const locks = new Locks();
  const bus = new Bus();
  const connections: FakeConnection[] = [];
  const tab = () => {
    const seqs: number[] = [];
    const client = new SharedRealtimeClient({
      baseUrl: "",
      locks,
      createChannel: () => bus.channel(),
      createClient: (options) => {
        const connection = new FakeConnection(options);
        connections.push(connection);
        return connection;
      },
    });
    client.on("*", (event) => seqs.push(event.seq));
    client.start();
    return { client, seqs };
  };
  return { tab, connections };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("SharedRealtimeClient", () => {
  it("opens one connection for many tabs and relays its frames to all of them", async () => {
    const { tab, connections } = browser();
    const tabs = [tab(), tab(), tab()];
    await settle();
    expect(connections).toHaveLength(1);
    // The leader answers each new tab's hello: they know their role before any event.
    expect(tabs.map((t) => t.client.role)).toEqual(["leader", "follower", "follower"]);
    connections[0]?.emit([1, 2], "e-2");
    await settle();
    expect(tabs.map((t) => t.seqs)).toEqual([[1, 2], [1, 2], [1, 2]]);
    expect(tabs.map((t) => t.client.role)).toEqual(["leader", "follower", "follower"]);
    expect(tabs[2]?.client.state).toBe("open");
  });

  it("hands a tab that opens later the recent frames, as history", async () => {
    const { tab, connections } = browser();
    tab();
    await settle();
    connections[0]?.emit([1], "e-1");
    await settle();
    const late = tab();
    const frames: RealtimeFrame[] = [];
    late.client.onFrame((frame) => frames.push(frame));
    await settle();
    await settle();
    expect(late.seqs).toEqual([1]);
    expect(frames[0]?.history).toBe(true);
  });

  it("when the leader goes, the next tab resumes from the last cursor and drops what it had", async () => {
    const { tab, connections } = browser();
    const first = tab();
    const second = tab();
    await settle();
    connections[0]?.emit([1, 2, 3], "1795366240958-3");
    await settle();
    first.client.stop();
    await settle();
    expect(connections).toHaveLength(2);
    expect(connections[1]?.options.lastEventId).toBe("1795366240958-3");
    expect(second.client.role).toBe("leader");
    // The resume overlaps (at-least-once): 3 again, then 4.
    const frames: RealtimeFrame[] = [];
    second.client.onFrame((frame) => frames.push(frame));
    connections[1]?.emit([3, 4], "1795366240958-4");
    expect(second.seqs).toEqual([1, 2, 3, 4]);
    expect(frames[0]?.count).toBe(1);
  });

  it("stops cleanly: no connection, state closed", async () => {
    const { tab, connections } = browser();
    const only = tab();
    await settle();
    const stop = vi.spyOn(connections[0] as FakeConnection, "stop");
    only.client.stop();
    expect(stop).toHaveBeenCalled();
    expect(only.client.state).toBe("closed");
  });
});
