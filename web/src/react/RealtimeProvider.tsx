"use client";
import {
  useEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
  type RefObject,
} from "react";
import { useQueryClient, type QueryClient } from "@tanstack/react-query";
import { RealtimeClient, SharedRealtimeClient, canShareAcrossTabs } from "../client";
import { resetRefetchDelay } from "../client/spread";
import type {
  ConnectionState,
  RealtimeClientApi,
  RealtimeClientOptions,
  Unsubscribe,
} from "../client/types";
import { RealtimeContext, RealtimeStatusContext, type RealtimeContextValue } from "./context";
import { DEFAULT_INVALIDATION, type InvalidationMap } from "./invalidation";
import { ClientRelay } from "./relay";
import { createStatusStore } from "./statusStore";
import { DEFAULT_TOAST_POLICY, type ToastPolicy } from "./toastPolicy";

export { DEFAULT_INVALIDATION, type InvalidationMap } from "./invalidation";

export interface RealtimeProviderProps {
  /**
   * How to connect. The provider creates, starts and (on unmount) stops one client. Changing a
   * connection setting (baseUrl, apiKey, transport, channels, heartbeat, backoff) replaces the
   * client; a new object with the same settings does not, so an inline object is fine, and the
   * latest `getToken` is always the one called.
   */
  options?: RealtimeClientOptions;
  /**
   * A client created elsewhere (tests, or an app sharing one across React roots). It wins over
   * `options`, and its owner starts and stops it: the provider only listens to it.
   */
  client?: RealtimeClientApi;
  /** Event type -> query keys to invalidate; replaces DEFAULT_INVALIDATION (spread it to extend). */
  invalidation?: InvalidationMap;
  /**
   * Which frames RealtimeToast shows (default "important": new orders and products going out
   * of stock; "all"; "none"; or a function). A RealtimeToast's own `policy` wins.
   */
  toastPolicy?: ToastPolicy;
  /**
   * Share one gateway connection between this origin's tabs of the same credential and
   * channels (Web Locks + BroadcastChannel, named by a digest of the credential): one tab
   * connects and relays to the others, and the next takes over from the last cursor when it
   * closes; a joining tab checks its own credential with the gateway first. Off by default: a
   * tab's events then arrive through another tab. Ignored where the browser lacks Web Locks,
   * BroadcastChannel or SubtleCrypto (outside a secure context).
   */
  shareAcrossTabs?: boolean;
  children?: ReactNode;
}

/**
 * One realtime connection for the whole app, and TanStack Query kept fresh by it: each frame
 * invalidates the queries its type maps to (a batch of 37 events is one invalidation per key,
 * not 37), and a reset (events missed for good) invalidates every query: marked stale at once,
 * refetched after a random wait in [0, RESET_REFETCH_SPREAD_MS) (2.5 s), because a source gap
 * resets every open page at the same moment and they must not all refetch in the same second.
 * Must sit inside QueryClientProvider.
 */
export function RealtimeProvider({
  options,
  client: injected,
  invalidation = DEFAULT_INVALIDATION,
  toastPolicy = DEFAULT_TOAST_POLICY,
  shareAcrossTabs = false,
  children,
}: RealtimeProviderProps) {
  const queryClient = useQueryClient();

  // Listeners read these refs, so a new map, QueryClient or getToken takes effect without
  // resubscribing (or, for options, reconnecting).
  const queryClientRef = useRef(queryClient);
  const invalidationRef = useRef(invalidation);
  const optionsRef = useRef(options);
  useEffect(() => {
    queryClientRef.current = queryClient;
    invalidationRef.current = invalidation;
    optionsRef.current = options;
  });

  const identity = options ? connectionIdentity(options) : null;
  // Until the effect below has created the client, the provider is about to connect, which is
  // what the header should say (and what the server render says, so hydration matches).
  const idleState: ConnectionState = identity !== null ? "connecting" : "closed";
  const [relay] = useState(() => new ClientRelay(injected ? injected.state : idleState));

  // Declared first so it is listening before the client below is attached: not even the
  // first frame can slip past the invalidation.
  useEffect(() => attachInvalidation(relay, queryClientRef, invalidationRef), [relay]);

  useEffect(() => {
    if (injected) {
      relay.attach(injected, "closed");
      return () => relay.attach(null, "closed");
    }
    const initial = optionsRef.current;
    if (identity === null || !initial) {
      relay.attach(null, "closed");
      return;
    }
    // Created in an effect, never during render: rendering on the server or twice in
    // StrictMode must not open connections.
    const settings = withLatestGetToken(initial, optionsRef);
    const created =
      shareAcrossTabs && canShareAcrossTabs() ? new SharedRealtimeClient(settings) : new RealtimeClient(settings);
    // Started before it is attached, so listeners do not see its pre-start "closed" between
    // the relay's "connecting" and the client's. start() only begins an asynchronous
    // connection: nothing can arrive before the next line.
    created.start();
    relay.attach(created, "connecting");
    return () => {
      created.stop();
      relay.attach(null, "closed");
    };
  }, [relay, injected, identity, shareAcrossTabs]);

  const store = useMemo(() => createStatusStore(relay, (onSwap) => relay.onAttach(() => onSwap())), [relay]);
  const status = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);

  const value = useMemo<RealtimeContextValue>(
    () => ({ client: relay, state: status.state, toastPolicy }),
    [relay, status.state, toastPolicy],
  );

  return (
    <RealtimeContext.Provider value={value}>
      <RealtimeStatusContext.Provider value={status}>{children}</RealtimeStatusContext.Provider>
    </RealtimeContext.Provider>
  );
}

function attachInvalidation(
  client: RealtimeClientApi,
  queryClientRef: RefObject<QueryClient>,
  invalidationRef: RefObject<InvalidationMap>,
): Unsubscribe {
  const offFrame = client.onFrame((frame) => {
    const keys = invalidationRef.current[frame.type];
    if (!keys) return;
    // invalidateQueries settles even when a refetch fails (throwOnError is off), so the
    // promise can be dropped.
    for (const queryKey of keys) void queryClientRef.current.invalidateQueries({ queryKey });
  });
  // One refetch pending at a time: a second reset before it is covered by it.
  let refetch: ReturnType<typeof setTimeout> | null = null;
  const offReset = client.onReset(() => {
    // Stale at once (a query mounted meanwhile fetches anew), refetched at a random moment.
    void queryClientRef.current.invalidateQueries({ refetchType: "none" });
    if (refetch !== null) return;
    refetch = setTimeout(() => {
      refetch = null;
      void queryClientRef.current.invalidateQueries();
    }, resetRefetchDelay());
  });
  return () => {
    offFrame();
    offReset();
    if (refetch !== null) clearTimeout(refetch);
  };
}

/** The settings that need a new connection when they change; functions are not compared. */
function connectionIdentity(options: RealtimeClientOptions): string {
  return JSON.stringify([
    options.baseUrl,
    options.apiKey ?? null,
    options.getToken ? "getToken" : null,
    options.transport ?? "sse",
    options.channels ?? null,
    options.heartbeatIntervalMs ?? null,
    options.backoff?.initialMs ?? null,
    options.backoff?.maxMs ?? null,
    options.backfill ?? null,
    options.since ?? null,
  ]);
}

/** The client keeps its options; route getToken through the ref so a re-rendered closure is used. */
function withLatestGetToken(
  options: RealtimeClientOptions,
  optionsRef: RefObject<RealtimeClientOptions | undefined>,
): RealtimeClientOptions {
  const initialGetToken = options.getToken;
  if (!initialGetToken) return { ...options };
  return {
    ...options,
    getToken: () => (optionsRef.current?.getToken ?? initialGetToken)(),
  };
}
