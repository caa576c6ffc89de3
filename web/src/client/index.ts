// The framework-free client's public entry point.
export { RealtimeClient, backoffDelay, renewalMargin, cursorSeq } from "./RealtimeClient";
export {
  SharedRealtimeClient,
  canShareAcrossTabs,
  type SharedClientOptions,
  type TabRole,
  type LockManagerLike,
  type ChannelLike,
} from "./SharedRealtimeClient";
export {
  RealtimeHistory,
  HistoryError,
  parseSummary,
  parseSnapshotPage,
  type Summary,
  type SnapshotPage,
  type SnapshotRequest,
} from "./history";
export { isOutOfStock } from "./inventory";
export type {
  ConnectionState,
  RealtimeClientApi,
  RealtimeClientOptions,
  RealtimeFrame,
  ResetCause,
  TokenGrant,
  Unsubscribe,
} from "./types";
