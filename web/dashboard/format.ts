// Pure formatting helpers for the dashboard: labels, detail paths and one-line summaries built
// from `payload.data`. `data` is free-form, so every field is read defensively.
import type { EventType, SequencedEvent } from "../src/generated/schema";

/** The four business event types the dashboard counts (CANARY is internal). */
export const COUNTED_TYPES = [
  "INVENTORY_CHANGE",
  "ORDER_RECEIVED",
  "PRICE_CHANGE",
  "LISTING_UPDATE",
] as const satisfies readonly EventType[];

export type CountedType = (typeof COUNTED_TYPES)[number];

export function isCountedType(type: EventType): type is CountedType {
  return (COUNTED_TYPES as readonly EventType[]).includes(type);
}

interface TypeLabels {
  /** Counter title. */
  title: string;
  /** Short badge text (never colour alone). */
  badge: string;
  singular: string;
  plural: string;
}

export const TYPE_LABELS: Record<EventType, TypeLabels> = {
  INVENTORY_CHANGE: {
    title: "Inventory changes",
    badge: "STOCK",
    singular: "inventory change",
    plural: "inventory changes",
  },
  ORDER_RECEIVED: { title: "Orders", badge: "ORDER", singular: "order", plural: "orders" },
  PRICE_CHANGE: {
    title: "Price changes",
    badge: "PRICE",
    singular: "price change",
    plural: "price changes",
  },
  LISTING_UPDATE: {
    title: "Listing updates",
    badge: "LISTING",
    singular: "listing update",
    plural: "listing updates",
  },
  CANARY: { title: "Canary", badge: "CANARY", singular: "canary", plural: "canaries" },
};

/** "37 inventory changes", "1 order". */
export function batchSummary(type: EventType, count: number): string {
  const labels = TYPE_LABELS[type];
  return `${count} ${count === 1 ? labels.singular : labels.plural}`;
}

/** The detail page of the entity an event is about, or null when there is none. */
export function detailPath(type: EventType, id: string): string | null {
  const segment = encodeURIComponent(id);
  switch (type) {
    case "INVENTORY_CHANGE":
    case "PRICE_CHANGE":
      return `/products/${segment}`;
    case "ORDER_RECEIVED":
      return `/orders/${segment}`;
    case "LISTING_UPDATE":
      return `/listings/${segment}`;
    case "CANARY":
      return null;
  }
}

export type DetailKind = "products" | "orders" | "listings";

/**
 * Parses "/products/prod_1" (one entity) and "/products" (the list a batch toast links to);
 * null for any other path.
 */
export function parseDetailPath(path: string): { kind: DetailKind; id: string | null } | null {
  const match = /^\/(products|orders|listings)(?:\/([^/]+))?\/?$/.exec(path);
  if (!match || match[1] === undefined) return null;
  const kind = match[1] as DetailKind;
  if (match[2] === undefined) return { kind, id: null };
  try {
    return { kind, id: decodeURIComponent(match[2]) };
  } catch {
    return null;
  }
}

/** The event types whose entities live under a detail kind. */
export function typesOfKind(kind: DetailKind): EventType[] {
  switch (kind) {
    case "products":
      return ["INVENTORY_CHANGE", "PRICE_CHANGE"];
    case "orders":
      return ["ORDER_RECEIVED"];
    case "listings":
      return ["LISTING_UPDATE"];
  }
}

// ---------------------------------------------------------------------------------------------
// Summaries

function str(data: Record<string, unknown>, key: string): string | undefined {
  const value = data[key];
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

function num(data: Record<string, unknown>, key: string): number | undefined {
  const value = data[key];
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && value.trim() !== "") {
    const parsed = Number(value);
    if (Number.isFinite(parsed)) return parsed;
  }
  return undefined;
}

function bool(data: Record<string, unknown>, key: string): boolean | undefined {
  const value = data[key];
  return typeof value === "boolean" ? value : undefined;
}

const moneyFormats = new Map<string, Intl.NumberFormat | null>();

/** "$129.99", "¥12,800"; falls back to "129.99 XYZ" for a code Intl does not know. */
export function formatMoney(amount: number, currency: string | undefined): string {
  if (currency === undefined) return amount.toFixed(2);
  const code = currency.toUpperCase();
  let format = moneyFormats.get(code);
  if (format === undefined) {
    try {
      format = new Intl.NumberFormat("en-US", { style: "currency", currency: code });
    } catch {
      format = null;
    }
    moneyFormats.set(code, format);
  }
  return format ? format.format(amount) : `${amount.toFixed(2)} ${code}`;
}

function inventorySummary(data: Record<string, unknown>): string {
  const stock = num(data, "stock") ?? num(data, "quantity");
  const available = bool(data, "isAvailable");
  if (available === false || stock === 0) return "out of stock";
  if (stock !== undefined) return `in stock · ${stock}`;
  if (available === true) return "back in stock";
  return "stock changed";
}

function orderSummary(data: Record<string, unknown>): string {
  const total = num(data, "total") ?? num(data, "amount");
  const currency = str(data, "currency");
  const marketplace = str(data, "marketplace");
  const quantity = num(data, "quantity");
  const parts: string[] = [];
  parts.push(total !== undefined ? `total ${formatMoney(total, currency)}` : "new order");
  if (quantity !== undefined && quantity !== 1) parts.push(`× ${quantity}`);
  if (marketplace !== undefined) parts.push(`via ${marketplace}`);
  return parts.join(" ");
}

function priceSummary(data: Record<string, unknown>): string {
  const oldPrice = num(data, "oldPrice") ?? num(data, "old_price") ?? num(data, "previousPrice");
  const newPrice = num(data, "newPrice") ?? num(data, "new_price") ?? num(data, "price");
  const currency = str(data, "currency");
  const suffix = currency !== undefined ? ` ${currency.toUpperCase()}` : "";
  if (oldPrice !== undefined && newPrice !== undefined) {
    return `${oldPrice.toFixed(2)} → ${newPrice.toFixed(2)}${suffix}`;
  }
  if (newPrice !== undefined) return `now ${newPrice.toFixed(2)}${suffix}`;
  return "price changed";
}

function listingSummary(data: Record<string, unknown>): string {
  const status = str(data, "status");
  const marketplace = str(data, "marketplace");
  const parts: string[] = [status !== undefined ? `status ${status}` : "listing changed"];
  if (marketplace !== undefined) parts.push(`on ${marketplace}`);
  return parts.join(" ");
}

/** A short human summary of one event, e.g. "out of stock" or "114.50 → 120.00 USD". */
export function eventSummary(event: SequencedEvent): string {
  const data = event.payload.data ?? {};
  let text: string;
  switch (event.type) {
    case "INVENTORY_CHANGE":
      text = inventorySummary(data);
      break;
    case "ORDER_RECEIVED":
      text = orderSummary(data);
      break;
    case "PRICE_CHANGE":
      text = priceSummary(data);
      break;
    case "LISTING_UPDATE":
      text = listingSummary(data);
      break;
    case "CANARY":
      text = "canary";
      break;
  }
  if (event.payload.action === "deleted") return `deleted · ${text}`;
  if (event.payload.action === "created" && event.type !== "ORDER_RECEIVED") {
    return `created · ${text}`;
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Times

const clockFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

/** "10:00:30" in local time; "—" for a missing or unparseable time. */
export function formatClock(time: Date | string | number | null | undefined): string {
  if (time === null || time === undefined) return "—";
  const date = time instanceof Date ? time : new Date(time);
  return Number.isNaN(date.getTime()) ? "—" : clockFormat.format(date);
}

/**
 * "09:12" in `timeZone` (the summary's, so it reads like "today" does); in the browser's own
 * timezone when that one is unknown here. "" for an unparseable time.
 */
export function formatTimeIn(time: string, timeZone: string | null): string {
  const date = new Date(time);
  if (Number.isNaN(date.getTime())) return "";
  const options: Intl.DateTimeFormatOptions = { hour: "2-digit", minute: "2-digit", hour12: false };
  try {
    return new Intl.DateTimeFormat("en-GB", timeZone ? { ...options, timeZone } : options).format(date);
  } catch {
    return new Intl.DateTimeFormat("en-GB", options).format(date);
  }
}

/** "just now", "12 s ago", "3 min ago", "2 h ago". */
export function formatAgo(then: number | null, now: number): string {
  if (then === null) return "never";
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 2) return "just now";
  if (seconds < 90) return `${seconds} s ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `${minutes} min ago`;
  return `${Math.round(minutes / 60)} h ago`;
}

/** "12", "3.4", "0.2": one decimal below 10. */
export function formatRate(rate: number): string {
  if (rate >= 10) return String(Math.round(rate));
  return rate.toFixed(1);
}
