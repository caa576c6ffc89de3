//! Fan-out: from one frame to every connection.
//!
//! A debounced event (or batch) is coalesced ([`coalesce`]), serialized once into the wire
//! forms of both transports ([`frame`]), published once into a bounded broadcast ring with the
//! heartbeat ticks and the drain notice ([`hub`]), and taken by each connection in batches, kept
//! or filtered for its channels, with the cursor its heartbeat may claim ([`outbox`]).
//!
//! - [`coalesce`] — folding events of one type into a batch (debounce and resume alike).
//! - [`cursor`] — the resume cursor `<epoch>-<seq>` every frame carries.
//! - [`frame`] — wire frames and the SSE / WebSocket encoders.
//! - [`hub`] — the broadcast ring: wire frames and control messages.
//! - [`outbox`] — one connection's side of it.

pub(crate) mod coalesce;
pub(crate) mod cursor;
pub(crate) mod frame;
pub(crate) mod hub;
pub(crate) mod outbox;

pub(crate) use cursor::Cursor;
pub(crate) use hub::{Hub, Tap};
