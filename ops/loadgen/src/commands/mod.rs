//! What each `rakuda-loadgen` subcommand does, once [`crate::cli`] has parsed it.
//!
//! - [`subscribe`] — hold connections to a running gateway and summarise what arrived.
//! - [`publish`] — publish numbered load events to a running Redis.
//! - [`bench`] — run standard scenarios on fresh stacks: one (`scenario`) or all (`bench`).
//! - `fleet-worker` — a fleet scenario's worker process ([`crate::fleet::worker`]).

// A command's results go to stdout (JSON lines and tables); progress and errors to stderr.
#![allow(clippy::print_stdout)]

pub mod bench;
pub mod publish;
pub mod subscribe;

use crate::cli::Command;

/// Why a subcommand failed; `rakuda-loadgen` prints it and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Subscribe(#[from] subscribe::SubscribeError),
    #[error(transparent)]
    Publish(#[from] publish::PublishCommandError),
    #[error(transparent)]
    Bench(#[from] bench::BenchError),
    #[error(transparent)]
    Worker(#[from] crate::fleet::worker::WorkerError),
}

/// Runs one parsed subcommand to its end.
pub async fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Subscribe {
            url,
            api_key,
            connections,
            transport,
            duration,
        } => subscribe::subscribe(&url, &api_key, connections, transport.into(), duration).await?,
        Command::Publish {
            redis_url,
            count,
            rate,
            channels,
            pad,
            ids,
            first,
        } => {
            let publish = publish::Publish {
                redis_url,
                count,
                rate,
                channels,
                pad,
                ids,
                first,
            };
            publish.run().await?
        }
        Command::Scenario {
            name,
            transport,
            stack,
        } => bench::scenario(&name, transport.into(), &stack).await?,
        Command::Bench { out, only, stack } => bench::bench(&out, &only, &stack).await?,
        Command::FleetWorker => crate::fleet::worker::run().await?,
    }
    Ok(())
}

/// Raises the soft open-files limit to the hard one: each connection is a file descriptor.
/// Says on stderr when the limit stays too low for the large scenarios, and goes on: small
/// runs still work.
pub fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        // 20,000 holds the standard scenarios (10,000 connections at most in one process);
        // the fleet scenarios spread theirs over worker processes of 15,000 each.
        Ok(limit) if limit < 20_000 => eprintln!(
            "rakuda-loadgen: the open-files limit is {limit}; runs with more connections per \
             process will fail (raise it with `ulimit -n` or /etc/security/limits.conf)"
        ),
        Ok(_) => {}
        Err(error) => eprintln!("rakuda-loadgen: cannot raise the open-files limit: {error}"),
    }
}
