// The framework-free browser client: tokens (renewed ahead of expiry), SSE or WebSocket
// transport, resume cursor, dedup by seq, heartbeat watchdog and reconnect backoff. See
// docs/PROTOCOL.md for the wire format.
import { CHANNELS, CLOSE_CODES, RESET_REASONS } from "../generated/schema";
import { emit, type Listener } from "./listeners";
import { afterRetryAfter, clampUnit, retryAfterOf } from "./spread";
import { isRecord, requestToken } from "./tokenRequest";
import type { BatchFrame, EventType, Heartbeat, ResetReason, SequencedEvent, ServerMessage } from "../generated/schema";
import type {
  ConnectionState,
  ResetCause,
  RealtimeClientApi,
  RealtimeClientOptions,
  RealtimeFrame,
  TokenGrant,
  Unsubscribe,
} from "./types";

const DEFAULT_HEARTBEAT_INTERVAL_MS = 30_000;
const DEFAULT_BACKOFF_INITIAL_MS = 3_000;
const DEFAULT_BACKOFF_MAX_MS = 30_000;
/** Renew a token this share of its lifetime before it expires... */
const RENEW_FRACTION = 0.1;
/**
 * ...but never later than this before: a token request, a handshake and the resume must fit in
 * the margin, the gateway rounds a token's issue time down to the second (up to 1 s of the
 * lifetime is gone before the client sees it), and a background tab's timers run late.
 */
const RENEW_MIN_MARGIN_MS = 5_000;
/**
 * How long a token handover may take before the state admits it (`reconnecting`): a routine
 * token change takes a token request and a handshake, far less than this.
 */
const HANDOVER_GRACE_MS = 2_000;
/** setTimeout's largest delay; a longer one fires at once. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;
/** Enough to cover any replay overlap after a reconnect, small enough to stay cheap. */
const DEDUP_CAPACITY = 10_000;

/**
 * The event names a client listens for. Internal channels (the canary) are not for browsers,
 * so only the public types are taken from the channel table.
 */
const PUBLIC_EVENT_TYPES: readonly EventType[] = CHANNELS.filter((c) => !c.internal).map(
  (c) => c.eventType,
);

/**
 * Reconnect delay for the given attempt (0-based): "full jitter", uniform in [0, ceiling] where
 * the ceiling grows exponentially from `initialMs` and is capped at `maxMs`. Every attempt is
 * spread over its whole window, the first one included: the clients of a gateway that dies
 * all see the drop at the same instant, and a wait with no random part (or only a random half)
 * would bring them back to its peers as one wave. A failed attempt (a refusal, such as 503
 * `connection_rate`, which a browser cannot read) doubles the window, so a refused crowd
 * spreads further each time.
 */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const cap = Math.max(maxMs, initialMs);
  const exponent = Math.max(0, Math.floor(attempt));
  const ceiling = Math.min(cap, initialMs * 2 ** exponent);
  return clampUnit(random()) * ceiling;
}

/**
 * The wait before the next attempt: the backoff, or, when the server said `Retry-After` (which
 * a browser only sees on the token request, never on a refused stream), at least that plus up
 * to a second at random.
 */
export function reconnectDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  retryAfterMs: number | null = null,
  random: () => number = Math.random,
): number {
  return afterRetryAfter(retryAfterMs, backoffDelay(attempt, initialMs, maxMs, random), random);
}

/**
 * How long before a token's expiry the client replaces it: the larger of RENEW_FRACTION of its
 * lifetime and RENEW_MIN_MARGIN_MS (90 s of a 15 min token, 5 s of a 30 s one), but at most half
 * the lifetime, so that a very short token (TOKEN_TTL=6s in tests) is still used for half its
 * life instead of being replaced the moment it arrives. NaN for an unknown lifetime.
 */
export function renewalMargin(lifetimeMs: number): number {
  if (!(lifetimeMs > 0)) return Number.NaN;
  return Math.min(Math.max(lifetimeMs * RENEW_FRACTION, RENEW_MIN_MARGIN_MS), lifetimeMs / 2);
}

/**
 * How long a grant is good for, counted from `requestedAt` (local clock); NaN when unknown.
 * `expiresAt` is exact but read against the local clock, which may be off from the gateway's;
 * `expiresInSeconds` (the gateway's TOKEN_TTL) needs no clock but ignores the request's latency
 * and the rounding of the issue time. The shorter wins; a clock so far ahead that the token
 * looks expired on arrival leaves only the TTL.
 */
function grantLifetime(grant: TokenGrant, requestedAt: number): number {
  const byClock = Date.parse(grant.expiresAt) - requestedAt;
  const ttl = grant.expiresInSeconds;
  const byTtl = typeof ttl === "number" && ttl > 0 ? ttl * 1000 : Number.NaN;
  if (byClock > 0 && byTtl > 0) return Math.min(byClock, byTtl);
  if (byTtl > 0) return byTtl;
  return byClock > 0 ? byClock : Number.NaN;
}

/**
 * The seqs seen recently. A window rather than a high-water mark: debounce holds each type back
 * separately, so frames of different types legitimately arrive out of seq order.
 */
class RecentSeqs {
  private readonly seqs = new Set<number>();

  constructor(private readonly capacity: number) {}

  /** Records `seq`; false when it was already seen. */
  add(seq: number): boolean {
    if (this.seqs.has(seq)) return false;
    this.seqs.add(seq);
    if (this.seqs.size > this.capacity) {
      // A Set iterates in insertion order, so the first value is the oldest.
      const oldest = this.seqs.values().next();
      if (!oldest.done) this.seqs.delete(oldest.value);
    }
    return true;
  }

  clear(): void {
    this.seqs.clear();
  }
}

interface CachedToken {
  token: string;
  /**
   * When to replace it (local clock): `renewalMargin` before its expiry. It is never offered to
   * a new connection from then on. NaN when the grant's expiry is unknown: then the token is
   * used once, and only the server ends its use.
   */
  renewAtMs: number;
}


/** A message from either transport, reduced to what both share. */
interface IncomingMessage {
  event: string;
  data: unknown;
  id: string | null;
}

function isSequencedEvent(value: unknown): value is SequencedEvent {
  return isRecord(value) && typeof value.type === "string" && typeof value.seq === "number";
}

function isBatchFrame(value: unknown): value is BatchFrame {
  return (
    isRecord(value) &&
    value.batch === true &&
    typeof value.type === "string" &&
    typeof value.count === "number" &&
    Array.isArray(value.events)
  );
}

function isHeartbeatLike(value: unknown): value is Record<string, unknown> & { instance: string; seq: number } {
  return isRecord(value) && typeof value.instance === "string" && typeof value.seq === "number";
}

/** A heartbeat as the application sees it; a gateway that predates `degraded` never is. */
function toHeartbeat(value: unknown): Heartbeat | null {
  if (!isHeartbeatLike(value)) return null;
  return {
    instance: value.instance,
    seq: value.seq,
    time: typeof value.time === "string" ? value.time : "",
    degraded: value.degraded === true,
  };
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** "https://x/" and "https://x" must give the same URLs. */
function trimTrailingSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/** The ws(s):// origin for `baseUrl`; "" (or a path) means the page's own origin. */
function webSocketBase(baseUrl: string): string {
  if (/^https?:\/\//i.test(baseUrl)) return baseUrl.replace(/^http/i, "ws");
  if (/^wss?:\/\//i.test(baseUrl)) return baseUrl;
  const location = globalThis.location as Location | undefined;
  if (!location) throw new Error("baseUrl is relative but there is no window.location");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${baseUrl}`;
}

export class RealtimeClient implements RealtimeClientApi {
  private _state: ConnectionState = "closed";
  private _lastEvent: SequencedEvent | null = null;
  private _lastEventAt: Date | null = null;
  private _lastHeartbeat: Heartbeat | null = null;
  private _instance: string | null = null;
  private _lastError: string | null = null;

  private readonly baseUrl: string;
  private readonly heartbeatIntervalMs: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;

  private readonly eventListeners = new Map<EventType | "*", Set<Listener<SequencedEvent>>>();
  private readonly frameListeners = new Set<Listener<RealtimeFrame>>();
  private readonly resetListeners = new Set<Listener<ResetCause>>();
  private readonly stateListeners = new Set<Listener<ConnectionState>>();
  private readonly heartbeatListeners = new Set<Listener<Heartbeat>>();

  private readonly seen = new RecentSeqs(DEDUP_CAPACITY);
  private _cursor: string | null;
  /**
   * Whether the current connection has gone live: its first heartbeat comes after any replay,
   * so frames before it are history (backfill or resume).
   */
  private live = false;
  private cachedToken: CachedToken | null = null;
  /** The token the current connection was opened with. */
  private connectionToken: CachedToken | null = null;
  private attempt = 0;

  /**
   * Bumped whenever a connection is torn down: callbacks of an older connection (a late token
   * response, a close event after our own close()) compare it and do nothing.
   */
  private generation = 0;
  private eventSource: EventSource | null = null;
  private webSocket: WebSocket | null = null;
  /** Whether the current connection opened; one that never did may have a refused token. */
  private opened = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private watchdogTimer: ReturnType<typeof setTimeout> | null = null;
  /** Fires at the connection token's renewal time. */
  private renewalTimer: ReturnType<typeof setTimeout> | null = null;
  /** Turns the state to `reconnecting` when a token handover takes too long. */
  private handoverTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly options: RealtimeClientOptions) {
    this.baseUrl = trimTrailingSlash(options.baseUrl);
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.backoffInitialMs = options.backoff?.initialMs ?? DEFAULT_BACKOFF_INITIAL_MS;
    this.backoffMaxMs = options.backoff?.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
    this._cursor = options.lastEventId !== undefined && options.lastEventId !== "" ? options.lastEventId : null;
  }

  get state(): ConnectionState {
    return this._state;
  }
  get lastEvent(): SequencedEvent | null {
    return this._lastEvent;
  }
  get lastEventAt(): Date | null {
    return this._lastEventAt;
  }
  get lastHeartbeat(): Heartbeat | null {
    return this._lastHeartbeat;
  }
  get instance(): string | null {
    return this._instance;
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

  on(type: EventType | "*", listener: (event: SequencedEvent) => void): Unsubscribe {
    let set = this.eventListeners.get(type);
    if (!set) {
      set = new Set();
      this.eventListeners.set(type, set);
    }
    const listeners = set;
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }

  onFrame(listener: (frame: RealtimeFrame) => void): Unsubscribe {
    return addTo(this.frameListeners, listener);
  }

  onReset(listener: (reason: ResetCause) => void): Unsubscribe {
    return addTo(this.resetListeners, listener);
  }

  onState(listener: (state: ConnectionState) => void): Unsubscribe {
    return addTo(this.stateListeners, listener);
  }

  /** Every heartbeat, as it arrives (the `lastHeartbeat` getter holds the last one). */
  onHeartbeat(listener: (heartbeat: Heartbeat) => void): Unsubscribe {
    return addTo(this.heartbeatListeners, listener);
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
      token = prefetched !== undefined ? prefetched : await this.obtainToken();
    } catch (error) {
      if (generation === this.generation) this.fail(`token request failed: ${describeError(error)}`, retryAfterOf(error));
      return;
    }
    if (generation !== this.generation) return;
    this.connectionToken = token;
    try {
      if (this.options.transport === "ws") this.openWebSocket(token?.token ?? null, generation);
      else this.openEventSource(token?.token ?? null, generation);
    } catch (error) {
      this.fail(`cannot open the connection: ${describeError(error)}`);
    }
  }

  private openEventSource(token: string | null, generation: number): void {
    const Impl = this.options.EventSourceImpl ?? globalThis.EventSource;
    if (!Impl) throw new Error("EventSource is not available; pass EventSourceImpl");
    const source = new Impl(this.streamUrl(this.baseUrl, "/api/realtime/events", token));
    this.eventSource = source;
    const live = (): boolean => generation === this.generation;

    source.addEventListener("open", () => {
      if (live()) this.handleOpen(generation);
    });
    source.addEventListener("error", () => {
      // EventSource would retry on its own, with the same (maybe expired) token and no
      // backoff: close it and reconnect ourselves.
      if (!live()) return;
      // The gateway ends a stream when its token expires, and EventSource reports that like
      // any other end. One that ends once its token is due for renewal is taken for that.
      if (this.opened && this.tokenDue()) this.renewNow();
      else this.fail("event stream error");
    });
    const names = [...PUBLIC_EVENT_TYPES, "heartbeat", "reset"];
    for (const name of names) {
      source.addEventListener(name, (event: MessageEvent) => {
        if (!live()) return;
        this.handleMessage({ event: name, data: parseJson(event.data), id: event.lastEventId || null });
      });
    }
  }

  private openWebSocket(token: string | null, generation: number): void {
    const Impl = this.options.WebSocketImpl ?? globalThis.WebSocket;
    if (!Impl) throw new Error("WebSocket is not available; pass WebSocketImpl");
    const socket = new Impl(this.streamUrl(webSocketBase(this.baseUrl), "/api/realtime/ws", token));
    this.webSocket = socket;
    const live = (): boolean => generation === this.generation;

    socket.addEventListener("open", () => {
      if (live()) this.handleOpen(generation);
    });
    socket.addEventListener("message", (event: MessageEvent) => {
      if (!live()) return;
      const message = parseWebSocketMessage(event.data);
      if (message) this.handleMessage(message);
    });
    socket.addEventListener("error", () => {
      if (live()) this.fail("websocket error");
    });
    socket.addEventListener("close", (event: CloseEvent) => {
      if (!live()) return;
      if (event.code === CLOSE_CODES.token_expired) this.renewNow();
      else this.fail(`websocket closed (${closeName(event.code)}${event.reason ? `: ${event.reason}` : ""})`);
    });
  }

  /** `${base}${path}?token=..&channels=..&lastEventId=..`; the API key never goes in a URL. */
  private streamUrl(base: string, path: string, token: string | null): string {
    const params: string[] = [];
    if (token !== null) params.push(`token=${encodeURIComponent(token)}`);
    const channels = this.options.channels;
    if (channels && channels.length > 0) {
      params.push(`channels=${channels.map(encodeURIComponent).join(",")}`);
    }
    if (this._cursor !== null) {
      params.push(`lastEventId=${encodeURIComponent(this._cursor)}`);
    } else if (this.options.backfill !== undefined && this.options.backfill > 0) {
      // History only on a first connection: with a cursor, the resume already fills the gap.
      params.push(`backfill=${Math.floor(this.options.backfill)}`);
    } else if (this.options.since !== undefined && this.options.since !== "") {
      params.push(`since=${encodeURIComponent(this.options.since)}`);
    }
    return params.length > 0 ? `${base}${path}?${params.join("&")}` : `${base}${path}`;
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
   * A failed attempt or a dead connection: drop it and try again after a backoff, and no
   * sooner than `retryAfterMs` when the server said so.
   */
  private fail(reason: string, retryAfterMs: number | null = null): void {
    this._lastError = reason;
    // A connection that never opened may have been refused for its token (an EventSource
    // cannot tell us the status), so do not offer the same token again.
    if (!this.opened) this.cachedToken = null;
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
    this.clearRenewalTimer();
    this.clearHandoverTimer();
    if (this.eventSource) {
      this.eventSource.close();
      this.eventSource = null;
    }
    if (this.webSocket) {
      this.webSocket.close(1000, "client closing");
      this.webSocket = null;
    }
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
    this.clearRenewalTimer();
    const renewAt = this.connectionToken?.renewAtMs ?? Number.NaN;
    if (!Number.isFinite(renewAt)) return;
    const delay = Math.min(MAX_TIMER_DELAY_MS, Math.max(0, renewAt - Date.now()));
    this.renewalTimer = setTimeout(() => {
      this.renewalTimer = null;
      if (generation !== this.generation) return;
      // A lifetime beyond setTimeout's range fires early: wait again.
      if (Date.now() < renewAt) this.scheduleRenewal(generation);
      else void this.renewAhead(generation);
    }, delay);
  }

  /** Whether the connection's token is due for renewal (or past it). */
  private tokenDue(): boolean {
    const renewAt = this.connectionToken?.renewAtMs ?? Number.NaN;
    return Date.now() >= renewAt;
  }

  /**
   * The planned renewal: the token is fetched while the old connection keeps streaming, then
   * the connection is handed over. A failed request (network, 401) is a failure like any
   * other: the normal reconnect with backoff takes over, and that mints its own token.
   */
  private async renewAhead(generation: number): Promise<void> {
    let token: CachedToken | null;
    try {
      token = await this.mintToken();
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
    if (this.cachedToken !== null && this.cachedToken === this.connectionToken) this.cachedToken = null;
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

  private clearRenewalTimer(): void {
    if (this.renewalTimer !== null) {
      clearTimeout(this.renewalTimer);
      this.renewalTimer = null;
    }
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

  private setState(state: ConnectionState): void {
    if (state === this._state) return;
    this._state = state;
    emit(this.stateListeners, state);
  }

  // ---- tokens ----

  /** A token for the next connection, or null when no credential is configured. */
  private async obtainToken(): Promise<CachedToken | null> {
    const cached = this.cachedToken;
    // A token due for renewal would soon take its connection down with it. An unknown expiry
    // gives NaN, which never passes: minted for every connection.
    if (cached && Date.now() < cached.renewAtMs) return cached;
    return this.mintToken();
  }

  /** A new token, cached for reconnects; null when no credential is configured. */
  private async mintToken(): Promise<CachedToken | null> {
    const requestedAt = Date.now();
    const grant = await this.fetchGrant();
    if (grant === null) return null;
    const lifetime = grantLifetime(grant, requestedAt);
    const token = { token: grant.token, renewAtMs: requestedAt + lifetime - renewalMargin(lifetime) };
    this.cachedToken = token;
    return token;
  }

  /**
   * Null when neither getToken nor apiKey is set: the connection then goes out without a
   * token, for deployments where a proxy in front of the gateway adds the credential.
   */
  private async fetchGrant(): Promise<TokenGrant | null> {
    if (this.options.getToken) return this.options.getToken();
    if (this.options.apiKey === undefined) return null;
    return this.requestToken(this.options.apiKey);
  }

  private async requestToken(apiKey: string): Promise<TokenGrant> {
    const fetchFn = this.options.fetchImpl ?? globalThis.fetch.bind(globalThis);
    const { token, expiresAt, expiresInSeconds } = await requestToken(this.baseUrl, apiKey, this.options.channels, fetchFn);
    return expiresInSeconds === undefined ? { token, expiresAt } : { token, expiresAt, expiresInSeconds };
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
        if ((PUBLIC_EVENT_TYPES as readonly string[]).includes(message.event)) {
          this.handleFrame(message.data, before);
        }
      // "pong", "subscribed" and anything unknown carry nothing for the application.
    }
  }

  private handleHeartbeat(data: unknown): void {
    const heartbeat = toHeartbeat(data);
    if (heartbeat === null) return;
    this.live = true;
    this._lastHeartbeat = heartbeat;
    this._instance = heartbeat.instance;
    this.markHealthy();
    emit(this.heartbeatListeners, heartbeat);
  }

  private handleReset(data: unknown): void {
    const reason = isRecord(data) && isResetReason(data.reason) ? data.reason : "unknown";
    // The seqs of a recreated stream start again; old ones would hide new events.
    this.seen.clear();
    emit(this.resetListeners, reason);
  }

  private handleFrame(data: unknown, afterSeq: number | null): void {
    let frame: RealtimeFrame;
    if (isBatchFrame(data)) {
      frame = { type: data.type, batch: true, count: data.count, events: this.fresh(data.events) };
      if (!this.live) frame.history = true;
    } else if (isSequencedEvent(data)) {
      const events = this.fresh([data]);
      // A single frame that was a duplicate says nothing new. A batch still does: its count
      // covers folded events that were never listed, so it is delivered even when empty.
      if (events.length === 0) return;
      frame = { type: data.type, batch: false, count: 1, events };
      if (!this.live) frame.history = true;
    } else {
      return;
    }
    if (afterSeq !== null) frame.afterSeq = afterSeq;
    this.markHealthy();
    this.deliver(frame);
  }

  /** The events not seen before, recording them as seen. */
  private fresh(events: readonly unknown[]): SequencedEvent[] {
    return events.filter(isSequencedEvent).filter((event) => this.seen.add(event.seq));
  }

  private deliver(frame: RealtimeFrame): void {
    for (const event of frame.events) {
      this._lastEvent = event;
      this._lastEventAt = new Date();
      emit(this.eventListeners.get(event.type), event);
      emit(this.eventListeners.get("*"), event);
    }
    emit(this.frameListeners, frame);
  }

  /** The connection has carried real traffic: the next failure starts the backoff afresh. */
  private markHealthy(): void {
    if (this.opened) this.attempt = 0;
  }
}

function addTo<T>(set: Set<Listener<T>>, listener: Listener<T>): Unsubscribe {
  set.add(listener);
  return () => {
    set.delete(listener);
  };
}

/** The sequence in a cursor `<epoch>-<seq>`; null for none or another shape. */
export function cursorSeq(cursor: string | null): number | null {
  if (cursor === null) return null;
  const match = /^\d+-(\d+)$/.exec(cursor);
  return match && match[1] !== undefined ? Number(match[1]) : null;
}

function parseJson(text: unknown): unknown {
  if (typeof text !== "string") return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/** `1012 service_restart` for the gateway's own close codes, the number for any other. */
function closeName(code: number): string {
  const named = Object.entries(CLOSE_CODES).find(([, value]) => value === code);
  return named ? `${code} ${named[0]}` : String(code);
}

function isResetReason(value: unknown): value is ResetReason {
  return (RESET_REASONS as readonly unknown[]).includes(value);
}

/** A WebSocket text frame, a ServerMessage (generated from the gateway's schema); null for
 * anything else. Its `data` is checked where it is used, like SSE's. */
function parseWebSocketMessage(raw: unknown): IncomingMessage | null {
  const parsed = parseJson(raw);
  if (!isRecord(parsed) || typeof parsed.event !== "string") return null;
  const message = parsed as Partial<ServerMessage> & Record<string, unknown>;
  return {
    event: String(message.event),
    data: message.data,
    id: typeof message.id === "string" && message.id !== "" ? message.id : null,
  };
}
