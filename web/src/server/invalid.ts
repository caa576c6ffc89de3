// Why the publisher refuses an event: the bridge's reject reasons it can hit (generated from the
// Rust `RejectReason`), plus its own `internal_type`.
import type { RejectReason } from "../generated/schema.js";

// The bridge's reasons a publisher can hit. Naming one the bridge does not have stops the
// build: the generated RejectReason is the list of them.
type PublisherRejectReason =
  | "unknown_type"
  | "missing_field"
  | "invalid_field"
  | "unknown_action"
  | "bad_timestamp"
  | "too_large";
const reasonsAreTheBridges: [Exclude<PublisherRejectReason, RejectReason>] extends [never] ? true : never = true;
void reasonsAreTheBridges;

/**
 * The bridge's reject reasons that a publisher can hit, plus `internal_type`: the bridge would
 * accept a CANARY on its own channel, but that channel is the bridge's probe, not the workers'.
 */
export type InvalidRealtimeEventReason = Extract<RejectReason, PublisherRejectReason> | "internal_type";

export class InvalidRealtimeEvent extends Error {
  readonly reason: InvalidRealtimeEventReason;

  constructor(reason: InvalidRealtimeEventReason, message: string) {
    // The reason leads the message, as in the bridge's `Reject` display, so a log line alone
    // tells which rule failed.
    super(`${reason}: ${message}`);
    this.name = "InvalidRealtimeEvent";
    this.reason = reason;
  }
}
