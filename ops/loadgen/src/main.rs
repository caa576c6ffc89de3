//! rakuda-loadgen: subscribers, a publisher, and the benchmark scenarios behind `just bench`.

// A command-line tool's results go to stdout (JSON lines and tables); progress to stderr.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rakuda_loadgen::client::{lock, Target, Transport};
use rakuda_loadgen::publish::LoadEvents;
use rakuda_loadgen::report::{self, Row};
use rakuda_loadgen::scenario::{self, Quantiles, Report, RunOptions, Scenario};
use rakuda_loadgen::subscribers::Subscribers;
use rakuda_schema::EventType;

/// No single scenario run may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(600);

#[derive(Parser)]
#[command(about = "Load generator for rakuda-realtime (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        /// idle-10k, light-1k, fanout-1k, fanout-5k, saturation, burst, reconnect-storm.
        name: String,
        #[arg(long, value_enum, default_value = "sse")]
        transport: TransportArg,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Run every standard scenario and write the results into a Markdown file.
    Bench {
        /// Where to write the table (the part between the bench marks is replaced).
        #[arg(long, default_value = "docs/BENCHMARKS.md")]
        out: PathBuf,
        /// Only these scenarios (labels like `fanout-5k/ws` or names like `fanout-5k`).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        #[command(flatten)]
        stack: StackArgs,
    },
}

#[derive(clap::Args)]
struct StackArgs {
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where rakuda-bridge and rakuda-gateway were built.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Pin the gateway to these CPUs with taskset (e.g. `0`); empty: not pinned.
    #[arg(long, default_value = "0")]
    gateway_cpus: String,
    /// Divide connections and durations by this (a quick check, not a measurement).
    #[arg(long, default_value_t = 1)]
    scale_down: usize,
    /// Extra gateway settings, e.g. `--gateway-env CLIENT_WRITE_INTERVAL=20ms` (repeatable).
    #[arg(long = "gateway-env", value_parser = parse_setting)]
    gateway_env: Vec<(String, String)>,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got `{text}`"))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TransportArg {
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

/// Load is only ever pointed at this machine.
fn ensure_loopback(url: &str, what: &str) -> Result<(), String> {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    if matches!(host, "127.0.0.1" | "localhost" | "::1") {
        Ok(())
    } else {
        Err(format!(
            "{what} must be on this machine (127.0.0.1, localhost or ::1), not `{host}`: \
             rakuda-loadgen only generates load on loopback"
        ))
    }
}

/// Each connection is a file descriptor: raise the soft limit to the hard one.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 25_000 => eprintln!(
            "rakuda-loadgen: the open-files limit is {limit}; runs with more connections will \
             fail (raise it with `ulimit -n` or /etc/security/limits.conf)"
        ),
        Ok(_) => {}
        Err(error) => eprintln!("rakuda-loadgen: cannot raise the open-files limit: {error}"),
    }
}

fn print_report(scenario: &Scenario, run: usize, report: &Report) {
    // A JSON line for machines, a one-row table for people (both on stderr's neighbour, stdout).
    let json = serde_json::to_string(report).unwrap_or_default();
    let row = Row::of(
        &format!("{} (run {run})", scenario.label()),
        std::slice::from_ref(report),
    );
    let mut out = std::io::stdout().lock();
    use std::io::Write as _;
    let _ = writeln!(out, "{json}");
    let _ = writeln!(out, "{}", report::table(&[row]));
}

async fn run_scenario(scenario: &Scenario, options: &RunOptions) -> Result<Report, String> {
    match tokio::time::timeout(RUN_LIMIT, scenario::run(scenario, options)).await {
        Ok(result) => result.map_err(|error| format!("{}: {error}", scenario.label())),
        Err(_) => Err(format!(
            "{}: did not finish within {RUN_LIMIT:?}",
            scenario.label()
        )),
    }
}

fn run_options(stack: &StackArgs) -> RunOptions {
    let cpus = stack.gateway_cpus.trim();
    let taskset = std::process::Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok();
    if !cpus.is_empty() && !taskset {
        eprintln!("rakuda-loadgen: taskset is missing; the gateway runs unpinned");
    }
    RunOptions {
        bin_dir: stack.bin_dir.clone(),
        gateway_cpus: (!cpus.is_empty() && taskset).then(|| cpus.to_owned()),
        gateway_env: stack.gateway_env.clone(),
    }
}

async fn subscribe(
    url: String,
    api_key: String,
    connections: usize,
    transport: Transport,
    duration: Duration,
) -> Result<(), String> {
    ensure_loopback(&url, "--url")?;
    let target = Target::new(&url, transport).with_api_key(&api_key);
    let subscribers = Subscribers::open(target, connections).await;
    eprintln!(
        "rakuda-loadgen: {} of {connections} connections ready; holding for {duration:?}",
        subscribers.ready_count()
    );
    tokio::time::sleep(duration).await;
    let tallies = subscribers.close().await;
    let mut deliveries = 0u64;
    let mut duplicates = 0u64;
    let mut resets = 0usize;
    let mut failed = 0u64;
    let mut latencies = Vec::new();
    for tally in &tallies {
        let tally = lock(tally);
        deliveries += tally.seqs.len() as u64;
        duplicates += tally.duplicates;
        resets += tally.resets.len();
        failed += tally.failed_connects;
        latencies.extend_from_slice(&tally.latencies_us);
    }
    let summary = serde_json::json!({
        "connections": connections,
        "deliveries": deliveries,
        "duplicates": duplicates,
        "resets": resets,
        "failedConnects": failed,
        "latencyMs": Quantiles::of(&mut latencies),
    });
    println!("{summary}");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn publish(
    redis_url: String,
    count: u64,
    rate: Option<f64>,
    channels: Vec<String>,
    pad: usize,
    ids: Option<u64>,
    first: u64,
) -> Result<(), String> {
    ensure_loopback(&redis_url, "--redis-url")?;
    let types = channels
        .iter()
        .map(|name| {
            rakuda_schema::Channel::by_name(name)
                .filter(|channel| !channel.internal)
                .map(|channel| channel.event_type)
                .ok_or_else(|| {
                    format!("unknown channel `{name}`: use orders, inventory, pricing or listings")
                })
        })
        .collect::<Result<Vec<EventType>, String>>()?;
    let events = LoadEvents {
        types,
        pad_bytes: pad,
        distinct_ids: ids,
        ..LoadEvents::default()
    };
    let mut redis = rakuda_loadgen::publish::connect(&redis_url)
        .await
        .map_err(|error| {
            format!("cannot connect to Redis at {redis_url} (--redis-url): {error}")
        })?;
    let published = match rate {
        Some(rate) if rate > 0.0 => events.paced(&mut redis, first, count, rate).await,
        Some(_) => return Err("--rate must be above zero".into()),
        None => events.burst(&mut redis, first, count).await,
    }
    .map_err(|error| error.to_string())?;
    println!(
        "{}",
        serde_json::json!({
            "events": published.events,
            "seconds": published.elapsed.as_secs_f64(),
            "receivers": published.receivers,
        })
    );
    if published.receivers == 0 {
        eprintln!(
            "rakuda-loadgen: nobody subscribed on Redis received the events: is a bridge running?"
        );
    }
    Ok(())
}

async fn bench(out: PathBuf, only: Vec<String>, stack: StackArgs) -> Result<(), String> {
    let options = run_options(&stack);
    let scenarios: Vec<Scenario> = scenario::standard()
        .into_iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| *o == s.name || *o == s.label()))
        .map(|s| s.scaled_down(stack.scale_down))
        .collect();
    if scenarios.is_empty() {
        return Err(format!("--only {only:?} matches no scenario"));
    }
    let mut rows = Vec::new();
    let mut saturation = Vec::new();
    let mut failed_runs = 0;
    for scenario in &scenarios {
        let mut reports = Vec::new();
        let mut failures = Vec::new();
        for run in 1..=stack.runs.max(1) {
            eprintln!(
                "rakuda-loadgen: {} run {run}/{}",
                scenario.label(),
                stack.runs
            );
            // A failed run is reported and the bench goes on: one bad run (a timeout on a
            // saturated machine) should not throw away an hour of measurements.
            match run_scenario(scenario, &options).await {
                Ok(report) => {
                    print_report(scenario, run, &report);
                    reports.push(report);
                }
                Err(error) => {
                    eprintln!("rakuda-loadgen: run {run} failed: {error}");
                    failures.push(error);
                }
            }
        }
        failed_runs += failures.len();
        if scenario.name == "saturation" {
            saturation = reports.clone();
        }
        rows.push(Row::of(&scenario.label(), &reports).with_failures(&failures));
    }
    let mut command = format!("just bench (rakuda-loadgen bench --runs {}", stack.runs);
    if stack.scale_down > 1 {
        command.push_str(&format!(" --scale-down {}", stack.scale_down));
    }
    match &options.gateway_cpus {
        Some(cpus) => command.push_str(&format!("; gateway pinned to CPU {cpus})")),
        None => command.push_str("; gateway not pinned)"),
    }
    let section = report::generated_section(&rows, &report::machine(), &command, &saturation);
    let existing = std::fs::read_to_string(&out).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(&out, report::splice(&existing, &section))
        .map_err(|error| format!("cannot write {}: {error}", out.display()))?;
    eprintln!("rakuda-loadgen: wrote {}", out.display());
    if failed_runs > 0 {
        return Err(format!(
            "{failed_runs} run(s) failed; their rows in {} say which and why",
            out.display()
        ));
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    raise_fd_limit();
    let result = match Cli::parse().command {
        Command::Subscribe {
            url,
            api_key,
            connections,
            transport,
            duration,
        } => subscribe(url, api_key, connections, transport.into(), duration).await,
        Command::Publish {
            redis_url,
            count,
            rate,
            channels,
            pad,
            ids,
            first,
        } => publish(redis_url, count, rate, channels, pad, ids, first).await,
        Command::Scenario {
            name,
            transport,
            stack,
        } => {
            let transport = Transport::from(transport);
            match scenario::standard()
                .into_iter()
                .find(|s| s.name == name && s.transport == transport)
                .or_else(|| {
                    scenario::standard()
                        .into_iter()
                        .find(|s| s.name == name)
                        .map(|mut s| {
                            s.transport = transport;
                            s
                        })
                }) {
                None => Err(format!(
                    "unknown scenario `{name}`: use idle-10k, light-1k, fanout-1k, fanout-5k, \
                     saturation, burst or reconnect-storm"
                )),
                Some(scenario) => {
                    let scenario = scenario.scaled_down(stack.scale_down);
                    let options = run_options(&stack);
                    let mut outcome = Ok(());
                    for run in 1..=stack.runs.max(1) {
                        match run_scenario(&scenario, &options).await {
                            Ok(report) => print_report(&scenario, run, &report),
                            Err(error) => {
                                outcome = Err(error);
                                break;
                            }
                        }
                    }
                    outcome
                }
            }
        }
        Command::Bench { out, only, stack } => bench(out, only, stack).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rakuda-loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(ensure_loopback("http://127.0.0.1:8080", "--url").is_ok());
        assert!(ensure_loopback("redis://localhost:6379/0", "--redis-url").is_ok());
        assert!(ensure_loopback("http://[::1]:8080/x", "--url").is_ok());
        assert!(ensure_loopback("redis://user:pw@127.0.0.1:6379", "--redis-url").is_ok());
        let error = ensure_loopback("http://10.0.0.5:8080", "--url").expect_err("not loopback");
        assert!(
            error.contains("--url") && error.contains("10.0.0.5"),
            "{error}"
        );
    }
}
