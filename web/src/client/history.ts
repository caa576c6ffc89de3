// What a page needs the moment it opens, besides the stream: today's totals
// (GET /api/realtime/summary) and the latest event of every entity (GET /api/realtime/snapshot).
// Both are plain requests with the same credential as the stream: the API key as a header, or
// a token (from getToken) as ?token=. See docs/PROTOCOL.md, "Backfill, summary and snapshot".
import { CHANNELS, type EventType, type SequencedEvent, type SnapshotPage, type Summary } from "../generated/schema";
import { dlqQuery, parseDlqPage, type DlqPage, type DlqRequest } from "./dlq";
import { parseRetryAfter } from "./spread";
import type { RealtimeClientOptions, TokenGrant } from "./types";

// Both answers are generated from the gateway's Rust types (schema/src/history.rs).
export type { Summary, SnapshotPage };

/**
 * The channels with a latest state per entity: only these have a snapshot. Orders have none
 * (each order is its own event) and the gateway refuses them with 400 `no_latest_state`; use
 * the backfill and the summary for orders.
 */
export type SnapshotChannel = Extract<(typeof CHANNELS)[number], { latestPerId: true; internal: false }>["name"];

const SNAPSHOT_CHANNELS: ReadonlySet<string> = new Set(
  CHANNELS.filter((channel) => channel.latestPerId && !channel.internal).map((channel) => channel.name),
);

export interface SnapshotRequest {
  /** Defaults (absent or empty) to every snapshot channel the credential allows. */
  channels?: SnapshotChannel[];
  /** Entities per page; the gateway caps it at SNAPSHOT_MAX_LIMIT. */
  limit?: number;
  after?: number;
}

/**
 * Refused or unreadable: `status` is the HTTP status (0 for a network failure), `retryAfterMs`
 * the refusal's `Retry-After` (503 `history_budget` has one): try again no sooner.
 */
export class HistoryError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = "HistoryError";
  }
}

type HistoryOptions = Pick<RealtimeClientOptions, "baseUrl" | "apiKey" | "getToken" | "fetchImpl">;

/**
 * Summary, snapshot and DLQ requests, built from the same options as the stream's client so that
 * they carry the same credential.
 */
export class RealtimeHistory {
  private readonly baseUrl: string;

  constructor(private readonly options: HistoryOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
  }

  async summary(signal?: AbortSignal): Promise<Summary> {
    const body = await this.get("/api/realtime/summary", new URLSearchParams(), signal);
    const summary = parseSummary(body);
    if (summary === null) throw new HistoryError("malformed summary", 200);
    return summary;
  }

  async snapshotPage(request: SnapshotRequest = {}, signal?: AbortSignal): Promise<SnapshotPage> {
    // Refused here rather than sent: the gateway would answer 400 for the whole request.
    const refused = (request.channels ?? []).filter((channel) => !SNAPSHOT_CHANNELS.has(channel));
    if (refused.length > 0) {
      throw new HistoryError(
        `no_latest_state: ${refused.join(",")} has no snapshot (no latest state per entity); read it with a backfill and the summary`,
        400,
      );
    }
    const query = new URLSearchParams();
    if (request.channels && request.channels.length > 0) query.set("channels", request.channels.join(","));
    if (request.limit !== undefined) query.set("limit", String(Math.max(1, Math.floor(request.limit))));
    if (request.after !== undefined && request.after > 0) query.set("after", String(Math.floor(request.after)));
    const page = parseSnapshotPage(await this.get("/api/realtime/snapshot", query, signal));
    if (page === null) throw new HistoryError("malformed snapshot page", 200);
    return page;
  }

  /**
   * A page of the messages the bridge rejected, newest first, with the last hour's counts per
   * reason (`GET /api/realtime/dlq`). Needs admin scope: the API key, or a token minted with
   * scope "admin"; otherwise a HistoryError with status 403.
   */
  async rejected(request: DlqRequest = {}, signal?: AbortSignal): Promise<DlqPage> {
    const page = parseDlqPage(await this.get("/api/realtime/dlq", dlqQuery(request), signal));
    if (page === null) throw new HistoryError("malformed DLQ page", 200);
    return page;
  }

  /**
   * Every page in turn, following `next`, handing each page's events to `onEvents`; stops
   * after `maxEvents` (the caller's memory bound). `complete` is true only when it got to the
   * end and no page said `partial` (the gateway's latest-state stream at LATEST_MAX_ENTITIES,
   * so entities may be missing however far one reads); `partial` says which of the two.
   */
  async snapshot(
    request: Omit<SnapshotRequest, "after"> & { maxEvents: number },
    onEvents: (events: SequencedEvent[]) => void,
    signal?: AbortSignal,
  ): Promise<{ complete: boolean; partial: boolean; read: number }> {
    let after = 0;
    let read = 0;
    let partial = false;
    for (;;) {
      const page = await this.snapshotPage({ ...request, after }, signal);
      if (page.partial === true) partial = true;
      const room = request.maxEvents - read;
      const events = page.events.length > room ? page.events.slice(0, room) : page.events;
      read += events.length;
      if (events.length > 0) onEvents(events);
      if (page.next === null) return { complete: !partial && events.length === page.events.length, partial, read };
      // A page that does not move forward would loop for ever.
      if (read >= request.maxEvents || page.next <= after) return { complete: false, partial, read };
      after = page.next;
    }
  }

  private async get(path: string, query: URLSearchParams, signal?: AbortSignal): Promise<unknown> {
    const headers: Record<string, string> = {};
    if (this.options.getToken) {
      const grant: TokenGrant = await this.options.getToken();
      query.set("token", grant.token);
    } else if (this.options.apiKey !== undefined) {
      headers["X-API-Key"] = this.options.apiKey;
    }
    const fetchFn = this.options.fetchImpl ?? globalThis.fetch.bind(globalThis);
    const search = query.toString();
    let response: Response;
    try {
      const init: RequestInit = { headers };
      if (signal) init.signal = signal;
      response = await fetchFn(`${this.baseUrl}${path}${search ? `?${search}` : ""}`, init);
    } catch (error) {
      throw new HistoryError(error instanceof Error ? error.message : String(error), 0);
    }
    const body: unknown = await response.json().catch(() => null);
    if (!response.ok) {
      const detail = isRecord(body) && typeof body.error === "string" ? `: ${body.error}` : "";
      throw new HistoryError(`HTTP ${response.status}${detail}`, response.status, parseRetryAfter(response.headers?.get("Retry-After")));
    }
    return body;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function counts(value: unknown): Partial<Record<EventType, number>> | null {
  if (!isRecord(value)) return null;
  const out: Partial<Record<EventType, number>> = {};
  for (const [type, count] of Object.entries(value)) {
    if (typeof count === "number" && Number.isFinite(count)) out[type as EventType] = count;
  }
  return out;
}

export function parseSummary(body: unknown): Summary | null {
  if (!isRecord(body)) return null;
  const today = counts(body.today);
  const lastHour = counts(body.lastHour);
  const { timezone, todaySince, lastHourSince, throughSeq, computedAt } = body;
  if (
    today === null ||
    lastHour === null ||
    typeof timezone !== "string" ||
    typeof todaySince !== "string" ||
    typeof lastHourSince !== "string" ||
    typeof throughSeq !== "number" ||
    typeof computedAt !== "string"
  ) {
    return null;
  }
  const exact = typeof body.exact === "boolean" ? body.exact : true;
  const summary: Summary = { timezone, todaySince, lastHourSince, today, lastHour, throughSeq, exact, computedAt };
  if (typeof body.todayComplete === "boolean") summary.todayComplete = body.todayComplete;
  if (typeof body.lastHourComplete === "boolean") summary.lastHourComplete = body.lastHourComplete;
  if (typeof body.firstHeldSeq === "number") summary.firstHeldSeq = body.firstHeldSeq;
  if (typeof body.firstHeldAt === "string") summary.firstHeldAt = body.firstHeldAt;
  return summary;
}

export function parseSnapshotPage(body: unknown): SnapshotPage | null {
  if (!isRecord(body) || !Array.isArray(body.events)) return null;
  const next = body.next;
  if (next !== null && typeof next !== "number") return null;
  const events = body.events.filter(
    (event): event is SequencedEvent =>
      isRecord(event) && typeof event.type === "string" && typeof event.seq === "number" && isRecord(event.payload),
  );
  const page: SnapshotPage = { events, next };
  if (typeof body.partial === "boolean") page.partial = body.partial;
  return page;
}
