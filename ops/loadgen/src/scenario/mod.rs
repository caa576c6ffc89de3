//! The standard benchmark scenarios: what each one connects and publishes.
//!
//! - `runner` — runs one scenario on a fresh stack: subscribers connected first, then the
//!   workload, then one [`Report`].
//! - `measure` — what a run measured ([`Report`]) and the statistics behind it.

mod measure;
mod runner;

pub use measure::{growth_kib_per_min, median, CpuSeconds, Quantiles, Report, Step};
pub use runner::{run, RunError, RunOptions};

use serde::Serialize;

use crate::client::Transport;

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
