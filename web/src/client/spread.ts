// Keeping a crowd of pages from acting in the same instant. A gateway that dies drops its
// clients together; a source gap resets every page of every gateway together; a refused crowd
// told "come back in 3 s" would come back together. Each of these is answered here with a
// random wait (full jitter) so the crowd arrives spread over a window instead of as one wave.
// docs/PROTOCOL.md, "Reconnecting: admission and backoff".

/**
 * After a `reset`, a page refetches what it shows (`/summary`, `/snapshot`, its queries) after
 * a random wait in [0, RESET_REFETCH_SPREAD_MS). A source gap resets every client at the same
 * moment: 56,000 pages asking in the same second is a herd; spread over 2.5 s it is ~22,000 a
 * second across the fleet, which the gateways' history caches absorb. Short enough that a
 * person looking at the page barely notices, since what it shows is already marked stale.
 */
export const RESET_REFETCH_SPREAD_MS = 2_500;

/**
 * A `Retry-After` is whole seconds: clients told the same number would come back in the same
 * instant. They wait it, plus a random part of this.
 */
export const RETRY_AFTER_JITTER_MS = 1_000;

/** The longest `Retry-After` honoured; a larger (or broken) one is capped to it. */
export const MAX_RETRY_AFTER_MS = 5 * 60_000;

/** Guards against a random source that strays outside [0, 1]. */
export function clampUnit(value: number): number {
  if (!Number.isFinite(value)) return 1;
  return Math.min(1, Math.max(0, value));
}

/** How long to wait after a `reset` before refetching: uniform in [0, RESET_REFETCH_SPREAD_MS). */
export function resetRefetchDelay(random: () => number = Math.random): number {
  return Math.min(RESET_REFETCH_SPREAD_MS - 1, Math.floor(clampUnit(random()) * RESET_REFETCH_SPREAD_MS));
}

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
 * A `Retry-After` header in milliseconds: delta-seconds (what the gateway sends) or an HTTP
 * date; null when absent or unreadable. Capped at MAX_RETRY_AFTER_MS.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (text === "") return null;
  let ms: number;
  if (/^\d+$/.test(text)) {
    ms = Number(text) * 1000;
  } else {
    // An HTTP date names its day and month; anything else ("-4", "1.5") is not one, though
    // Date.parse would make a date of it.
    if (!/[A-Za-z]{3}/.test(text)) return null;
    const at = Date.parse(text);
    if (Number.isNaN(at)) return null;
    ms = at - now;
  }
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}

/**
 * The wait before trying again when the server said `Retry-After` (null: it did not): at least
 * that, plus up to RETRY_AFTER_JITTER_MS at random; or `otherwise` when that is longer (a
 * backoff that has already grown past it).
 */
export function afterRetryAfter(retryAfterMs: number | null, otherwise: number, random: () => number = Math.random): number {
  if (retryAfterMs === null) return otherwise;
  return Math.max(otherwise, retryAfterMs + clampUnit(random()) * RETRY_AFTER_JITTER_MS);
}

/** The `retryAfterMs` an error carries (TokenRequestError, HistoryError, or a getToken error of the caller's own), else null. */
export function retryAfterOf(error: unknown): number | null {
  if (typeof error !== "object" || error === null) return null;
  const value = (error as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? Math.min(MAX_RETRY_AFTER_MS, value) : null;
}
