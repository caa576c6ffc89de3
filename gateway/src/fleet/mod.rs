//! What an instance does as one of many: drain its clients onto the others when it stops, prove
//! that events flow end to end, and answer for the whole cluster.
//!
//! - [`drain`] — the drain signal, each connection's turn to close, waiting for them.
//! - [`canary`] — the end-to-end probe behind `degraded`.
//! - [`cluster`] — presence and cluster-wide stats over NATS request/reply.

pub(crate) mod canary;
pub(crate) mod cluster;
pub(crate) mod drain;
