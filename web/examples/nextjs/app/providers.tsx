"use client";
// Client-side providers for the root layout: TanStack Query, the realtime connection and the
// realtime toasts. In your app, import from "@rakuda/realtime/react" instead of the relative path.
import { useState, type ReactNode } from "react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import {
  RealtimeProvider,
  RealtimeToast,
  type RealtimeClientOptions,
  type TokenGrant,
} from "../../../src/react";

/**
 * Tokens come from this app's own route (app/api/realtime-token/route.ts), which holds the
 * API key server-side: the key never reaches the browser, and the route can refuse users who
 * are not signed in. The session cookie goes along because the route is same-origin.
 */
async function getToken(): Promise<TokenGrant> {
  const response = await fetch("/api/realtime-token", { method: "POST", cache: "no-store" });
  if (!response.ok) throw new Error(`realtime token: HTTP ${response.status}`);
  return (await response.json()) as TokenGrant;
}

// Module scope: the same object on every render (the provider would cope with a new one too).
const realtimeOptions: RealtimeClientOptions = {
  // NEXT_PUBLIC_ variables are inlined at build time; "" means the page's own origin (a
  // gateway behind the same reverse proxy).
  baseUrl: process.env.NEXT_PUBLIC_REALTIME_URL ?? "",
  getToken,
};

export function Providers({ children }: { children: ReactNode }) {
  // One QueryClient per browser session, created once (useState, not module scope, so server
  // renders of different requests never share a cache).
  const [queryClient] = useState(
    () => new QueryClient({ defaultOptions: { queries: { staleTime: 30_000 } } }),
  );
  const router = useRouter();

  return (
    <QueryClientProvider client={queryClient}>
      <RealtimeProvider options={realtimeOptions}>
        {children}
        {/* Client-side navigation instead of a full page load. */}
        <RealtimeToast onNavigate={(path) => router.push(path)} />
      </RealtimeProvider>
    </QueryClientProvider>
  );
}
