// Tests of the worker-side publisher: unit tests of the checks and the exact JSON, then a real
// Redis round trip whose messages are checked by the Rust bridge's own validator
// (`rakuda-sim validate`), so the two implementations of the contract cannot drift apart.
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { CHANNELS, DEFAULT_MAX_EVENT_BYTES, REDIS_CHANNEL_PREFIX } from "../generated/schema.js";
import {
  InvalidRealtimeEvent,
  buildRealtimeEvent,
  publishRealtimeEvent,
} from "./index.js";
import type { RealtimeEventInput, RedisPublisher } from "./index.js";

const TS = "2026-11-22T10:00:00.000Z";

/** Builds from an untyped value, as a plain-JavaScript worker could. */
function buildLoose(input: unknown, options?: { maxBytes?: number }) {
  return buildRealtimeEvent(input as RealtimeEventInput, options);
}

/** The reason an invalid event is refused with; fails if it is not refused. */
function reasonOf(input: unknown, options?: { maxBytes?: number }): string {
  try {
    buildLoose(input, options);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRealtimeEvent);
    const invalid = error as InvalidRealtimeEvent;
    // The message must say what to fix, not just repeat the reason.
    expect(invalid.message.length).toBeGreaterThan(invalid.reason.length + 10);
    return invalid.reason;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

function event(overrides: Record<string, unknown> = {}, payload: Record<string, unknown> = {}) {
  return {
    type: "INVENTORY_CHANGE",
    payload: { id: "prod_123", action: "updated", ...payload },
    timestamp: TS,
    ...overrides,
  };
}

/** Nested arrays `depth` levels deep: 1 is `[]`. */
function nested(depth: number): unknown {
  let value: unknown = [];
  for (let i = 1; i < depth; i++) value = [value];
  return value;
}

/** 0000-01-01T00:00:00.000Z, the earliest time RFC 3339 can write (Date.UTC maps 0 to 1900). */
function yearZero(): Date {
  const date = new Date(0);
  date.setUTCFullYear(0, 0, 1);
  return date;
}

/** An event whose message is exactly `bytes` UTF-8 bytes, padded mostly with 2-byte `é`. */
function eventOfSize(bytes: number): RealtimeEventInput {
  const base = buildRealtimeEvent({
    type: "LISTING_UPDATE",
    payload: { id: "lst_1", action: "updated", data: { pad: "" } },
    timestamp: TS,
  }).message;
  const extra = bytes - Buffer.byteLength(base, "utf8");
  const pad = "é".repeat(Math.floor(extra / 2)) + "x".repeat(extra % 2);
  return {
    type: "LISTING_UPDATE",
    payload: { id: "lst_1", action: "updated", data: { pad } },
    timestamp: TS,
  };
}

describe("buildRealtimeEvent", () => {
  it("sends each type to its channel with the exact JSON", () => {
    const cases: Array<[RealtimeEventInput, string, string]> = [
      [
        { type: "INVENTORY_CHANGE", payload: { id: "prod_123", action: "updated", data: { isAvailable: false } }, timestamp: TS },
        "rakuda:realtime:inventory",
        `{"type":"INVENTORY_CHANGE","payload":{"id":"prod_123","action":"updated","data":{"isAvailable":false}},"timestamp":"${TS}"}`,
      ],
      [
        { type: "ORDER_RECEIVED", payload: { id: "ord_9", action: "created", data: { total: 129.99 } }, timestamp: TS },
        "rakuda:realtime:orders",
        `{"type":"ORDER_RECEIVED","payload":{"id":"ord_9","action":"created","data":{"total":129.99}},"timestamp":"${TS}"}`,
      ],
      [
        { type: "PRICE_CHANGE", payload: { id: "prod_7", action: "updated" }, timestamp: TS },
        "rakuda:realtime:pricing",
        `{"type":"PRICE_CHANGE","payload":{"id":"prod_7","action":"updated"},"timestamp":"${TS}"}`,
      ],
      [
        { type: "LISTING_UPDATE", payload: { id: "lst_1", action: "deleted" }, timestamp: TS },
        "rakuda:realtime:listings",
        `{"type":"LISTING_UPDATE","payload":{"id":"lst_1","action":"deleted"},"timestamp":"${TS}"}`,
      ],
    ];
    for (const [input, channel, message] of cases) {
      expect(buildRealtimeEvent(input)).toEqual({
        channel,
        name: channel.slice(REDIS_CHANNEL_PREFIX.length),
        message,
      });
    }
    // Every public channel of the generated table is covered above.
    expect(cases.map(([, channel]) => channel).sort()).toEqual(
      CHANNELS.filter((c) => !c.internal).map((c) => REDIS_CHANNEL_PREFIX + c.name).sort(),
    );
  });

  it("writes keys in the documented order whatever the input's order", () => {
    const input = {
      timestamp: TS,
      payload: { data: { b: 1, a: [1, { z: null }] }, action: "created", id: "ord_1" },
      type: "ORDER_RECEIVED",
    };
    expect(buildLoose(input).message).toBe(
      `{"type":"ORDER_RECEIVED","payload":{"id":"ord_1","action":"created","data":{"b":1,"a":[1,{"z":null}]}},"timestamp":"${TS}"}`,
    );
  });

  it("leaves out null data and fields the bridge does not know", () => {
    expect(buildLoose(event({ extra: 1 }, { data: null, other: "x" })).message).toBe(
      `{"type":"INVENTORY_CHANGE","payload":{"id":"prod_123","action":"updated"},"timestamp":"${TS}"}`,
    );
  });

  it("writes a Date as ISO 8601 with milliseconds and Z", () => {
    const { message } = buildRealtimeEvent({
      type: "PRICE_CHANGE",
      payload: { id: "prod_7", action: "updated" },
      timestamp: new Date(Date.UTC(2026, 10, 22, 19, 0, 0, 7)),
    });
    expect(JSON.parse(message).timestamp).toBe("2026-11-22T19:00:00.007Z");
  });

  it("stamps the current time when the timestamp is left out", () => {
    const before = Date.now();
    const { message } = buildRealtimeEvent({ type: "PRICE_CHANGE", payload: { id: "p", action: "updated" } });
    const after = Date.now();
    const stamped: string = JSON.parse(message).timestamp;
    expect(stamped).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Date.parse(stamped)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(stamped)).toBeLessThanOrEqual(after);
  });

  it("keeps a timestamp string verbatim", () => {
    for (const ts of ["2026-11-22T19:00:00+09:00", "2026-11-22t10:00:00.123456789z", "2026-11-22 10:00:00Z", "2016-12-31T23:59:60Z", "2017-01-01T08:59:60.5+09:00"]) {
      expect(JSON.parse(buildLoose(event({ timestamp: ts })).message).timestamp).toBe(ts);
    }
  });

  it("applies a custom prefix", () => {
    expect(buildLoose(event(), undefined).channel).toBe("rakuda:realtime:inventory");
    expect(buildRealtimeEvent(event() as RealtimeEventInput, { prefix: "staging:rt:" }).channel).toBe("staging:rt:inventory");
  });

  it.each([
    ["CANARY refused (internal)", event({ type: "CANARY" }), "internal_type"],
    ["unknown type", event({ type: "STOCK_GONE" }), "unknown_type"],
    ["lower-case type", event({ type: "inventory_change" }), "unknown_type"],
    ["missing type", event({ type: undefined }), "missing_field"],
    ["type not a string", event({ type: 42 }), "invalid_field"],
    ["not an object", "INVENTORY_CHANGE", "invalid_field"],
    ["no event", null, "missing_field"],
    ["missing payload", event({ payload: undefined }), "missing_field"],
    ["payload an array", event({ payload: [] }), "invalid_field"],
    ["missing id", event({}, { id: undefined }), "missing_field"],
    ["empty id", event({}, { id: "" }), "invalid_field"],
    ["id not a string", event({}, { id: 42 }), "invalid_field"],
    ["missing action", event({}, { action: null }), "missing_field"],
    ["bad action", event({}, { action: "archived" }), "unknown_action"],
    ["action in capitals", event({}, { action: "UPDATED" }), "unknown_action"],
    ["data an array", event({}, { data: [1] }), "invalid_field"],
    ["data a string", event({}, { data: "x" }), "invalid_field"],
    ["data a number", event({}, { data: 1 }), "invalid_field"],
    ["data serializing to a string", event({}, { data: new Date(0) }), "invalid_field"],
    ["data holding a BigInt", event({}, { data: { n: 1n } }), "invalid_field"],
    ["data holding a Map", event({}, { data: { m: new Map([["a", 1]]) } }), "invalid_field"],
    ["data with a lone surrogate", event({}, { data: { s: "\ud83d" } }), "invalid_field"],
    ["id with a lone surrogate", event({}, { id: "p\udc00" }), "invalid_field"],
    ["data nested deeper than the bridge parses", event({}, { data: { a: nested(125) } }), "invalid_field"],
    ["timestamp not RFC 3339", event({ timestamp: "yesterday" }), "bad_timestamp"],
    ["timestamp without seconds", event({ timestamp: "2026-11-22 10:00" }), "bad_timestamp"],
    ["timestamp without offset", event({ timestamp: "2026-11-22T10:00:00" }), "bad_timestamp"],
    ["timestamp with a trailing newline", event({ timestamp: `${TS}\n` }), "bad_timestamp"],
    ["February 30th", event({ timestamp: "2026-02-30T10:00:00Z" }), "bad_timestamp"],
    ["February 29th, not a leap year", event({ timestamp: "2100-02-29T10:00:00Z" }), "bad_timestamp"],
    ["hour 24", event({ timestamp: "2026-11-22T24:00:00Z" }), "bad_timestamp"],
    ["leap second mid-month", event({ timestamp: "2026-12-30T23:59:60Z" }), "bad_timestamp"],
    ["offset hour 24", event({ timestamp: "2026-11-22T10:00:00+24:00" }), "bad_timestamp"],
    ["offset without colon", event({ timestamp: "2026-11-22T10:00:00+0900" }), "bad_timestamp"],
    ["invalid Date", event({ timestamp: new Date(Number.NaN) }), "bad_timestamp"],
    ["Date after 9999", event({ timestamp: new Date(Date.UTC(10000, 0, 1)) }), "bad_timestamp"],
    ["timestamp a number", event({ timestamp: 1795366240958 }), "invalid_field"],
    ["timestamp null", event({ timestamp: null }), "invalid_field"],
  ])("refuses %s", (_name, input, reason) => {
    expect(reasonOf(input)).toBe(reason);
  });

  it("refuses data with a circular reference", () => {
    const data: Record<string, unknown> = {};
    data["self"] = data;
    expect(reasonOf(event({}, { data }))).toBe("invalid_field");
  });

  it("accepts data nested as deep as the bridge parses", () => {
    // root, payload, data and 124 arrays: 127 levels, serde_json's limit.
    expect(() => buildLoose(event({}, { data: { a: nested(124) } }))).not.toThrow();
  });

  it("counts the size in UTF-8 bytes, up to 64 KiB inclusive", () => {
    expect(DEFAULT_MAX_EVENT_BYTES).toBe(65536);
    const exact = buildRealtimeEvent(eventOfSize(65536)).message;
    expect(Buffer.byteLength(exact, "utf8")).toBe(65536);
    // Mostly 2-byte characters: counting UTF-16 units would let far larger messages through.
    expect(exact.length).toBeLessThan(40000);
    expect(reasonOf(eventOfSize(65537))).toBe("too_large");
    expect(reasonOf(event({}, { data: { pad: "x".repeat(70000) } }))).toBe("too_large");
  });

  it("takes the size limit as an option", () => {
    expect(reasonOf(event(), { maxBytes: 16 })).toBe("too_large");
    const length = Buffer.byteLength(buildLoose(event()).message, "utf8");
    expect(() => buildLoose(event(), { maxBytes: length })).not.toThrow();
  });

  it("names the problem in the error", () => {
    expect(() => buildLoose(event({ type: "CANARY" }))).toThrow(/internal_type: type CANARY is internal.*INVENTORY_CHANGE, ORDER_RECEIVED, PRICE_CHANGE, LISTING_UPDATE$/);
    expect(() => buildLoose(event({}, { id: "" }))).toThrow("invalid_field: field `payload.id` must not be empty");
    expect(() => buildLoose(event({}, { action: "archived" }))).toThrow("unknown_action: action `archived` is not one of created, updated, deleted");
    const error = (() => {
      try {
        buildLoose(event({ timestamp: "yesterday" }));
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ name: "InvalidRealtimeEvent", reason: "bad_timestamp" });
  });
});

describe("publishRealtimeEvent", () => {
  it("publishes the built message on the built channel and returns the receiver count", async () => {
    const publish = vi.fn(async (_channel: string, _message: string) => 1);
    const input: RealtimeEventInput = { type: "ORDER_RECEIVED", payload: { id: "ord_9", action: "created" }, timestamp: TS };
    await expect(publishRealtimeEvent({ publish }, input)).resolves.toEqual({ status: "delivered", receivers: 1 });
    const built = buildRealtimeEvent(input);
    expect(publish).toHaveBeenCalledExactlyOnceWith(built.channel, built.message);
    await publishRealtimeEvent({ publish }, input, { prefix: "x:" });
    expect(publish).toHaveBeenLastCalledWith("x:orders", built.message);
  });

  it("rejects an invalid event without publishing", async () => {
    const publish = vi.fn(async () => 1);
    await expect(publishRealtimeEvent({ publish }, event({ type: "CANARY" }) as RealtimeEventInput)).rejects.toMatchObject({ reason: "internal_type" });
    expect(publish).not.toHaveBeenCalled();
  });

  it("reports a reply of 0 subscribers as no_listener, with what to publish again", async () => {
    const publish = vi.fn(async (_channel: string, _message: string) => 0);
    const input: RealtimeEventInput = { type: "ORDER_RECEIVED", payload: { id: "ord_9", action: "created" }, timestamp: TS };
    const built = buildRealtimeEvent(input);
    await expect(publishRealtimeEvent({ publish }, input)).resolves.toEqual({
      status: "no_listener",
      receivers: 0,
      channel: built.channel,
      message: built.message,
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Against a real Redis and the bridge's validator.

const here = path.dirname(fileURLToPath(import.meta.url));
const SIM = process.env["RAKUDA_SIM"] ?? path.resolve(here, "../../../target/debug/rakuda-sim");

interface Received {
  channel: string;
  message: string;
}

/** Messages from the subscriber, awaited in arrival order. */
class Inbox {
  private readonly queue: Received[] = [];
  private readonly waiters: Array<(received: Received) => void> = [];

  push(received: Received): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(received);
    else this.queue.push(received);
  }

  get pending(): number {
    return this.queue.length;
  }

  next(timeoutMs = 5000): Promise<Received> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const waiter = (received: Received) => {
        clearTimeout(timer);
        resolve(received);
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}

function findRedisServer(): string | undefined {
  const dirs = (process.env["PATH"] ?? "").split(path.delimiter).filter((d) => d !== "");
  for (const candidate of [...dirs.map((d) => path.join(d, "redis-server")), "/usr/bin/redis-server"]) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here; try the next
    }
  }
  return undefined;
}

/** A port nobody listens on: bind port 0, read the number, release it. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        reject(new Error("no port assigned"));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `rakuda-sim validate <channel>` on a message: the bridge's own check. */
function bridgeValidate(channel: string, message: string): { status: number | null; output: string } {
  const result = spawnSync(SIM, ["validate", channel], { input: message, encoding: "utf8", timeout: 15000 });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

function requireSim(): void {
  if (!fs.existsSync(SIM)) {
    throw new Error(`${SIM} does not exist: build it with \`cargo build -p rakuda-simulator\``);
  }
}

describe("against a real Redis", () => {
  let server: ChildProcess | undefined;
  let serverLog = "";
  let publisher: Redis | undefined;
  let subscriber: Redis | undefined;
  const inbox = new Inbox();

  beforeAll(async () => {
    const binary = findRedisServer();
    if (binary === undefined) {
      throw new Error("redis-server is not on PATH nor at /usr/bin/redis-server: install Redis to run this test");
    }
    const port = await freePort();
    const child = spawn(binary, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    server = child;
    // Read the output (an unread pipe would eventually block the server) and keep the end of it
    // for the error message if it does not start.
    const keep = (chunk: Buffer) => {
      serverLog = (serverLog + chunk.toString("utf8")).slice(-4000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);

    const deadline = Date.now() + 5000;
    let lastError: unknown;
    while (publisher === undefined) {
      if (child.exitCode !== null) {
        throw new Error(`redis-server exited with ${child.exitCode}:\n${serverLog}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`redis-server did not answer PING within 5 s (${String(lastError)}):\n${serverLog}`);
      }
      // No retries inside ioredis: this loop decides when to give up.
      const client = new Redis({ host: "127.0.0.1", port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      client.on("error", (error: unknown) => {
        lastError = error;
      });
      try {
        await client.connect();
        if ((await client.ping()) === "PONG") {
          publisher = client;
          break;
        }
      } catch (error) {
        lastError = error;
      }
      client.disconnect();
      await sleep(100);
    }

    subscriber = new Redis({ host: "127.0.0.1", port, lazyConnect: true });
    await subscriber.connect();
    subscriber.on("pmessage", (_pattern: string, channel: string, message: string) => {
      inbox.push({ channel, message });
    });
    await subscriber.psubscribe(`${REDIS_CHANNEL_PREFIX}*`);
  }, 15000);

  afterAll(async () => {
    await Promise.allSettled([publisher?.quit(), subscriber?.quit()]);
    if (server !== undefined && server.exitCode === null && server.signalCode === null) {
      const exited = once(server, "exit");
      server.kill("SIGTERM");
      await exited;
    }
  });

  function connected(): Redis {
    if (publisher === undefined) throw new Error("Redis did not start");
    return publisher;
  }

  it("delivers each type on its channel with exactly the built JSON", async () => {
    // An ioredis client is a RedisPublisher (checked by the compiler).
    const redis: RedisPublisher = connected();
    for (const row of CHANNELS.filter((c) => !c.internal)) {
      const input: RealtimeEventInput = {
        type: row.eventType as RealtimeEventInput["type"],
        payload: { id: `${row.name}_1`, action: "created", data: { n: 1, note: "ラクダ 🐪" } },
        timestamp: new Date(),
      };
      const built = buildRealtimeEvent(input);
      await expect(publishRealtimeEvent(redis, input)).resolves.toEqual({ status: "delivered", receivers: 1 });
      await expect(inbox.next()).resolves.toEqual({ channel: `${REDIS_CHANNEL_PREFIX}${row.name}`, message: built.message });
    }
    expect(inbox.pending).toBe(0);
  });

  it("says no_listener when no bridge is subscribed (Redis answers 0)", async () => {
    const redis = connected();
    // Nothing subscribes to this prefix: as on a Redis with no bridge running.
    const input: RealtimeEventInput = { type: "INVENTORY_CHANGE", payload: { id: "prod_1", action: "updated" }, timestamp: TS };
    const outcome = await publishRealtimeEvent(redis, input, { prefix: "nobody:listens:" });
    expect(outcome).toEqual({
      status: "no_listener",
      receivers: 0,
      channel: "nobody:listens:inventory",
      message: buildRealtimeEvent(input).message,
    });
    expect(inbox.pending).toBe(0);
  });

  it("refuses an invalid event and publishes nothing", async () => {
    const redis = connected();
    const spy = vi.spyOn(redis, "publish");
    try {
      for (const bad of [event({ type: "CANARY" }), event({}, { id: "" }), event({ timestamp: "yesterday" })]) {
        await expect(publishRealtimeEvent(redis, bad as RealtimeEventInput)).rejects.toBeInstanceOf(InvalidRealtimeEvent);
      }
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
    // Pub/sub delivers in order, so if the sentinel is the next message, nothing came before it.
    const sentinel: RealtimeEventInput = { type: "PRICE_CHANGE", payload: { id: "sentinel", action: "updated" }, timestamp: TS };
    await expect(publishRealtimeEvent(redis, sentinel)).resolves.toEqual({ status: "delivered", receivers: 1 });
    await expect(inbox.next()).resolves.toEqual({ channel: `${REDIS_CHANNEL_PREFIX}pricing`, message: buildRealtimeEvent(sentinel).message });
    expect(inbox.pending).toBe(0);
  });

  it("publishes only what the Rust bridge accepts (rakuda-sim validate)", async () => {
    requireSim();
    const redis = connected();
    // The ordinary case per channel, and the edges where the two implementations could differ.
    const inputs: RealtimeEventInput[] = [
      ...CHANNELS.filter((c) => !c.internal).map((row) => ({
        type: row.eventType as RealtimeEventInput["type"],
        payload: { id: `${row.name}_42`, action: "updated" as const, data: { s: "ラクダ 🐪 \"quoted\" \\ \u0000 \u2028", n: -0.5e-7, big: 1e21, nested: { a: [true, null, {}] } } },
        timestamp: TS,
      })),
      eventOfSize(65536),
      event({}, { data: { a: nested(124) } }) as RealtimeEventInput,
      event({ timestamp: "2016-12-31T23:59:60.5Z" }) as RealtimeEventInput,
      event({ timestamp: "2017-01-01T08:59:60+09:00" }) as RealtimeEventInput,
      event({ timestamp: "2026-11-22t19:00:00.123456789-09:30" }) as RealtimeEventInput,
      event({ timestamp: "2024-02-29 00:00:00z" }) as RealtimeEventInput,
      event({ timestamp: yearZero() }) as RealtimeEventInput,
      event({}, { action: "deleted", data: null }) as RealtimeEventInput,
    ];
    for (const input of inputs) {
      const built = buildRealtimeEvent(input);
      await expect(publishRealtimeEvent(redis, input)).resolves.toEqual({ status: "delivered", receivers: 1 });
      const received = await inbox.next();
      expect(received).toEqual({ channel: built.channel, message: built.message });
      const verdict = bridgeValidate(received.channel.slice(REDIS_CHANNEL_PREFIX.length), received.message);
      expect(verdict, received.message.slice(0, 200)).toEqual({ status: 0, output: "valid" });
    }

    // The default timestamp (now) too; its text cannot be predicted, so only the rest is compared.
    const stamped: RealtimeEventInput = { type: "ORDER_RECEIVED", payload: { id: "ord_now", action: "created" } };
    await expect(publishRealtimeEvent(redis, stamped)).resolves.toEqual({ status: "delivered", receivers: 1 });
    const now = await inbox.next();
    expect(now.channel).toBe(`${REDIS_CHANNEL_PREFIX}orders`);
    expect(now.message).toMatch(/^\{"type":"ORDER_RECEIVED","payload":\{"id":"ord_now","action":"created"\},"timestamp":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"\}$/);
    expect(bridgeValidate("orders", now.message)).toEqual({ status: 0, output: "valid" });

    // The bridge refuses a message on the wrong channel...
    const orders = buildRealtimeEvent({ type: "ORDER_RECEIVED", payload: { id: "ord_1", action: "created" }, timestamp: TS });
    const wrong = bridgeValidate("inventory", orders.message);
    expect(wrong.status).not.toBe(0);
    expect(wrong.output).toContain("type_channel_mismatch");
    // ...and what this module refuses before publishing really is refused by the bridge.
    const exact = buildRealtimeEvent(eventOfSize(65536)).message;
    const refused: Array<[string, string, string]> = [
      ["one byte too many", exact.replace('"pad":"', '"pad":"x'), "too_large"],
      ["nested one level too deep", `{"type":"INVENTORY_CHANGE","payload":{"id":"p","action":"updated","data":{"a":${"[".repeat(125)}${"]".repeat(125)}}},"timestamp":"${TS}"}`, "recursion limit"],
      ["a lone surrogate", JSON.stringify({ type: "INVENTORY_CHANGE", payload: { id: "p", action: "updated", data: { s: "\ud83d" } }, timestamp: TS }), "invalid_json"],
      ["an empty id", buildLoose(event()).message.replace('"prod_123"', '""'), "invalid_field"],
      ["a mid-month leap second", buildLoose(event()).message.replace(TS, "2026-12-30T23:59:60Z"), "bad_timestamp"],
      ["CANARY on a worker channel", buildLoose(event()).message.replace("INVENTORY_CHANGE", "CANARY"), "type_channel_mismatch"],
    ];
    for (const [name, message, reason] of refused) {
      const verdict = bridgeValidate("inventory", message);
      expect(verdict.status, name).not.toBe(0);
      expect(verdict.output, name).toContain(reason);
    }
    expect(inbox.pending).toBe(0);
  });
});
