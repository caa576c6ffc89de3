//! The run's processes read at one moment (every gateway, every worker, the coordinator, the
//! bridge, NATS, Redis, and each CPU), and what two such readings say: the CPU seconds each kind
//! of process used between them, counted right across a restart.

use super::report::{FleetCpu, FleetReport};
use crate::procstat::{self, CpuTimes, MachineTimes, Reading};
use crate::stack::FleetStack;

/// Readings of every process of the run at one moment.
pub(super) struct Readings {
    gateways: Vec<Reading>,
    workers: Vec<Reading>,
    coordinator: Reading,
    bridge: Reading,
    nats: Reading,
    redis: Reading,
    cpus: Vec<CpuTimes>,
    machine: Option<MachineTimes>,
}

impl Readings {
    /// Every process of `stack`, the workers `worker_pids` and this one, now.
    pub(super) fn now(stack: &FleetStack, worker_pids: &[u32]) -> Readings {
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

    /// CPU seconds each kind of process used from `start` until these readings.
    pub(super) fn cpu_since(&self, start: &Readings) -> FleetCpu {
        let one = |start: &Reading, end: &Reading| cpu_between(&[*start], &[*end]);
        FleetCpu {
            gateways: cpu_between(&start.gateways, &self.gateways),
            workers: cpu_between(&start.workers, &self.workers),
            coordinator: one(&start.coordinator, &self.coordinator),
            bridge: one(&start.bridge, &self.bridge),
            nats: one(&start.nats, &self.nats),
            redis: one(&start.redis, &self.redis),
        }
    }
}

/// CPU seconds between two readings of processes that may have restarted (a restarted one's
/// counter starts again: what it used before is lost, never negative).
pub(super) fn cpu_between(start: &[Reading], end: &[Reading]) -> f64 {
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

/// The load's CPU figures, from its start and end readings `seconds` apart: each kind of
/// process, the gateways' and NATS's share of a core, each CPU's busy share and the steal.
pub(super) fn fill_cpu(report: &mut FleetReport, start: &Readings, end: &Readings, seconds: f64) {
    report.cpu_s = end.cpu_since(start);
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

#[cfg(test)]
mod tests {
    use super::*;

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
