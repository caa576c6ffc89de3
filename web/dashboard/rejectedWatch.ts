// The "Rejected" panel's data: GET /api/realtime/dlq polled every POLL_MS, so a worker that
// starts sending bad events shows within seconds. One request at a time; a failure waits
// twice as long each time, up to MAX_BACKOFF_MS, and a success returns to POLL_MS. A 403 (the
// credential has no admin scope) stops the polling for good: asking again cannot help, and
// the panel says why. Framework-free, with its timers injected, so it is tested alone.
import type { DlqPage } from "../src/client/dlq";
import { HistoryError } from "../src/client/history";

/** How often the DLQ is read while all is well. */
export const POLL_MS = 3_000;
/** The longest wait after failures in a row. */
export const MAX_BACKOFF_MS = 30_000;
/** Rejected messages the panel lists. */
export const REJECTED_SHOWN = 8;

export type RejectedStatus = "loading" | "ok" | "failing" | "forbidden";

export interface RejectedState {
  status: RejectedStatus;
  /** The last page read; kept while later reads fail. */
  page: DlqPage | null;
  /** Why the last read failed, for the panel. */
  error: string | null;
}

/** The wait before the next read after `failures` failures in a row (0: all is well). */
export function pollDelay(failures: number): number {
  if (failures <= 0) return POLL_MS;
  return Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** Math.min(failures, 10));
}

export interface RejectedSource {
  rejected(request: { limit?: number }, signal?: AbortSignal): Promise<DlqPage>;
}

interface Timers {
  set(callback: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimers: Timers = {
  set: (callback, ms) => setTimeout(callback, ms),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class RejectedWatch {
  private state: RejectedState = { status: "loading", page: null, error: null };
  private failures = 0;
  private timer: unknown = null;
  private abort: AbortController | null = null;
  private stopped = false;

  constructor(
    private readonly source: RejectedSource,
    private readonly onChange: (state: RejectedState) => void,
    private readonly timers: Timers = realTimers,
  ) {}

  start(): void {
    void this.read();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timer = null;
  }

  private async read(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    const abort = new AbortController();
    this.abort = abort;
    try {
      const page = await this.source.rejected({ limit: REJECTED_SHOWN }, abort.signal);
      if (this.stopped) return;
      this.failures = 0;
      this.set({ status: "ok", page, error: null });
    } catch (error) {
      if (this.stopped) return;
      const message = error instanceof Error ? error.message : String(error);
      if (error instanceof HistoryError && error.status === 403) {
        this.set({ status: "forbidden", page: null, error: message });
        return;
      }
      this.failures += 1;
      this.set({ status: "failing", page: this.state.page, error: message });
    }
    this.timer = this.timers.set(() => void this.read(), pollDelay(this.failures));
  }

  private set(state: RejectedState): void {
    this.state = state;
    this.onChange(state);
  }
}
