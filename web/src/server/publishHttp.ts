// Publishing through the bridge's `POST /api/realtime/publish` (docs/PROTOCOL.md, "Publishing
// over HTTP"), for producers that want to know what became of an event: the answer comes after
// JetStream stored it, with its `seq`, or with the bridge's reason for refusing it.
//
// The event is built and checked first by the same code as the Redis publisher, so an event the
// bridge would refuse never leaves the process.
import { buildRealtimeEvent } from "./publish.js";
import type { BuildOptions, RealtimeEventInput } from "./publish.js";

/** The one function needed: the global `fetch` (Node 18+) or any compatible one. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string },
) => Promise<{ status: number; json(): Promise<unknown> }>;

export interface HttpPublishTarget {
  /** The publish URL, e.g. `https://realtime.example.com/api/realtime/publish`. */
  url: string;
  /** A publish key (one of the bridge's PUBLISH_API_KEYS, without its `id:`). */
  key: string;
  /**
   * Becomes the event's `Nats-Msg-Id`: the same key again within the stream's duplicate window
   * (2 minutes by default) stores nothing new and answers `duplicate: true` with the first seq.
   * Set one whenever the call may be retried.
   */
  idempotencyKey?: string;
}

/**
 * What the bridge answered.
 * - `stored`: in the stream at `seq`; `duplicate` when it already was (same key or bytes).
 * - `rejected`: the bridge refused this event (`reason` as in its DLQ, 422); never retry as is.
 * - `refused`: the request was refused as a whole (`error`: `invalid_key`, `read_credential`,
 *   `body_too_large`, `busy`, ...): nothing was stored.
 * - `unacknowledged`: JetStream did not confirm in time (503): it may be stored; publish again
 *   with the same idempotencyKey.
 */
export type HttpPublishOutcome =
  | { status: "stored"; seq: number; duplicate: boolean }
  | { status: "rejected"; reason: string; message: string }
  | { status: "refused"; httpStatus: number; error: string; message: string }
  | { status: "unacknowledged"; message: string };

/**
 * Checks an event (throwing InvalidRealtimeEvent as publishRealtimeEvent does), POSTs it, and
 * returns what the bridge answered. Network errors reject, as `fetch` does.
 */
export async function publishRealtimeEventHttp(
  fetchLike: FetchLike,
  target: HttpPublishTarget,
  input: RealtimeEventInput,
  options: BuildOptions = {},
): Promise<HttpPublishOutcome> {
  const { message } = buildRealtimeEvent(input, options);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    authorization: `Bearer ${target.key}`,
  };
  if (target.idempotencyKey !== undefined) headers["idempotency-key"] = target.idempotencyKey;
  const response = await fetchLike(target.url, { method: "POST", headers, body: message });
  const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  const text = (value: unknown): string => (typeof value === "string" ? value : "");
  if (body["status"] === "stored" && typeof body["seq"] === "number") {
    return { status: "stored", seq: body["seq"], duplicate: body["duplicate"] === true };
  }
  if (body["status"] === "rejected") {
    return { status: "rejected", reason: text(body["reason"]), message: text(body["message"]) };
  }
  if (body["status"] === "unacknowledged") {
    return { status: "unacknowledged", message: text(body["message"]) };
  }
  return {
    status: "refused",
    httpStatus: response.status,
    error: text(body["error"]) || `http_${response.status}`,
    message: text(body["message"]),
  };
}
