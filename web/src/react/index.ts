// The React layer: one provider per app, a hook, a header status dot and toasts.
// Files that use hooks carry "use client"; this barrel only re-exports, so server components
// can import the types and DEFAULT_INVALIDATION from it too.
export { RealtimeProvider, type RealtimeProviderProps } from "./RealtimeProvider";
export { DEFAULT_INVALIDATION, type InvalidationMap } from "./invalidation";
export {
  RealtimeContext,
  useRealtime,
  useRealtimeClient,
  useRealtimeStatus,
  type RealtimeContextValue,
} from "./context";
export type { RealtimeStatus } from "./statusStore";
export {
  useRealtimeEvents,
  DEFAULT_EVENT_LIMIT,
  type UseRealtimeEventsOptions,
  type UseRealtimeEventsResult,
} from "./useRealtimeEvents";
export { ConnectionStatus, type ConnectionStatusProps } from "./ConnectionStatus";
export { RealtimeToast, type RealtimeToastProps } from "./RealtimeToast";
export { describeFrame, type FrameDescription } from "./describeFrame";
export {
  applyToastPolicy,
  importantOnly,
  DEFAULT_TOAST_POLICY,
  type ToastPolicy,
} from "./toastPolicy";
export { AvailabilityMemory, AVAILABILITY_MEMORY_CAP } from "../client/availability";
export type {
  ConnectionState,
  RealtimeClientApi,
  RealtimeClientOptions,
  RealtimeFrame,
  TokenGrant,
} from "../client/types";
