// The framework-free browser client. It drives one transport at a time (sseTransport.ts or
// wsTransport.ts, through the interface in transport.ts) and owns what both share: the
// connection lifecycle (state, heartbeat watchdog, reconnect backoff), the token handover
// (tokens.ts says which token, this file when to change), the resume cursor, and dedup by seq
// (messages.ts). The listener surface comes from listeners.ts. See docs/PROTOCOL.md for the
// wire format.
import type { Heartbeat, SequencedEvent } from "../generated/schema";
import { StreamView } from "./streamView";
import { RecentSeqs, cursorSeq, isPublicEventType, resetCauseOf, toFrame, toHeartbeat } from "./messages";
import { reconnectDelay, retryAfterOf } from "./spread";
import { openEventSource } from "./sseTransport";
import { RenewalTimer, TokenSource, isDue, type CachedToken } from "./tokens";
import { streamQuery, type IncomingMessage, type Transport, type TransportEnd, type TransportHandlers } from "./transport";
import type { ConnectionState, RealtimeClientApi, RealtimeClientOptions, RealtimeFrame } from "./types";
import { openWebSocket } from "./wsTransport";

const DEFAULT_HEARTBEAT_INTERVAL_MS = 30_000;
const DEFAULT_BACKOFF_INITIAL_MS = 3_000;
const DEFAULT_BACKOFF_MAX_MS = 30_000;
/**
 * How long a token handover may take before the state admits it (`reconnecting`): a routine
 * token change takes a token request and a handshake, far less than this.
 */
const HANDOVER_GRACE_MS = 2_000;
/** Enough to cover any replay overlap after a reconnect, small enough to stay cheap. */
const DEDUP_CAPACITY = 10_000;

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** "https://x/" and "https://x" must give the same URLs. */
function trimTrailingSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/**
 * One gateway connection, kept open: `start()`, then listen with `on(type)`, `onFrame`,
 * `onReset`, `onState` and `onHeartbeat` (each returns its unsubscribe); `stop()` ends it.
 */
export class RealtimeClient extends StreamView implements RealtimeClientApi {
  private _lastError: string | null = null;

  private readonly baseUrl: string;
  private readonly heartbeatIntervalMs: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;

  private readonly seen = new RecentSeqs(DEDUP_CAPACITY);
  private _cursor: string | null;
  /**
   * Whether the current connection has gone live: its first heartbeat comes after any replay,
   * so frames before it are history (backfill or resume).
   */
  private live = false;
  private readonly tokens: TokenSource;
  /** The token the current connection was opened with. */
  private connectionToken: CachedToken | null = null;
  private attempt = 0;

  /**
   * Bumped whenever a connection is torn down: callbacks of an older connection (a late token
   * response, a close event after our own close()) compare it and do nothing.
   */
  private generation = 0;
  private transport: Transport | null = null;
  /** Whether the current connection opened; one that never did may have a refused token. */
  private opened = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private watchdogTimer: ReturnType<typeof setTimeout> | null = null;
  /** Fires at the connection token's renewal time. */
  private readonly renewal = new RenewalTimer();
  /** Turns the state to `reconnecting` when a token handover takes too long. */
  private handoverTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly options: RealtimeClientOptions) {
    super();
    this.baseUrl = trimTrailingSlash(options.baseUrl);
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.backoffInitialMs = options.backoff?.initialMs ?? DEFAULT_BACKOFF_INITIAL_MS;
    this.backoffMaxMs = options.backoff?.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
    this._cursor = options.lastEventId !== undefined && options.lastEventId !== "" ? options.lastEventId : null;
    this.tokens = new TokenSource(options, this.baseUrl);
  }

  /** The resume cursor: every event up to it has been delivered (or left out by the channels). */
  get cursor(): string | null {
    return this._cursor;
  }
  /** Why the last connection attempt failed (token request, transport, watchdog); null once open. */
  get lastError(): string | null {
    return this._lastError;
  }

  start(): void {
    if (this._state !== "closed") return;
    this.attempt = 0;
    this.setState("connecting");
    void this.connect();
  }

  stop(): void {
    this.teardown();
    this.clearReconnectTimer();
    this.setState("closed");
  }

  // ---- connection lifecycle ----

  /**
   * One connection attempt: token first (unless `prefetched` is given; null means "no
   * credential"), then the transport.
   */
  private async connect(prefetched?: CachedToken | null): Promise<void> {
    const generation = this.generation;
    // Armed before the token request too: a request or handshake that hangs is as dead as a
    // silent stream, and nothing else would ever end it.
    this.armWatchdog(generation);
    let token: CachedToken | null;
    try {
      token = prefetched !== undefined ? prefetched : await this.tokens.obtain();
    } catch (error) {
      if (generation === this.generation) this.fail(`token request failed: ${describeError(error)}`, retryAfterOf(error));
      return;
    }
    if (generation !== this.generation) return;
    this.connectionToken = token;
    try {
      this.transport = this.openTransport(token?.token ?? null, generation);
    } catch (error) {
      this.fail(`cannot open the connection: ${describeError(error)}`);
    }
  }

  /** Opens the configured transport; what it reports of an older connection is dropped. */
  private openTransport(token: string | null, generation: number): Transport {
    const live = (): boolean => generation === this.generation;
    const handlers: TransportHandlers = {
      open: () => {
        if (live()) this.handleOpen(generation);
      },
      message: (message) => {
        if (live()) this.handleMessage(message);
      },
      end: (end) => {
        if (live()) this.handleEnd(end);
      },
    };
    const request = { baseUrl: this.baseUrl, query: streamQuery(token, this._cursor, this.options), handlers };
    return this.options.transport === "ws"
      ? openWebSocket(request, this.options.WebSocketImpl)
      : openEventSource(request, this.options.EventSourceImpl);
  }

  private handleOpen(generation: number): void {
    this.opened = true;
    this.live = false;
    this._lastError = null;
    this.clearHandoverTimer();
    this.setState("open");
    this.armWatchdog(generation);
    this.scheduleRenewal(generation);
  }

  /**
   * The connection ended. The gateway ends one when its token expires: a WebSocket says so
   * (4001); an EventSource reports it like any other end, so one that ends once its token is
   * due for renewal is taken for that. Anything else is a failure.
   */
  private handleEnd(end: TransportEnd): void {
    const expired = end.tokenExpired === "yes" || (end.tokenExpired === "maybe" && this.opened && isDue(this.connectionToken));
    if (expired) this.renewNow();
    else this.fail(end.reason);
  }

  /**
   * A failed attempt or a dead connection: drop it and try again after a backoff, and no
   * sooner than `retryAfterMs` when the server said so.
   */
  private fail(reason: string, retryAfterMs: number | null = null): void {
    this._lastError = reason;
    // A connection that never opened may have been refused for its token (an EventSource
    // cannot tell us the status), so do not offer the same token again.
    if (!this.opened) this.tokens.forget();
    this.teardown();
    this.setState("reconnecting");
    this.scheduleReconnect(retryAfterMs);
  }

  private scheduleReconnect(retryAfterMs: number | null): void {
    this.clearReconnectTimer();
    const delay = reconnectDelay(this.attempt, this.backoffInitialMs, this.backoffMaxMs, retryAfterMs);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect();
    }, delay);
  }

  /** Closes the current transport and makes its pending callbacks stale. */
  private teardown(): void {
    this.generation += 1;
    this.opened = false;
    this.clearWatchdog();
    this.renewal.clear();
    this.clearHandoverTimer();
    const transport = this.transport;
    this.transport = null;
    transport?.close();
  }

  private armWatchdog(generation: number): void {
    this.clearWatchdog();
    this.watchdogTimer = setTimeout(() => {
      this.watchdogTimer = null;
      if (generation !== this.generation) return;
      // A browser cannot tell a dead connection from a quiet one; the heartbeat can.
      this.fail(`no message for ${2 * this.heartbeatIntervalMs} ms`);
    }, 2 * this.heartbeatIntervalMs);
  }

  private clearWatchdog(): void {
    if (this.watchdogTimer !== null) {
      clearTimeout(this.watchdogTimer);
      this.watchdogTimer = null;
    }
  }

  // ---- token renewal ----

  /**
   * Arms the renewal of the connection's token. A connection lives no longer than its token
   * (the gateway ends it at expiry), so the client replaces it first: a new token, then a new
   * connection resuming from the cursor.
   */
  private scheduleRenewal(generation: number): void {
    this.renewal.arm(this.connectionToken?.renewAtMs ?? Number.NaN, () => {
      if (generation === this.generation) void this.renewAhead(generation);
    });
  }

  /**
   * The planned renewal: the token is fetched while the old connection keeps streaming, then
   * the connection is handed over. A failed request (network, 401) is a failure like any
   * other: the normal reconnect with backoff takes over, and that mints its own token.
   */
  private async renewAhead(generation: number): Promise<void> {
    let token: CachedToken | null;
    try {
      token = await this.tokens.mint();
    } catch (error) {
      if (generation === this.generation) this.fail(`token renewal failed: ${describeError(error)}`, retryAfterOf(error));
      return;
    }
    if (generation !== this.generation) return;
    this.handover(token);
  }

  /**
   * The gateway ended the connection because its token expired (WebSocket 4001, or an SSE
   * end once the token was due): the token is spent, so a new one is fetched and the client
   * reconnects at once; an expiry is not a failure and earns no backoff.
   */
  private renewNow(): void {
    this.tokens.spend(this.connectionToken);
    this.handover();
  }

  /**
   * Replaces the connection with one on a new token and the current cursor, at once and
   * without counting a failure. The state stays `open` through it: a routine token change is
   * no news to the application, and the resume replays whatever was sent in between (dedup by
   * seq drops what the old connection already delivered). Only a handover that has not opened
   * after HANDOVER_GRACE_MS shows as `reconnecting`; one that fails goes the usual way.
   */
  private handover(prefetched?: CachedToken | null): void {
    this.teardown();
    this.clearReconnectTimer();
    const generation = this.generation;
    this.handoverTimer = setTimeout(() => {
      this.handoverTimer = null;
      if (generation === this.generation && !this.opened) this.setState("reconnecting");
    }, HANDOVER_GRACE_MS);
    void this.connect(prefetched);
  }

  private clearHandoverTimer(): void {
    if (this.handoverTimer !== null) {
      clearTimeout(this.handoverTimer);
      this.handoverTimer = null;
    }
  }

  private clearReconnectTimer(): void {
    if (this.reconnectTimer !== null) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
  }

  // ---- messages ----

  private handleMessage(message: IncomingMessage): void {
    // Any message proves the connection alive, whatever it says.
    this.armWatchdog(this.generation);
    const before = cursorSeq(this._cursor);
    if (message.id) this._cursor = message.id;
    switch (message.event) {
      case "heartbeat":
        this.handleHeartbeat(message.data);
        return;
      case "reset":
        this.handleReset(message.data);
        return;
      default:
        if (isPublicEventType(message.event)) this.handleFrame(message.data, before);
      // "pong", "subscribed" and anything unknown carry nothing for the application.
    }
  }

  private handleHeartbeat(data: unknown): void {
    const heartbeat = toHeartbeat(data);
    if (heartbeat === null) return;
    this.live = true;
    this.markHealthy();
    this.recordHeartbeat(heartbeat);
  }

  private handleReset(data: unknown): void {
    // The seqs of a recreated stream start again; old ones would hide new events.
    this.seen.clear();
    this.notifyReset(resetCauseOf(data));
  }

  private handleFrame(data: unknown, afterSeq: number | null): void {
    const frame = toFrame(data, this.seen);
    if (frame === null) return;
    if (!this.live) frame.history = true;
    if (afterSeq !== null) frame.afterSeq = afterSeq;
    this.markHealthy();
    this.deliver(frame);
  }

  private deliver(frame: RealtimeFrame): void {
    this.deliverEvents(frame.events, frame);
  }

  /** The connection has carried real traffic: the next failure starts the backoff afresh. */
  private markHealthy(): void {
    if (this.opened) this.attempt = 0;
  }
}
