//! What one scenario run measured, and the statistics it is made of: latency quantiles,
//! medians and memory growth.

use serde::Serialize;

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
