//! One fleet scenario on a fresh fleet stack: workers started and every client ready, then
//! (fleet-56k) a window with no events for the heartbeats' CPU, then the load with its
//! disruption, then what every client saw, audited, as one [`FleetReport`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rakuda_schema::EventType;
use redis::aio::MultiplexedConnection;
use tokio_util::sync::CancellationToken;

use super::coordinator::{WorkerFailure, Workers};
use super::histogram::Histogram;
use super::monitor::Monitor;
use super::report::{FleetCpu, FleetReport};
use super::wire::{Audit, Command, RefetchConfig, Reply, WorkerConfig, WorkerReport};
use super::{Disruption, FleetScenario, REFETCH_RETRY, SNAPSHOT_PAGE};
use crate::client::http;
use crate::marker::now_us;
use crate::procstat::{self, Reading};
use crate::publish::LoadEvents;
use crate::stack::{self, FleetStack, FleetStackConfig, StackError, API_KEY};

/// How often the monitor samples NATS (and, for reset-herd, every gateway's `/metrics`).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// A delivery that has not arrived this long after the last one is presumed lost.
const QUIET: Duration = Duration::from_secs(5);
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
/// A reply may take this much longer than the command's own limit.
const REPLY_SLACK: Duration = Duration::from_secs(30);
/// History requests one worker has open at once: with its ~15,000 streams, under the
/// open-files limit.
const HISTORY_CONCURRENCY: usize = 2_000;

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

/// `127.0.0.{2 + index % count}`: the source address of worker `index`.
fn source_address(index: usize, count: usize) -> IpAddr {
    let last = 2 + (index % count.max(1)) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn worker_configs(
    scenario: &FleetScenario,
    urls: &[String],
    deadline: Duration,
) -> Vec<WorkerConfig> {
    let per_worker = scenario.per_worker();
    let refetch = (scenario.disruption == Disruption::RestartBridge).then(|| RefetchConfig {
        jitter_ms: scenario.refetch_jitter.as_millis() as u64,
        snapshot_channels: "inventory".into(),
        page_limit: SNAPSHOT_PAGE,
        retry_ms: REFETCH_RETRY.as_millis() as u64,
        concurrency: HISTORY_CONCURRENCY,
        limit_ms: scenario.phase_limit.as_millis() as u64,
    });
    (0..scenario.workers)
        .map(|worker| {
            let first_client = worker * per_worker;
            WorkerConfig {
                worker,
                source: source_address(worker, scenario.sources),
                gateways: urls.to_vec(),
                api_key: API_KEY.to_owned(),
                clients: per_worker.min(scenario.connections.saturating_sub(first_client)),
                first_client,
                ws_every: scenario.ws_every,
                wave: scenario.wave,
                backoff_initial_ms: scenario.backoff_initial.as_millis() as u64,
                backoff_max_ms: scenario.backoff_max.as_millis() as u64,
                // The browser client's watchdog: two heartbeat intervals (30 s by default).
                idle_timeout_ms: 60_000,
                refetch: refetch.clone(),
                deadline_s: deadline.as_secs(),
            }
        })
        .collect()
}

/// Every reply of a kind, or an error naming what came instead.
fn expect<T>(
    command: &str,
    replies: Vec<Reply>,
    pick: impl Fn(Reply) -> Result<T, Reply>,
) -> Result<Vec<T>, FleetError> {
    replies
        .into_iter()
        .map(|reply| {
            pick(reply).map_err(|other| FleetError::Unexpected {
                command: command.to_owned(),
                reply: format!("{other:?}"),
            })
        })
        .collect()
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

/// Waits up to `limit` until some client of `redis` holds a pattern subscription (a bridge
/// listens again); true if one does.
async fn wait_bridge_subscribed(redis: &mut MultiplexedConnection, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let clients: Option<String> = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(redis)
            .await
            .ok();
        let subscribed = clients.is_some_and(|clients| {
            clients.lines().any(|line| {
                line.split(' ')
                    .any(|f| f.starts_with("psub=") && f != "psub=0")
            })
        });
        if subscribed {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The load: one event every `1 / rate` s until `stop`, each to every client, numbered from 0
/// (`counter` says how many so far). `gate` pauses it while held (the bridge's restart).
/// Returns how many were published and how many reached no bridge.
async fn publish_load(
    mut redis: MultiplexedConnection,
    rate: f64,
    gate: Arc<tokio::sync::Mutex<()>>,
    stop: CancellationToken,
    first_published_us: Arc<AtomicU64>,
    counter: Arc<AtomicU64>,
    published_at: Arc<std::sync::Mutex<Vec<u64>>>,
) -> Result<(u64, u64), FleetError> {
    let events = LoadEvents {
        types: EventType::CLIENT.to_vec(),
        ..LoadEvents::default()
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut published, mut unheard) = (0u64, 0u64);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok((published, unheard)),
            _ = tick.tick() => {}
        }
        let _open = gate.lock().await;
        if stop.is_cancelled() {
            return Ok((published, unheard));
        }
        let (channel, json) = events.event(published)?;
        let now = now_us();
        if published == 0 {
            first_published_us.store(now, Ordering::SeqCst);
        }
        published_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(now);
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(json)
            .query_async(&mut redis)
            .await?;
        if receivers == 0 {
            unheard += 1;
        }
        published += 1;
        counter.store(published, Ordering::SeqCst);
    }
}

/// Readings of every process of the run at one moment.
struct Readings {
    gateways: Vec<Reading>,
    workers: Vec<Reading>,
    coordinator: Reading,
    bridge: Reading,
    nats: Reading,
    redis: Reading,
    cpus: Vec<procstat::CpuTimes>,
    machine: Option<procstat::MachineTimes>,
}

fn readings(stack: &FleetStack, worker_pids: &[u32]) -> Readings {
    let (bridge, nats, redis) = stack.servers();
    Readings {
        gateways: stack.gateway_readings(),
        workers: worker_pids
            .iter()
            .map(|pid| procstat::read(*pid).unwrap_or_default())
            .collect(),
        coordinator: procstat::read(std::process::id()).unwrap_or_default(),
        bridge,
        nats,
        redis,
        cpus: procstat::per_cpu(),
        machine: procstat::machine(),
    }
}

/// CPU seconds between two readings of processes that may have restarted (a restarted one's
/// counter starts again: what it used before is lost, never negative).
fn cpu_between(start: &[Reading], end: &[Reading]) -> f64 {
    start
        .iter()
        .zip(end)
        .map(|(start, end)| {
            if end.cpu_seconds >= start.cpu_seconds {
                end.cpu_seconds - start.cpu_seconds
            } else {
                end.cpu_seconds
            }
        })
        .sum()
}

fn fill_cpu(report: &mut FleetReport, start: &Readings, end: &Readings, seconds: f64) {
    let one = |start: &Reading, end: &Reading| cpu_between(&[*start], &[*end]);
    report.cpu_s = FleetCpu {
        gateways: cpu_between(&start.gateways, &end.gateways),
        workers: cpu_between(&start.workers, &end.workers),
        coordinator: one(&start.coordinator, &end.coordinator),
        bridge: one(&start.bridge, &end.bridge),
        nats: one(&start.nats, &end.nats),
        redis: one(&start.redis, &end.redis),
    };
    if seconds > 0.0 {
        report.gateway_cpu_percent = report.cpu_s.gateways / seconds * 100.0;
        report.nats_cpu_percent = report.cpu_s.nats / seconds * 100.0;
    }
    report.cpu_busy_percent = end
        .cpus
        .iter()
        .zip(&start.cpus)
        .map(|(end, start)| end.busy_percent_since(start).unwrap_or(0.0))
        .collect();
    report.steal_percent = end
        .machine
        .zip(start.machine)
        .and_then(|(end, start)| end.steal_percent_since(&start));
}

/// Fills the audit, latency and client figures from the workers' reports.
fn fill_audit(report: &mut FleetReport, workers: &[WorkerReport], untouched: &[usize]) {
    let mut total = WorkerReport::default();
    for worker in workers {
        total.add(worker);
    }
    let mut all = Audit::default();
    let mut untouched_latency = Histogram::default();
    for (gateway, audit) in total.by_gateway.iter().enumerate() {
        all.add(audit);
        if untouched.contains(&gateway) {
            untouched_latency.add(&audit.latency);
        }
    }
    report.sse = total.sse;
    report.ws = total.ws;
    report.deliveries_expected = all.expected;
    report.deliveries_received = all.received;
    report.lost = all.lost;
    report.lost_tail = all.lost_tail;
    report.lost_unsignalled = all.lost_unsignalled;
    report.clients_lost_unsignalled = all.clients_lost_unsignalled;
    report.duplicates = all.duplicates;
    report.out_of_order = all.out_of_order;
    report.late_clients = all.late;
    report.p50_ms = all.latency.quantile_ms(0.5);
    report.p99_ms = all.latency.quantile_ms(0.99);
    report.max_ms = all.latency.quantile_ms(1.0);
    if untouched.len() < total.by_gateway.len() {
        report.untouched_p50_ms = untouched_latency.quantile_ms(0.5);
        report.untouched_p99_ms = untouched_latency.quantile_ms(0.99);
    }
    report.clients_reset = total.clients_reset;
    report.resets = total.resets.clone();
    report.refused_503 = total
        .refusals
        .iter()
        .filter(|(what, _)| what.starts_with("503"))
        .map(|(_, count)| count)
        .sum();
    report.refusals = total.refusals.clone();
    report.failed_connects = total.failed_connects;
    report.passed_on = total.passed_on;
    report.last_error.clone_from(&total.last_error);
    report.reconnects = total.reconnects;
    report.max_reconnects_per_s_by_gateway = total.max_reconnects_per_second(report.gateways);
    report.session_ends = total.session_ends.clone();
    let history = &total.history;
    if history.refetches_started > 0 {
        report.history_requests = Some(history.requests);
        report.history_non_2xx = Some(history.non_2xx.values().sum());
        report.history_refusals = history.non_2xx.clone();
        report.history_errors = Some(history.errors);
        report.history_p50_ms = history.answer.quantile_ms(0.5);
        report.history_p99_ms = history.answer.quantile_ms(0.99);
        report.history_max_ms = history.answer.quantile_ms(1.0);
        report.refetches_done = Some(history.refetches_done);
        report.refetches_failed = Some(history.refetches_failed);
        report.refetch_p99_ms = history.refetch.quantile_ms(0.99);
        report.history_last_error.clone_from(&history.last_error);
    }
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
    let reply_limit = limit + REPLY_SLACK;
    let opening = Instant::now();
    let opened = workers
        .ask(
            &Command::Open {
                within_ms: limit.as_millis() as u64,
            },
            reply_limit,
        )
        .await?;
    report.conns_ready = expect("open", opened, |reply| match reply {
        Reply::Opened { ready } => Ok(ready),
        other => Err(other),
    })?
    .into_iter()
    .sum();
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
    let load_start = readings(&stack, &worker_pids);
    let gate = Arc::new(tokio::sync::Mutex::new(()));
    let stop_load = CancellationToken::new();
    let first_published_us = Arc::new(AtomicU64::new(u64::MAX));
    let published_at = Arc::new(std::sync::Mutex::new(Vec::new()));
    let published = Arc::new(AtomicU64::new(0));
    let publisher = tokio::spawn(publish_load(
        redis.clone(),
        scenario.rate,
        gate.clone(),
        stop_load.clone(),
        first_published_us.clone(),
        published.clone(),
        published_at.clone(),
    ));
    let load_started = Instant::now();
    let disrupt_at = load_started + Duration::from_secs_f64(scenario.disrupt_after_s);
    let mut untouched: Vec<usize> = (0..scenario.gateways).collect();
    // How long the load was held back (reset-herd): the load runs that much longer.
    let mut paused_for = Duration::ZERO;
    let disruption_ended = match scenario.disruption {
        Disruption::None => None,
        Disruption::KillGateway => {
            tokio::time::sleep_until(disrupt_at.into()).await;
            let since = now_us();
            stack.gateways[0].kill();
            untouched.retain(|gateway| *gateway != 0);
            eprintln!("rakuda-loadgen: {}: gw-0 killed", scenario.name);
            let back = wait_back(&mut workers, since, 0, limit, reply_limit).await?;
            fill_back(&mut report, since, &back);
            Some(Instant::now())
        }
        Disruption::RollingDeploy => {
            tokio::time::sleep_until(disrupt_at.into()).await;
            let mut dropped = 0;
            let mut back_count = 0;
            for index in 0..stack.gateways.len() {
                // Out of the load balancer first, as an orchestrator does before stopping an
                // instance: only the drain moves its clients, and none arrives meanwhile.
                rotate(&mut workers, index, false, reply_limit).await?;
                let since = now_us();
                let gateway = &mut stack.gateways[index];
                let name = gateway.name.clone();
                gateway
                    .signal("TERM")
                    .map_err(|source| FleetError::Restart {
                        what: name.clone(),
                        source,
                    })?;
                // The drain spreads its closes over its window, then the process exits.
                let exit_limit = scenario.drain_window + Duration::from_secs(20);
                if gateway.wait_exit(exit_limit).await.is_none() {
                    eprintln!(
                        "rakuda-loadgen: {name} did not exit within {exit_limit:?} of SIGTERM; killed"
                    );
                    gateway.kill();
                }
                gateway
                    .start()
                    .await
                    .map_err(|source| FleetError::Restart {
                        what: name.clone(),
                        source,
                    })?;
                // Back in once `/readyz` answers (start waits for it).
                rotate(&mut workers, index, true, reply_limit).await?;
                let back = wait_back(&mut workers, since, index, limit, reply_limit).await?;
                let (d, b, last) = back;
                dropped += d;
                back_count += b;
                // A recovery time only once every client it dropped is back.
                let recovered = (b == d)
                    .then(|| last.map_or(0.0, |last| last.saturating_sub(since) as f64 / 1e6));
                eprintln!(
                    "rakuda-loadgen: {name} restarted; {b} of {d} of its clients back in {}",
                    recovered.map_or("–".into(), |s| format!("{s:.1} s"))
                );
                report
                    .recovered_s_by_gateway
                    .push(recovered.unwrap_or(f64::NAN));
            }
            report.dropped_clients = Some(dropped);
            report.clients_back = Some(back_count);
            report.recovered_s = report
                .recovered_s_by_gateway
                .iter()
                .copied()
                .filter(|s| s.is_finite())
                .reduce(f64::max);
            Some(Instant::now())
        }
        Disruption::RestartBridge => {
            tokio::time::sleep_until(disrupt_at.into()).await;
            let herd_start = (readings(&stack, &worker_pids), Instant::now());
            // The load pauses from here until every client has refetched. While no bridge
            // listens, an event would be lost at the source, by design, and no loss of the
            // fleet's. And during the herd the clients' core serves the herd alone: at 112,000
            // deliveries/s the clients already take about two thirds of it.
            let paused = gate.lock().await;
            let pause_started = Instant::now();
            let restarted_us = {
                // Nor one the bridge has read but not stored when it is killed (the gap marker
                // tells the clients of that one too): everything published reaches every
                // client first.
                let delivered = workers
                    .ask(
                        &Command::WaitMarks {
                            count: published.load(Ordering::SeqCst),
                            quiet_ms: QUIET.as_millis() as u64,
                            limit_ms: limit.as_millis() as u64,
                        },
                        reply_limit,
                    )
                    .await?;
                expect("wait_marks", delivered, |reply| match reply {
                    Reply::Marks { complete } => Ok(complete),
                    other => Err(other),
                })?;
                stack.bridge.kill();
                stack
                    .bridge
                    .start()
                    .await
                    .map_err(|source| FleetError::Restart {
                        what: "the bridge".into(),
                        source,
                    })?;
                stack::wait_stored(&stack.bridge).await?;
                let mut redis = redis.clone();
                if !wait_bridge_subscribed(&mut redis, limit).await {
                    return Err(FleetError::BridgeNotBack(limit));
                }
                now_us()
            };
            eprintln!("rakuda-loadgen: {}: bridge restarted", scenario.name);
            let replies = workers
                .ask(
                    &Command::WaitResets {
                        count: 1,
                        limit_ms: limit.as_millis() as u64,
                    },
                    reply_limit,
                )
                .await?;
            let resets = expect("wait_resets", replies, |reply| match reply {
                Reply::Resets {
                    reset,
                    refetched,
                    last_refetch_us,
                } => Ok((reset, refetched, last_refetch_us)),
                other => Err(other),
            })?;
            let last = resets.iter().filter_map(|(_, _, last)| *last).max();
            report.refetch_s = last.map(|last| last.saturating_sub(restarted_us) as f64 / 1e6);
            // NATS and the gateways from the bridge's kill to the last refetch: the herd alone.
            let herd_end = readings(&stack, &worker_pids);
            let seconds = herd_start.1.elapsed().as_secs_f64().max(1e-9);
            let (start, _) = &herd_start;
            report.herd_s = Some(seconds);
            report.herd_nats_cpu_percent =
                Some(cpu_between(&[start.nats], &[herd_end.nats]) / seconds * 100.0);
            report.herd_gateway_cpu_percent =
                Some(cpu_between(&start.gateways, &herd_end.gateways) / seconds * 100.0);
            report.herd_worker_cpu_percent =
                Some(cpu_between(&start.workers, &herd_end.workers) / seconds * 100.0);
            eprintln!(
                "rakuda-loadgen: {}: {} clients reset, {} refetched",
                scenario.name,
                resets.iter().map(|(reset, _, _)| reset).sum::<usize>(),
                resets
                    .iter()
                    .map(|(_, refetched, _)| refetched)
                    .sum::<usize>()
            );
            drop(paused);
            paused_for = pause_started.elapsed();
            Some(Instant::now())
        }
    };
    let load_end = (load_started + Duration::from_secs_f64(scenario.traffic_s) + paused_for).max(
        disruption_ended
            .map(|ended| ended + Duration::from_secs_f64(scenario.tail_s))
            .unwrap_or(load_started),
    );
    tokio::time::sleep_until(load_end.into()).await;
    stop_load.cancel();
    let (events, unheard) = match publisher.await {
        Ok(result) => result?,
        Err(_) => {
            return Err(FleetError::Unexpected {
                command: "publish".into(),
                reply: "the publisher task panicked".into(),
            })
        }
    };
    let load_seconds = load_started.elapsed().as_secs_f64();
    report.events = events;
    report.events_unheard = unheard;
    report.traffic_s = load_seconds;
    phase(&mut report, "load", &mut phase_started);

    let settled = workers
        .ask(
            &Command::WaitMarks {
                count: events,
                quiet_ms: QUIET.as_millis() as u64,
                limit_ms: SETTLE_LIMIT.as_millis() as u64,
            },
            SETTLE_LIMIT + REPLY_SLACK,
        )
        .await?;
    expect("wait_marks", settled, |reply| match reply {
        Reply::Marks { complete } => Ok(complete),
        other => Err(other),
    })?;
    phase(&mut report, "settle", &mut phase_started);
    let load_end_readings = readings(&stack, &worker_pids);
    report.load_average[1] = procstat::load_average();
    fill_cpu(&mut report, &load_start, &load_end_readings, load_seconds);
    let first_published = first_published_us.load(Ordering::SeqCst);
    let published_us = published_at
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    let replies = workers
        .ask(
            &Command::Report {
                expected: events,
                first_published_us: first_published,
                published_us,
            },
            reply_limit,
        )
        .await?;
    let worker_reports = expect("report", replies, |reply| match reply {
        Reply::Report(report) => Ok(*report),
        other => Err(other),
    })?;
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

/// Puts `gateway` in every worker's rotation or takes it out.
async fn rotate(
    workers: &mut Workers,
    gateway: usize,
    serving: bool,
    reply_limit: Duration,
) -> Result<(), FleetError> {
    let replies = workers
        .ask(&Command::Rotation { gateway, serving }, reply_limit)
        .await?;
    expect("rotation", replies, |reply| match reply {
        Reply::Rotated => Ok(()),
        other => Err(other),
    })?;
    Ok(())
}

/// Asks every worker until when every client that was on `gateway` at `since` was back:
/// `(dropped, back, when the last came back)`.
async fn wait_back(
    workers: &mut Workers,
    since: u64,
    gateway: usize,
    limit: Duration,
    reply_limit: Duration,
) -> Result<(usize, usize, Option<u64>), FleetError> {
    let replies = workers
        .ask(
            &Command::WaitBack {
                since_us: since,
                gateway,
                limit_ms: limit.as_millis() as u64,
            },
            reply_limit,
        )
        .await?;
    let backs = expect("wait_back", replies, |reply| match reply {
        Reply::Back {
            dropped,
            back,
            last_back_us,
        } => Ok((dropped, back, last_back_us)),
        other => Err(other),
    })?;
    Ok((
        backs.iter().map(|(dropped, _, _)| dropped).sum(),
        backs.iter().map(|(_, back, _)| back).sum(),
        backs.iter().filter_map(|(_, _, last)| *last).max(),
    ))
}

fn fill_back(report: &mut FleetReport, since: u64, back: &(usize, usize, Option<u64>)) {
    let (dropped, back_count, last) = *back;
    report.dropped_clients = Some(dropped);
    report.clients_back = Some(back_count);
    // Only once every dropped client is back is there a recovery time to give.
    if back_count == dropped {
        report.recovered_s = Some(last.map_or(0.0, |last| last.saturating_sub(since) as f64 / 1e6));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_take_addresses_in_turn_and_share_the_clients() {
        let scenario = super::super::find("fleet-56k").expect("defined");
        let urls: Vec<String> = (0..4)
            .map(|i| format!("http://127.0.0.1:{}", 9000 + i))
            .collect();
        let configs = worker_configs(&scenario, &urls, Duration::from_secs(600));
        assert_eq!(configs.len(), 4);
        assert_eq!(configs.iter().map(|c| c.clients).sum::<usize>(), 56_000);
        let sources: Vec<String> = configs.iter().map(|c| c.source.to_string()).collect();
        assert_eq!(
            sources,
            ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
        );
        assert_eq!(configs[3].first_client, 42_000);
        assert!(configs.iter().all(|c| c.refetch.is_none()));
        let small = super::super::find("reset-herd")
            .expect("defined")
            .scaled_down(200);
        let configs = worker_configs(&small, &urls, Duration::from_secs(60));
        let sources: Vec<String> = configs.iter().map(|c| c.source.to_string()).collect();
        assert_eq!(
            sources,
            ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]
        );
        assert!(configs.iter().all(|c| c.refetch.is_some()));
    }

    #[test]
    fn counters_by_reason_are_read_from_prometheus_text() {
        let text = "# HELP x\nbridge_source_gaps_total{reason=\"start\"} 1\nbridge_source_gaps_total{reason=\"departed\"} 0\nbridge_other 3\n";
        let gaps = by_reason(text, "bridge_source_gaps_total");
        assert_eq!(
            gaps.into_iter().collect::<Vec<_>>(),
            [("start".to_owned(), 1)]
        );
    }

    #[test]
    fn cpu_of_a_restarted_process_counts_from_its_restart() {
        let reading = |cpu_seconds| Reading {
            rss_kib: 1,
            cpu_seconds,
        };
        assert_eq!(
            cpu_between(&[reading(5.0), reading(2.0)], &[reading(7.0), reading(0.5)]),
            2.5
        );
    }
}
