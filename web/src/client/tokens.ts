// The client's stream tokens: where they come from (the API key, or the app's own getToken),
// how long each is used, and the timer that replaces one before the gateway ends its connection
// at expiry. RealtimeClient decides when a connection changes token; this file decides which
// token it gets.
import { requestToken } from "./tokenRequest";
import type { RealtimeClientOptions, TokenGrant } from "./types";

/** Renew a token this share of its lifetime before it expires... */
const RENEW_FRACTION = 0.1;
/**
 * ...but never later than this before: a token request, a handshake and the resume must fit in
 * the margin, the gateway rounds a token's issue time down to the second (up to 1 s of the
 * lifetime is gone before the client sees it), and a background tab's timers run late.
 */
const RENEW_MIN_MARGIN_MS = 5_000;
/** setTimeout's largest delay; a longer one fires at once. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

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

export interface CachedToken {
  token: string;
  /**
   * When to replace it (local clock): `renewalMargin` before its expiry. It is never offered to
   * a new connection from then on. NaN when the grant's expiry is unknown: then the token is
   * used once, and only the server ends its use.
   */
  renewAtMs: number;
}

/** Whether `token` is due for renewal (or past it); an unknown expiry (NaN) never is. */
export function isDue(token: CachedToken | null): boolean {
  const renewAt = token?.renewAtMs ?? Number.NaN;
  return Date.now() >= renewAt;
}

/** The token for the next connection, kept between reconnects until it is due for renewal. */
export class TokenSource {
  private cached: CachedToken | null = null;

  constructor(
    private readonly options: RealtimeClientOptions,
    /** The gateway origin, without a trailing slash. */
    private readonly baseUrl: string,
  ) {}

  /** A token for the next connection, or null when no credential is configured. */
  async obtain(): Promise<CachedToken | null> {
    const cached = this.cached;
    // A token due for renewal would soon take its connection down with it. An unknown expiry
    // gives NaN, which never passes: minted for every connection.
    if (cached && Date.now() < cached.renewAtMs) return cached;
    return this.mint();
  }

  /** A new token, cached for reconnects; null when no credential is configured. */
  async mint(): Promise<CachedToken | null> {
    const requestedAt = Date.now();
    const grant = await this.fetchGrant();
    if (grant === null) return null;
    const lifetime = grantLifetime(grant, requestedAt);
    const token = { token: grant.token, renewAtMs: requestedAt + lifetime - renewalMargin(lifetime) };
    this.cached = token;
    return token;
  }

  /** Never offers the cached token again (it may have been refused). */
  forget(): void {
    this.cached = null;
  }

  /** `token` is spent (the gateway ended its connection at expiry): never offer it again. */
  spend(token: CachedToken | null): void {
    if (this.cached !== null && this.cached === token) this.cached = null;
  }

  /**
   * Null when neither getToken nor apiKey is set: the connection then goes out without a
   * token, for deployments where a proxy in front of the gateway adds the credential.
   */
  private async fetchGrant(): Promise<TokenGrant | null> {
    if (this.options.getToken) return this.options.getToken();
    if (this.options.apiKey === undefined) return null;
    const fetchFn = this.options.fetchImpl ?? globalThis.fetch.bind(globalThis);
    const { token, expiresAt, expiresInSeconds } = await requestToken(this.baseUrl, this.options.apiKey, this.options.channels, fetchFn);
    return expiresInSeconds === undefined ? { token, expiresAt } : { token, expiresAt, expiresInSeconds };
  }
}

/** Fires once a token's renewal time has come, however far off it is. */
export class RenewalTimer {
  private timer: ReturnType<typeof setTimeout> | null = null;

  /** Calls `due` at `renewAtMs` (local clock); nothing for an unknown time (NaN). */
  arm(renewAtMs: number, due: () => void): void {
    this.clear();
    if (!Number.isFinite(renewAtMs)) return;
    const delay = Math.min(MAX_TIMER_DELAY_MS, Math.max(0, renewAtMs - Date.now()));
    this.timer = setTimeout(() => {
      this.timer = null;
      // A lifetime beyond setTimeout's range fires early: wait again.
      if (Date.now() < renewAtMs) this.arm(renewAtMs, due);
      else due();
    }, delay);
  }

  clear(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}
