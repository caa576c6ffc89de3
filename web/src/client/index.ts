// The framework-free client's public entry point.
export { RealtimeClient, backoffDelay, renewalMargin } from "./RealtimeClient";
export type {
  ConnectionState,
  RealtimeClientApi,
  RealtimeClientOptions,
  RealtimeFrame,
  ResetCause,
  TokenGrant,
  Unsubscribe,
} from "./types";
