"use client";
import { useEffect, useMemo, useState } from "react";
import type { ConnectionState } from "../client/types";
import type { EventType, SequencedEvent } from "../generated/schema";
import { useRealtimeFor, useRealtimeStatusFor } from "./context";

export interface UseRealtimeEventsOptions {
  /** Only these event types (all when omitted). */
  types?: readonly EventType[];
  /** How many events to keep, newest first (default 100). */
  limit?: number;
}

export interface UseRealtimeEventsResult {
  isConnected: boolean;
  state: ConnectionState;
  /** The latest event of the requested types (it may predate this component). */
  lastEvent: SequencedEvent | null;
  /** Events of the requested types received since this component mounted, highest `seq` first. */
  events: SequencedEvent[];
  /** The gateway instance of the last heartbeat ("gw-2"). */
  instance: string | null;
  /** When `lastEvent` arrived. */
  lastEventAt: Date | null;
}

export const DEFAULT_EVENT_LIMIT = 100;

interface Feed {
  events: SequencedEvent[];
  lastEvent: SequencedEvent | null;
  lastEventAt: Date | null;
}

const EMPTY_FEED: Feed = { events: [], lastEvent: null, lastEventAt: null };

/**
 * Live events and the connection status, from the surrounding RealtimeProvider. Reconnecting
 * is the client's job; this only listens. One state update per frame, so a batch of 500
 * events is one render, not 500.
 */
export function useRealtimeEvents(options: UseRealtimeEventsOptions = {}): UseRealtimeEventsResult {
  const { client } = useRealtimeFor("useRealtimeEvents");
  const status = useRealtimeStatusFor("useRealtimeEvents");
  const limit = normaliseLimit(options.limit);
  // A string, so an inline `types={["ORDER_RECEIVED"]}` (a new array each render) does not
  // resubscribe on every render.
  const typesKey = options.types ? [...new Set(options.types)].sort().join(",") : null;

  const [feed, setFeed] = useState<Feed>(EMPTY_FEED);

  useEffect(() => {
    const accepts = typeFilter(typesKey);
    return client.onFrame((frame) => {
      if (!accepts(frame.type) || frame.events.length === 0) return;
      const incoming = [...frame.events].sort(bySeqDescending);
      const newest = incoming[0] ?? null;
      const arrivedAt = client.lastEventAt ?? new Date();
      setFeed((previous) => ({
        events: mergeNewestFirst(incoming, previous.events, limit),
        lastEvent: newest,
        lastEventAt: arrivedAt,
      }));
    });
  }, [client, typesKey, limit]);

  // The filter or limit may have narrowed since the events were stored.
  const events = useMemo(() => {
    const accepts = typeFilter(typesKey);
    const kept = feed.events.filter((event) => accepts(event.type));
    return kept.length > limit ? kept.slice(0, limit) : kept;
  }, [feed.events, typesKey, limit]);

  // The feed sees every frame at once (the status is throttled); before this component saw any
  // frame, the client's last event stands in when it is of a requested type.
  const clientLastMatches =
    status.lastEvent !== null && typeFilter(typesKey)(status.lastEvent.type);
  const lastEvent = feed.lastEvent ?? (clientLastMatches ? status.lastEvent : null);
  const lastEventAt = feed.lastEvent ? feed.lastEventAt : clientLastMatches ? status.lastEventAt : null;

  return {
    isConnected: status.state === "open",
    state: status.state,
    lastEvent,
    events,
    instance: status.instance,
    lastEventAt,
  };
}

function normaliseLimit(limit: number | undefined): number {
  if (limit === undefined || Number.isNaN(limit)) return DEFAULT_EVENT_LIMIT;
  return Math.max(0, Math.floor(limit));
}

function typeFilter(typesKey: string | null): (type: EventType) => boolean {
  if (typesKey === null) return () => true;
  const allowed = new Set(typesKey.split(","));
  return (type) => allowed.has(type);
}

function bySeqDescending(a: SequencedEvent, b: SequencedEvent): number {
  return b.seq - a.seq;
}

/**
 * Merges two newest-first lists, dropping duplicate seqs: the client already drops them, but
 * a replaced client (new connection settings) starts with an empty memory.
 */
function mergeNewestFirst(
  incoming: SequencedEvent[],
  existing: SequencedEvent[],
  limit: number,
): SequencedEvent[] {
  const seen = new Set<number>();
  const merged: SequencedEvent[] = [];
  for (const event of [...incoming, ...existing].sort(bySeqDescending)) {
    if (merged.length >= limit) break;
    if (seen.has(event.seq)) continue;
    seen.add(event.seq);
    merged.push(event);
  }
  return merged;
}
