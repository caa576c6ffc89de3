"use client";
import { useEffect, useRef, useState, type CSSProperties } from "react";
import { AvailabilityMemory } from "../client/availability";
import type { EventType } from "../generated/schema";
import { useRealtimeFor } from "./context";
import { describeFrame } from "./describeFrame";
import { applyToastPolicy, type ToastPolicy } from "./toastPolicy";

export interface RealtimeToastProps {
  /** Where clicking a toast goes; pass Next.js's `router.push`. Default: a full page load. */
  onNavigate?: (path: string) => void;
  /** How long a toast stays, in ms (default 5000); hovering or focusing it pauses this. */
  durationMs?: number;
  /** How many toasts show at once (default 4); the oldest goes first. */
  max?: number;
  /** Which frames to show; default: the provider's `toastPolicy` ("important"). */
  policy?: ToastPolicy;
  /**
   * Each product's last known availability, which tells "went out of stock" (a toast) from
   * "still out of stock" (none). Pass one you seed from a snapshot (`seed(events)`) so that a
   * product already out when the page opened is not announced again; by default the toast
   * keeps its own, learnt from the frames it sees (a backfill included). Cleared on a reset.
   */
  availability?: AvailabilityMemory;
}

interface Toast {
  id: number;
  type: EventType;
  text: string;
  path: string;
}

const styles = {
  region: {
    position: "fixed",
    right: 16,
    bottom: 16,
    zIndex: 1000,
    display: "flex",
    flexDirection: "column",
    gap: 8,
    maxWidth: "min(360px, calc(100vw - 32px))",
    pointerEvents: "none",
  },
  toast: {
    pointerEvents: "auto",
    display: "block",
    width: "100%",
    padding: "10px 14px",
    border: "1px solid #d1d5db",
    borderRadius: 6,
    background: "#ffffff",
    color: "#111827",
    boxShadow: "0 4px 12px rgba(0, 0, 0, 0.12)",
    font: "14px/1.4 system-ui, sans-serif",
    textAlign: "left",
    cursor: "pointer",
  },
} satisfies Record<string, CSSProperties>;

function assignLocation(path: string): void {
  window.location.assign(path);
}

/** Frames arriving closer together than this are shown together, in one render. */
export const TOAST_FLUSH_MS = 100;

/**
 * One toast per realtime frame: "New order ord_42" for a single event, "37 inventory changes"
 * for a batch (one toast, not 37); by default only new orders and products going out of stock.
 * Each toast is a button that opens the entity (or, for a batch, the list) and disappears after
 * `durationMs`.
 */
export function RealtimeToast({
  onNavigate = assignLocation,
  durationMs = 5000,
  max = 4,
  policy,
  availability,
}: RealtimeToastProps) {
  const { client, toastPolicy } = useRealtimeFor("RealtimeToast");
  // Read through a ref so a new inline policy function does not resubscribe.
  const policyRef = useRef<ToastPolicy>(policy ?? toastPolicy);
  useEffect(() => {
    policyRef.current = policy ?? toastPolicy;
  });
  const cap = Number.isNaN(max) ? 4 : Math.max(1, Math.floor(max));
  const [toasts, setToasts] = useState<Toast[]>([]);
  const nextId = useRef(0);
  const [ownMemory] = useState(() => new AvailabilityMemory());
  const stock = availability ?? ownMemory;

  useEffect(() => {
    // A burst of single frames (debounce off) would otherwise re-render once per frame and
    // freeze the page: the first toast shows at once, later ones at most every TOAST_FLUSH_MS.
    let pending: Toast[] = [];
    let timer: ReturnType<typeof setTimeout> | null = null;
    let lastFlush = Number.NEGATIVE_INFINITY;
    const flush = (): void => {
      timer = null;
      lastFlush = Date.now();
      const added = pending;
      pending = [];
      setToasts((current) => [...current, ...added].slice(-cap));
    };
    const off = client.onFrame((received) => {
      const frame = applyToastPolicy(policyRef.current, received, stock);
      if (frame === null) return;
      const description = describeFrame(frame);
      if (!description) return;
      nextId.current += 1;
      pending = [...pending, { id: nextId.current, type: frame.type, ...description }].slice(-cap);
      if (timer !== null) return;
      const wait = lastFlush + TOAST_FLUSH_MS - Date.now();
      if (wait <= 0) flush();
      else timer = setTimeout(flush, wait);
    });
    // Events were missed for good: what was known may be wrong, and a recreated stream's seqs
    // start again. A product's next "out of stock" is announced (once).
    const offReset = client.onReset(() => stock.clear());
    return () => {
      off();
      offReset();
      if (timer !== null) clearTimeout(timer);
    };
  }, [client, cap, stock]);

  const dismiss = (id: number): void => {
    setToasts((current) => current.filter((toast) => toast.id !== id));
  };

  // The live region is always rendered: screen readers only announce changes to a region
  // that already existed. `max` may have shrunk since the toasts were added.
  return (
    <div aria-live="polite" aria-label="Live updates" role="region" style={styles.region}>
      {toasts.slice(-cap).map((toast) => (
        <ToastButton
          key={toast.id}
          toast={toast}
          durationMs={durationMs}
          onDismiss={() => dismiss(toast.id)}
          onOpen={() => {
            dismiss(toast.id);
            onNavigate(toast.path);
          }}
        />
      ))}
    </div>
  );
}

function ToastButton({
  toast,
  durationMs,
  onDismiss,
  onOpen,
}: {
  toast: Toast;
  durationMs: number;
  onDismiss: () => void;
  onOpen: () => void;
}) {
  // A toast under the pointer or keyboard focus stays (WCAG 2.2.1): vanishing would drop the
  // focus and take the click target away. The full duration restarts when it is left.
  const [held, setHeld] = useState({ hover: false, focus: false });
  const paused = held.hover || held.focus;
  const onDismissRef = useRef(onDismiss);
  useEffect(() => {
    onDismissRef.current = onDismiss;
  });

  useEffect(() => {
    if (paused) return;
    const timer = setTimeout(() => onDismissRef.current(), durationMs);
    return () => clearTimeout(timer);
  }, [paused, durationMs]);

  return (
    <button
      type="button"
      data-testid="realtime-toast"
      data-type={toast.type}
      style={styles.toast}
      onClick={onOpen}
      onKeyDown={(event) => {
        if (event.key === "Escape") onDismiss();
      }}
      onMouseEnter={() => setHeld((h) => ({ ...h, hover: true }))}
      onMouseLeave={() => setHeld((h) => ({ ...h, hover: false }))}
      onFocus={() => setHeld((h) => ({ ...h, focus: true }))}
      onBlur={() => setHeld((h) => ({ ...h, focus: false }))}
    >
      {toast.text}
    </button>
  );
}
