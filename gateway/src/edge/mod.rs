//! The HTTP edge: who may come in and what they are told.
//!
//! - [`auth`] — credentials in requests, scopes, the middleware on `/api/realtime/*`.
//! - [`keys`] — the configured API keys and their ids.
//! - [`token`] — signed, expiring tokens for `EventSource`; rotation of their secret.
//! - [`auth_failures`] — failed attempts limited per client address.
//! - [`client_addr`] — the client's address, through trusted proxies only.
//! - [`unauthenticated`] — sockets not yet authenticated, counted and capped.
//! - [`origin`] — which browser origins may open a WebSocket.
//! - [`limits`] — connection slots, in total and per key.
//! - [`connection_rate`] — new streams admitted per second (`CONNECTION_RATE_LIMIT`).
//! - [`error`] — refusals: a status, a JSON body, a count by reason.
//! - [`routes`] — `/token`, the fallback, CORS; [`dashboard`] — the static dashboard.
//!
//! The routes behind the edge live with what they serve: the streams in `crate::transport`,
//! status and stats in `crate::status`, summary, snapshot and DLQ in `crate::history::routes`.

pub(crate) mod auth;
pub(crate) mod auth_failures;
pub(crate) mod client_addr;
pub(crate) mod connection_rate;
pub(crate) mod dashboard;
pub(crate) mod error;
pub(crate) mod keys;
pub(crate) mod limits;
pub(crate) mod origin;
pub(crate) mod routes;
pub(crate) mod token;
pub(crate) mod unauthenticated;

pub(crate) use error::{ApiError, Refusals};
pub(crate) use keys::ApiKeys;
