// The interface between RealtimeClient and its transports (as in centrifuge-js): a transport
// opens one connection to the gateway's stream and reports what happens on it; the client
// decides everything else (tokens, the cursor, dedup, reconnects). sseTransport.ts (EventSource)
// and wsTransport.ts (WebSocket) are the two.
import type { RealtimeClientOptions } from "./types";

/** A message from either transport, reduced to what both share. */
export interface IncomingMessage {
  /** The event name: an event type, "heartbeat", "reset", or one the client ignores. */
  event: string;
  /** The message's data, parsed from JSON (null when it was not JSON); checked where it is used. */
  data: unknown;
  /** Its id (the resume cursor), null when it had none. */
  id: string | null;
}

/** How a connection ended, as far as its transport can tell. */
export interface TransportEnd {
  /** What the client reports as `lastError`: "event stream error", "websocket closed (1012 ...)". */
  reason: string;
  /**
   * Whether the gateway ended it because its token expired: "yes" when it said so (WebSocket
   * close 4001), "maybe" when the transport cannot tell (an EventSource reports every end
   * alike), "no" otherwise.
   */
  tokenExpired: "yes" | "maybe" | "no";
}

/**
 * What a transport reports. A transport may still report after close() (a WebSocket's close
 * event follows close()); the client ignores what comes from a connection it has left.
 */
export interface TransportHandlers {
  open(): void;
  message(message: IncomingMessage): void;
  /** The connection failed or ended; it is not retried by the transport. */
  end(end: TransportEnd): void;
}

/** One connection to the stream. */
export interface Transport {
  close(): void;
}

export interface TransportRequest {
  /** The gateway origin without a trailing slash; "" (or a path) for the page's own. */
  baseUrl: string;
  /** "?token=..&channels=..&lastEventId=.." or "": the client's, the same for every transport. */
  query: string;
  handlers: TransportHandlers;
}

/**
 * `?token=..&channels=..&lastEventId=..` for a connection, whichever the transport; "" for
 * none. The API key never goes in a URL.
 */
export function streamQuery(
  token: string | null,
  cursor: string | null,
  options: Pick<RealtimeClientOptions, "channels" | "backfill" | "since">,
): string {
  const params: string[] = [];
  if (token !== null) params.push(`token=${encodeURIComponent(token)}`);
  const channels = options.channels;
  if (channels && channels.length > 0) {
    params.push(`channels=${channels.map(encodeURIComponent).join(",")}`);
  }
  if (cursor !== null) {
    params.push(`lastEventId=${encodeURIComponent(cursor)}`);
  } else if (options.backfill !== undefined && options.backfill > 0) {
    // History only on a first connection: with a cursor, the resume already fills the gap.
    params.push(`backfill=${Math.floor(options.backfill)}`);
  } else if (options.since !== undefined && options.since !== "") {
    params.push(`since=${encodeURIComponent(options.since)}`);
  }
  return params.length > 0 ? `?${params.join("&")}` : "";
}
