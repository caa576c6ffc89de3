// Who may share a tab's connection, and how a tab proves it may. Tabs share only with tabs of
// the same credential and channels: the BroadcastChannel and the Web Lock are named after a
// SHA-256 digest of the credential (never the key itself), so a tab with another key, a
// narrower token or other channels is in another group and runs a connection of its own. A
// tab that joins a group checks its own credential with the gateway before it accepts a
// relayed frame, and accepts only frames of the channels that credential reads.
import { CHANNELS, type ChannelName, type EventType, type Heartbeat } from "../generated/schema";
import { isRecord, refusalDetail, requestToken, TokenRequestError } from "./tokenRequest";
import type { ConnectionState, RealtimeClientOptions, RealtimeFrame, ResetCause, TokenGrant } from "./types";

/** Whether this runtime can share a connection between tabs. */
export function canShareAcrossTabs(): boolean {
  const nav = globalThis.navigator as (Navigator & { locks?: unknown }) | undefined;
  // SubtleCrypto names the groups; like Web Locks, it exists only in secure contexts.
  return (
    typeof globalThis.BroadcastChannel === "function" &&
    nav?.locks !== undefined &&
    globalThis.crypto?.subtle !== undefined
  );
}

/** What the leader says on the channel; followers say only `hello`. */
export type Message =
  | { kind: "hello"; from: string }
  | { kind: "catchup"; to: string; frames: RealtimeFrame[] }
  | { kind: "frame"; frame: RealtimeFrame; cursor: string | null }
  | { kind: "reset"; reason: ResetCause; cursor: string | null }
  | { kind: "heartbeat"; heartbeat: Heartbeat; cursor: string | null }
  | {
      kind: "status";
      state: ConnectionState;
      heartbeat: Heartbeat | null;
      instance: string | null;
      cursor: string | null;
      error: string | null;
    };

/** The part of `navigator.locks` used here (injectable for tests). */
export interface LockManagerLike {
  request(
    name: string,
    options: { signal?: AbortSignal },
    callback: (lock: unknown) => Promise<void>,
  ): Promise<unknown>;
}

/** The part of BroadcastChannel used here. */
export interface ChannelLike {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((event: MessageEvent) => void) | null;
}

/** What a token says about itself: the claims the gateway signed (read, not verified, here). */
export interface TokenClaims {
  sub: string;
  ch: string[];
  scope: string;
}

/** The claims of a gateway token (`base64url(claims JSON).signature`); null for another format. */
export function tokenClaims(token: string): TokenClaims | null {
  const [body] = token.split(".");
  if (body === undefined || body === "") return null;
  try {
    const json = atob(body.replace(/-/g, "+").replace(/_/g, "/"));
    const claims: unknown = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
    if (!isRecord(claims) || typeof claims.sub !== "string" || !Array.isArray(claims.ch)) return null;
    const ch = claims.ch.filter((c): c is string => typeof c === "string");
    return { sub: claims.sub, ch, scope: typeof claims.scope === "string" ? claims.scope : "stream" };
  } catch {
    return null;
  }
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The settings a sharing group is made of. */
export interface GroupSettings extends RealtimeClientOptions {
  /** A namespace: apps on one origin that should not share pass different ones. */
  shareName?: string;
}

/**
 * The name of this tab's group, for the BroadcastChannel and the lock: "rakuda-realtime:" and
 * the SHA-256 of the namespace, gateway, transport, channels and credential. The credential is
 * the API key itself; for `getToken`, the principal its token names (the key id, the channels
 * and the scope the gateway signed), which stays the same when a renewal changes the token.
 * Null when a token is not one whose claims can be read: such a tab does not share.
 */
export async function groupName(settings: GroupSettings, grant: TokenGrant | null): Promise<string | null> {
  let credential: unknown[];
  if (settings.getToken) {
    const claims = grant === null ? null : tokenClaims(grant.token);
    if (claims === null) return null;
    credential = ["token", claims.sub, [...claims.ch].sort(), claims.scope];
  } else if (settings.apiKey !== undefined) {
    credential = ["api-key", settings.apiKey];
  } else {
    credential = ["none"];
  }
  const channels = settings.channels ? [...settings.channels].sort() : null;
  const material = JSON.stringify([
    settings.shareName ?? "",
    settings.baseUrl.replace(/\/+$/, ""),
    settings.transport ?? "sse",
    channels,
    credential,
  ]);
  return `rakuda-realtime:${await sha256Hex(material)}`;
}

/** The outcome of checking a tab's own credential. */
export type Verdict =
  | { ok: true; types: ReadonlySet<EventType> }
  /** `refused`: the gateway said no (401/403), not "try again later". */
  | { ok: false; refused: boolean; error: string };

/** The event types of `channels` (every channel when null). */
export function typesOf(channels: readonly string[] | null): Set<EventType> {
  return new Set(CHANNELS.filter((c) => channels === null || channels.includes(c.name)).map((c) => c.eventType));
}

function within(requested: readonly ChannelName[] | undefined, allowed: readonly string[] | null): Verdict {
  const missing = (requested ?? []).filter((c) => allowed !== null && !allowed.includes(c));
  if (missing.length > 0) {
    const error = `channel_not_allowed: this credential does not read ${missing.join(", ")}`;
    return { ok: false, refused: true, error };
  }
  return { ok: true, types: typesOf(requested ? [...requested] : allowed) };
}

/**
 * Asks the gateway whether this tab's credential is good, and which channels it reads: with an
 * API key, a token request (what a tab of its own would make first); with a token, the
 * summary (cached by the gateway, served to a token); with no credential (a proxy adds it for
 * every tab alike), nothing. The error reads like the one of a tab with a connection of its own.
 */
export async function verifyCredential(settings: GroupSettings, grant: TokenGrant | null): Promise<Verdict> {
  const fetchFn = settings.fetchImpl ?? globalThis.fetch.bind(globalThis);
  const base = settings.baseUrl.replace(/\/+$/, "");
  try {
    if (settings.getToken) {
      const claims = grant === null ? null : tokenClaims(grant.token);
      if (grant === null || claims === null) return { ok: false, refused: true, error: "the token cannot be read" };
      const response = await fetchFn(`${base}/api/realtime/summary?token=${encodeURIComponent(grant.token)}`);
      const body: unknown = await response.json().catch(() => null);
      if (!response.ok) {
        const refused = response.status === 401 || response.status === 403;
        return { ok: false, refused, error: `token check failed: HTTP ${response.status}${refusalDetail(body)}` };
      }
      // Signed by the gateway, which has just accepted it: the claims are what it grants.
      return within(settings.channels, claims.ch);
    }
    if (settings.apiKey !== undefined) {
      const minted = await requestToken(base, settings.apiKey, settings.channels, fetchFn);
      return within(settings.channels, minted.channels ?? null);
    }
    return within(settings.channels, null);
  } catch (error) {
    const status = error instanceof TokenRequestError ? error.status : null;
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, refused: status === 401 || status === 403, error: `token request failed: ${message}` };
  }
}
