// The contract of the framework-free client: the React layer and the dashboard are written
// against these types. Event shapes come from the generated schema (never written by hand).
import type { ChannelName, EventType, Heartbeat, ResetReason, SequencedEvent } from "../generated/schema";

/** Why the server said to refetch: a generated reason, or `unknown` for one this client predates. */
export type ResetCause = ResetReason | "unknown";

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** One frame as delivered: a single event (count 1) or an unpacked debounce batch. */
export interface RealtimeFrame {
  type: EventType;
  /** True when the server sent a batch frame. */
  batch: boolean;
  /** Events the frame stands for (exact; `events` may list fewer: latest per id, cap). */
  count: number;
  /** The events listed, duplicates (by `seq`) already dropped. */
  events: SequencedEvent[];
  /**
   * True for a frame the gateway replayed before going live on this connection: recent
   * history asked for with `backfill`/`since`, or what a resume caught up on. Absent on live
   * frames. Lets a feed show history as history (e.g. one row per event instead of a batch).
   */
  history?: true;
  /**
   * The sequence of the connection's cursor before this frame: every event listed or folded
   * in it has a higher `seq` (the cursor never over-claims). Absent when the connection had no
   * cursor yet (the first frames of a backfill). Lets a client tell which events a count
   * taken "through" some sequence already includes.
   */
  afterSeq?: number;
}

export interface TokenGrant {
  token: string;
  /**
   * RFC 3339. The client replaces the token ahead of this moment (see `renewalMargin`); an
   * unparsable value means "unknown", and the client then renews only when the gateway ends
   * the connection at expiry.
   */
  expiresAt: string;
  /**
   * The token's lifetime (the gateway's TOKEN_TTL), as `POST /api/realtime/token` returns it.
   * Optional; when given it guards the renewal time against a wrong local clock.
   */
  expiresInSeconds?: number;
}

export interface RealtimeClientOptions {
  /** Gateway origin, e.g. "https://rakuda.example" or "" for the page's own origin. */
  baseUrl: string;
  /** API key used only to mint tokens with POST /api/realtime/token; never put in a URL. */
  apiKey?: string;
  /**
   * Alternative to apiKey: obtain a token some other way (e.g. from your own backend). Called
   * whenever a token is needed: to connect, and again ahead of each token's expiry. An error it
   * throws with a numeric `retryAfterMs` (as TokenRequestError has) delays the next attempt by
   * at least that.
   */
  getToken?: () => Promise<TokenGrant>;
  /** "sse" (EventSource, default) or "ws" (WebSocket). */
  transport?: "sse" | "ws";
  /**
   * Recent history on the first connection, before live events: the last `backfill` events of
   * the stream (those of the subscribed channels among them), coalesced per type like a resume
   * (gateway cap BACKFILL_MAX_EVENTS). Ignored once the client holds a cursor: a reconnect
   * resumes instead. Use this or `since`, not both.
   */
  backfill?: number;
  /** Like `backfill`, by age: a duration such as "15m" or "2h" (gateway cap BACKFILL_MAX_AGE). */
  since?: string;
  /**
   * A cursor to resume from on the first connection (e.g. one a previous page or tab held):
   * the gateway replays what came after it. Wins over `backfill`/`since`.
   */
  lastEventId?: string;
  /** Channels to receive; all that the credential allows when omitted. */
  channels?: ChannelName[];
  /** The gateway's SSE_HEARTBEAT_INTERVAL (ms, default 30000); no message for 2x this = dead. */
  heartbeatIntervalMs?: number;
  /**
   * Reconnect backoff, full jitter: attempt n waits a random time in [0, min(maxMs, initialMs ×
   * 2^n)]. `initialMs` (default 3000 ms, the gateway's SSE_RETRY) is the first window, `maxMs`
   * (default 30000 ms) the largest.
   */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Injection points for tests and non-browser runtimes. */
  EventSourceImpl?: typeof EventSource;
  WebSocketImpl?: typeof WebSocket;
  fetchImpl?: typeof fetch;
}

export type Unsubscribe = () => void;

export interface RealtimeClientApi {
  start(): void;
  stop(): void;
  readonly state: ConnectionState;
  readonly lastEvent: SequencedEvent | null;
  /** When the last event (not heartbeat) arrived. */
  readonly lastEventAt: Date | null;
  readonly lastHeartbeat: Heartbeat | null;
  /** The gateway instance of the last heartbeat. */
  readonly instance: string | null;
  /** Every event of a type ("*" for all), batches unpacked, duplicates dropped. */
  on(type: EventType | "*", listener: (event: SequencedEvent) => void): Unsubscribe;
  /** Once per frame (a batch is one call). */
  onFrame(listener: (frame: RealtimeFrame) => void): Unsubscribe;
  /** The server said events were missed that cannot be replayed: refetch everything. */
  onReset(listener: (reason: ResetCause) => void): Unsubscribe;
  onState(listener: (state: ConnectionState) => void): Unsubscribe;
  /**
   * Every heartbeat, as it arrives (`lastHeartbeat` holds the last one): proof the connection
   * is alive even when no event comes, the gateway `instance`, and `degraded` when the gateway's
   * end-to-end canary is not coming back. A tab following a shared connection hears the
   * leader's; a tab that joins hears the last one the leader had, at once.
   */
  onHeartbeat(listener: (heartbeat: Heartbeat) => void): Unsubscribe;
}
