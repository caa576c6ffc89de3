//! Load and correctness traffic for rakuda-realtime, used by `rakuda-loadgen` and by the fleet
//! test: events that carry their own number and publish time, subscribers that reconnect with
//! resume cursors and tally what arrived.
//!
//! # Layout
//! - [`marker`] — what a load event carries in `payload.data` (`lg_n`, `lg_sent_us`), and
//!   reading it back out of a frame.
//! - [`publish`] — publishing numbered events to Redis as the workers do, at a rate or at once.
//! - [`client`] — one SSE or WebSocket subscriber that reconnects with its cursor.
//! - [`tally`] — what one subscriber saw: seqs, duplicates, latencies, reconnects.
//! - [`subscribers`] — many subscribers opened in waves, watched, kicked and stopped together.
//! - [`stack`] — Redis, NATS, a bridge and a gateway (pinned to its own CPU) for a benchmark.
//! - [`procstat`] — RSS and CPU seconds of a process, and the machine's steal time, from /proc.
//! - [`calibrate`] — how fast the machine is right now at a loopback write.
//! - [`scenario`] — the standard scenarios and the runner that measures one.
//! - [`fleet`] — a fleet of gateways on one box: worker processes from several source
//!   addresses, the four fleet scenarios (`fleet-56k`, `storm-kill`, `rolling-deploy`,
//!   `reset-herd`) and their coordinator.
//! - [`report`] — tables, medians and the generated part of docs/BENCHMARKS.md.
//! - [`figures`] — how both tables write a figure, take a median over runs and note failed
//!   runs.
//! - [`loopback`] — the guard that keeps the command line's load on this machine.
//! - [`cli`] — the `rakuda-loadgen` command line.
//! - [`commands`] — what each subcommand does: `subscribe`, `publish`, `scenario`, `bench`,
//!   and the hidden `fleet-worker`.

pub mod calibrate;
pub mod cli;
pub mod client;
pub mod commands;
pub mod figures;
pub mod fleet;
pub mod loopback;
pub mod marker;
pub mod procstat;
pub mod publish;
pub mod report;
pub mod scenario;
pub mod stack;
pub mod subscribers;
pub mod tally;

pub use client::{Target, Transport};
pub use tally::Tally;

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex` even if a task panicked while holding it: what was counted before the panic
/// (a tally, a worker's history figures, the monitor's peaks) is still worth reporting.
pub(crate) fn unpoisoned<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
