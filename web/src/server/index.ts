// Entry point of `@rakuda/realtime/server`: the publisher workers use to send events to the
// bridge. Kept apart from the browser entry so that bundling the client never pulls this in.
export {
  buildRealtimeEvent,
  publishRealtimeEvent,
  InvalidRealtimeEvent,
} from "./publish.js";
export type {
  BuildOptions,
  BuiltRealtimeEvent,
  InvalidRealtimeEventReason,
  PublishOutcome,
  RealtimeEventInput,
  RedisPublisher,
} from "./publish.js";
export { publishRealtimeEventHttp } from "./publishHttp.js";
export type { FetchLike, HttpPublishOutcome, HttpPublishTarget } from "./publishHttp.js";
