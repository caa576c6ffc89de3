// An in-memory browser for SharedRealtimeClient's tests: locks and broadcast channels by name,
// and leader connections the tests drive by hand.
import type { EventType, Heartbeat } from "../generated/schema";
import type { ChannelLike, LeaderClient, LockManagerLike, SharedClientOptions } from "./SharedRealtimeClient";
import { SharedRealtimeClient } from "./SharedRealtimeClient";
import type { ConnectionState, RealtimeClientOptions, RealtimeFrame, ResetCause } from "./types";

// ---- an in-memory browser: one lock queue and one broadcast bus per name, for every "tab" ----

export class Locks implements LockManagerLike {
  private readonly queues = new Map<string, { run: () => void }[]>();
  private readonly held = new Set<string>();
  readonly names: string[] = [];
  request(name: string, options: { signal?: AbortSignal }, callback: (lock: unknown) => Promise<void>): Promise<unknown> {
    this.names.push(name);
    const queue = this.queues.get(name) ?? [];
    this.queues.set(name, queue);
    return new Promise((resolve, reject) => {
      const run = (): void => {
        this.held.add(name);
        void callback(null).then(() => {
          this.held.delete(name);
          resolve(undefined);
          this.next(name);
        });
      };
      options.signal?.addEventListener("abort", () => {
        const index = queue.findIndex((entry) => entry.run === run);
        if (index >= 0) queue.splice(index, 1);
        reject(new DOMException("aborted", "AbortError"));
      });
      queue.push({ run });
      if (!this.held.has(name)) this.next(name);
    });
  }
  private next(name: string): void {
    const entry = this.queues.get(name)?.shift();
    if (entry) entry.run();
  }
}

export class Bus {
  private readonly members = new Map<string, Set<ChannelLike>>();
  readonly names: string[] = [];
  channel(name: string): ChannelLike {
    this.names.push(name);
    const members = this.members.get(name) ?? new Set<ChannelLike>();
    this.members.set(name, members);
    const channel: ChannelLike = {
      onmessage: null,
      postMessage(message: unknown) {
        // Structured clone and asynchronous delivery, as BroadcastChannel does; not to itself.
        const copy: unknown = structuredClone(message);
        for (const other of members) {
          if (other !== channel) queueMicrotask(() => other.onmessage?.({ data: copy } as MessageEvent));
        }
      },
      close() {
        members.delete(channel);
      },
    };
    members.add(channel);
    return channel;
  }
}

/** A leader's connection, driven by the test. */
export class FakeConnection implements LeaderClient {
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
  /** A heartbeat from the gateway, taken as RealtimeClient does: fields, then listeners. */
  beat(instance: string, seq: number): Heartbeat {
    const heartbeat: Heartbeat = { instance, seq, time: `t-${seq}`, degraded: false };
    this.lastHeartbeat = heartbeat;
    this.instance = instance;
    for (const l of this.heartbeats) l(heartbeat);
    return heartbeat;
  }
  emit(seqs: number[], cursor: string, type: EventType = "ORDER_RECEIVED"): void {
    this.cursor = cursor;
    const frame: RealtimeFrame = {
      type,
      batch: seqs.length > 1,
      count: seqs.length,
      events: seqs.map((seq) => ({ type, seq, payload: { id: `id_${seq}`, action: "created" }, timestamp: "t" })),
    };
    for (const l of this.frames) l(frame);
  }
}

export type TabOptions = Partial<SharedClientOptions>;

export function browser(defaults: TabOptions = {}) {
  const locks = new Locks();
  const bus = new Bus();
  const connections: FakeConnection[] = [];
  const tab = (options: TabOptions = {}) => {
    const seqs: number[] = [];
    const types: string[] = [];
    const client = new SharedRealtimeClient({
      baseUrl: "",
      locks,
      createChannel: (name) => bus.channel(name),
      createClient: (settings) => {
        const connection = new FakeConnection(settings);
        connections.push(connection);
        return connection;
      },
      ...defaults,
      ...options,
    });
    client.on("*", (event) => {
      seqs.push(event.seq);
      types.push(event.type);
    });
    client.start();
    return { client, seqs, types };
  };
  return { tab, connections, locks, bus };
}

/** Until `check` holds; a deadline, not a delay. */
export async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Lets queued channel messages (microtasks) and timers due now run. */
export const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

