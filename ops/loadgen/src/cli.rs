//! The `rakuda-loadgen` command line: its subcommands, their flags and environment variables.
//! [`crate::commands`] runs what was parsed.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::client::Transport;

#[derive(Debug, Parser)]
#[command(about = "Load generator for rakuda-realtime (loopback only)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open N SSE or WebSocket connections to a running gateway, hold them, and report what
    /// arrived: deliveries, duplicates, losses and latency of load events (see `publish`).
    Subscribe {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, env = "API_KEY")]
        api_key: String,
        #[arg(long, default_value_t = 100)]
        connections: usize,
        #[arg(long, value_enum, default_value = "sse")]
        transport: TransportArg,
        /// How long to hold the connections, e.g. `30s`.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: Duration,
    },
    /// Publish numbered load events to Redis as the workers do, at a rate or as one burst.
    Publish {
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Events per second; without it, everything at once.
        #[arg(long)]
        rate: Option<f64>,
        /// Channels to cycle through.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "orders,inventory,pricing,listings"
        )]
        channels: Vec<String>,
        /// Padding bytes in each event's data (workers send 200-600 B events).
        #[arg(long, default_value_t = 200)]
        pad: usize,
        /// Distinct payload ids (debounce keeps the latest per id); default: one per event.
        #[arg(long)]
        ids: Option<u64>,
        /// Number of the first event (`lg_n`).
        #[arg(long, default_value_t = 0)]
        first: u64,
    },
    /// Run one standard scenario on a fresh stack and print a JSON line and a table per run.
    Scenario {
        /// idle-10k, light-1k, fanout-1k, fanout-5k, saturation, burst, reconnect-storm, soak;
        /// or a fleet scenario: fleet-56k, storm-kill, rolling-deploy, reset-herd.
        name: String,
        #[arg(long, value_enum, default_value = "sse")]
        transport: TransportArg,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// A fleet scenario's worker process, started by `scenario` and `bench`: reads its
    /// settings and commands on stdin, answers on stdout.
    #[command(hide = true)]
    FleetWorker,
    /// Run every standard scenario, then the fleet scenarios, and write the results into a
    /// Markdown file.
    Bench {
        /// Where to write the table (the part between the bench marks is replaced).
        #[arg(long, default_value = "docs/BENCHMARKS.md")]
        out: PathBuf,
        /// Only these scenarios (labels like `fanout-5k/ws` or names like `fanout-5k` or
        /// `storm-kill`).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        #[command(flatten)]
        stack: StackArgs,
    },
}

/// How `scenario` and `bench` start the stack they measure.
#[derive(Debug, clap::Args)]
pub struct StackArgs {
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Where rakuda-bridge and rakuda-gateway were built.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// Pin the gateway (every gateway of a fleet scenario) to these CPUs with taskset (e.g.
    /// `0`); empty: not pinned.
    #[arg(long, default_value = "0")]
    pub gateway_cpus: String,
    /// Divide connections and durations by this (a quick check, not a measurement). Fleet
    /// scenarios also shorten every wait (backoff, drain window) by up to 10 and use two
    /// source addresses.
    #[arg(long, default_value_t = 1)]
    pub scale_down: usize,
    /// Extra gateway settings, e.g. `--gateway-env CLIENT_WRITE_INTERVAL=20ms` (repeatable).
    #[arg(long = "gateway-env", value_parser = parse_setting)]
    pub gateway_env: Vec<(String, String)>,
}

/// A `--gateway-env` value without the `=` that separates a setting's name from its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected NAME=VALUE, got `{0}`")]
pub struct BadSetting(pub String);

/// `NAME=VALUE` as `(NAME, VALUE)`; the value may itself hold `=`.
pub fn parse_setting(text: &str) -> Result<(String, String), BadSetting> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| BadSetting(text.to_owned()))
}

/// `--transport`: a clap value enum, kept apart from [`Transport`] so the client needs no clap.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TransportArg {
    Sse,
    Ws,
}

impl From<TransportArg> for Transport {
    fn from(arg: TransportArg) -> Transport {
        match arg {
            TransportArg::Sse => Transport::Sse,
            TransportArg::Ws => Transport::Ws,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_splits_at_its_first_equals_sign() {
        assert_eq!(
            parse_setting("CLIENT_WRITE_INTERVAL=20ms"),
            Ok(("CLIENT_WRITE_INTERVAL".to_owned(), "20ms".to_owned()))
        );
        assert_eq!(
            parse_setting("A=b=c"),
            Ok(("A".to_owned(), "b=c".to_owned()))
        );
        let error = parse_setting("BAD").expect_err("no equals sign");
        assert_eq!(error.to_string(), "expected NAME=VALUE, got `BAD`");
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
