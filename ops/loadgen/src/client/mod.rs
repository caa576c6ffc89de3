//! One subscriber, SSE or WebSocket, that stays connected: when its stream ends it reconnects
//! with its last cursor (`Last-Event-ID` / `lastEventId`), as the browser client does, and
//! tallies every frame.
//!
//! - `target` — where and how a subscriber connects ([`Target`]), and the URL and query built
//!   from it.
//! - `reconnect` — the loop that connects, tries the next gateway, backs off and reconnects
//!   ([`run`]).
//! - `backoff` — how long it waits before it reconnects ([`Backoff`]).
//! - `balancer` — a fleet's clients spread over its gateways ([`Balancer`]).
//! - `tcp` — the connection under every client, from a chosen source address.
//! - `sse` — one SSE connection on a plain socket, read in place; or over HTTPS with HTTP/2.
//! - `chunked` — `Transfer-Encoding: chunked` decoded incrementally, for `sse` and `http`.
//! - `head` — HTTP/1.1 request and response heads, for `sse` and `http`.
//! - `ws` — one WebSocket connection, plain or over TLS.
//! - `frames` — what a frame does to the tally, whichever transport carried it.
//! - `refusal` — what a refusal before streaming says: its name and its `Retry-After`.
//! - [`http`] — one plain GET: history requests and the fleet monitor's scrapes.
//!
//! An `https://` target (a secured deployment behind nginx, as browsers reach it) is trusted
//! with the CA in [`Target::tls`] (`rakuda_testkit::tls`): SSE then goes over HTTP/2 and the
//! WebSocket over TLS. The fleet test (gateway/tests/integration/deployment/) connects so.

mod backoff;
mod balancer;
mod chunked;
mod frames;
mod head;
pub mod http;
mod reconnect;
mod refusal;
mod sse;
mod target;
mod tcp;
mod ws;

use std::sync::{Arc, Mutex, MutexGuard};

pub use backoff::{
    after_retry_after, web_client_delay, Backoff, RETRY_AFTER_JITTER, WEB_BACKOFF_INITIAL,
    WEB_BACKOFF_MAX,
};
pub use balancer::{Balancer, NEXT_GATEWAY_TRIES};
pub use reconnect::{run, run_from, run_kickable};
pub(crate) use refusal::refusal_name;
pub use target::{OnReset, ResetHook, Target, Transport};

use crate::tally::Tally;

/// A subscriber's shared tally: the subscriber task writes, the caller reads.
pub type SharedTally = Arc<Mutex<Tally>>;

/// Locks a tally; a panic elsewhere does not hide what was recorded.
pub fn lock(tally: &SharedTally) -> MutexGuard<'_, Tally> {
    crate::unpoisoned(tally)
}
