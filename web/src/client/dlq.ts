// GET /api/realtime/dlq: the messages the bridge rejected, newest first, and the last hour's
// counts per reason. Administrators only (the API key, or a token minted with scope "admin"):
// anyone else gets 403 `admin_required`. See docs/PROTOCOL.md, "Rejected events (DLQ)".
import type { DlqPage, RejectCounts, RejectedMessage } from "../generated/schema";

export type { DlqPage, RejectCounts, RejectedMessage };

/** The most messages one page lists (the gateway caps `limit` there). */
export const DLQ_MAX_LIMIT = 50;

export interface DlqRequest {
  /** Messages stored before this DLQ sequence: the previous page's `next`. */
  before?: number;
  /** Messages per page, 1 to DLQ_MAX_LIMIT (capped by the gateway). */
  limit?: number;
}

/** The query string of a DLQ request; out-of-range numbers are brought into range here. */
export function dlqQuery(request: DlqRequest): URLSearchParams {
  const query = new URLSearchParams();
  if (request.before !== undefined && request.before >= 1) query.set("before", String(Math.floor(request.before)));
  if (request.limit !== undefined) query.set("limit", String(Math.min(DLQ_MAX_LIMIT, Math.max(1, Math.floor(request.limit)))));
  return query;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseMessage(value: unknown): RejectedMessage | null {
  if (!isRecord(value)) return null;
  const { seq, time, channel, reason, message, head, truncated, size, producer } = value;
  if (
    typeof seq !== "number" ||
    typeof time !== "string" ||
    typeof channel !== "string" ||
    typeof reason !== "string" ||
    typeof message !== "string" ||
    typeof head !== "string" ||
    typeof truncated !== "boolean" ||
    typeof size !== "number"
  ) {
    return null;
  }
  return { seq, time, channel, reason, message, head, truncated, size, producer: typeof producer === "string" ? producer : null };
}

function parseCounts(value: unknown): RejectCounts | null {
  if (!isRecord(value) || !isRecord(value.byReason)) return null;
  const { since, total, complete } = value;
  if (typeof since !== "string" || typeof total !== "number" || typeof complete !== "boolean") return null;
  const byReason: Record<string, number> = {};
  for (const [reason, count] of Object.entries(value.byReason)) {
    if (typeof count === "number" && Number.isFinite(count)) byReason[reason] = count;
  }
  return { since, total, byReason, complete };
}

/** A DLQ page, or null when the body is not one. Malformed items are left out. */
export function parseDlqPage(body: unknown): DlqPage | null {
  if (!isRecord(body) || !Array.isArray(body.events)) return null;
  const { next, lastSeq } = body;
  const lastHour = parseCounts(body.lastHour);
  if ((next !== null && typeof next !== "number") || typeof lastSeq !== "number" || lastHour === null) return null;
  const events = body.events.map(parseMessage).filter((event): event is RejectedMessage => event !== null);
  return { events, next, lastSeq, lastHour };
}
