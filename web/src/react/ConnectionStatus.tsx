"use client";
import { useId, useState, type CSSProperties } from "react";
import type { ConnectionState } from "../client/types";
import { useRealtimeStatusFor } from "./context";

export interface ConnectionStatusProps {
  /** How the tooltip writes the last event's time; default 24-hour local "10:42:07". */
  formatTime?: (date: Date) => string;
}

const LABELS: Record<ConnectionState, string> = {
  open: "Live",
  connecting: "Connecting",
  reconnecting: "Reconnecting",
  closed: "Disconnected",
};

// Tailwind's green-600 / amber-500 / red-600: distinguishable on light and dark headers.
const COLOURS: Record<ConnectionState, string> = {
  open: "#16a34a",
  connecting: "#f59e0b",
  reconnecting: "#f59e0b",
  closed: "#dc2626",
};

const styles = {
  wrapper: { position: "relative", display: "inline-flex", alignItems: "center" },
  trigger: {
    display: "inline-flex",
    alignItems: "center",
    justifyContent: "center",
    width: 20,
    height: 20,
    borderRadius: "50%",
    cursor: "default",
  },
  dot: { display: "block", width: 10, height: 10, borderRadius: "50%" },
  tooltip: {
    position: "absolute",
    top: "calc(100% + 6px)",
    right: 0,
    zIndex: 1000,
    padding: "4px 8px",
    borderRadius: 4,
    background: "#111827",
    color: "#f9fafb",
    font: "12px/1.4 system-ui, sans-serif",
    whiteSpace: "nowrap",
    pointerEvents: "auto",
  },
  // Present for assistive technology, invisible on screen.
  visuallyHidden: {
    position: "absolute",
    width: 1,
    height: 1,
    padding: 0,
    margin: -1,
    overflow: "hidden",
    clip: "rect(0, 0, 0, 0)",
    whiteSpace: "nowrap",
    border: 0,
  },
} satisfies Record<string, CSSProperties>;

/**
 * A status dot for the header: green live, amber (re)connecting, red disconnected. The state
 * is also text (not colour alone), and a tooltip with state, gateway instance and last event
 * time opens on hover and on keyboard focus.
 */
export function ConnectionStatus({ formatTime = formatClock }: ConnectionStatusProps) {
  const { state, instance, lastEventAt } = useRealtimeStatusFor("ConnectionStatus");
  const tooltipId = useId();
  const [hovered, setHovered] = useState(false);
  const [focused, setFocused] = useState(false);
  // Escape hides the tooltip until the pointer or focus comes back (WCAG 1.4.13).
  const [dismissed, setDismissed] = useState(false);
  const open = (hovered || focused) && !dismissed;

  const label = LABELS[state];
  const parts = [label];
  if (instance !== null) parts.push(instance);
  parts.push(lastEventAt !== null ? `last event ${formatTime(lastEventAt)}` : "no events yet");
  const description = parts.join(" · ");

  return (
    // Hover is handled on the wrapper so moving onto the tooltip itself keeps it open.
    <span
      style={styles.wrapper}
      onMouseEnter={() => {
        setHovered(true);
        setDismissed(false);
      }}
      onMouseLeave={() => setHovered(false)}
    >
      <span
        role="status"
        aria-label={description}
        aria-describedby={tooltipId}
        data-state={state}
        tabIndex={0}
        style={styles.trigger}
        onFocus={() => {
          setFocused(true);
          setDismissed(false);
        }}
        onBlur={() => setFocused(false)}
        onKeyDown={(event) => {
          if (event.key === "Escape") setDismissed(true);
        }}
      >
        <span aria-hidden="true" style={{ ...styles.dot, background: COLOURS[state] }} />
        {/* Only the state: a live region whose text held the event time would be announced
            on every event. */}
        <span style={styles.visuallyHidden}>{label}</span>
      </span>
      <span id={tooltipId} role="tooltip" hidden={!open} style={styles.tooltip}>
        {description}
      </span>
    </span>
  );
}

function formatClock(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}
