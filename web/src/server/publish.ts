// The worker-side publisher: builds a RealTimeEvent, checks it exactly as the Rust bridge will
// (schema/src/validate/), and publishes it on `rakuda:realtime:<channel>`. The checks of single
// values are in checks.ts; what they throw, InvalidRealtimeEvent, is in invalid.ts.
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
  ACTIONS,
  CHANNELS,
  DEFAULT_MAX_EVENT_BYTES,
  REDIS_CHANNEL_PREFIX,
} from "../generated/schema.js";
import type { Action, ChannelName, EventType } from "../generated/schema.js";
import {
  checkWellFormed,
  describe,
  isObject,
  jsonDepth,
  requireString,
  resolveTimestamp,
  serializeData,
  utf8Length,
} from "./checks.js";
import { InvalidRealtimeEvent } from "./invalid.js";

export { InvalidRealtimeEvent } from "./invalid.js";
export type { InvalidRealtimeEventReason } from "./invalid.js";

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
