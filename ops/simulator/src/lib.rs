//! Publishes RAKUDA events on Redis exactly as the Node workers do
//! (`PUBLISH rakuda:realtime:<channel> <RealTimeEvent JSON>`), so the stack can be tried,
//! demonstrated and measured without the workers.
//!
//! # Layout
//! - [`sample`] — one sample event (`rakuda-sim publish`).
//! - [`traffic`] — a realistic day in fast-forward (`rakuda-sim run`, used by `just dev`).
//! - [`probe`] — publish-to-receive latency through the whole stack (`rakuda-sim probe`).
//! - [`http_publish`] — publishing through the bridge's HTTP API (`rakuda-sim publish --http`),
//!   and its comparison with the Redis path (`rakuda-sim publish-bench`).
//! - [`validate`] — a message checked as the bridge would (`rakuda-sim validate`).
//! - [`sse`] — reading a Server-Sent Events stream record by record.
//! - [`cli`] — the `rakuda-sim` command line.
//! - [`commands`] — what each subcommand does with what was parsed.

pub mod cli;
pub mod commands;
pub mod http_publish;
pub mod probe;
pub mod sample;
pub mod sse;
pub mod traffic;
pub mod validate;

pub use commands::Error;
pub use sample::{publish, sample_event};
