//! What each `rakuda-sim` subcommand does, once [`crate::cli`] has parsed it. The result goes
//! to stdout, everything else (progress, summaries, errors) to stderr.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::cli::{Cli, Command};
use crate::probe::{self, Latencies, ProbeError};
use crate::sample::{self, SampleError};
use crate::traffic::{self, TrafficError};
use crate::validate::{self, ValidateError};

/// How long one probe may take to come back before it counts as lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a subcommand failed; `rakuda-sim` prints it and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot publish to redis: {0}")]
    Connect(#[from] redis::RedisError),
    #[error(transparent)]
    Sample(#[from] SampleError),
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Validate(#[from] ValidateError),
    #[error(transparent)]
    Http(#[from] crate::http_publish::HttpPublishError),
    #[error("--http needs --key (or PUBLISH_KEY): one of the bridge's PUBLISH_API_KEYS")]
    NoKey,
    #[error("{0} probes never came back")]
    ProbesLost(usize),
}

/// Runs one parsed command line to its end.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let prefix = cli.redis_channel_prefix.as_str();
    let redis_url = cli.redis_url.as_str();
    match cli.command {
        Command::Validate { channel, max_bytes } => {
            validate::stdin(&channel, max_bytes)?;
            report("valid");
        }
        Command::Publish {
            channel,
            id,
            action,
            data,
            http: Some(url),
            key,
            idempotency_key,
        } => {
            let key = key.ok_or(Error::NoKey)?;
            let (_, event) = sample::sample_event(&channel, &id, &action, data.as_deref())?;
            // Serializing our own well-formed types cannot fail.
            let json = serde_json::to_string(&event).unwrap_or_default();
            let client = reqwest::Client::new();
            let answer =
                crate::http_publish::publish(&client, &url, &key, json, idempotency_key.as_deref())
                    .await?;
            eprintln!("published through {url}:");
            report(&answer);
        }
        Command::PublishBench {
            http,
            key,
            nats_url,
            stream,
            count,
            concurrency,
        } => {
            let run = std::process::id().to_string();
            let mut redis_path = crate::http_publish::bench_redis(
                redis_url,
                prefix,
                &nats_url,
                &stream,
                count,
                concurrency,
                &run,
            )
            .await?;
            let mut http_path =
                crate::http_publish::bench_http(&http, &key, count, concurrency, &run).await?;
            for (name, figures) in [("redis", &mut redis_path), ("http", &mut http_path)] {
                let (p50, p99) = (figures.quantile_ms(0.5), figures.quantile_ms(0.99));
                report(
                    &serde_json::json!({
                        "path": name,
                        "events": count,
                        "stored": figures.stored,
                        "per_second": figures.per_second().round(),
                        "p50_ms": (p50 * 100.0).round() / 100.0,
                        "p99_ms": (p99 * 100.0).round() / 100.0,
                    })
                    .to_string(),
                );
            }
        }
        Command::Publish {
            channel,
            id,
            action,
            data,
            http: None,
            ..
        } => {
            let mut redis = connect(redis_url).await?;
            let (channel, event) = sample::sample_event(&channel, &id, &action, data.as_deref())?;
            let (json, receivers) = sample::publish(&mut redis, prefix, channel, &event).await?;
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
                timeout: PROBE_TIMEOUT,
            };
            let latencies = probe.run(&mut redis, prefix).await?;
            report_probes(count, &latencies);
            if latencies.lost > 0 {
                return Err(Error::ProbesLost(latencies.lost));
            }
        }
    }
    Ok(())
}

async fn connect(url: &str) -> Result<MultiplexedConnection, redis::RedisError> {
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

/// A JSON line of the probe run on stdout, and a summary for people on stderr.
fn report_probes(count: usize, latencies: &Latencies) {
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
}

/// The command's result on stdout (everything else goes to stderr).
#[allow(clippy::print_stdout)]
fn report(line: &str) {
    println!("{line}");
}
