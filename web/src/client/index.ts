// The framework-free client's public entry point.
export { RealtimeClient } from "./RealtimeClient";
export { renewalMargin } from "./tokens";
export { cursorSeq } from "./messages";
export {
  backoffDelay,
  reconnectDelay,
  RESET_REFETCH_SPREAD_MS,
  RETRY_AFTER_JITTER_MS,
  resetRefetchDelay,
  parseRetryAfter,
  afterRetryAfter,
} from "./spread";
export { TokenRequestError } from "./tokenRequest";
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
  type SnapshotChannel,
  type SnapshotRequest,
} from "./history";
export { parseDlqPage, DLQ_MAX_LIMIT, type DlqPage, type DlqRequest, type RejectCounts, type RejectedMessage } from "./dlq";
export { availabilityOf, isOutOfStock } from "./inventory";
export { AvailabilityMemory, AVAILABILITY_MEMORY_CAP } from "./availability";
export type {
  ConnectionState,
  RealtimeClientApi,
  RealtimeClientOptions,
  RealtimeFrame,
  ResetCause,
  TokenGrant,
  Unsubscribe,
} from "./types";
