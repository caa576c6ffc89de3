//! Memory and CPU of a process, read from /proc: what a benchmark reports for the gateway,
//! the bridge, the servers and the load generator itself.

use std::sync::OnceLock;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Reading {
    /// Resident memory, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// User plus system CPU time so far, seconds.
    pub cpu_seconds: f64,
}

/// Reads `/proc/<pid>`; `None` if the process is gone.
pub fn read(pid: u32) -> Option<Reading> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = kib_field(&status, "VmRSS:")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(Reading {
        rss_kib,
        cpu_seconds: cpu_ticks(&stat)? as f64 / clock_ticks_per_second() as f64,
    })
}

/// The whole machine's CPU time so far (the `cpu` line of `/proc/stat`), in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineTimes {
    /// user + nice + system + idle + iowait + irq + softirq + steal.
    pub total: u64,
    /// Time the hypervisor ran something else while this machine's CPUs wanted to run.
    pub steal: u64,
}

impl MachineTimes {
    /// The share of CPU time stolen by the hypervisor since `earlier`, in percent.
    pub fn steal_percent_since(&self, earlier: &MachineTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|t| *t > 0)?;
        let steal = self.steal.checked_sub(earlier.steal)?;
        Some(steal as f64 * 100.0 / total as f64)
    }
}

/// Reads `/proc/stat`; `None` where there is none.
pub fn machine() -> Option<MachineTimes> {
    machine_times(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn machine_times(stat: &str) -> Option<MachineTimes> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks = cpu_line_ticks(line)?;
    // Kernels before 2.6.11 have no steal field: count none.
    Some(MachineTimes {
        total: ticks.iter().sum(),
        steal: ticks.get(7).copied().unwrap_or(0),
    })
}

/// The machine's 1-minute load average (`/proc/loadavg`): how many runnable processes there
/// were, ours and anyone else's.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One CPU's time so far (a `cpuN` line of `/proc/stat`), in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + idle + iowait + irq + softirq + steal.
    pub total: u64,
    /// idle + iowait.
    pub idle: u64,
}

impl CpuTimes {
    /// How busy the CPU was since `earlier`, in percent.
    pub fn busy_percent_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|t| *t > 0)?;
        let idle = self.idle.checked_sub(earlier.idle)?;
        Some(total.saturating_sub(idle) as f64 * 100.0 / total as f64)
    }
}

/// Each CPU's times (`cpu0`, `cpu1`, … of `/proc/stat`), in order; empty where there is none.
pub fn per_cpu() -> Vec<CpuTimes> {
    per_cpu_times(&std::fs::read_to_string("/proc/stat").unwrap_or_default())
}

fn per_cpu_times(stat: &str) -> Vec<CpuTimes> {
    stat.lines()
        .filter(|line| {
            line.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .filter_map(|line| {
            let ticks = cpu_line_ticks(line)?;
            Some(CpuTimes {
                total: ticks.iter().sum(),
                idle: ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0),
            })
        })
        .collect()
}

/// The first eight tick counts of a `cpu` or `cpuN` line of `/proc/stat` (user, nice, system,
/// idle, iowait, irq, softirq, steal; fewer on kernels without them). `None` if one is not a
/// number.
fn cpu_line_ticks(line: &str) -> Option<Vec<u64>> {
    line.split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().ok())
        .collect()
}

/// The KiB of a `Name:   1234 kB` line of a /proc file (`VmRSS:` of `/proc/<pid>/status`,
/// `MemTotal:` of `/proc/meminfo`); `None` without one.
pub(crate) fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK` (100 on every Linux this runs on; asked once rather than assumed).
fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|ticks| *ticks > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_fields_are_found_past_a_name_with_spaces() {
        let stat = "42 (tokio (rt) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 0 0";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    #[test]
    fn steal_is_a_share_of_all_cpu_time_between_two_readings() {
        let earlier =
            machine_times("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 1 2 3\n").expect("parse");
        assert_eq!(
            earlier,
            MachineTimes {
                total: 1000,
                steal: 35
            }
        );
        let later = MachineTimes {
            total: 1200,
            steal: 85,
        };
        assert_eq!(later.steal_percent_since(&earlier), Some(25.0));
        assert_eq!(earlier.steal_percent_since(&earlier), None);
        assert!(machine_times("intr 1 2 3").is_none());
    }

    #[test]
    fn each_cpu_s_busy_share_comes_from_its_own_line() {
        let stat = "cpu  200 0 100 1600 20 0 10 70 0 0\ncpu0 100 0 50 800 10 0 5 35 0 0\ncpu1 100 0 50 800 10 0 5 35 0 0\nintr 5\n";
        let earlier = per_cpu_times(stat);
        assert_eq!(earlier.len(), 2);
        assert_eq!(
            earlier[0],
            CpuTimes {
                total: 1000,
                idle: 810
            }
        );
        let later = CpuTimes {
            total: 1100,
            idle: 860,
        };
        assert_eq!(later.busy_percent_since(&earlier[0]), Some(50.0));
    }

    #[test]
    fn a_kib_field_is_found_by_its_name() {
        let status = "Name:\tx\nVmHWM:\t  9000 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(1234));
        assert_eq!(
            kib_field("MemTotal:       16318540 kB\n", "MemTotal:"),
            Some(16_318_540)
        );
        assert_eq!(kib_field(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let reading = read(std::process::id()).expect("own /proc entry");
        assert!(reading.rss_kib > 0);
        assert!(reading.cpu_seconds >= 0.0);
    }
}
