//! What each fleet scenario is for, as targets its medians meet or miss: the second table of the
//! fleet part of docs/BENCHMARKS.md. Kept apart from the rows so that a target and the figure it
//! reads are side by side.

use super::rows::FleetRow;
use crate::figures::{count, figure};

/// One target of a fleet scenario and whether the medians meet it.
pub(super) struct Target {
    pub(super) what: &'static str,
    /// The figure and whether it meets the target; `None` when not measured.
    pub(super) check: fn(&FleetRow) -> Option<(String, bool)>,
}

/// The targets of issue 20, by scenario.
pub(super) fn targets(scenario: &str) -> Vec<Target> {
    let zero = Target {
        what: "0 lost, 0 duplicates",
        check: zero_loss,
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

/// Nothing lost, duplicated or out of order in the medians (`None`: no run to tell).
fn zero_loss(row: &FleetRow) -> Option<(String, bool)> {
    (row.runs > 0).then(|| {
        (
            format!("{} lost / {} dup", count(row.lost), count(row.duplicates)),
            row.lost == 0.0 && row.duplicates == 0.0 && row.out_of_order == 0.0,
        )
    })
}
