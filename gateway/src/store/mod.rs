//! Reading JetStream, in one place: every consumer the gateway makes, what it counts and what it
//! reads. The stages that need the stream ask here; none makes a consumer of its own.
//!
//! - [`feed`] — the live read: one ordered consumer per instance, for `ingest`.
//! - [`stream`] — counts (a filtered consumer's pending count, nothing read), the first
//!   sequence since a time, and short-lived ordered reads of a range, for `resume` (replays,
//!   backfill, the ring's warm-up) and `history` (today's totals).
//! - [`latest`] — a consumer read whole into the latest state, for `history::fill`.
//! - [`consumer`] — a consumer deleted however its reading ends, for the readers of
//!   `<STREAM>_LATEST` (`history::fill`) and of the DLQ (`history::dlq`).
//! - [`flight`] — one computation in flight per distinct request (a summary, a backfill's
//!   counts), so a herd of identical requests costs JetStream one consumer, not one each.

pub(crate) mod consumer;
pub(crate) mod feed;
pub(crate) mod flight;
pub(crate) mod latest;
pub(crate) mod stream;
