//! One fleet scenario on a fresh fleet stack: workers started and every client ready, then
//! (fleet-56k) a window with no events for the heartbeats' CPU, then the load with its
//! disruption, then what every client saw, audited, as one [`FleetReport`]. The phases are
//! here, in order; what each does is in the modules the fleet module lists.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::coordinator::{worker_configs, WorkerFailure, Workers};
use super::monitor::Monitor;
use super::publisher::Publisher;
use super::readings::{cpu_between, fill_cpu, Readings};
use super::report::{fill_audit, FleetReport};
use super::{ask, disruptions, Disruption, FleetScenario};
use crate::client::http;
use crate::procstat;
use crate::stack::{FleetStack, FleetStackConfig, StackError};

/// How often the monitor samples NATS (and, for reset-herd, every gateway's `/metrics`).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Longest wait for the last deliveries after the load stopped.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// Gateway connections at most: under the 20,000 open files a process may have here, so a
/// gateway past it refuses with 503 rather than failing to accept. A storm that moves a
/// killed gateway's 14,000 clients to the other three brings each to about 18,700.
const MAX_CONNECTIONS_PER_GATEWAY: usize = 19_000;
/// A worker that still runs this long after the run's phases could have ended stops itself.
const WORKER_SLACK: Duration = Duration::from_secs(120);
/// How long the memory is left to settle after the last client connected.
const SETTLE_MEMORY: Duration = Duration::from_secs(1);

/// How to run the fleet scenarios.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Where `rakuda-bridge` and `rakuda-gateway` were built.
    pub bin_dir: PathBuf,
    /// The `rakuda-loadgen` binary the workers run (`fleet-worker`).
    pub worker_exe: PathBuf,
    /// `taskset -c` CPUs for the gateways (`None`: not pinned).
    pub gateway_cpus: Option<String>,
    /// Gateway settings on top of the scenario's (`CONNECTION_RATE_LIMIT=…`).
    pub gateway_env: Vec<(String, String)>,
}

/// Why a fleet run produced no report.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cannot start the fleet stack: {0}")]
    Stack(#[from] StackError),
    #[error("cannot restart {what}: {source}")]
    Restart {
        what: String,
        source: rakuda_testkit::Error,
    },
    #[error(transparent)]
    Worker(#[from] WorkerFailure),
    #[error("cannot connect to Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot publish: {0}")]
    Publish(#[from] crate::publish::PublishError),
    #[error("a worker answered `{command}` with {reply}")]
    Unexpected { command: String, reply: String },
    #[error(
        "the bridge was not subscribed to Redis again within {0:?} after its restart; \
         its log is in the run's temp directory"
    )]
    BridgeNotBack(Duration),
}

/// `CONNECTION_RATE_LIMIT` as the gateways run with it: the value given, or the default
/// `rakuda-gateway --help` shows, or `None` for a gateway without the setting.
fn connection_rate_limit(options: &FleetOptions) -> Option<String> {
    let help = std::process::Command::new(options.bin_dir.join("rakuda-gateway"))
        .arg("--help")
        .output()
        .ok()?;
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let at = help.find("CONNECTION_RATE_LIMIT")?;
    if let Some((_, value)) = options
        .gateway_env
        .iter()
        .find(|(name, _)| name == "CONNECTION_RATE_LIMIT")
    {
        return Some(value.clone());
    }
    let default = help[at..]
        .split("[default: ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or("?");
    Some(format!("{default} (default)"))
}

/// Records how long a phase took (and says so on stderr); the next phase starts now.
fn phase(report: &mut FleetReport, name: &str, started: &mut Instant) {
    let took = started.elapsed().as_secs_f64();
    eprintln!(
        "rakuda-loadgen: {}: {name} took {took:.1} s",
        report.scenario
    );
    report.phases_s.push((name.to_owned(), took));
    *started = Instant::now();
}

/// `name{reason="x"} N` samples of Prometheus text, by reason, the zeros left out.
fn by_reason(text: &str, name: &str) -> BTreeMap<String, u64> {
    let prefix = format!("{name}{{reason=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (reason, value) = rest.split_once("\"}")?;
            let value = value.trim().parse::<f64>().ok()? as u64;
            (value > 0).then(|| (reason.to_owned(), value))
        })
        .collect()
}

/// Runs one fleet scenario on a fresh fleet stack.
pub async fn run(
    scenario: &FleetScenario,
    options: &FleetOptions,
) -> Result<FleetReport, FleetError> {
    let run_started = Instant::now();
    let gateway_env: Vec<(String, String)> = [
        ("SSE_DEBOUNCE_WINDOW".to_owned(), "0".to_owned()),
        (
            "GATEWAY_DRAIN_WINDOW".to_owned(),
            format!("{}ms", scenario.drain_window.as_millis()),
        ),
        (
            "SSE_RETRY".to_owned(),
            scenario.sse_retry.as_millis().to_string(),
        ),
    ]
    .into_iter()
    .chain(options.gateway_env.iter().cloned())
    .collect();
    let mut stack = FleetStack::start(&FleetStackConfig {
        bin_dir: options.bin_dir.clone(),
        gateways: scenario.gateways,
        gateway_cpus: options.gateway_cpus.clone(),
        max_connections: MAX_CONNECTIONS_PER_GATEWAY,
        gateway_env,
    })
    .await?;
    let urls = stack.urls();
    let redis = crate::publish::connect(&stack.redis.url()).await?;
    let herd = scenario.disruption == Disruption::RestartBridge;
    let monitor = Monitor::start(
        stack.nats.monitor_url(),
        stack.nats.pid(),
        if herd { urls.clone() } else { Vec::new() },
        SAMPLE_EVERY,
    );
    let mut report = FleetReport {
        scenario: scenario.name.clone(),
        conns: scenario.connections,
        gateways: scenario.gateways,
        workers: scenario.workers,
        source_addresses: scenario.sources.min(scenario.workers),
        event_rate: scenario.rate,
        connection_rate_limit: connection_rate_limit(options),
        ..FleetReport::default()
    };
    let before: u64 = stack.gateway_readings().iter().map(|r| r.rss_kib).sum();
    report.gateway_rss_kb_before = before;
    report.load_average[0] = procstat::load_average();
    let mut phase_started = run_started;
    phase(&mut report, "stack", &mut phase_started);

    // Every phase is bounded, so the whole run is too; the workers stop themselves after it.
    let deadline = scenario.phase_limit * 4
        + Duration::from_secs_f64(scenario.traffic_s + scenario.idle_window_s + scenario.tail_s)
        + WORKER_SLACK;
    let configs = worker_configs(scenario, &urls, deadline);
    let mut workers = Workers::spawn(&options.worker_exe, &configs).await?;
    let limit = scenario.phase_limit;
    let opening = Instant::now();
    report.conns_ready = ask::open(&mut workers, limit).await?;
    report.open_s = opening.elapsed().as_secs_f64();
    eprintln!(
        "rakuda-loadgen: {}: {} of {} clients ready",
        scenario.name, report.conns_ready, scenario.connections
    );
    phase(&mut report, "open", &mut phase_started);
    tokio::time::sleep(SETTLE_MEMORY).await;
    let connected: u64 = stack.gateway_readings().iter().map(|r| r.rss_kib).sum();
    report.gateway_rss_kb = connected;
    if report.conns_ready > 0 {
        report.kib_per_conn = connected.saturating_sub(before) as f64 / report.conns_ready as f64;
    }
    let worker_pids = workers.pids();
    report.worker_rss_kb = worker_pids
        .iter()
        .filter_map(|pid| procstat::read(*pid))
        .map(|reading| reading.rss_kib)
        .sum();

    if scenario.idle_window_s > 0.0 {
        // Nothing is published: what the gateways spend now is heartbeats (and their timers).
        let window = Duration::from_secs_f64(scenario.idle_window_s);
        let start = stack.gateway_readings();
        tokio::time::sleep(window).await;
        let end = stack.gateway_readings();
        let cpu = cpu_between(&start, &end);
        report.idle_window_s = Some(window.as_secs_f64());
        report.idle_gateway_cpu_percent = Some(cpu / window.as_secs_f64() * 100.0);
        if report.conns_ready > 0 {
            report.heartbeat_cpu_us_per_conn_s =
                Some(cpu * 1e6 / (report.conns_ready as f64 * window.as_secs_f64()));
        }
        phase(&mut report, "idle", &mut phase_started);
    }

    // The kernel's floor for a fan-out from the gateways' core, timed with nothing else
    // running: one event to every client takes at least this many sends there.
    let cpus = options.gateway_cpus.clone();
    report.sweep_send_us =
        tokio::task::spawn_blocking(move || crate::calibrate::sweep_send_us(cpus.as_deref()))
            .await
            .ok()
            .flatten();
    report.fanout_floor_ms = report
        .sweep_send_us
        .map(|us| us * report.conns_ready as f64 / 1000.0);
    monitor.reset();
    let load_start = Readings::now(&stack, &worker_pids);
    let load = Publisher::start(redis.clone(), scenario.rate);
    let load_started = Instant::now();
    let disrupt_at = load_started + Duration::from_secs_f64(scenario.disrupt_after_s);
    let mut untouched: Vec<usize> = (0..scenario.gateways).collect();
    // How long the load was held back (reset-herd): the load runs that much longer.
    let mut paused_for = Duration::ZERO;
    let disruption_ended = match scenario.disruption {
        Disruption::None => None,
        Disruption::KillGateway => {
            tokio::time::sleep_until(disrupt_at.into()).await;
            disruptions::kill_gateway(&mut stack, &mut workers, &mut report, scenario).await?;
            untouched.retain(|gateway| *gateway != 0);
            Some(Instant::now())
        }
        Disruption::RollingDeploy => {
            tokio::time::sleep_until(disrupt_at.into()).await;
            disruptions::rolling_deploy(&mut stack, &mut workers, &mut report, scenario).await?;
            Some(Instant::now())
        }
        Disruption::RestartBridge => {
            tokio::time::sleep_until(disrupt_at.into()).await;
            paused_for = disruptions::restart_bridge(
                &mut stack,
                &mut workers,
                &mut report,
                scenario,
                &load,
                &redis,
                &worker_pids,
            )
            .await?;
            Some(Instant::now())
        }
    };
    let load_end = (load_started + Duration::from_secs_f64(scenario.traffic_s) + paused_for).max(
        disruption_ended
            .map(|ended| ended + Duration::from_secs_f64(scenario.tail_s))
            .unwrap_or(load_started),
    );
    tokio::time::sleep_until(load_end.into()).await;
    let published = load.stop().await?;
    let events = published.events;
    let load_seconds = load_started.elapsed().as_secs_f64();
    report.events = events;
    report.events_unheard = published.unheard;
    report.traffic_s = load_seconds;
    phase(&mut report, "load", &mut phase_started);

    ask::wait_marks(&mut workers, events, SETTLE_LIMIT).await?;
    phase(&mut report, "settle", &mut phase_started);
    let load_end_readings = Readings::now(&stack, &worker_pids);
    report.load_average[1] = procstat::load_average();
    fill_cpu(&mut report, &load_start, &load_end_readings, load_seconds);
    let worker_reports = ask::report(
        &mut workers,
        events,
        published.first_us,
        published.at_us,
        limit,
    )
    .await?;
    fill_audit(&mut report, &worker_reports, &untouched);
    report.deliveries_per_s = report.deliveries_received as f64 / load_seconds.max(1e-9);
    if report.deliveries_received > 0 {
        let per = |cpu: f64| Some(cpu * 1e6 / report.deliveries_received as f64);
        report.gateway_us_per_delivery = per(report.cpu_s.gateways);
        report.worker_us_per_delivery = per(report.cpu_s.workers);
    }
    report.gateway_rss_kb_end = stack.gateway_readings().iter().map(|r| r.rss_kib).sum();
    if let Ok(metrics) = http::get(
        &stack.bridge.url(),
        "/metrics",
        None,
        None,
        Duration::from_secs(5),
        16 * 1024 * 1024,
    )
    .await
    {
        let text = String::from_utf8_lossy(&metrics.body);
        report.bridge_source_gaps = by_reason(&text, "bridge_source_gaps_total");
        report.bridge_subscriptions_ended = by_reason(&text, "bridge_subscriptions_ended_total");
    }
    let peaks = monitor.stop().await;
    report.peak_jetstream_consumers = peaks.jetstream_consumers;
    report.jetstream_consumers_at_rest = peaks.jetstream_consumers_at_start;
    report.peak_history_consumers_by_gateway = peaks.history_consumers_by_gateway;
    report.monitor_failed_samples = peaks.failed_samples;
    report.nats_rss_kb_peak = peaks.nats_rss_kib;
    workers.stop(Duration::from_secs(30)).await;
    phase(&mut report, "stop", &mut phase_started);
    report.run_s = run_started.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_by_reason_are_read_from_prometheus_text() {
        let text = "# HELP x\nbridge_source_gaps_total{reason=\"start\"} 1\nbridge_source_gaps_total{reason=\"departed\"} 0\nbridge_other 3\n";
        let gaps = by_reason(text, "bridge_source_gaps_total");
        assert_eq!(
            gaps.into_iter().collect::<Vec<_>>(),
            [("start".to_owned(), 1)]
        );
    }
}
