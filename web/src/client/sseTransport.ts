// The EventSource transport (the default): `GET /api/realtime/events`, one SSE event per message.
import { PUBLIC_EVENT_TYPES, parseJson } from "./messages";
import type { Transport, TransportRequest } from "./transport";

/** The SSE event names the client listens for: the public event types, heartbeats, resets. */
const EVENT_NAMES: readonly string[] = [...PUBLIC_EVENT_TYPES, "heartbeat", "reset"];

export function openEventSource(
  { baseUrl, query, handlers }: TransportRequest,
  EventSourceImpl: typeof EventSource | undefined,
): Transport {
  const Impl = EventSourceImpl ?? globalThis.EventSource;
  if (!Impl) throw new Error("EventSource is not available; pass EventSourceImpl");
  const source = new Impl(`${baseUrl}/api/realtime/events${query}`);

  source.addEventListener("open", () => handlers.open());
  source.addEventListener("error", () => {
    // EventSource would retry on its own, with the same (maybe expired) token and no backoff:
    // the client closes it and reconnects itself. The gateway also ends a stream when its
    // token expires, and EventSource reports that like any other end: only the client, which
    // knows the token, can tell.
    handlers.end({ reason: "event stream error", tokenExpired: "maybe" });
  });
  for (const name of EVENT_NAMES) {
    source.addEventListener(name, (event: MessageEvent) => {
      handlers.message({ event: name, data: parseJson(event.data), id: event.lastEventId || null });
    });
  }
  return {
    close: () => source.close(),
  };
}
