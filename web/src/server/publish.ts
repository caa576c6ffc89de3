// The worker-side publisher: builds a RealTimeEvent, checks it exactly as the Rust bridge will
// (schema/src/validate.rs), and publishes it on `rakuda:realtime:<channel>`.
//
// Why check here at all: Redis pub/sub gives a publisher no feedback. A message the bridge
// refuses goes to its dead-letter queue and the worker never learns about it, so every rule the
// bridge enforces is enforced again here, at the call site, with a message that says what to fix.
// The checks run at runtime because workers may be plain JavaScript: the TypeScript types only
// help callers that are compiled.
//
// Imports carry `.js` so that the compiled library (dist-lib/, "type": "module") loads in Node,
// which does not resolve extensionless ESM specifiers.
import {
  CHANNELS,
  DEFAULT_MAX_EVENT_BYTES,
  REDIS_CHANNEL_PREFIX,
} from "../generated/schema.js";
import type { Action, ChannelName, EventType } from "../generated/schema.js";

/**
 * The one method the publisher needs. Structural, so that an ioredis client
 * (`publish(channel, message): Promise<number>`) and a node-redis v4 client both fit without
 * this module importing either library.
 */
export interface RedisPublisher {
  publish(channel: string, message: string): Promise<number>;
}

export interface RealtimeEventInput {
  type: EventType;
  payload: {
    /** The entity's id (`prod_123`, `ord_9`, ...); must not be empty. */
    id: string;
    action: Action;
    /** Free-form details; must serialize to a JSON object. */
    data?: Record<string, unknown>;
  };
  /** RFC 3339 text (kept verbatim) or a Date; defaults to now. */
  timestamp?: string | Date;
}

export interface BuildOptions {
  /** Channel prefix; defaults to REDIS_CHANNEL_PREFIX, the bridge's default. */
  prefix?: string;
  /** Size limit in bytes; defaults to the bridge's default. Set it if the bridge's is changed. */
  maxBytes?: number;
}

export interface BuiltRealtimeEvent {
  /** The Redis channel to publish on, prefix included (`rakuda:realtime:inventory`). */
  channel: string;
  /** The channel's bare name (`inventory`), as the bridge and `rakuda-sim validate` call it. */
  name: ChannelName;
  /** The JSON text to publish. */
  message: string;
}

/**
 * The bridge's reject reasons that a publisher can hit, plus `internal_type`: the bridge would
 * accept a CANARY on its own channel, but that channel is the bridge's probe, not the workers'.
 */
export type InvalidRealtimeEventReason =
  | "unknown_type"
  | "internal_type"
  | "missing_field"
  | "invalid_field"
  | "unknown_action"
  | "bad_timestamp"
  | "too_large";

export class InvalidRealtimeEvent extends Error {
  readonly reason: InvalidRealtimeEventReason;

  constructor(reason: InvalidRealtimeEventReason, message: string) {
    // The reason leads the message, as in the bridge's `Reject` display, so a log line alone
    // tells which rule failed.
    super(`${reason}: ${message}`);
    this.name = "InvalidRealtimeEvent";
    this.reason = reason;
  }
}

// The actions as a runtime list: the generated schema only has the type. The check below makes
// the build fail if the schema gains an action this list lacks.
const ACTIONS = ["created", "updated", "deleted"] as const satisfies readonly Action[];
type MissingActions = Exclude<Action, (typeof ACTIONS)[number]>;
const actionsAreComplete: [MissingActions] extends [never] ? true : never = true;
void actionsAreComplete;

// Every event type must have a row in the generated channel table; if the schema ever adds a
// type without one, this stops compiling rather than failing at runtime.
type TypesWithoutChannel = Exclude<EventType, (typeof CHANNELS)[number]["eventType"]>;
const channelsAreComplete: [TypesWithoutChannel] extends [never] ? true : never = true;
void channelsAreComplete;

type ChannelRow = (typeof CHANNELS)[number];

const PUBLIC_TYPES = CHANNELS.filter((c) => !c.internal)
  .map((c) => c.eventType)
  .join(", ");

// serde_json (the bridge's parser) refuses to nest more than 127 arrays/objects; deeper input
// is `invalid_json` there. Checked on the whole message, so the root and `payload` count too.
const MAX_JSON_DEPTH = 127;

/**
 * Builds and checks an event. Throws InvalidRealtimeEvent for anything the bridge would reject.
 * The message's keys are in the documented order: type, payload {id, action, data?}, timestamp.
 */
export function buildRealtimeEvent(
  input: RealtimeEventInput,
  options: BuildOptions = {},
): BuiltRealtimeEvent {
  // `unknown` on purpose: callers may be untyped JavaScript, so nothing about the shape is
  // trusted until checked.
  const event: unknown = input;
  if (!isObject(event)) {
    throw new InvalidRealtimeEvent(
      event === undefined || event === null ? "missing_field" : "invalid_field",
      "the event must be an object { type, payload: { id, action, data? }, timestamp? }",
    );
  }

  const row = channelOf(event["type"]);
  const payload = event["payload"];
  if (payload === undefined || payload === null) {
    throw new InvalidRealtimeEvent("missing_field", "required field `payload` is missing");
  }
  if (!isObject(payload) || Array.isArray(payload)) {
    throw new InvalidRealtimeEvent(
      "invalid_field",
      `field \`payload\` must be an object { id, action, data? }, not ${describe(payload)}`,
    );
  }
  const id = requireString(payload["id"], "payload.id");
  if (id === "") {
    throw new InvalidRealtimeEvent(
      "invalid_field",
      "field `payload.id` must not be empty: use the entity's id, e.g. `prod_123`",
    );
  }
  checkWellFormed(id, "payload.id");
  const action = requireString(payload["action"], "payload.action");
  if (!(ACTIONS as readonly string[]).includes(action)) {
    throw new InvalidRealtimeEvent(
      "unknown_action",
      `action \`${action}\` is not one of ${ACTIONS.join(", ")}`,
    );
  }
  const data = serializeData(payload["data"]);
  const timestamp = resolveTimestamp(event["timestamp"]);

  // Assembled by hand rather than from one object so the key order is fixed by this code, not
  // by how the caller built its object.
  const message =
    `{"type":${JSON.stringify(row.eventType)},` +
    `"payload":{"id":${JSON.stringify(id)},"action":${JSON.stringify(action)}` +
    (data === undefined ? "" : `,"data":${data}`) +
    `},"timestamp":${JSON.stringify(timestamp)}}`;

  const maxBytes = options.maxBytes ?? DEFAULT_MAX_EVENT_BYTES;
  const bytes = utf8Length(message);
  if (bytes > maxBytes) {
    throw new InvalidRealtimeEvent(
      "too_large",
      `message is ${bytes} bytes, over the limit of ${maxBytes} bytes: ` +
        "send less in `payload.data` (e.g. ids, and let clients refetch the rest)",
    );
  }
  const depth = jsonDepth(message);
  if (depth > MAX_JSON_DEPTH) {
    throw new InvalidRealtimeEvent(
      "invalid_field",
      `field \`payload.data\` nests ${depth - 2} levels deep; the bridge's JSON parser allows ` +
        `at most ${MAX_JSON_DEPTH - 2}`,
    );
  }

  const prefix = options.prefix ?? REDIS_CHANNEL_PREFIX;
  return { channel: `${prefix}${row.name}`, name: row.name, message };
}

/**
 * What Redis said of a publish.
 * - `delivered`: `receivers` subscribers took it (each bridge counts as one; two for HA).
 * - `no_listener`: Redis answered 0 subscribers. No bridge was subscribed, so the event is gone
 *   (pub/sub keeps nothing). Dashboards are told of the gap (`reset`, `source_gap`) once a bridge
 *   is back, so nothing is lost silently; log it (it means the bridges are down), and publish
 *   `message` on `channel` again later if the event matters on its own.
 */
export type PublishOutcome =
  | { status: "delivered"; receivers: number }
  | { status: "no_listener"; receivers: 0; channel: string; message: string };

/**
 * Checks, then publishes an event, and says whether any bridge heard it (see PublishOutcome).
 * Rejects with InvalidRealtimeEvent, before touching Redis, if the bridge would refuse the event.
 */
export async function publishRealtimeEvent(
  redis: RedisPublisher,
  input: RealtimeEventInput,
  options: BuildOptions = {},
): Promise<PublishOutcome> {
  const { channel, message } = buildRealtimeEvent(input, options);
  const receivers = await redis.publish(channel, message);
  if (receivers > 0) return { status: "delivered", receivers };
  return { status: "no_listener", receivers: 0, channel, message };
}

/** The channel row for `type`, looked up in the generated table (the one mapping there is). */
function channelOf(type: unknown): ChannelRow {
  const name = requireString(type, "type");
  const row = CHANNELS.find((c) => c.eventType === name);
  if (row === undefined) {
    throw new InvalidRealtimeEvent(
      "unknown_type",
      `type \`${name}\` is not one of ${PUBLIC_TYPES}`,
    );
  }
  if (row.internal) {
    throw new InvalidRealtimeEvent(
      "internal_type",
      `type ${row.eventType} is internal to rakuda-realtime (the bridge's own probe on ` +
        `channel \`${row.name}\`); workers publish one of ${PUBLIC_TYPES}`,
    );
  }
  return row;
}

/** A required string field: absent or null is missing (as in the bridge), anything else wrong. */
function requireString(value: unknown, path: string): string {
  if (value === undefined || value === null) {
    throw new InvalidRealtimeEvent("missing_field", `required field \`${path}\` is missing`);
  }
  if (typeof value !== "string") {
    throw new InvalidRealtimeEvent(
      "invalid_field",
      `field \`${path}\` must be a string, not ${describe(value)}`,
    );
  }
  return value;
}

/**
 * `payload.data` as JSON text, or undefined to leave it out (absent and null both mean "no
 * data" to the bridge, so null is dropped rather than sent).
 */
function serializeData(data: unknown): string | undefined {
  if (data === undefined || data === null) {
    return undefined;
  }
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new InvalidRealtimeEvent(
      "invalid_field",
      `field \`payload.data\` must be a JSON object, not ${describe(data)}`,
    );
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(data, checkJsonValue);
  } catch (error) {
    if (error instanceof InvalidRealtimeEvent) {
      throw error;
    }
    // Circular structures and BigInt make JSON.stringify throw a TypeError.
    throw new InvalidRealtimeEvent(
      "invalid_field",
      `field \`payload.data\` cannot be serialized to JSON: ${errorText(error)}`,
    );
  }
  // A toJSON method can turn the object into something else (a Date becomes a string).
  if (text === undefined || !text.startsWith("{")) {
    throw new InvalidRealtimeEvent(
      "invalid_field",
      `field \`payload.data\` must serialize to a JSON object, but serializes to ${
        text === undefined ? "nothing" : truncate(text)
      }`,
    );
  }
  return text;
}

/**
 * JSON.stringify replacer: sees every key and value after toJSON, i.e. exactly what is written,
 * and refuses what would be lost silently or refused by the bridge.
 */
function checkJsonValue(this: unknown, key: string, value: unknown): unknown {
  checkWellFormed(key, "payload.data", key);
  if (typeof value === "string") {
    checkWellFormed(value, "payload.data", key);
  } else if (value instanceof Map || value instanceof Set) {
    // They serialize to `{}`: the worker's data would vanish without an error.
    throw new InvalidRealtimeEvent(
      "invalid_field",
      `field \`payload.data\` contains a ${value instanceof Map ? "Map" : "Set"}` +
        `${key === "" ? "" : ` at key \`${key}\``}, which JSON.stringify writes as {}: ` +
        "convert it first (Object.fromEntries(map), [...set])",
    );
  }
  return value;
}

// A UTF-16 surrogate without its partner. JSON.stringify writes it as a `\udXXX` escape, which
// serde_json refuses, so the bridge would reject the whole message as not JSON.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkWellFormed(text: string, path: string, key?: string): void {
  if (LONE_SURROGATE.test(text)) {
    const where = key === undefined || key === "" ? "" : ` (at key \`${truncate(key)}\`)`;
    throw new InvalidRealtimeEvent(
      "invalid_field",
      `field \`${path}\` contains a string with a lone UTF-16 surrogate${where}, which is not ` +
        "valid Unicode: fix the text (often a string cut in the middle of an emoji)",
    );
  }
}

/** The timestamp text: the caller's string verbatim, a Date in ISO form, or now. */
function resolveTimestamp(value: unknown): string {
  if (value === undefined) {
    return new Date().toISOString();
  }
  if (Object.prototype.toString.call(value) === "[object Date]") {
    // Via the prototype, so a Date from another realm (vm, worker) is handled the same.
    const date = value as Date;
    const time = Date.prototype.getTime.call(date);
    if (Number.isNaN(time)) {
      throw new InvalidRealtimeEvent("bad_timestamp", "timestamp is an invalid Date");
    }
    const year = Date.prototype.getUTCFullYear.call(date);
    if (year < 0 || year > 9999) {
      // toISOString writes such years as `+010000-...`, which RFC 3339 does not allow.
      throw new InvalidRealtimeEvent(
        "bad_timestamp",
        `timestamp is in the year ${year}; RFC 3339 covers years 0000 to 9999`,
      );
    }
    return Date.prototype.toISOString.call(date);
  }
  if (typeof value !== "string") {
    throw new InvalidRealtimeEvent(
      "invalid_field",
      `field \`timestamp\` must be an RFC 3339 string or a Date (or left out for now), not ${describe(value)}`,
    );
  }
  const problem = rfc3339Problem(value);
  if (problem !== undefined) {
    throw new InvalidRealtimeEvent(
      "bad_timestamp",
      `timestamp \`${truncate(value)}\` is not RFC 3339 (${problem}); ` +
        "write e.g. 2026-11-22T10:00:00.000Z, or pass a Date",
    );
  }
  return value;
}

// RFC 3339 date-time. The bridge parses with the `time` crate, which also takes any single byte
// as the date/time separator; this accepts only the separators RFC 3339 names (T, t, space),
// because the text reaches browsers verbatim and has to parse there too.
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/** Why `text` is not a time the bridge accepts, or undefined if it is. */
function rfc3339Problem(text: string): string | undefined {
  const match = RFC3339.exec(text);
  if (match === null) {
    return "expected YYYY-MM-DDTHH:MM:SS[.fraction] followed by Z or ±HH:MM";
  }
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
    number, number, number, number, number, number,
  ];
  if (month < 1 || month > 12) return `month ${month} is out of range`;
  if (day < 1 || day > daysInMonth(year, month)) return `day ${day} is out of range`;
  if (hour > 23) return `hour ${hour} is out of range`;
  if (minute > 59) return `minute ${minute} is out of range`;
  // Groups 7 to 9: the offset's sign, hours and minutes (all absent for Z).
  const [sign, offsetHours, offsetMinutes] = [match[7], Number(match[8] ?? 0), Number(match[9] ?? 0)];
  if (offsetHours > 23) return `offset hour ${offsetHours} is out of range`;
  if (offsetMinutes > 59) return `offset minute ${offsetMinutes} is out of range`;
  if (second === 60) {
    // Leap seconds are allowed, as by the bridge, only where one can occur: at 23:59:60 UTC on
    // the last day of a month.
    const offset = (sign === "-" ? -1 : 1) * (offsetHours * 60 + offsetMinutes);
    const utcMinutes = hour * 60 + minute - offset;
    const dayShift = Math.floor(utcMinutes / 1440);
    const lastMinute = utcMinutes - dayShift * 1440 === 23 * 60 + 59;
    // Offsets are under a day, so the UTC date is the same day or one either side; the day
    // before the 1st is always a month's last day.
    const lastDay =
      dayShift === 0
        ? day === daysInMonth(year, month)
        : dayShift === -1
          ? day === 1
          : day + 1 === daysInMonth(year, month);
    if (!(lastMinute && lastDay)) return "second 60 is only valid at 23:59:60 UTC on a month's last day";
  } else if (second > 59) {
    return `second ${second} is out of range`;
  }
  return undefined;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) {
    const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
    return leap ? 29 : 28;
  }
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** The deepest nesting of arrays and objects in JSON text (brackets inside strings ignored). */
function jsonDepth(json: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      if (depth > max) max = depth;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return max;
}

/**
 * Length in UTF-8 bytes, as the bridge counts; without Buffer so the module has no Node-only
 * dependency. Lone surrogates were refused already, so every surrogate here is half of a pair.
 */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return `the string ${JSON.stringify(truncate(value))}`;
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

function truncate(text: string, max = 80): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
