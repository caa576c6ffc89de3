//! Runs one scenario on a fresh stack: subscribers connected first, then the workload, then
//! one [`Report`] of what arrived and what it cost.

use std::time::{Duration, Instant};

use rakuda_schema::EventType;
use redis::aio::MultiplexedConnection;
use tokio::task::JoinHandle;

use super::measure::{growth_kib_per_min, median, CpuSeconds, Quantiles, Report, Step};
use super::{Scenario, Workload};
use crate::client::{lock, Target};
use crate::procstat;
use crate::publish::{LoadEvents, PublishError, Published};
use crate::stack::{Stack, StackConfig, StackError, StackReading, API_KEY};
use crate::subscribers::Subscribers;

/// A delivery that has not arrived this long after the last one is presumed lost.
const QUIET: Duration = Duration::from_secs(5);
/// Longest any drain may take after publishing stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// How to start the stack a scenario runs on.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where `rakuda-bridge` and `rakuda-gateway` were built.
    pub bin_dir: std::path::PathBuf,
    /// `taskset -c` CPUs for the gateway (`None`: not pinned).
    pub gateway_cpus: Option<String>,
    /// Settings for the gateway on top of the scenario's.
    pub gateway_env: Vec<(String, String)>,
}

/// Why a run produced no report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the stack: {0}")]
    Stack(#[from] StackError),
    #[error("cannot publish: {0}")]
    Publish(#[from] crate::publish::PublishError),
    #[error("cannot connect to Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

fn events_for(scenario: &Scenario) -> LoadEvents {
    match scenario.workload {
        // A batch job touches many products: inventory changes, each its own product.
        Workload::Burst { .. } => LoadEvents {
            types: vec![EventType::InventoryChange],
            ..LoadEvents::default()
        },
        _ => LoadEvents {
            types: EventType::CLIENT.to_vec(),
            ..LoadEvents::default()
        },
    }
}

/// Sums the subscribers' windows: (distinct deliveries, duplicates, latencies).
fn collect(subscribers: &Subscribers) -> (u64, u64, Vec<u64>) {
    let mut deliveries = 0;
    let mut duplicates = 0;
    let mut latencies = Vec::new();
    for tally in &subscribers.tallies {
        let tally = lock(tally);
        deliveries += tally.marks.len() as u64;
        duplicates += tally.duplicates;
        latencies.extend_from_slice(&tally.latencies_us);
    }
    (deliveries, duplicates, latencies)
}

/// Waits until `count` events reached every subscriber (or delivery stopped) and fills in what
/// arrived: deliveries, duplicates, their rate since `started`, latency.
async fn settle_flow(report: &mut Report, subscribers: &Subscribers, count: u64, started: Instant) {
    let done = subscribers
        .wait_for_marks(count as usize, QUIET, DRAIN_LIMIT)
        .await;
    report.events = count;
    let (deliveries, duplicates, mut latencies) = collect(subscribers);
    report.deliveries = deliveries;
    report.duplicates = duplicates;
    report.deliveries_per_sec = deliveries as f64 / (done - started).as_secs_f64().max(1e-9);
    report.latency_ms = Quantiles::of(&mut latencies);
}

/// Publishes events `0..count` at `rate` on a task of its own, so that the run can act while
/// they flow (kick every subscriber, read memory).
fn publish_in_background(
    events: &LoadEvents,
    redis: &MultiplexedConnection,
    count: u64,
    rate: f64,
) -> JoinHandle<Result<Published, PublishError>> {
    let events = events.clone();
    let mut redis = redis.clone();
    tokio::spawn(async move { events.paced(&mut redis, 0, count, rate).await })
}

/// Waits for a background publisher to finish; its error, if it failed. One that panicked is
/// said on stderr and the run goes on to count what arrived.
async fn published(publisher: JoinHandle<Result<Published, PublishError>>) -> Result<(), RunError> {
    match publisher.await {
        Ok(result) => {
            result?;
        }
        Err(_) => eprintln!("rakuda-loadgen: the publisher task panicked"),
    }
    Ok(())
}

/// Runs one scenario on a fresh stack.
pub async fn run(scenario: &Scenario, options: &RunOptions) -> Result<Report, RunError> {
    let config = StackConfig {
        bin_dir: options.bin_dir.clone(),
        gateway_cpus: options.gateway_cpus.clone(),
        gateway_env: std::iter::once((
            "SSE_DEBOUNCE_WINDOW".to_owned(),
            scenario.debounce_ms.to_string(),
        ))
        .chain(options.gateway_env.iter().cloned())
        .collect(),
    };
    let stack = Stack::start(&config).await?;
    let mut redis = crate::publish::connect(&stack.redis.url()).await?;
    let before = stack.reading();

    let mut target = Target::new(&stack.gateway.url(), scenario.transport).with_api_key(API_KEY);
    target.reconnect_delay = Duration::ZERO;
    let subscribers = Subscribers::open(target, scenario.connections).await;
    let connected = subscribers.ready_count();
    // Let the connection burst settle before reading memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_connect = stack.reading();
    subscribers.start_window();

    let events = events_for(scenario);
    let mut report = Report {
        scenario: scenario.name.clone(),
        transport: scenario.transport.name().to_owned(),
        connections: scenario.connections,
        connected,
        ..Report::default()
    };
    // Blocking on purpose, for about half a second: the probes are timed with nothing else of
    // the load generator's running on its core, and the gateway idle on its own.
    report.loopback_write_us = crate::calibrate::loopback_write_us();
    report.sweep_send_us = crate::calibrate::sweep_send_us(options.gateway_cpus.as_deref());
    let workload_started = Instant::now();
    let machine_at_start = procstat::machine();
    match &scenario.workload {
        Workload::Idle { hold_seconds } => {
            tokio::time::sleep(Duration::from_secs_f64(*hold_seconds)).await;
        }
        Workload::Flow { rate, seconds } => {
            let count = (rate * seconds) as u64;
            events.paced(&mut redis, 0, count, *rate).await?;
            settle_flow(&mut report, &subscribers, count, workload_started).await;
        }
        Workload::Burst { events: count } => {
            events.burst(&mut redis, 0, *count).await?;
            let done = subscribers
                .wait_for_represented(*count, QUIET, DRAIN_LIMIT)
                .await;
            report.events = *count;
            report.quiet_after_ms = Some((done - workload_started).as_secs_f64() * 1000.0);
            let mut frames = Vec::new();
            let mut complete = true;
            let mut represented = 0;
            let mut latencies = Vec::new();
            for tally in &subscribers.tallies {
                let tally = lock(tally);
                frames.push(tally.frames as f64);
                represented += tally.represented.min(*count);
                complete &= tally.represented == *count;
                latencies.extend_from_slice(&tally.latencies_us);
                report.duplicates += tally.duplicates;
            }
            report.deliveries = represented;
            report.deliveries_per_sec =
                represented as f64 / (done - workload_started).as_secs_f64().max(1e-9);
            report.frames_per_client = median(&mut frames);
            report.every_event_in_a_frame = Some(complete);
            report.latency_ms = Quantiles::of(&mut latencies);
        }
        Workload::Saturation {
            start_rate,
            factor,
            step_seconds,
            max_steps,
            p99_limit_ms,
        } => {
            let mut rate = *start_rate;
            let mut first = 0u64;
            for _ in 0..*max_steps {
                subscribers.start_window();
                let count = (rate * step_seconds) as u64;
                let started = Instant::now();
                events.paced(&mut redis, first, count, rate).await?;
                let done = subscribers
                    .wait_for_marks(count as usize, QUIET, DRAIN_LIMIT)
                    .await;
                first += count;
                let (deliveries, _, mut latencies) = collect(&subscribers);
                let expected = count * connected as u64;
                let step = Step {
                    rate,
                    deliveries_per_sec: deliveries as f64
                        / (done - started).as_secs_f64().max(1e-9),
                    lost: expected.saturating_sub(deliveries),
                    latency_ms: Quantiles::of(&mut latencies),
                };
                let passed =
                    step.lost == 0 && step.latency_ms.is_some_and(|q| q.p99 <= *p99_limit_ms);
                if passed {
                    report.peak_deliveries_per_sec = Some(step.deliveries_per_sec);
                }
                report.steps.push(step);
                if !passed {
                    break;
                }
                rate *= factor;
            }
            report.events = first;
            let mut collected = collect(&subscribers);
            report.duplicates = collected.1;
            report.latency_ms = Quantiles::of(&mut collected.2);
        }
        Workload::ReconnectStorm {
            rate,
            seconds,
            kick_after_seconds,
        } => {
            let count = (rate * seconds) as u64;
            let publisher = publish_in_background(&events, &redis, count, *rate);
            tokio::time::sleep(Duration::from_secs_f64(*kick_after_seconds)).await;
            let kicked = Instant::now();
            subscribers.kick_all();
            report.all_back_after_ms = subscribers
                .wait_all_back(kicked, DRAIN_LIMIT)
                .await
                .map(|took| took.as_secs_f64() * 1000.0);
            published(publisher).await?;
            settle_flow(&mut report, &subscribers, count, workload_started).await;
        }
        Workload::Soak {
            rate,
            seconds,
            sample_seconds,
        } => {
            let count = (rate * seconds) as u64;
            let publisher = publish_in_background(&events, &redis, count, *rate);
            let mut gateway = Vec::new();
            let mut bridge = Vec::new();
            while !publisher.is_finished() {
                let reading = stack.reading();
                let at = workload_started.elapsed().as_secs_f64();
                gateway.push((at, reading.gateway.rss_kib));
                bridge.push((at, reading.bridge.rss_kib));
                tokio::time::sleep(Duration::from_secs_f64(*sample_seconds)).await;
            }
            published(publisher).await?;
            settle_flow(&mut report, &subscribers, count, workload_started).await;
            report.gateway_growth_kib_per_min = growth_kib_per_min(&gateway);
            report.bridge_growth_kib_per_min = growth_kib_per_min(&bridge);
        }
    }
    report.workload_seconds = workload_started.elapsed().as_secs_f64();
    report.steal_percent = procstat::machine()
        .zip(machine_at_start)
        .and_then(|(end, start)| end.steal_percent_since(&start));
    let end = stack.reading();
    subscribers.close().await;

    if !matches!(scenario.workload, Workload::Saturation { .. }) {
        report.expected_deliveries = report.events * connected as u64;
        report.lost = report.expected_deliveries.saturating_sub(report.deliveries);
    } else {
        report.lost = report.steps.iter().map(|step| step.lost).sum();
    }
    fill_process_figures(&mut report, &before, &at_connect, &end);
    Ok(report)
}

fn fill_process_figures(
    report: &mut Report,
    before: &StackReading,
    at_connect: &StackReading,
    end: &StackReading,
) {
    report.gateway_rss_kib = [
        before.gateway.rss_kib,
        at_connect.gateway.rss_kib,
        end.gateway.rss_kib,
    ];
    report.bridge_rss_kib = [
        before.bridge.rss_kib,
        at_connect.bridge.rss_kib,
        end.bridge.rss_kib,
    ];
    if report.connected > 0 {
        report.rss_per_connection_kib = at_connect
            .gateway
            .rss_kib
            .saturating_sub(before.gateway.rss_kib) as f64
            / report.connected as f64;
    }
    report.cpu_seconds = CpuSeconds {
        gateway: end.gateway.cpu_seconds - before.gateway.cpu_seconds,
        bridge: end.bridge.cpu_seconds - before.bridge.cpu_seconds,
        redis: end.redis.cpu_seconds - before.redis.cpu_seconds,
        nats: end.nats.cpu_seconds - before.nats.cpu_seconds,
        loadgen: end.loadgen.cpu_seconds - before.loadgen.cpu_seconds,
    };
    if report.workload_seconds > 0.0 {
        report.gateway_cpu_percent = (end.gateway.cpu_seconds - at_connect.gateway.cpu_seconds)
            / report.workload_seconds
            * 100.0;
    }
}
