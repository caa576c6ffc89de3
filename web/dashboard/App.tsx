import { useCallback, useEffect, useMemo, useState, type MouseEvent } from "react";
import {
  AvailabilityMemory,
  RealtimeClient,
  RealtimeHistory,
  SharedRealtimeClient,
  canShareAcrossTabs,
} from "../src/client";
import type { TabRole } from "../src/client";
import {
  ConnectionStatus,
  RealtimeProvider,
  RealtimeToast,
  useRealtimeClient,
} from "../src/react";
import type { ConnectionState, RealtimeClientApi, RealtimeClientOptions } from "../src/client/types";
import { ApiKeyGate } from "./ApiKeyGate";
import { Counters } from "./Counters";
import { EntityPanel } from "./EntityPanel";
import { Freshness, isStale } from "./Freshness";
import { OutOfStockPanel } from "./OutOfStockPanel";
import { RejectedPanel, useRejected } from "./RejectedPanel";
import { Feed, type Navigate } from "./Feed";
import { Sparkline } from "./Sparkline";
import { forgetApiKey, saveApiKey, type BootConfig } from "./config";
import { formatAgo, formatClock, formatRate, parseDetailPath } from "./format";
import { FEED_CAP, RATE_WINDOW_SECONDS, SPARK_SECONDS } from "./liveStore";
import { useLive } from "./useLive";
import { useOpeningState } from "./useOpeningState";

export function App({ config }: { config: BootConfig }) {
  const [apiKey, setApiKey] = useState<string | null>(config.apiKey);

  const options = useMemo<RealtimeClientOptions | null>(
    () =>
      apiKey === null
        ? null
        : {
            baseUrl: "",
            // Used only to mint a token (POST /api/realtime/token, X-API-Key header); the
            // stream URL carries the token, never the key.
            apiKey,
            transport: config.transport,
            heartbeatIntervalMs: config.heartbeatIntervalMs,
            // The page opens with the recent feed already filled; a reconnect resumes instead.
            backfill: FEED_CAP,
          },
    [apiKey, config.transport, config.heartbeatIntervalMs],
  );
  const connection = useConnection(options, config.shareTabs);

  if (options === null) {
    return (
      <ApiKeyGate
        onSubmit={(key) => {
          saveApiKey(key);
          setApiKey(key);
        }}
      />
    );
  }

  return (
    <RealtimeProvider client={connection.client ?? undefined}>
      <Dashboard
        role={connection.role}
        error={connection.error}
        history={connection.history}
        transport={config.transport}
        heartbeatIntervalMs={config.heartbeatIntervalMs}
        homeHref={`/${config.search}`}
      />
    </RealtimeProvider>
  );
}

const STATE_LABELS: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
};

function usePath(): [string, Navigate] {
  const [path, setPath] = useState(() => window.location.pathname);
  useEffect(() => {
    const onPop = (): void => setPath(window.location.pathname);
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const navigate = useCallback<Navigate>((target) => {
    const url = new URL(target, window.location.href);
    if (url.origin !== window.location.origin) {
      window.location.assign(url.href);
      return;
    }
    // In-page: the connection, counters and feed stay; the URL is exactly the detail path.
    const next = `${url.pathname}${url.search}${url.hash}`;
    const { pathname, search, hash } = window.location;
    if (next !== `${pathname}${search}${hash}`) window.history.pushState(null, "", next);
    setPath(url.pathname);
  }, []);
  return [path, navigate];
}

/** Either client: both say why the last attempt failed (a refused key among others). */
type DashboardClient = RealtimeClientApi & { readonly lastError: string | null };

/**
 * The page's one connection. With sharing on (the default here; `?share=0` turns it off) the
 * tabs of this origin with the same key hold a single gateway connection between them, led by
 * one tab; a tab with another key is in a group of its own (SharedRealtimeClient).
 */
function useConnection(
  options: RealtimeClientOptions | null,
  share: boolean,
): {
  client: RealtimeClientApi | null;
  history: RealtimeHistory | null;
  role: TabRole | "alone";
  error: string | null;
} {
  const [client, setClient] = useState<RealtimeClientApi | null>(null);
  const [role, setRole] = useState<TabRole | "alone">("alone");
  const [error, setError] = useState<string | null>(null);
  const history = useMemo(
    () => (options === null ? null : new RealtimeHistory({ baseUrl: options.baseUrl, apiKey: options.apiKey })),
    [options],
  );
  useEffect(() => {
    if (options === null) return;
    // Created in an effect so that StrictMode's second render opens no second connection.
    let created: DashboardClient;
    let offRole = (): void => {};
    if (share && canShareAcrossTabs()) {
      // A namespace: the dashboard's tabs group apart from other apps on the origin, and
      // within it by key.
      const shared = new SharedRealtimeClient({ ...options, shareName: "rakuda-dashboard" });
      offRole = shared.onRole(setRole);
      setRole(shared.role);
      created = shared;
    } else {
      created = new RealtimeClient(options);
      setRole("alone");
    }
    setClient(created);
    const offState = created.onState(() => setError(created.lastError));
    return () => {
      offRole();
      offState();
      setError(null);
      created.stop();
      setClient(null);
    };
  }, [options, share]);
  // Started only once the provider has attached it (a child's effects run before its
  // parent's): a tab that joins a shared stream is handed the other tabs' recent frames at
  // once, and none of them may arrive before anyone listens.
  useEffect(() => {
    client?.start();
  }, [client]);
  return { client, history, role, error };
}

/** The gateway said no to the key itself (not "unreachable"): retrying will not help. */
function isRefusal(error: string | null): boolean {
  return error !== null && /HTTP 40[13]\b/.test(error);
}

const ROLE_LABELS: Record<TabRole | "alone", string> = {
  alone: "own connection",
  waiting: "joining…",
  leader: "this tab connects",
  follower: "shared with another tab",
};

function Dashboard({
  role,
  error,
  history,
  transport,
  heartbeatIntervalMs,
  homeHref,
}: {
  role: TabRole | "alone";
  /** Why the connection (or, in a shared tab, this tab's own key check) last failed. */
  error: string | null;
  history: RealtimeHistory | null;
  transport: "sse" | "ws";
  heartbeatIntervalMs: number;
  /** "/" plus the page's own settings (?transport=, ?heartbeat=). */
  homeHref: string;
}) {
  const client = useRealtimeClient();
  const { view } = useLive(client);
  // What the toasts know of each product's stock, seeded from the snapshot: a toast says
  // "went out of stock", not "is still out of stock".
  const [availability] = useState(() => new AvailabilityMemory());
  const opening = useOpeningState(client, history, availability);
  const rejected = useRejected(history);
  const [path, navigate] = usePath();
  const detail = parseDetailPath(path);

  const peak = view.perSecond.reduce((max, v) => (v > max ? v : max), 0);
  const silentFor = view.lastHeardAt === null ? null : view.now - view.lastHeardAt;
  const stale = isStale(view, heartbeatIntervalMs);

  const forget = (e: MouseEvent<HTMLAnchorElement>): void => {
    e.preventDefault();
    forgetApiKey();
    window.location.reload();
  };

  return (
    <div className={`app state-${view.state}`}>
      <header className="topbar">
        <h1 className="brand">
          RAKUDA <span className="brand-dot">·</span> Live operations
        </h1>
        <div className="status">
          <ConnectionStatus />
          <span className="state-label" aria-live="polite">
            {STATE_LABELS[view.state]}
          </span>
        </div>
        <dl className="meta">
          <div>
            <dt>Gateway</dt>
            <dd data-testid="gateway-instance">{view.instance ?? "—"}</dd>
          </div>
          <div className={stale ? "stale" : undefined}>
            <dt>Last heard</dt>
            <dd data-testid="last-heard">
              {view.lastHeardAt === null
                ? "never"
                : `${formatClock(view.lastHeardAt)} · ${formatAgo(view.lastHeardAt, view.now)}`}
            </dd>
          </div>
          <div>
            <dt>Transport</dt>
            <dd>{transport === "ws" ? "WebSocket" : "SSE"}</dd>
          </div>
          <div>
            <dt>Stream</dt>
            <dd data-testid="tab-role" data-role={role}>
              {ROLE_LABELS[role]}
            </dd>
          </div>
        </dl>
        <a href="/" className="forget" onClick={forget}>
          Forget key
        </a>
      </header>

      {view.state !== "open" && view.state !== "connecting" && (
        <p className="banner" role="status">
          {isRefusal(error)
            ? "The gateway refused this API key: use “Forget key” to enter another."
            : view.everOpened
              ? "Connection lost: reconnecting automatically. Missed events are replayed on reconnect."
              : "Cannot connect to the gateway yet; retrying. A wrong or revoked API key looks like this too: use “Forget key” to enter another."}
          {error !== null && (
            <span className="banner-detail" data-testid="connection-error" data-refused={isRefusal(error)}>
              {" "}
              ({error})
            </span>
          )}
        </p>
      )}

      <Freshness view={view} heartbeatIntervalMs={heartbeatIntervalMs} silentFor={silentFor} />

      <main className="content">
        <section className="stats" aria-label="Today's counters">
          <Counters
            counts={opening.counts}
            exact={opening.exact}
            timezone={opening.timezone}
            countedSince={opening.countedSince}
          />
          <section className="card rate" aria-label="Events per second">
            <h2 className="card-title">Events / second</h2>
            <div className="rate-row">
              <p className="counter-value">
                <span data-testid="events-per-second">{formatRate(view.rate)}</span>
              </p>
              <Sparkline values={view.perSecond} />
            </div>
            <p className="card-foot">
              {RATE_WINDOW_SECONDS} s avg · last {SPARK_SECONDS} s, peak {peak}/s · {view.total} total
            </p>
          </section>
        </section>

        <section className={`lower${detail ? " with-detail" : ""}`}>
          <section className="card feed-card" aria-label="Event feed">
            <h2 className="card-title">
              Event feed <span className="card-sub">newest first · last {FEED_CAP}</span>
            </h2>
            <Feed rows={view.rows} navigate={navigate} now={view.now} />
          </section>
          <div className="side">
            <OutOfStockPanel state={opening} navigate={navigate} now={view.now} />
            <RejectedPanel state={rejected} now={view.now} />
          </div>
          {detail && (
            <EntityPanel
              kind={detail.kind}
              id={detail.id}
              rows={view.rows}
              navigate={navigate}
              homeHref={homeHref}
            />
          )}
        </section>
      </main>

      <RealtimeToast onNavigate={navigate} availability={availability} />
    </div>
  );
}
