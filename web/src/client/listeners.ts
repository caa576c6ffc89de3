// The listener sets behind `on`, `onFrame`, `onReset`, ... of the clients and the React relay:
// one way to subscribe and one way to call them, so a listener that throws or unsubscribes
// while being called behaves the same everywhere.
import type { Unsubscribe } from "./types";

export type Listener<T> = (value: T) => void;

/**
 * Adds `listener` to `set`. Wrapped, so the same function subscribed twice is two
 * subscriptions, each removed by its own `Unsubscribe`.
 */
export function addTo<T>(set: Set<Listener<T>>, listener: Listener<T>): Unsubscribe {
  const entry: Listener<T> = (value) => listener(value);
  set.add(entry);
  return () => {
    set.delete(entry);
  };
}

/** Calls `listener`; one that throws is rethrown from a fresh task, so it still reaches the
 * console / error reporting without stopping the others. */
export function safeCall<T>(listener: Listener<T>, value: T): void {
  try {
    listener(value);
  } catch (error) {
    setTimeout(() => {
      throw error;
    }, 0);
  }
}

/** Calls each listener of `listeners` (a copy: one may unsubscribe itself or another while
 * they are called). */
export function emit<T>(listeners: Set<Listener<T>> | undefined, value: T): void {
  if (!listeners) return;
  for (const listener of [...listeners]) safeCall(listener, value);
}
