// Tab sharing never hands a tab what its own credential cannot read: groups by a digest of the
// credential, a follower's own check with the gateway, and only its channels relayed.
import { afterEach, describe, expect, it } from "vitest";
import { browser, settle, until } from "./sharedTabs.test-helper";
import type { SharedRealtimeClient } from "./SharedRealtimeClient";
import { tokenClaims } from "./tabSharing";

const RIGHT_KEY = "right-key-0001";
const WRONG_KEY = "wrong-key-0002";

/** A gateway for the checks: tokens for the right key (unless revoked), a summary for good tokens. */
function gateway() {
  const state = { revoked: false, requests: [] as string[] };
  const fetchImpl = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    state.requests.push(url);
    const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status });
    if (url.endsWith("/api/realtime/token")) {
      const key = (init?.headers as Record<string, string> | undefined)?.["X-API-Key"];
      if (key !== RIGHT_KEY || state.revoked) {
        return json(401, { error: "invalid_api_key", message: "the X-API-Key header does not match any configured key" });
      }
      const channels = init?.body ? (JSON.parse(String(init.body)) as { channels: string[] }).channels : ["inventory", "orders", "pricing", "listings"];
      return json(200, { token: "t", expiresAt: "2099-01-01T00:00:00Z", expiresInSeconds: 900, channels, scope: "stream" });
    }
    if (url.includes("/api/realtime/summary?token=")) {
      const token = decodeURIComponent(url.split("token=")[1] ?? "");
      return token.endsWith(".good") ? json(200, { today: {} }) : json(401, { error: "invalid_token", message: "the token's signature does not match" });
    }
    return json(404, { error: "bad_request" });
  }) as typeof fetch;
  return { state, fetchImpl };
}

let serial = 0;
/** A gateway-shaped token (claims.signature); a new string every call, as a renewal gives. */
function token(channels: string[], signature = "good"): string {
  serial += 1;
  const claims = { sub: "dashboard", ch: channels, scope: "stream", iat: 1_800_000_000 + serial, exp: 1_800_000_900 + serial };
  const body = btoa(JSON.stringify(claims)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `${body}.${signature}`;
}

const grant = (value: string) => ({ token: value, expiresAt: "2099-01-01T00:00:00Z" });
const started: SharedRealtimeClient[] = [];

afterEach(() => {
  for (const client of started.splice(0)) client.stop();
});

describe("SharedRealtimeClient and credentials", () => {
  it("keeps a tab with a wrong key out of the right key's group: it gets none of its events", async () => {
    const { fetchImpl } = gateway();
    const { tab, connections } = browser({ fetchImpl, shareName: "app" });
    const right = tab({ apiKey: RIGHT_KEY });
    const wrong = tab({ apiKey: WRONG_KEY });
    started.push(right.client, wrong.client);
    // Another group, so a connection of its own: the gateway refuses that one (not faked here).
    await until("two leaders", () => right.client.role === "leader" && wrong.client.role === "leader");
    expect(connections.map((c) => c.options.apiKey).sort()).toEqual([RIGHT_KEY, WRONG_KEY]);
    const rightConnection = connections.find((c) => c.options.apiKey === RIGHT_KEY);
    rightConnection?.emit([1, 2], "e-2");
    await settle();
    expect(right.seqs).toEqual([1, 2]);
    expect(wrong.seqs).toEqual([]);
  });

  it("a follower whose own key fails its check gets the error and no relayed frame", async () => {
    const { state, fetchImpl } = gateway();
    const { tab, connections } = browser({ fetchImpl, backoff: { initialMs: 60_000 } });
    const leader = tab({ apiKey: RIGHT_KEY });
    started.push(leader.client);
    await until("a leader", () => leader.client.role === "leader");
    // The key is revoked after the leader connected; a tab that opens now must not be fed.
    state.revoked = true;
    const late = tab({ apiKey: RIGHT_KEY });
    started.push(late.client);
    await until("the refusal", () => late.client.state === "reconnecting");
    expect(late.client.lastError).toBe(
      "token request failed: HTTP 401: invalid_api_key (the X-API-Key header does not match any configured key)",
    );
    connections[0]?.emit([7], "e-7");
    await settle();
    await settle();
    expect(leader.seqs).toEqual([7]);
    expect(late.seqs).toEqual([]);
    expect(late.client.role).toBe("waiting");
  });

  it("names channel and lock by a SHA-256 of the credential, stable across a token's renewals", async () => {
    const { fetchImpl } = gateway();
    const { tab, connections, bus, locks } = browser({ fetchImpl });
    const narrow = () => tab({ getToken: async () => grant(token(["orders"])) });
    const tabs = [tab({ apiKey: RIGHT_KEY }), narrow(), narrow(), tab({ apiKey: RIGHT_KEY, channels: ["orders"] })];
    started.push(...tabs.map((t) => t.client));
    await until("every tab placed", () => tabs.every((t) => t.client.role !== "waiting"));
    for (const name of [...bus.names, ...locks.names]) {
      expect(name).toMatch(/^rakuda-realtime:[0-9a-f]{64}$/);
      expect(name).not.toContain(RIGHT_KEY);
    }
    expect(locks.names).toEqual(bus.names);
    // The two token tabs (different tokens, one principal) share; the key tabs on other channels do not.
    expect(new Set(bus.names).size).toBe(3);
    expect(connections).toHaveLength(3);
    expect(tabs.map((t) => t.client.role).filter((r) => r === "follower")).toHaveLength(1);
  });

  it("relays to a follower only the channels its own credential reads", async () => {
    const { fetchImpl } = gateway();
    const { tab, connections } = browser({ fetchImpl });
    const first = tab({ getToken: async () => grant(token(["orders"])) });
    started.push(first.client);
    await until("a leader", () => first.client.role === "leader");
    const second = tab({ getToken: async () => grant(token(["orders"])) });
    started.push(second.client);
    await until("a follower", () => second.client.role === "follower");
    // Whatever the leader's connection brings, a follower takes only what its token reads.
    connections[0]?.emit([1], "e-1", "INVENTORY_CHANGE");
    connections[0]?.emit([2], "e-2", "ORDER_RECEIVED");
    await until("the order relayed", () => second.seqs.length === 1);
    expect(second.types).toEqual(["ORDER_RECEIVED"]);
  });

  it("refuses a follower whose token the gateway does not accept", async () => {
    const { state, fetchImpl } = gateway();
    const { tab } = browser({ fetchImpl, backoff: { initialMs: 60_000 } });
    const leader = tab({ getToken: async () => grant(token(["orders"])) });
    started.push(leader.client);
    await until("a leader", () => leader.client.role === "leader");
    const forged = tab({ getToken: async () => grant(token(["orders"], "forged")) });
    started.push(forged.client);
    await until("the refusal", () => forged.client.state === "reconnecting");
    expect(forged.client.lastError).toMatch(/^token check failed: HTTP 401: invalid_token/);
    expect(state.requests.some((url) => url.includes("/api/realtime/summary?token="))).toBe(true);
  });

  it("reads a gateway token's claims", () => {
    expect(tokenClaims(token(["orders", "pricing"]))).toEqual({ sub: "dashboard", ch: ["orders", "pricing"], scope: "stream" });
    expect(tokenClaims("opaque")).toBeNull();
  });
});
