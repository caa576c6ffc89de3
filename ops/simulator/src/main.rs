//! `rakuda-sim`: publish RAKUDA events to Redis by hand, as realistic traffic, or as latency probes.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rakuda_simulator::{probe, traffic, Error};

#[derive(Parser)]
#[command(
    name = "rakuda-sim",
    version,
    about = "Publishes RAKUDA events to Redis as the workers do"
)]
struct Cli {
    /// Redis server the workers (and the bridge) use.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    redis_url: String,
    /// Prefix of the channels.
    #[arg(long, env = "REDIS_CHANNEL_PREFIX", default_value = rakuda_schema::channel::DEFAULT_REDIS_CHANNEL_PREFIX, global = true)]
    redis_channel_prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rakuda-sim: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    let prefix = cli.redis_channel_prefix.as_str();
    let redis_url = cli.redis_url.as_str();
    match cli.command {
        Command::Validate { channel, max_bytes } => validate(&channel, max_bytes)?,
        Command::Publish {
            channel,
            id,
            action,
            data,
        } => {
            let mut redis = connect(redis_url).await?;
            let (channel, event) =
                rakuda_simulator::sample_event(&channel, &id, &action, data.as_deref())?;
            let (json, receivers) =
                rakuda_simulator::publish(&mut redis, prefix, channel, &event).await?;
            eprintln!(
                "published on {} ({receivers} subscriber(s){}):",
                channel.redis_channel(prefix),
                if receivers == 0 {
                    "; is the bridge running?"
                } else {
                    ""
                }
            );
            report(&json);
        }
        Command::Run {
            rate,
            order_burst_every,
            batch_every,
            batch_size,
            duration,
            seed,
        } => {
            let mut redis = connect(redis_url).await?;
            let plan = traffic::Traffic {
                rate,
                order_burst_every,
                batch_every,
                batch_size,
                duration,
                seed,
            };
            eprintln!(
                "rakuda-sim: publishing ~{rate}/s, order bursts every {}, batch jobs of {batch_size} every {}",
                humantime::format_duration(order_burst_every),
                humantime::format_duration(batch_every)
            );
            let published = traffic::run(&mut redis, prefix, &plan).await?;
            eprintln!("rakuda-sim: published {published} events");
        }
        Command::Probe {
            gateway,
            api_key,
            count,
            interval,
        } => {
            let mut redis = connect(redis_url).await?;
            let probe = probe::Probe {
                gateway: &gateway,
                api_key: &api_key,
                count,
                interval,
                timeout: Duration::from_secs(5),
            };
            let latencies = probe.run(&mut redis, prefix).await?;
            // Each quantile once, in milliseconds, for both the JSON line and the summary.
            let [p50, p90, p99, max] =
                [0.5, 0.9, 0.99, 1.0].map(|q| latencies.quantile(q).map(|us| us as f64 / 1000.0));
            report(
                &serde_json::json!({
                    "probes": count,
                    "received": latencies.samples.len(),
                    "lost": latencies.lost,
                    "batched_frames": latencies.batched,
                    "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max,
                })
                .to_string(),
            );
            let ms = |value: Option<f64>| value.map_or("-".into(), |v| format!("{v:.2} ms"));
            eprintln!(
                "publish -> receive over {} probes: p50 {}, p90 {}, p99 {}, max {}; lost {}",
                latencies.samples.len(),
                ms(p50),
                ms(p90),
                ms(p99),
                ms(max),
                latencies.lost
            );
            if latencies.batched > 0 {
                eprintln!("note: {} batch frames seen; set SSE_DEBOUNCE_WINDOW=0 on the gateway to time single events", latencies.batched);
            }
            if latencies.lost > 0 {
                return Err(Error::Probe(format!(
                    "{} probes never came back",
                    latencies.lost
                )));
            }
        }
    }
    Ok(())
}

async fn connect(url: &str) -> Result<redis::aio::MultiplexedConnection, Error> {
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?)
}

/// Validates stdin with the bridge's own validator.
fn validate(channel: &str, max_bytes: usize) -> Result<(), Error> {
    use std::io::Read;
    let mut message = Vec::new();
    std::io::stdin()
        .read_to_end(&mut message)
        .map_err(|error| Error::Probe(format!("cannot read stdin: {error}")))?;
    // A trailing newline from `echo` is not part of the message.
    if message.last() == Some(&b'\n') {
        message.pop();
    }
    match rakuda_schema::Validator::new(max_bytes).validate(channel, &message) {
        Ok(_) => {
            report("valid");
            Ok(())
        }
        Err(reject) => Err(Error::Probe(format!("rejected: {reject}"))),
    }
}

/// The command's result on stdout (everything else goes to stderr).
#[allow(clippy::print_stdout)]
fn report(line: &str) {
    println!("{line}");
}
