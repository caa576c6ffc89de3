// The publisher's checks of one value each, made exactly as the bridge makes them (see
// publish.ts): each throws InvalidRealtimeEvent with a message that says what to fix.
import { InvalidRealtimeEvent } from "./invalid.js";

/** A required string field: absent or null is missing (as in the bridge), anything else wrong. */
export function requireString(value: unknown, path: string): string {
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
export function serializeData(data: unknown): string | undefined {
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

export function checkWellFormed(text: string, path: string, key?: string): void {
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
export function resolveTimestamp(value: unknown): string {
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
export function jsonDepth(json: string): number {
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
export function utf8Length(text: string): number {
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

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

export function describe(value: unknown): string {
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
