//! The HTTP edge: who may come in and what they are told.
//!
//! - [`auth`] — API keys, tokens in requests, the middleware on `/api/realtime/*`.
//! - [`token`] — signed, expiring tokens for `EventSource`.
//! - [`limits`] — connection slots, in total and per key.
//! - [`error`] — refusals: a status, a JSON body, a count by reason.
//! - [`stats`] — `/status`, `/stats`, `/metrics`, `/healthz`, `/readyz`.
//! - [`routes`] — the edge's routes, the dashboard, CORS.

pub mod auth;
pub mod error;
pub mod limits;
pub mod routes;
pub mod stats;
pub mod token;

pub use error::{ApiError, Refusals};
