//! Publishes RAKUDA events on Redis exactly as the Node workers do
//! (`PUBLISH rakuda:realtime:<channel> <RealTimeEvent JSON>`), so the stack can be tried,
//! demonstrated and measured without the workers.
//!
//! # Layout
//! - [`sample`] — one sample event (`rakuda-sim publish`).
//! - [`traffic`] — a realistic day in fast-forward (`rakuda-sim run`, used by `just dev`).
//! - [`probe`] — publish-to-receive latency through the whole stack (`rakuda-sim probe`).
//! - [`sse`] — reading a Server-Sent Events stream record by record.

pub mod probe;
pub mod sample;
pub mod sse;
pub mod traffic;

pub use sample::{publish, sample_event};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown channel `{0}`: use one of inventory, orders, pricing, listings")]
    UnknownChannel(String),
    #[error("unknown action `{0}`: use created, updated or deleted")]
    UnknownAction(String),
    #[error("--data must be a JSON object, e.g. '{{\"isAvailable\":false}}': {0}")]
    BadData(String),
    #[error("cannot publish to redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("gateway request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the gateway answered {status}: {body}")]
    Gateway { status: u16, body: String },
    #[error("{0}")]
    Probe(String),
}
