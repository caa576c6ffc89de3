//! The medians of several runs of one fleet scenario ([`FleetRow`]) as rows of a Markdown table,
//! and the fleet part of docs/BENCHMARKS.md: that table, then every target with the figure the
//! medians give ([`super::targets`]).

use std::fmt::Write as _;

use super::report::FleetReport;
use super::targets::targets;
use crate::figures::{count, failed_runs, figure, median_of};

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

impl FleetRow {
    pub fn of(scenario: &str, reports: &[FleetReport], failures: &[String]) -> FleetRow {
        let m = |field: &dyn Fn(&FleetReport) -> f64| {
            median_of(reports, |r| Some(field(r))).unwrap_or(0.0)
        };
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
            p50: median_of(reports, |r| r.p50_ms),
            p99: median_of(reports, |r| r.p99_ms),
            max: median_of(reports, |r| r.max_ms),
            untouched_p99: median_of(reports, |r| r.untouched_p99_ms),
            gateway_rss_mib: m(&|r| r.gateway_rss_kb as f64) / 1024.0,
            kib_per_conn: m(&|r| r.kib_per_conn),
            peak_consumers: median_of(reports, |r| r.peak_jetstream_consumers.map(|c| c as f64)),
            consumers_at_rest: median_of(reports, |r| {
                r.jetstream_consumers_at_rest.map(|c| c as f64)
            }),
            peak_history_consumers_per_gateway: median_of(reports, |r| {
                r.peak_history_consumers_by_gateway
                    .iter()
                    .flatten()
                    .max()
                    .map(|c| *c as f64)
            }),
            recovered_s: median_of(reports, |r| r.recovered_s),
            heartbeat_us: median_of(reports, |r| r.heartbeat_cpu_us_per_conn_s),
            resets: m(&|r| r.resets.values().sum::<u64>() as f64),
            refused_503: m(&|r| r.refused_503 as f64),
            max_reconnects_per_s: median_of(reports, |r| {
                r.max_reconnects_per_s_by_gateway
                    .iter()
                    .max()
                    .map(|c| *c as f64)
            }),
            connection_rate_limit: reports.iter().find_map(|r| r.connection_rate_limit.clone()),
            history_non_2xx: median_of(reports, |r| r.history_non_2xx.map(|c| c as f64)),
            history_p99: median_of(reports, |r| r.history_p99_ms),
            refetches_failed: median_of(reports, |r| r.refetches_failed.map(|c| c as f64)),
            refetch_s: median_of(reports, |r| r.refetch_s),
            herd_nats_cpu_percent: median_of(reports, |r| r.herd_nats_cpu_percent),
            nats_rss_mib: m(&|r| r.nats_rss_kb_peak as f64) / 1024.0,
            nats_cpu_percent: m(&|r| r.nats_cpu_percent),
            gateway_cpu_percent: m(&|r| r.gateway_cpu_percent),
            gateway_us_per_delivery: median_of(reports, |r| r.gateway_us_per_delivery),
            fanout_floor_ms: median_of(reports, |r| r.fanout_floor_ms),
            load_average: median_of(reports, |r| r.load_average[1]),
            cpu_busy: (0..cpus)
                .map(|cpu| {
                    median_of(reports, |r| r.cpu_busy_percent.get(cpu).copied()).unwrap_or(0.0)
                })
                .collect(),
        }
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
    if let Some(failed) = failed_runs(&row.failures, row.runs) {
        notes.push(failed);
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
