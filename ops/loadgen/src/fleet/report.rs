//! What one fleet scenario run measured: [`FleetReport`], printed as one JSON line per run,
//! every field documented here (docs/BENCHMARKS.md points at them). The medians of several runs
//! are [`super::rows`].

use std::collections::BTreeMap;

use serde::Serialize;

use super::histogram::Histogram;
use super::wire::{Audit, WorkerReport};

/// CPU seconds each kind of process used from the start of the load to its end.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FleetCpu {
    /// Every gateway together (they share one CPU).
    pub gateways: f64,
    /// Every worker process together.
    pub workers: f64,
    pub coordinator: f64,
    pub bridge: f64,
    pub nats: f64,
    pub redis: f64,
}

/// One run of one fleet scenario. Fields that do not apply to the scenario are `null`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetReport {
    pub scenario: String,
    /// Connections asked for, and ready (first heartbeat in) once opening ended.
    pub conns: usize,
    pub conns_ready: usize,
    pub sse: usize,
    pub ws: usize,
    pub gateways: usize,
    pub workers: usize,
    pub source_addresses: usize,
    /// From the first connection attempt until every client was ready.
    pub open_s: f64,
    /// Load events published (each to every client) and their rate.
    pub events: u64,
    pub event_rate: f64,
    /// Events that reached no bridge (`PUBLISH` answered 0 receivers): lost at the source.
    pub events_unheard: u64,
    /// Events × clients audited, and the distinct ones of them delivered.
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    pub lost: u64,
    /// Of `lost`, events after the last one a client received: still on their way when the
    /// audit was taken (a client behind, or not back), not holes in its stream.
    pub lost_tail: u64,
    /// Of `lost`, holes published after the client's last `reset` (or to a client never reset):
    /// lost without the client being told. Must be 0.
    pub lost_unsignalled: u64,
    /// Clients with at least one unsignalled loss.
    pub clients_lost_unsignalled: usize,
    /// Deliveries of a `seq` the client already had.
    pub duplicates: u64,
    /// Deliveries below one already delivered of the same type.
    pub out_of_order: u64,
    /// Clients ready only after the load started (left out of the audit).
    pub late_clients: usize,
    /// Distinct deliveries per second of load.
    pub deliveries_per_s: f64,
    /// Publish (Redis) to receive (client), every delivery.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// The same for the clients of the gateways left alone (storm-kill: the three that were
    /// not killed).
    pub untouched_p50_ms: Option<f64>,
    pub untouched_p99_ms: Option<f64>,
    /// Every gateway's RSS added up once all clients were connected, before any, and at the
    /// end (KiB).
    pub gateway_rss_kb: u64,
    pub gateway_rss_kb_before: u64,
    pub gateway_rss_kb_end: u64,
    /// (connected − before) / ready connections.
    pub kib_per_conn: f64,
    /// Every worker's RSS added up once all clients were connected (KiB): the clients' side.
    pub worker_rss_kb: u64,
    /// The most JetStream consumers NATS held during the load and the disruption (every kind:
    /// each gateway's feed, history answers, the bridge's), and at the start of the load.
    pub peak_jetstream_consumers: Option<u64>,
    pub jetstream_consumers_at_rest: Option<u64>,
    /// The most `gateway_history_consumers` each gateway held (reset-herd only: scraping
    /// `/metrics` every 100 ms costs the gateways CPU).
    pub peak_history_consumers_by_gateway: Vec<Option<u64>>,
    /// NATS's samples that got no answer.
    pub monitor_failed_samples: u64,
    /// Storms: from the disruption until every client it dropped was live again (rolling-deploy:
    /// the longest of the four gateways').
    pub recovered_s: Option<f64>,
    pub recovered_s_by_gateway: Vec<f64>,
    pub dropped_clients: Option<usize>,
    pub clients_back: Option<usize>,
    /// fleet-56k: the gateways' CPU during a window with no events, per connection and second
    /// (the heartbeats, at the gateway's default 30 s interval unless overridden).
    pub heartbeat_cpu_us_per_conn_s: Option<f64>,
    pub idle_window_s: Option<f64>,
    pub idle_gateway_cpu_percent: Option<f64>,
    pub resets: BTreeMap<String, u64>,
    pub clients_reset: usize,
    /// Refusals with status 503 (any reason), and every refusal by `<status> <reason>`.
    pub refused_503: u64,
    pub refusals: BTreeMap<String, u64>,
    /// Attempts that streamed on no gateway (the client then backed off), and gateways passed
    /// over within an attempt (unreachable, 502 or 503: on to the next, as nginx does).
    pub failed_connects: u64,
    pub passed_on: u64,
    /// Sessions opened with a cursor, and the most opened on one gateway in one second.
    pub reconnects: u64,
    pub max_reconnects_per_s_by_gateway: Vec<u64>,
    /// The gateways' `CONNECTION_RATE_LIMIT` (`"1000"`, `"1000 (default)"`), if they have one.
    pub connection_rate_limit: Option<String>,
    /// reset-herd: summary and snapshot requests after the resets.
    pub history_requests: Option<u64>,
    pub history_non_2xx: Option<u64>,
    /// The non-2xx answers by `<status> <reason>`.
    pub history_refusals: BTreeMap<String, u64>,
    pub history_errors: Option<u64>,
    pub history_p50_ms: Option<f64>,
    pub history_p99_ms: Option<f64>,
    pub history_max_ms: Option<f64>,
    pub refetches_done: Option<u64>,
    pub refetches_failed: Option<u64>,
    /// From a client's reset to the end of its refetch (jitter included), p99.
    pub refetch_p99_ms: Option<f64>,
    /// From the bridge's restart until the last refetch was done.
    pub refetch_s: Option<f64>,
    /// reset-herd: from the bridge's kill until the last refetch, and NATS's and the gateways'
    /// CPU meanwhile (% of one core).
    pub herd_s: Option<f64>,
    pub herd_nats_cpu_percent: Option<f64>,
    pub herd_gateway_cpu_percent: Option<f64>,
    /// The workers' CPU meanwhile, % of one core: near 100, the clients' own core was the
    /// limit of the herd, not the fleet.
    pub herd_worker_cpu_percent: Option<f64>,
    /// NATS's peak RSS, and its CPU during the load and disruption.
    pub nats_rss_kb_peak: u64,
    pub nats_cpu_percent: f64,
    pub cpu_s: FleetCpu,
    /// Gateways' CPU during the load, % of one core (they share one).
    pub gateway_cpu_percent: f64,
    /// CPU µs per distinct delivery during the load: the gateways' (every send, and on
    /// loopback the receiving side's kernel work too) and the workers'.
    pub gateway_us_per_delivery: Option<f64>,
    pub worker_us_per_delivery: Option<f64>,
    /// µs per send of one event's SSE chunk to each of 1,000 loopback sockets from the
    /// gateways' CPU, measured just before the load (`calibrate::sweep_send_us`), and that times
    /// the connections: the kernel's floor under one event's fan-out to every client when the
    /// gateways share one core. No p99 can be below it.
    pub sweep_send_us: Option<f64>,
    pub fanout_floor_ms: Option<f64>,
    /// How busy each CPU was during the load, % (which one saturates).
    pub cpu_busy_percent: Vec<f64>,
    pub steal_percent: Option<f64>,
    /// The machine's 1-minute load average when the run started and when the load ended:
    /// well above the run's own processes (about 2 during the load), the host was busy with
    /// other work and the figures are not the fleet's alone.
    pub load_average: [Option<f64>; 2],
    /// How long the load ran, and the whole run (stack start to stop).
    pub traffic_s: f64,
    pub run_s: f64,
    /// How long each phase took, in order (`stack`, `open`, `idle`, `load`, `settle`, `stop`).
    pub phases_s: Vec<(String, f64)>,
    /// How sessions ended, by what the clients saw.
    pub session_ends: BTreeMap<String, u64>,
    /// The bridge's own account at the end (its `/metrics`): gap markers it wrote by reason
    /// (`start`, `departed`: a `source_gap` reset nobody caused says which), and its
    /// subscriptions that ended by reason (`liveness_lapsed`: it was silent for five beacon
    /// intervals, on a busy host).
    pub bridge_source_gaps: BTreeMap<String, u64>,
    pub bridge_subscriptions_ended: BTreeMap<String, u64>,
    pub history_last_error: Option<String>,
    pub last_error: Option<String>,
}

/// Fills the audit, latency and client figures from the workers' reports.
pub(super) fn fill_audit(report: &mut FleetReport, workers: &[WorkerReport], untouched: &[usize]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_the_issue_names_is_in_the_json_line() {
        let json = serde_json::to_value(FleetReport::default()).expect("serialize");
        for field in [
            "scenario",
            "conns",
            "deliveries_expected",
            "deliveries_received",
            "lost",
            "duplicates",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "gateway_rss_kb",
            "kib_per_conn",
            "peak_jetstream_consumers",
            "recovered_s",
            "heartbeat_cpu_us_per_conn_s",
            "nats_rss_kb_peak",
            "nats_cpu_percent",
            "refused_503",
            "resets",
        ] {
            assert!(json.get(field).is_some(), "{field} missing");
        }
    }
}
