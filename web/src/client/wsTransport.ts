// The WebSocket transport: `GET /api/realtime/ws`, one JSON text frame (a ServerMessage) per
// message, and close codes that say why the gateway ended a connection.
import { CLOSE_CODES, type ServerMessage } from "../generated/schema";
import { parseJson } from "./messages";
import { isRecord } from "./tokenRequest";
import type { IncomingMessage, Transport, TransportRequest } from "./transport";

export function openWebSocket(
  { baseUrl, query, handlers }: TransportRequest,
  WebSocketImpl: typeof WebSocket | undefined,
): Transport {
  const Impl = WebSocketImpl ?? globalThis.WebSocket;
  if (!Impl) throw new Error("WebSocket is not available; pass WebSocketImpl");
  const socket = new Impl(`${webSocketBase(baseUrl)}/api/realtime/ws${query}`);

  socket.addEventListener("open", () => handlers.open());
  socket.addEventListener("message", (event: MessageEvent) => {
    const message = parseWebSocketMessage(event.data);
    if (message) handlers.message(message);
  });
  socket.addEventListener("error", () => {
    handlers.end({ reason: "websocket error", tokenExpired: "no" });
  });
  socket.addEventListener("close", (event: CloseEvent) => {
    if (event.code === CLOSE_CODES.token_expired) {
      handlers.end({ reason: "websocket closed (token expired)", tokenExpired: "yes" });
    } else {
      const reason = `websocket closed (${closeName(event.code)}${event.reason ? `: ${event.reason}` : ""})`;
      handlers.end({ reason, tokenExpired: "no" });
    }
  });
  return {
    close: () => socket.close(1000, "client closing"),
  };
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

/** `1012 service_restart` for the gateway's own close codes, the number for any other. */
function closeName(code: number): string {
  const named = Object.entries(CLOSE_CODES).find(([, value]) => value === code);
  return named ? `${code} ${named[0]}` : String(code);
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
