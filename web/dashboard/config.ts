// Boot-time configuration read from the page's own URL and sessionStorage.
//
// `?apiKey=` (for wall screens) is moved into sessionStorage and removed from the address bar at
// once; the key is only ever handed to the client as `apiKey`, which mints a token with the
// X-API-Key header. It never appears in an EventSource or WebSocket URL.

export const API_KEY_STORAGE_KEY = "rakuda.apiKey";
export const DEFAULT_HEARTBEAT_MS = 30_000;

export interface BootConfig {
  apiKey: string | null;
  transport: "sse" | "ws";
  heartbeatIntervalMs: number;
  /** Share one gateway connection between tabs (default; `?share=0` gives each tab its own). */
  shareTabs: boolean;
  /** The page's own query without apiKey ("?transport=ws" or ""), for links back home. */
  search: string;
}

export function loadApiKey(): string | null {
  try {
    const value = window.sessionStorage.getItem(API_KEY_STORAGE_KEY);
    return value !== null && value !== "" ? value : null;
  } catch {
    return null;
  }
}

export function saveApiKey(apiKey: string): void {
  try {
    window.sessionStorage.setItem(API_KEY_STORAGE_KEY, apiKey);
  } catch {
    // Storage disabled: the key lives for this page view only.
  }
}

export function forgetApiKey(): void {
  try {
    window.sessionStorage.removeItem(API_KEY_STORAGE_KEY);
  } catch {
    // Nothing stored.
  }
}

/** Reads the URL once at start-up; strips `apiKey` from the address bar. */
export function readBootConfig(): BootConfig {
  const url = new URL(window.location.href);
  const params = url.searchParams;
  let search = url.search;

  let apiKey = loadApiKey();
  if (params.has("apiKey")) {
    const fromUrl = (params.get("apiKey") ?? "").trim();
    params.delete("apiKey");
    const rest = params.toString();
    search = rest ? `?${rest}` : "";
    window.history.replaceState(window.history.state, "", `${url.pathname}${search}${url.hash}`);
    if (fromUrl !== "") {
      saveApiKey(fromUrl);
      apiKey = fromUrl;
    }
  }

  const transport = params.get("transport") === "ws" ? "ws" : "sse";

  let heartbeatIntervalMs = DEFAULT_HEARTBEAT_MS;
  const heartbeat = params.get("heartbeat");
  if (heartbeat !== null) {
    const parsed = Number(heartbeat);
    if (Number.isFinite(parsed) && parsed > 0) heartbeatIntervalMs = Math.round(parsed);
  }

  const shareTabs = params.get("share") !== "0";

  return { apiKey, transport, heartbeatIntervalMs, shareTabs, search };
}
