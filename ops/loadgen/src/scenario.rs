//! The standard benchmark scenarios and the runner: a fresh stack per run, subscribers
//! connected first, then the workload, then one [`Report`].

use std::time::{Duration, Instant};

use rakuda_schema::EventType;
use serde::Serialize;

use crate::client::{lock, Target, Transport};
use crate::procstat;
use crate::publish::LoadEvents;
use crate::stack::{Stack, StackConfig, StackError, StackReading, API_KEY};
use crate::subscribers::Subscribers;

/// A delivery that has not arrived this long after the last one is presumed lost.
const QUIET: Duration = Duration::from_secs(5);
/// Longest any drain may take after publishing stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Workload {
    /// Connections held with no events: memory per connection, idle CPU (heartbeats).
    Idle { hold_seconds: f64 },
    /// `rate` events/s for `seconds`.
    Flow { rate: f64, seconds: f64 },
    /// `events` published at once (a batch job).
    Burst { events: u64 },
    /// Rates from `start_rate`, times `factor` each step of `step_seconds`, until p99 passes
    /// `p99_limit_ms` or anything is lost.
    Saturation {
        start_rate: f64,
        factor: f64,
        step_seconds: f64,
        max_steps: usize,
        p99_limit_ms: f64,
    },
    /// `rate` events/s for `seconds`; after `kick_after_seconds` every connection drops and
    /// reconnects at once with its cursor.
    ReconnectStorm {
        rate: f64,
        seconds: f64,
        kick_after_seconds: f64,
    },
    /// `rate` events/s for `seconds` with nothing scraping `/metrics`, the gateway's and the
    /// bridge's RSS read every `sample_seconds`: memory must stay flat (no per-observation
    /// growth in the metrics recorder).
    Soak {
        rate: f64,
        seconds: f64,
        sample_seconds: f64,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub transport: Transport,
    pub connections: usize,
    /// `SSE_DEBOUNCE_WINDOW` in ms (0 = off).
    pub debounce_ms: u64,
    pub workload: Workload,
}

impl Scenario {
    fn new(name: &str, transport: Transport, connections: usize, workload: Workload) -> Scenario {
        Scenario {
            name: name.to_owned(),
            transport,
            connections,
            debounce_ms: 0,
            workload,
        }
    }

    /// `fanout-5k/ws`
    pub fn label(&self) -> String {
        format!("{}/{}", self.name, self.transport.name())
    }

    /// The same scenario with connections and durations divided by `factor` (a quick check
    /// that everything works, not a measurement).
    pub fn scaled_down(mut self, factor: usize) -> Scenario {
        if factor <= 1 {
            return self;
        }
        let f = factor as f64;
        self.connections = (self.connections / factor).max(2);
        self.workload = match self.workload {
            Workload::Idle { hold_seconds } => Workload::Idle {
                hold_seconds: (hold_seconds / f).max(1.0),
            },
            Workload::Flow { rate, seconds } => Workload::Flow {
                rate,
                seconds: (seconds / f).max(1.0),
            },
            Workload::Burst { events } => Workload::Burst {
                events: (events / factor as u64).max(100),
            },
            Workload::Saturation {
                start_rate,
                factor: step_factor,
                step_seconds,
                p99_limit_ms,
                ..
            } => Workload::Saturation {
                start_rate,
                factor: step_factor,
                step_seconds: (step_seconds / f).max(1.0),
                max_steps: 2,
                p99_limit_ms,
            },
            Workload::ReconnectStorm { rate, .. } => Workload::ReconnectStorm {
                rate,
                seconds: 3.0,
                kick_after_seconds: 1.0,
            },
            Workload::Soak {
                rate,
                seconds,
                sample_seconds,
            } => Workload::Soak {
                rate,
                seconds: (seconds / f).max(4.0),
                sample_seconds: (sample_seconds / f).max(0.5),
            },
        };
        self
    }
}

/// The scenarios `just bench` runs, in order.
pub fn standard() -> Vec<Scenario> {
    use Transport::{Sse, Ws};
    let idle = Workload::Idle { hold_seconds: 30.0 };
    let mut burst = Scenario::new("burst", Sse, 1_000, Workload::Burst { events: 50_000 });
    burst.debounce_ms = 500;
    vec![
        Scenario::new("idle-10k", Sse, 10_000, idle.clone()),
        Scenario::new("idle-10k", Ws, 10_000, idle),
        Scenario::new(
            "light-1k",
            Sse,
            1_000,
            Workload::Flow {
                rate: 20.0,
                seconds: 10.0,
            },
        ),
        Scenario::new(
            "fanout-1k",
            Sse,
            1_000,
            Workload::Flow {
                rate: 200.0,
                seconds: 10.0,
            },
        ),
        Scenario::new(
            "fanout-5k",
            Sse,
            5_000,
            Workload::Flow {
                rate: 100.0,
                seconds: 10.0,
            },
        ),
        Scenario::new(
            "fanout-5k",
            Ws,
            5_000,
            Workload::Flow {
                rate: 100.0,
                seconds: 10.0,
            },
        ),
        Scenario::new(
            "saturation",
            Sse,
            1_000,
            Workload::Saturation {
                start_rate: 200.0,
                factor: 1.5,
                step_seconds: 5.0,
                max_steps: 8,
                p99_limit_ms: 100.0,
            },
        ),
        burst,
        Scenario::new(
            "reconnect-storm",
            Sse,
            5_000,
            Workload::ReconnectStorm {
                rate: 100.0,
                seconds: 8.0,
                kick_after_seconds: 3.0,
            },
        ),
        Scenario::new(
            "soak",
            Sse,
            1_000,
            Workload::Soak {
                rate: 200.0,
                seconds: 150.0,
                sample_seconds: 5.0,
            },
        ),
    ]
}

/// Memory growth in KiB per minute: the slope of a least-squares line through `(seconds, KiB)`
/// samples, leaving out the first half: start-up, and the replay ring filling (10,000 events
/// take 50 s at 200/s), which is growth that stops.
pub fn growth_kib_per_min(samples: &[(f64, u64)]) -> Option<f64> {
    let steady = &samples[samples.len() / 2..];
    if steady.len() < 3 {
        return None;
    }
    let n = steady.len() as f64;
    let mean_t = steady.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_v = steady.iter().map(|(_, v)| *v as f64).sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for (t, v) in steady {
        covariance += (t - mean_t) * (*v as f64 - mean_v);
        variance += (t - mean_t) * (t - mean_t);
    }
    (variance > 0.0).then(|| covariance / variance * 60.0)
}

/// Latency quantiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Quantiles {
    /// From latencies in µs (sorted in place).
    pub fn of(latencies_us: &mut [u64]) -> Option<Quantiles> {
        if latencies_us.is_empty() {
            return None;
        }
        latencies_us.sort_unstable();
        let at = |fraction: f64| {
            let index = ((latencies_us.len() as f64 * fraction).ceil() as usize)
                .clamp(1, latencies_us.len())
                - 1;
            latencies_us[index] as f64 / 1000.0
        };
        Some(Quantiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        })
    }
}

/// One saturation step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub rate: f64,
    pub deliveries_per_sec: f64,
    pub lost: u64,
    pub latency_ms: Option<Quantiles>,
}

/// CPU seconds each process used during the run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuSeconds {
    pub gateway: f64,
    pub bridge: f64,
    pub redis: f64,
    pub nats: f64,
    pub loadgen: f64,
}

/// What one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    pub transport: String,
    pub connections: usize,
    /// Connections ready (first heartbeat in) when the workload started.
    pub connected: usize,
    pub events: u64,
    pub expected_deliveries: u64,
    /// Distinct deliveries (by seq) of the published events.
    pub deliveries: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub deliveries_per_sec: f64,
    pub latency_ms: Option<Quantiles>,
    /// Gateway RSS before connecting, once connected, at the end (KiB).
    pub gateway_rss_kib: [u64; 3],
    pub bridge_rss_kib: [u64; 3],
    /// (connected - before) / connections.
    pub rss_per_connection_kib: f64,
    pub cpu_seconds: CpuSeconds,
    /// Gateway CPU during the workload, % of one core.
    pub gateway_cpu_percent: f64,
    pub workload_seconds: f64,
    /// CPU time the hypervisor took from this machine during the workload, % (a shared
    /// machine's noise: with much of it, the run measured the neighbours).
    pub steal_percent: Option<f64>,
    /// A loopback TCP write of 3 KiB and its read, µs, measured just before the workload:
    /// the machine's speed at what a fan-out costs (see `calibrate`).
    pub loopback_write_us: Option<f64>,
    /// µs per send of one event's SSE chunk to each of 1,000 loopback sockets, from the
    /// gateway's CPUs, measured just before the workload: the kernel's floor under a fan-out
    /// (see `calibrate::sweep_send_us`).
    pub sweep_send_us: Option<f64>,
    /// Burst: median frames each client got; time from the burst until every event was
    /// accounted for; whether every client's frames stand for every event.
    pub frames_per_client: Option<f64>,
    pub quiet_after_ms: Option<f64>,
    pub every_event_in_a_frame: Option<bool>,
    /// Reconnect storm: kick to every client live again.
    pub all_back_after_ms: Option<f64>,
    /// Saturation: the highest deliveries/s with p99 under the limit and nothing lost.
    pub peak_deliveries_per_sec: Option<f64>,
    /// Soak: RSS growth of the gateway and the bridge, KiB per minute, with no scraper.
    pub gateway_growth_kib_per_min: Option<f64>,
    pub bridge_growth_kib_per_min: Option<f64>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub bin_dir: std::path::PathBuf,
    pub gateway_cpus: Option<String>,
    /// Settings for the gateway on top of the scenario's.
    pub gateway_env: Vec<(String, String)>,
}

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
            let publisher = {
                let events = events.clone();
                let mut redis = redis.clone();
                let rate = *rate;
                tokio::spawn(async move { events.paced(&mut redis, 0, count, rate).await })
            };
            tokio::time::sleep(Duration::from_secs_f64(*kick_after_seconds)).await;
            let kicked = Instant::now();
            subscribers.kick_all();
            report.all_back_after_ms = subscribers
                .wait_all_back(kicked, DRAIN_LIMIT)
                .await
                .map(|took| took.as_secs_f64() * 1000.0);
            match publisher.await {
                Ok(result) => {
                    result?;
                }
                Err(_) => eprintln!("rakuda-loadgen: the publisher task panicked"),
            }
            settle_flow(&mut report, &subscribers, count, workload_started).await;
        }
        Workload::Soak {
            rate,
            seconds,
            sample_seconds,
        } => {
            let count = (rate * seconds) as u64;
            let publisher = {
                let events = events.clone();
                let mut redis = redis.clone();
                let rate = *rate;
                tokio::spawn(async move { events.paced(&mut redis, 0, count, rate).await })
            };
            let mut gateway = Vec::new();
            let mut bridge = Vec::new();
            while !publisher.is_finished() {
                let reading = stack.reading();
                let at = workload_started.elapsed().as_secs_f64();
                gateway.push((at, reading.gateway.rss_kib));
                bridge.push((at, reading.bridge.rss_kib));
                tokio::time::sleep(Duration::from_secs_f64(*sample_seconds)).await;
            }
            match publisher.await {
                Ok(result) => {
                    result?;
                }
                Err(_) => eprintln!("rakuda-loadgen: the publisher task panicked"),
            }
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

/// The median of `values` (sorted in place).
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_right_ranks() {
        let mut latencies: Vec<u64> = (1..=1000).map(|ms| ms * 1000).collect();
        let q = Quantiles::of(&mut latencies).expect("quantiles");
        assert_eq!(q.p50, 500.0);
        assert_eq!(q.p99, 990.0);
        assert_eq!(q.p999, 999.0);
        assert_eq!(q.max, 1000.0);
        assert!(Quantiles::of(&mut []).is_none());
    }

    #[test]
    fn growth_is_the_slope_after_the_warm_up() {
        // 1 MiB a minute after a first half that jumps.
        let mut samples: Vec<(f64, u64)> = (0..20).map(|i| (i as f64, 5_000 * i as u64)).collect();
        samples.extend((20..40).map(|i| (i as f64 * 6.0, 200_000 + i as u64 * 6 * 1024 / 60)));
        let growth = growth_kib_per_min(&samples).expect("enough samples");
        assert!((growth - 1024.0).abs() < 1.0, "{growth}");
        let flat: Vec<(f64, u64)> = (0..20).map(|i| (i as f64, 50_000)).collect();
        assert_eq!(growth_kib_per_min(&flat), Some(0.0));
        assert_eq!(growth_kib_per_min(&flat[..4]), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
