"use client";
// The contexts RealtimeProvider fills. Two of them so that components needing only the client
// (toasts, custom subscriptions) do not re-render on every event, which the status does.
import { createContext, useContext } from "react";
import type { ConnectionState, RealtimeClientApi } from "../client/types";
import type { RealtimeStatus } from "./statusStore";
import type { ToastPolicy } from "./toastPolicy";

export interface RealtimeContextValue {
  /**
   * Stable for the provider's lifetime, never null: it forwards to the current connection,
   * which the provider creates after mount and replaces when the settings change.
   */
  client: RealtimeClientApi;
  state: ConnectionState;
  /** The provider's `toastPolicy`: what RealtimeToast shows unless given its own `policy`. */
  toastPolicy: ToastPolicy;
}

export const RealtimeContext = createContext<RealtimeContextValue | null>(null);
RealtimeContext.displayName = "RealtimeContext";

export const RealtimeStatusContext = createContext<RealtimeStatus | null>(null);
RealtimeStatusContext.displayName = "RealtimeStatusContext";

function outsideProvider(hook: string): Error {
  return new Error(
    `${hook} must be used inside <RealtimeProvider>: wrap your app (inside QueryClientProvider) in <RealtimeProvider options={...}>.`,
  );
}

/** The client and its connection state. Throws outside RealtimeProvider. */
export function useRealtime(): RealtimeContextValue {
  return useRealtimeFor("useRealtime");
}

/** The provider's client, to subscribe to events yourself (`client.on("ORDER_RECEIVED", ...)`). */
export function useRealtimeClient(): RealtimeClientApi {
  return useRealtimeFor("useRealtimeClient").client;
}

/** State, gateway instance and last event; re-renders on each of them. Throws outside RealtimeProvider. */
export function useRealtimeStatus(): RealtimeStatus {
  return useRealtimeStatusFor("useRealtimeStatus");
}

/** For this package's hooks and components, so the error names the one the app called. */
export function useRealtimeFor(caller: string): RealtimeContextValue {
  const value = useContext(RealtimeContext);
  if (value === null) throw outsideProvider(caller);
  return value;
}

export function useRealtimeStatusFor(caller: string): RealtimeStatus {
  const value = useContext(RealtimeStatusContext);
  if (value === null) throw outsideProvider(caller);
  return value;
}
