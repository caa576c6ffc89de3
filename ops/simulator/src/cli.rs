//! The `rakuda-sim` command line: its subcommands, their flags and environment variables.
//! [`crate::commands`] runs what was parsed.

use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rakuda-sim",
    version,
    about = "Publishes RAKUDA events to Redis as the workers do"
)]
pub struct Cli {
    /// Redis server the workers (and the bridge) use.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    pub redis_url: String,
    /// Prefix of the channels.
    #[arg(long, env = "REDIS_CHANNEL_PREFIX", default_value = rakuda_schema::channel::DEFAULT_REDIS_CHANNEL_PREFIX, global = true)]
    pub redis_channel_prefix: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish one sample event.
    Publish {
        /// inventory | orders | pricing | listings
        channel: String,
        /// The entity id (payload.id).
        #[arg(long, default_value = "prod_123")]
        id: String,
        /// created | updated | deleted
        #[arg(long, default_value = "updated")]
        action: String,
        /// payload.data as a JSON object; a plausible sample when omitted.
        #[arg(long)]
        data: Option<String>,
        /// Publish through the bridge's `POST /api/realtime/publish` at this URL
        /// (`http://127.0.0.1:9102/api/realtime/publish`) instead of Redis; prints the answer.
        #[arg(long)]
        http: Option<String>,
        /// The publish key (one of the bridge's PUBLISH_API_KEYS, without its `id:`), for --http.
        #[arg(long, env = "PUBLISH_KEY", hide_env_values = true, requires = "http")]
        key: Option<String>,
        /// The Idempotency-Key, for --http: the same key twice stores one event.
        #[arg(long, requires = "http")]
        idempotency_key: Option<String>,
    },
    /// Compare publishing over HTTP with publishing on Redis: N events each way, each timed until
    /// stored; prints throughput and p50/p99 of both (a bridge with BRIDGE_HTTP_ADDR must run).
    PublishBench {
        /// The bridge's publish URL.
        #[arg(long, default_value = "http://127.0.0.1:9102/api/realtime/publish")]
        http: String,
        /// The publish key.
        #[arg(long, env = "PUBLISH_KEY", hide_env_values = true)]
        key: String,
        /// NATS, to see the Redis path's events stored.
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long, env = "STREAM_NAME", default_value = "RAKUDA_REALTIME")]
        stream: String,
        /// Events each way.
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Requests (HTTP) and commands (Redis) in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Publish realistic traffic: steady stock/price/listing changes, order bursts, batch jobs.
    Run {
        /// Background events per second.
        #[arg(long, default_value_t = 4.0)]
        rate: f64,
        /// Time between order bursts (`10s`).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        order_burst_every: Duration,
        /// Time between batch jobs (`45s`).
        #[arg(long, default_value = "45s", value_parser = humantime::parse_duration)]
        batch_every: Duration,
        /// Products one batch job touches.
        #[arg(long, default_value_t = 3000)]
        batch_size: usize,
        /// Stop after this long (`5m`); runs until Ctrl-C when omitted.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Check a message (read from stdin) as the bridge would: exit 0 if accepted, 1 with the reason if not.
    Validate {
        /// The channel it would be published on: inventory | orders | pricing | listings | canary
        channel: String,
        /// Size limit in bytes (the bridge's EVENT_MAX_BYTES).
        #[arg(long, default_value_t = rakuda_schema::DEFAULT_MAX_EVENT_BYTES)]
        max_bytes: usize,
    },
    /// Measure publish-to-receive latency through the stack (run the gateway with SSE_DEBOUNCE_WINDOW=0).
    Probe {
        /// The gateway's base URL.
        #[arg(
            long,
            env = "RAKUDA_GATEWAY_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        gateway: String,
        /// An API key the gateway accepts.
        #[arg(long, env = "API_KEY", hide_env_values = true)]
        api_key: String,
        /// Probes to send, one at a time.
        #[arg(long, default_value_t = 300)]
        count: usize,
        /// Pause between probes (`20ms`).
        #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
        interval: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
