import { describe, expect, it, vi } from "vitest";
import { RealtimeHistory } from "./history";
import {
  MAX_RETRY_AFTER_MS,
  RESET_REFETCH_SPREAD_MS,
  RETRY_AFTER_JITTER_MS,
  afterRetryAfter,
  parseRetryAfter,
  resetRefetchDelay,
  retryAfterOf,
} from "./spread";
import { TokenRequestError, requestToken } from "./tokenRequest";

describe("resetRefetchDelay", () => {
  it("is uniform over [0, RESET_REFETCH_SPREAD_MS), whatever the random source says", () => {
    expect(RESET_REFETCH_SPREAD_MS).toBeGreaterThanOrEqual(2_000);
    expect(RESET_REFETCH_SPREAD_MS).toBeLessThanOrEqual(3_000);
    expect(resetRefetchDelay(() => 0)).toBe(0);
    expect(resetRefetchDelay(() => 0.5)).toBe(RESET_REFETCH_SPREAD_MS / 2);
    expect(resetRefetchDelay(() => 1)).toBe(RESET_REFETCH_SPREAD_MS - 1);
    expect(resetRefetchDelay(() => Number.NaN)).toBe(RESET_REFETCH_SPREAD_MS - 1);
    expect(resetRefetchDelay(() => -3)).toBe(0);
    const seconds = new Set(Array.from({ length: 400 }, () => Math.floor(resetRefetchDelay() / 250)));
    expect(seconds.size).toBeGreaterThanOrEqual(9); // of 10 slots of 250 ms
  });
});

describe("Retry-After", () => {
  it("reads delta-seconds and HTTP dates, ignores what it cannot read, and caps what it can", () => {
    const now = Date.parse("2026-12-01T05:00:00Z");
    expect(parseRetryAfter("3", now)).toBe(3_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Tue, 01 Dec 2026 05:00:07 GMT", now)).toBe(7_000);
    expect(parseRetryAfter("Tue, 01 Dec 2026 04:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("999999", now)).toBe(MAX_RETRY_AFTER_MS);
    for (const bad of [null, undefined, "", "soon", "-4", "1.5"]) expect(parseRetryAfter(bad, now)).toBeNull();
  });

  it("waits at least Retry-After plus up to a second, or the longer backoff", () => {
    expect(afterRetryAfter(null, 1234, () => 0.5)).toBe(1234);
    expect(afterRetryAfter(2_000, 500, () => 0)).toBe(2_000);
    expect(afterRetryAfter(2_000, 500, () => 1)).toBe(2_000 + RETRY_AFTER_JITTER_MS);
    expect(afterRetryAfter(2_000, 9_000, () => 1)).toBe(9_000);
  });

  it("is carried by the errors of refused token and history requests", async () => {
    const refusal = (retryAfter: string | null) =>
      vi.fn<typeof fetch>(
        async () =>
          new Response(JSON.stringify({ error: "history_budget", message: "later" }), {
            status: 503,
            headers: retryAfter === null ? {} : { "Retry-After": retryAfter },
          }),
      );
    const token = await requestToken("https://gw", "key-12345678", undefined, refusal("5")).catch((error: unknown) => error);
    expect(token).toBeInstanceOf(TokenRequestError);
    expect(retryAfterOf(token)).toBe(5_000);
    const history = await new RealtimeHistory({ baseUrl: "https://gw", apiKey: "k", fetchImpl: refusal("2") })
      .summary()
      .catch((error: unknown) => error);
    expect(retryAfterOf(history)).toBe(2_000);
    const without = await new RealtimeHistory({ baseUrl: "https://gw", apiKey: "k", fetchImpl: refusal(null) })
      .summary()
      .catch((error: unknown) => error);
    expect(retryAfterOf(without)).toBeNull();
    expect(retryAfterOf(new Error("plain"))).toBeNull();
    expect(retryAfterOf({ retryAfterMs: Number.POSITIVE_INFINITY })).toBeNull();
    expect(retryAfterOf("text")).toBeNull();
  });
});
