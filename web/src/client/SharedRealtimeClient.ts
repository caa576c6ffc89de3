// One gateway connection per browser for the tabs of one credential and channel set: those tabs
// elect a leader with the Web Locks API (the lock is held for as long as the leader tab lives
// and is released by the browser when it closes or crashes), the leader runs the one
// RealtimeClient and relays what it receives over a BroadcastChannel. Lock and channel are
// named after a digest of the credential (tabSharing.ts): a tab with another key, token or
// channels is in another group. A tab checks its own credential with the gateway before it
// accepts a relayed frame. Every tab remembers the last cursor it heard, so when the leader
// goes, the next tab to get the lock resumes from there: the gateway replays what came after
// it, and each tab drops by seq what it had already delivered.
import type { Heartbeat, SequencedEvent } from "../generated/schema";
import { ListenerSet } from "./listeners";
import { RecentSeqs } from "./messages";
import { RealtimeClient } from "./RealtimeClient";
import { StreamView } from "./streamView";
import { backoffDelay } from "./spread";
import { groupName, verifyCredential, type ChannelLike, type LockManagerLike, type Message, type Verdict } from "./tabSharing";
import type {
  ConnectionState,
  RealtimeClientApi,
  RealtimeClientOptions,
  RealtimeFrame,
  ResetCause,
  TokenGrant,
  Unsubscribe,
} from "./types";

export { canShareAcrossTabs, type ChannelLike, type LockManagerLike } from "./tabSharing";

/** Recently delivered seqs per tab: covers the replay overlap of a leader change. */
const DEDUP_CAPACITY = 10_000;
/**
 * Frames every tab keeps to hand a tab that opens later (as history), so that it starts with
 * what the others show instead of an empty screen: a new tab does not get a backfill of its own.
 */
const RECENT_FRAMES = 200;

export type TabRole = "waiting" | "leader" | "follower";

export interface SharedClientOptions extends RealtimeClientOptions {
  /**
   * A namespace: tabs share only within one (and only with the same credential, gateway,
   * transport and channels, whatever it is). Apps on one origin that must not share pass
   * different ones. Default: "".
   */
  shareName?: string;
  locks?: LockManagerLike;
  createChannel?: (name: string) => ChannelLike;
  /** For tests: how the leader makes its connection. */
  createClient?: (options: RealtimeClientOptions) => LeaderClient;
}

/** What the leader needs of its connection (a RealtimeClient). */
export type LeaderClient = RealtimeClientApi & {
  readonly cursor: string | null;
  readonly lastError?: string | null;
};

export class SharedRealtimeClient extends StreamView implements RealtimeClientApi {
  private _role: TabRole = "waiting";
  /** The last cursor heard from any leader: where the next leader resumes. */
  private cursor: string | null;

  private readonly roleListeners = new ListenerSet<TabRole>();
  private readonly seen = new RecentSeqs(DEDUP_CAPACITY);
  private recent: RealtimeFrame[] = [];
  /** Tells this tab's hello apart from another's, so a catch-up reaches only the tab that asked. */
  private readonly tabId = Math.random().toString(36).slice(2) + Date.now().toString(36);

  private channel: ChannelLike | null = null;
  private client: LeaderClient | null = null;
  private abort: AbortController | null = null;
  private releaseLock: (() => void) | null = null;
  /** Bumped by start() and stop(): results of an earlier run's requests are dropped. */
  private run = 0;
  /** The event types this tab's own credential reads, once the gateway accepted it. */
  private verified: Verdict & { ok: true } | null = null;
  private ownError: string | null = null;
  private leaderError: string | null = null;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly options: SharedClientOptions) {
    super();
    this.cursor = options.lastEventId ?? null;
  }

  get role(): TabRole {
    return this._role;
  }
  /** Why this tab has no stream: its own credential check, or the leader's last failure. */
  get lastError(): string | null {
    if (this._role === "leader") return this.client?.lastError ?? null;
    return this.ownError ?? this.leaderError;
  }

  start(): void {
    if (this._state !== "closed") return;
    this.setState("connecting");
    void this.join(++this.run);
  }

  /** Finds this tab's group (the token's claims name it for getToken), then joins it. */
  private async join(run: number): Promise<void> {
    let grant: TokenGrant | null = null;
    let name: string | null;
    try {
      if (this.options.getToken) grant = await this.options.getToken();
      name = await groupName(this.options, grant);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (run === this.run) this.retry(run, `token request failed: ${message}`, () => this.join(run));
      return;
    }
    if (run !== this.run) return;
    // A token whose principal cannot be read: no group can be told apart, so no sharing.
    if (name === null) return this.lead();
    const locks = this.options.locks ?? (globalThis.navigator as Navigator & { locks: LockManagerLike }).locks;
    const channel = this.options.createChannel ? this.options.createChannel(name) : (new BroadcastChannel(name) as ChannelLike);
    this.channel = channel;
    channel.onmessage = (event: MessageEvent) => this.receive(event.data as Message);
    const abort = new AbortController();
    this.abort = abort;
    locks
      .request(name, { signal: abort.signal }, async () => {
        if (abort.signal.aborted) return;
        this.lead();
        // Held until stop(), or until the browser releases it with the tab.
        await new Promise<void>((resolve) => {
          this.releaseLock = resolve;
        });
      })
      .catch(() => {
        // Aborted by stop() while waiting: nothing to undo.
      });
    await this.verify(run, grant);
  }

  /**
   * Checks this tab's own credential before it takes any relayed frame: a tab whose key is
   * wrong (or revoked) shows the error a tab of its own would, and receives nothing.
   */
  private async verify(run: number, grant: TokenGrant | null): Promise<void> {
    let verdict: Verdict;
    try {
      if (this.options.getToken && grant === null) grant = await this.options.getToken();
      verdict = await verifyCredential(this.options, grant);
    } catch (error) {
      verdict = { ok: false, refused: false, error: `token request failed: ${error instanceof Error ? error.message : String(error)}` };
    }
    // A leader's own connection is its check.
    if (run !== this.run || this._role === "leader") return;
    if (!verdict.ok) return this.retry(run, verdict.error, () => this.verify(run, null));
    this.verified = verdict;
    this.ownError = null;
    this.attempt = 0;
    // A leader that already runs answers with its status, so a new tab is current at once.
    this.post({ kind: "hello", from: this.tabId });
  }

  /** A failed check: say so (as a connection of its own would) and try again after a backoff. */
  private retry(run: number, error: string, again: () => Promise<void>): void {
    this.ownError = error;
    this.setState("reconnecting");
    const delay = backoffDelay(this.attempt, this.options.backoff?.initialMs ?? 3_000, this.options.backoff?.maxMs ?? 30_000);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (run === this.run && this._role !== "leader") void again();
    }, delay);
  }

  stop(): void {
    this.run += 1;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.verified = null;
    this.ownError = null;
    this.leaderError = null;
    this.abort?.abort();
    this.abort = null;
    this.client?.stop();
    this.client = null;
    this.releaseLock?.();
    this.releaseLock = null;
    if (this.channel) {
      this.channel.onmessage = null;
      this.channel.close();
      this.channel = null;
    }
    this.setRole("waiting");
    this.setState("closed");
  }

  /** Every change of this tab's role (the other listeners come from RealtimeListeners). */
  onRole(listener: (role: TabRole) => void): Unsubscribe {
    return this.roleListeners.add(listener);
  }

  // ---- leader ----

  /** This tab got the lock: connect, resuming from the last cursor any leader announced. */
  private lead(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.ownError = null;
    const options: RealtimeClientOptions = { ...this.options };
    if (this.cursor !== null) options.lastEventId = this.cursor;
    const client = this.options.createClient ? this.options.createClient(options) : new RealtimeClient(options);
    this.client = client;
    this.setRole("leader");
    client.onFrame((frame) => {
      this.cursor = client.cursor;
      this.post({ kind: "frame", frame, cursor: this.cursor });
      this.deliverFrame(frame);
    });
    client.onReset((reason) => {
      this.cursor = client.cursor;
      this.post({ kind: "reset", reason, cursor: this.cursor });
      this.deliverReset(reason);
    });
    client.onHeartbeat((heartbeat) => {
      this.cursor = client.cursor;
      this.post({ kind: "heartbeat", heartbeat, cursor: this.cursor });
      this.deliverHeartbeat(heartbeat);
    });
    client.onState((state) => {
      this.postStatus();
      this.setState(state);
    });
    client.start();
    this.setState(client.state);
    this.postStatus();
  }

  private postStatus(): void {
    const client = this.client;
    if (!client) return;
    this.post({
      kind: "status",
      state: client.state,
      heartbeat: client.lastHeartbeat,
      instance: client.instance,
      cursor: this.cursor,
      error: client.lastError ?? null,
    });
  }

  private post(message: Message): void {
    try {
      this.channel?.postMessage(message);
    } catch {
      // A closed channel (the tab is going away): the next leader resumes from the cursor.
    }
  }

  // ---- every tab ----

  private receive(message: Message): void {
    if (message.kind === "hello") {
      if (this._role !== "leader") return;
      this.postStatus();
      if (this.recent.length > 0) this.post({ kind: "catchup", to: message.from, frames: this.recent });
      return;
    }
    // Nothing relayed reaches a tab before the gateway accepted its own credential, and then
    // only the channels that credential reads.
    const verified = this.verified;
    if (this._role === "leader" || verified === null) return;
    if (message.kind === "catchup") {
      if (message.to !== this.tabId) return;
      for (const frame of message.frames) if (verified.types.has(frame.type)) this.deliverFrame({ ...frame, history: true });
      return;
    }
    // Only a leader speaks on the channel; what it says makes this tab a follower.
    this.setRole("follower");
    if (message.cursor !== null) this.cursor = message.cursor;
    switch (message.kind) {
      case "frame":
        if (verified.types.has(message.frame.type)) this.deliverFrame(message.frame);
        return;
      case "reset":
        this.deliverReset(message.reason);
        return;
      case "heartbeat":
        this.deliverHeartbeat(message.heartbeat);
        return;
      case "status":
        // The leader's last heartbeat: news to a tab that has just joined (or missed it), so
        // its listeners hear it; one already heard is not told again.
        if (message.heartbeat && !sameHeartbeat(message.heartbeat, this._lastHeartbeat)) {
          this.deliverHeartbeat(message.heartbeat);
        }
        this._instance = message.instance;
        this.leaderError = message.error ?? null;
        this.setState(message.state);
    }
  }

  /** Drops events this tab already delivered (a new leader's resume overlaps the old one's). */
  private deliverFrame(frame: RealtimeFrame): void {
    const events = frame.events.filter((event) => this.seen.add(event.seq));
    const dropped = frame.events.length - events.length;
    if (events.length === 0 && !frame.batch) return;
    // The count of a batch stands for its folded events too; the listed ones delivered before
    // are taken off it so that counters do not count them twice.
    const fresh: RealtimeFrame = { ...frame, events, count: Math.max(events.length, frame.count - dropped) };
    if (fresh.count === 0) return;
    this.recent.push(fresh);
    if (this.recent.length > RECENT_FRAMES) this.recent.splice(0, this.recent.length - RECENT_FRAMES);
    this.deliverEvents(events, fresh);
  }

  private deliverReset(reason: ResetCause): void {
    this.seen.clear();
    this.recent = [];
    this.notifyReset(reason);
  }

  private deliverHeartbeat(heartbeat: Heartbeat): void {
    this.recordHeartbeat(heartbeat);
  }

  private setRole(role: TabRole): void {
    if (role === this._role) return;
    this._role = role;
    this.roleListeners.emit(role);
  }
}

/** Whether two heartbeats are the same one (a relayed copy is never the same object). */
function sameHeartbeat(a: Heartbeat, b: Heartbeat | null): boolean {
  return b !== null && a.instance === b.instance && a.seq === b.seq && a.time === b.time;
}
