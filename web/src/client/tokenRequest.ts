// `POST /api/realtime/token` with the API key: how RealtimeClient gets its stream tokens, and
// how a tab that joins a shared connection proves its own key before it is handed any event.
import type { ChannelName } from "../generated/schema";
import { parseRetryAfter } from "./spread";
import type { TokenGrant } from "./types";

/** What the gateway granted: the token, and the channels it may read. */
export interface MintedToken extends TokenGrant {
  /** The channels of the token, as the gateway answered them (absent from an older gateway). */
  channels?: string[];
}

/**
 * A refusal, with the HTTP status, so a caller can tell "refused" from "try again", and the
 * refusal's `Retry-After` in milliseconds (null when it had none): the client waits at least
 * that before it tries again.
 */
export class TokenRequestError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = "TokenRequestError";
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** ": invalid_api_key (the X-API-Key header does not match ...)" from a JSON refusal. */
export function refusalDetail(body: unknown): string {
  if (!isRecord(body) || typeof body.error !== "string") return "";
  return typeof body.message === "string" ? `: ${body.error} (${body.message})` : `: ${body.error}`;
}

/** Mints a token with the key in the X-API-Key header (never in a URL). */
export async function requestToken(
  baseUrl: string,
  apiKey: string,
  channels: readonly ChannelName[] | undefined,
  fetchFn: typeof fetch,
): Promise<MintedToken> {
  const headers: Record<string, string> = { "X-API-Key": apiKey };
  const init: RequestInit = { method: "POST", headers };
  if (channels) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify({ channels });
  }
  const response = await fetchFn(`${baseUrl}/api/realtime/token`, init);
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const retryAfterMs = parseRetryAfter(response.headers?.get("Retry-After"));
    throw new TokenRequestError(`HTTP ${response.status}${refusalDetail(body)}`, response.status, retryAfterMs);
  }
  if (!isRecord(body) || typeof body.token !== "string" || typeof body.expiresAt !== "string") {
    throw new TokenRequestError("malformed token response", null);
  }
  const grant: MintedToken = { token: body.token, expiresAt: body.expiresAt };
  if (typeof body.expiresInSeconds === "number") grant.expiresInSeconds = body.expiresInSeconds;
  if (Array.isArray(body.channels)) grant.channels = body.channels.filter((c): c is string => typeof c === "string");
  return grant;
}
