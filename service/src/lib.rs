//! What every rakuda process (bridge, gateway) does the same way, so it is written once.
//!
//! # Layout
//! - [`settings`] — parsers for setting values, whose errors clap prefixes with the variable.
//! - [`backoff`] — capped exponential retry delays with jitter.
//! - [`signals`] — SIGTERM/SIGINT to a cancellation token.
//! - [`startup`] — `.env` loading and log set-up for a binary's `main`.
//! - [`nats`] — connecting to NATS with credentials and TLS, watching the connection's state.
//! - [`redis`] — connecting to Redis with an ACL user, TLS and a private CA; URLs for logs.
//! - [`metric`] — registering metrics on a recorder a component owns (no global recorder).

pub mod backoff;
pub mod keys;
pub mod metric;
pub mod nats;
pub mod redis;
pub mod settings;
pub mod signals;
pub mod startup;
