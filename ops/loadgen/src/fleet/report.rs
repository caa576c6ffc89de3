//! What one fleet scenario run measured ([`FleetReport`], printed as one JSON line), and the
//! medians of several runs as the fleet part of docs/BENCHMARKS.md, each against its target.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::scenario::median;

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

/// One target of a fleet scenario and whether the medians meet it.
struct Target {
    what: &'static str,
    /// The figure and whether it meets the target; `None` when not measured.
    check: fn(&FleetRow) -> Option<(String, bool)>,
}

/// The medians of several runs of one fleet scenario.
#[derive(Debug, Clone, Default)]
pub struct FleetRow {
    pub scenario: String,
    pub runs: usize,
    pub failures: Vec<String>,
    pub conns_ready: f64,
    pub open_s: f64,
    pub deliveries_expected: f64,
    pub deliveries_received: f64,
    pub deliveries_per_s: f64,
    pub lost: f64,
    /// Of `lost`, the tail still on its way at the audit, and the holes no `reset` told of.
    pub lost_tail: f64,
    pub lost_unsignalled: f64,
    pub duplicates: f64,
    pub out_of_order: f64,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub untouched_p99: Option<f64>,
    pub gateway_rss_mib: f64,
    pub kib_per_conn: f64,
    pub peak_consumers: Option<f64>,
    pub consumers_at_rest: Option<f64>,
    pub peak_history_consumers_per_gateway: Option<f64>,
    pub recovered_s: Option<f64>,
    pub heartbeat_us: Option<f64>,
    pub resets: f64,
    pub refused_503: f64,
    pub max_reconnects_per_s: Option<f64>,
    pub connection_rate_limit: Option<String>,
    pub history_non_2xx: Option<f64>,
    pub history_p99: Option<f64>,
    pub refetches_failed: Option<f64>,
    pub refetch_s: Option<f64>,
    pub herd_nats_cpu_percent: Option<f64>,
    pub nats_rss_mib: f64,
    pub nats_cpu_percent: f64,
    pub gateway_cpu_percent: f64,
    pub gateway_us_per_delivery: Option<f64>,
    pub fanout_floor_ms: Option<f64>,
    pub cpu_busy: Vec<f64>,
    pub load_average: Option<f64>,
}

fn med(reports: &[FleetReport], field: impl Fn(&FleetReport) -> Option<f64>) -> Option<f64> {
    let mut values: Vec<f64> = reports.iter().filter_map(field).collect();
    median(&mut values)
}

impl FleetRow {
    pub fn of(scenario: &str, reports: &[FleetReport], failures: &[String]) -> FleetRow {
        let m =
            |field: &dyn Fn(&FleetReport) -> f64| med(reports, |r| Some(field(r))).unwrap_or(0.0);
        let cpus = reports
            .iter()
            .map(|r| r.cpu_busy_percent.len())
            .max()
            .unwrap_or(0);
        FleetRow {
            scenario: scenario.to_owned(),
            runs: reports.len(),
            failures: failures.to_vec(),
            conns_ready: m(&|r| r.conns_ready as f64),
            open_s: m(&|r| r.open_s),
            deliveries_expected: m(&|r| r.deliveries_expected as f64),
            deliveries_received: m(&|r| r.deliveries_received as f64),
            deliveries_per_s: m(&|r| r.deliveries_per_s),
            lost: m(&|r| r.lost as f64),
            lost_tail: m(&|r| r.lost_tail as f64),
            lost_unsignalled: m(&|r| r.lost_unsignalled as f64),
            duplicates: m(&|r| r.duplicates as f64),
            out_of_order: m(&|r| r.out_of_order as f64),
            p50: med(reports, |r| r.p50_ms),
            p99: med(reports, |r| r.p99_ms),
            max: med(reports, |r| r.max_ms),
            untouched_p99: med(reports, |r| r.untouched_p99_ms),
            gateway_rss_mib: m(&|r| r.gateway_rss_kb as f64) / 1024.0,
            kib_per_conn: m(&|r| r.kib_per_conn),
            peak_consumers: med(reports, |r| r.peak_jetstream_consumers.map(|c| c as f64)),
            consumers_at_rest: med(reports, |r| r.jetstream_consumers_at_rest.map(|c| c as f64)),
            peak_history_consumers_per_gateway: med(reports, |r| {
                r.peak_history_consumers_by_gateway
                    .iter()
                    .flatten()
                    .max()
                    .map(|c| *c as f64)
            }),
            recovered_s: med(reports, |r| r.recovered_s),
            heartbeat_us: med(reports, |r| r.heartbeat_cpu_us_per_conn_s),
            resets: m(&|r| r.resets.values().sum::<u64>() as f64),
            refused_503: m(&|r| r.refused_503 as f64),
            max_reconnects_per_s: med(reports, |r| {
                r.max_reconnects_per_s_by_gateway
                    .iter()
                    .max()
                    .map(|c| *c as f64)
            }),
            connection_rate_limit: reports.iter().find_map(|r| r.connection_rate_limit.clone()),
            history_non_2xx: med(reports, |r| r.history_non_2xx.map(|c| c as f64)),
            history_p99: med(reports, |r| r.history_p99_ms),
            refetches_failed: med(reports, |r| r.refetches_failed.map(|c| c as f64)),
            refetch_s: med(reports, |r| r.refetch_s),
            herd_nats_cpu_percent: med(reports, |r| r.herd_nats_cpu_percent),
            nats_rss_mib: m(&|r| r.nats_rss_kb_peak as f64) / 1024.0,
            nats_cpu_percent: m(&|r| r.nats_cpu_percent),
            gateway_cpu_percent: m(&|r| r.gateway_cpu_percent),
            gateway_us_per_delivery: med(reports, |r| r.gateway_us_per_delivery),
            fanout_floor_ms: med(reports, |r| r.fanout_floor_ms),
            load_average: med(reports, |r| r.load_average[1]),
            cpu_busy: (0..cpus)
                .map(|cpu| med(reports, |r| r.cpu_busy_percent.get(cpu).copied()).unwrap_or(0.0))
                .collect(),
        }
    }

    fn zero_loss(&self) -> Option<(String, bool)> {
        (self.runs > 0).then(|| {
            (
                format!("{} lost / {} dup", count(self.lost), count(self.duplicates)),
                self.lost == 0.0 && self.duplicates == 0.0 && self.out_of_order == 0.0,
            )
        })
    }
}

fn count(value: f64) -> String {
    let digits = (value.round() as u64).to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn figure(value: Option<f64>, unit: &str) -> String {
    match value {
        Some(value) if value >= 100.0 => format!("{value:.0}{unit}"),
        Some(value) if value >= 10.0 => format!("{value:.1}{unit}"),
        Some(value) => format!("{value:.2}{unit}"),
        None => "–".into(),
    }
}

/// The targets of issue 20, by scenario.
fn targets(scenario: &str) -> Vec<Target> {
    let zero = Target {
        what: "0 lost, 0 duplicates",
        check: FleetRow::zero_loss,
    };
    match scenario {
        "fleet-56k" => vec![
            zero,
            Target {
                what: "≤ 3 KiB gateway RSS per connection",
                check: |row| {
                    Some((
                        format!("{:.2} KiB", row.kib_per_conn),
                        row.kib_per_conn <= 3.0,
                    ))
                },
            },
            Target {
                what: "p99 ≤ 250 ms",
                check: |row| row.p99.map(|p99| (figure(Some(p99), " ms"), p99 <= 250.0)),
            },
            Target {
                what: "heartbeat CPU reported, µs per connection-second (30 s interval)",
                check: |row| row.heartbeat_us.map(|us| (format!("{us:.3} µs"), true)),
            },
        ],
        "storm-kill" => vec![
            Target {
                what: "every dropped client live again within 10 s",
                check: |row| row.recovered_s.map(|s| (format!("{s:.1} s"), s <= 10.0)),
            },
            zero,
            Target {
                what: "p99 of the untouched clients ≤ 250 ms",
                check: |row| {
                    row.untouched_p99
                        .map(|p99| (figure(Some(p99), " ms"), p99 <= 250.0))
                },
            },
            Target {
                what: "JetStream consumers bounded (not one per client)",
                check: |row| {
                    row.peak_consumers
                        .map(|peak| (count(peak), peak < row.conns_ready / 100.0))
                },
            },
        ],
        "rolling-deploy" => vec![
            zero,
            Target {
                what: "no client sees a `reset`",
                check: |row| Some((count(row.resets), row.resets == 0.0)),
            },
            Target {
                what: "reconnects per second per gateway below its admission cap",
                check: |row| {
                    let peak = row.max_reconnects_per_s?;
                    let cap = row
                        .connection_rate_limit
                        .as_deref()
                        .and_then(|limit| limit.split_whitespace().next())
                        .and_then(|limit| limit.parse::<f64>().ok())
                        .filter(|limit| *limit > 0.0);
                    Some(match cap {
                        Some(cap) => (
                            format!("{}/s of {}/s", count(peak), count(cap)),
                            peak <= cap,
                        ),
                        None => (format!("{}/s (no cap set)", count(peak)), false),
                    })
                },
            },
        ],
        "reset-herd" => vec![
            Target {
                what: "every refetch answered",
                check: |row| {
                    let failed = row.refetches_failed?;
                    Some((
                        format!(
                            "{} failed, {} non-2xx answers retried",
                            count(failed),
                            count(row.history_non_2xx.unwrap_or(0.0))
                        ),
                        failed == 0.0,
                    ))
                },
            },
            Target {
                what: "p99 answer ≤ 5 s",
                check: |row| {
                    row.history_p99
                        .map(|p99| (figure(Some(p99), " ms"), p99 <= 5_000.0))
                },
            },
            Target {
                what: "≤ 10 JetStream consumers per gateway at the peak",
                check: |row| {
                    row.peak_history_consumers_per_gateway.map(|peak| {
                        (
                            format!(
                                "{} per gateway (history); {} in all",
                                count(peak),
                                row.peak_consumers.map_or("–".into(), count)
                            ),
                            peak <= 10.0,
                        )
                    })
                },
            },
            Target {
                what: "NATS memory and CPU reported",
                check: |row| {
                    Some((
                        format!(
                            "{:.0} MiB, {:.0}% of a core",
                            row.nats_rss_mib, row.nats_cpu_percent
                        ),
                        true,
                    ))
                },
            },
        ],
        _ => Vec::new(),
    }
}

const HEADER: &str = "| scenario | runs | conns | open s | deliveries (expected / received) | deliveries/s | lost | dups | p50 ms | p99 ms | max ms | gateway RSS MiB | KiB/conn | peak JetStream consumers (at rest) | recovered s | resets | 503s | max reconnects/s per gateway | gateway CPU % | CPU busy % | NATS MiB / CPU % | notes |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";

fn row_line(row: &FleetRow) -> String {
    let mut notes = Vec::new();
    if let Some(p99) = row.untouched_p99 {
        notes.push(format!(
            "untouched clients p99 {}",
            figure(Some(p99), " ms")
        ));
    }
    if let Some(floor) = row.fanout_floor_ms {
        notes.push(format!(
            "fan-out floor {} (kernel send × conns on one core); gateways {} µs per delivery",
            figure(Some(floor), " ms"),
            figure(row.gateway_us_per_delivery, "")
        ));
    }
    if let Some(us) = row.heartbeat_us {
        notes.push(format!("heartbeat CPU {us:.3} µs per connection-second"));
    }
    if let Some(p99) = row.history_p99 {
        notes.push(format!(
            "history answers p99 {}, {} non-2xx, refetches done in {}",
            figure(Some(p99), " ms"),
            count(row.history_non_2xx.unwrap_or(0.0)),
            figure(row.refetch_s, " s")
        ));
    }
    if let Some(peak) = row.peak_history_consumers_per_gateway {
        notes.push(format!(
            "peak history consumers per gateway {}",
            count(peak)
        ));
    }
    if let Some(load) = row.load_average {
        notes.push(format!("host load average {load:.1} at the load's end"));
    }
    if let Some(limit) = &row.connection_rate_limit {
        notes.push(format!("CONNECTION_RATE_LIMIT {limit}"));
    }
    if let Some(first) = row.failures.first() {
        notes.push(format!(
            "{} of {} runs FAILED ({})",
            row.failures.len(),
            row.failures.len() + row.runs,
            first.replace('|', "/")
        ));
    }
    format!(
        "| {} | {} | {} | {:.1} | {} / {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {} ({}) | {} | {} | {} | {} | {:.0} | {} | {:.0} / {:.0} | {} |\n",
        row.scenario,
        row.runs,
        count(row.conns_ready),
        row.open_s,
        count(row.deliveries_expected),
        count(row.deliveries_received),
        count(row.deliveries_per_s),
        if row.lost > 0.0 {
            format!(
                "{} ({} not arrived yet, {} holes untold)",
                count(row.lost),
                count(row.lost_tail),
                count(row.lost_unsignalled)
            )
        } else {
            count(row.lost)
        },
        count(row.duplicates),
        figure(row.p50, ""),
        figure(row.p99, ""),
        figure(row.max, ""),
        row.gateway_rss_mib,
        row.kib_per_conn,
        row.peak_consumers.map_or("–".into(), count),
        row.consumers_at_rest.map_or("–".into(), count),
        row.recovered_s.map_or("–".into(), |s| format!("{s:.1}")),
        count(row.resets),
        count(row.refused_503),
        row.max_reconnects_per_s.map_or("–".into(), count),
        row.gateway_cpu_percent,
        row.cpu_busy
            .iter()
            .map(|busy| format!("{busy:.0}"))
            .collect::<Vec<_>>()
            .join(" / "),
        row.nats_rss_mib,
        row.nats_cpu_percent,
        notes.join("; "),
    )
}

/// The fleet rows as a Markdown table.
pub fn table(rows: &[FleetRow]) -> String {
    let mut out = String::from(HEADER);
    for row in rows {
        out.push_str(&row_line(row));
    }
    out
}

/// The fleet part of the generated section: the table, then every target with the medians'
/// figure and whether it is met.
pub fn section(rows: &[FleetRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nFleet scenarios (4 gateways pinned together to one core; clients in worker processes \
         from several loopback addresses, balancing themselves over the gateways):\n"
    );
    out.push_str(&table(rows));
    let _ = writeln!(
        out,
        "\n| scenario | target | medians | met |\n|---|---|---|---|"
    );
    for row in rows {
        for target in targets(&row.scenario) {
            let (figure, met) = match (target.check)(row) {
                Some((figure, met)) => (figure, if met { "✓" } else { "✗" }),
                None => ("not measured".to_owned(), "–"),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {figure} | {met} |",
                row.scenario, target.what
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(lost: u64, p99: f64, recovered: Option<f64>) -> FleetReport {
        FleetReport {
            scenario: "storm-kill".into(),
            conns_ready: 56_000,
            lost,
            p99_ms: Some(p99),
            untouched_p99_ms: Some(p99 / 2.0),
            recovered_s: recovered,
            peak_jetstream_consumers: Some(9),
            cpu_busy_percent: vec![90.0, 60.0],
            ..FleetReport::default()
        }
    }

    #[test]
    fn a_row_takes_medians_and_the_targets_say_which_are_met() {
        let reports = [
            report(0, 100.0, Some(6.0)),
            report(0, 300.0, Some(12.0)),
            report(5, 200.0, Some(8.0)),
        ];
        let row = FleetRow::of("storm-kill", &reports, &[]);
        assert_eq!(row.runs, 3);
        assert_eq!(row.p99, Some(200.0));
        assert_eq!(row.recovered_s, Some(8.0));
        assert_eq!(row.cpu_busy, vec![90.0, 60.0]);
        let section = section(&[row]);
        assert!(
            section.contains(
                "| storm-kill | every dropped client live again within 10 s | 8.0 s | ✓ |"
            ),
            "{section}"
        );
        assert!(section.contains("| storm-kill | 0 lost, 0 duplicates | 0 lost / 0 dup | ✓ |"));
        assert!(
            section.contains("| storm-kill | p99 of the untouched clients ≤ 250 ms | 100 ms | ✓ |")
        );
        assert!(section
            .contains("| storm-kill | JetStream consumers bounded (not one per client) | 9 | ✓ |"));
    }

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

    #[test]
    fn a_failed_run_is_noted_in_its_row() {
        let row = FleetRow::of(
            "fleet-56k",
            &[],
            &["fleet-56k: worker 2 is gone".to_owned()],
        );
        let line = table(&[row]);
        assert!(
            line.contains("1 of 1 runs FAILED (fleet-56k: worker 2 is gone)"),
            "{line}"
        );
    }
}
