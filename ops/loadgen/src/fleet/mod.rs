//! A fleet on one box: 4 gateways, 56,000 clients, and what a fleet meets on a bad day.
//!
//! One process cannot hold 56,000 connections here (open files are capped at 20,000 per
//! process, and one source address has about 28,000 ephemeral ports), so the coordinator (the
//! `scenario` and `bench` commands) starts the stack, then worker processes of its own binary
//! (`rakuda-loadgen fleet-worker`, hidden), each holding at most about 15,000 clients from a
//! loopback address of its own (127.0.0.2, 127.0.0.3, …, all routed to `lo`), and drives them
//! over their stdin and stdout, one JSON line each way. Workers end by themselves at a deadline
//! or when their stdin closes. The clients balance themselves over the gateways (no nginx in
//! front: it would need its own open-files budget), two thirds SSE and one third WebSocket,
//! and each audits its own stream: every load event once and in order across its reconnects.
//!
//! - [`wire`] — the coordinator's commands and the workers' replies.
//! - [`worker`] — a worker process.
//! - `coordinator` — what each worker is told, spawning the workers and talking to them.
//! - `ask` — each command asked of every worker, its replies checked and added up.
//! - [`histogram`] — latencies added up across processes.
//! - `monitor` — JetStream consumers, each gateway's history consumers and NATS's memory,
//!   sampled every 100 ms.
//! - `run` — one scenario run on a fresh fleet stack, phase by phase, one [`FleetReport`].
//! - `publisher` — the load, published until stopped, held back while the bridge restarts.
//! - `disruptions` — a gateway killed, a rolling deploy, the bridge restarted.
//! - `readings` — every process of the run read at one moment, and the CPU between two.
//! - [`report`] — the run's JSON line.
//! - [`rows`] — the medians of several runs as rows of docs/BENCHMARKS.md; `targets` — what
//!   each scenario's medians must meet.

mod ask;
mod coordinator;
mod disruptions;
pub mod histogram;
mod monitor;
mod publisher;
mod readings;
pub mod report;
pub mod rows;
mod run;
mod targets;
pub mod wire;
pub mod worker;

use std::time::Duration;

use serde::Serialize;

pub use report::FleetReport;
pub use run::{run, FleetError, FleetOptions};

/// A page's refetch after a `reset` waits a random time of up to this first, so that the
/// pages of a fleet do not all ask at once: the web client's `RESET_REFETCH_SPREAD_MS`
/// (web/src/client/spread.ts); keep the two the same.
pub const REFETCH_JITTER: Duration = Duration::from_millis(2_500);

/// The dashboard asks again after a failed history request after a random wait in
/// [REFETCH_RETRY / 2, REFETCH_RETRY] (`RETRY_MS` in web/dashboard/useOpeningState.ts), or
/// after the refusal's `Retry-After` plus up to a second when that is longer.
pub const REFETCH_RETRY: Duration = Duration::from_secs(2);

/// The dashboard's snapshot page size (`SNAPSHOT_PAGE`).
pub const SNAPSHOT_PAGE: usize = 1_000;

/// Clients one worker process holds at most: under the 20,000 open files a process may have,
/// with room for its history requests.
pub const MAX_CLIENTS_PER_WORKER: usize = 15_000;

/// What goes wrong during the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disruption {
    /// Nothing: the fleet as it runs every day.
    None,
    /// `kill -9` of one gateway; its clients reconnect to the others.
    KillGateway,
    /// SIGTERM to each gateway in turn, restarted on the same port once it exited; the next
    /// one only once every client it dropped is live again.
    RollingDeploy,
    /// `kill -9` of the only bridge, then started again: a source gap that resets every client,
    /// and every client refetches its summary and snapshot.
    RestartBridge,
}

/// One fleet scenario.
#[derive(Debug, Clone, Serialize)]
pub struct FleetScenario {
    pub name: String,
    pub gateways: usize,
    pub connections: usize,
    /// Worker processes; each holds `connections / workers` clients.
    pub workers: usize,
    /// Loopback source addresses, used by the workers in turn.
    pub sources: usize,
    /// Every `ws_every`-th client speaks WebSocket.
    pub ws_every: usize,
    /// Load events per second, over every channel (each reaches every client).
    pub rate: f64,
    /// How long the load runs (longer when the disruption needs it).
    pub traffic_s: f64,
    /// Before the load: a window with no events, to measure the heartbeats' CPU; 0: none.
    pub idle_window_s: f64,
    pub disruption: Disruption,
    /// How far into the load the disruption starts.
    pub disrupt_after_s: f64,
    /// The load goes on at least this long after the disruption ended.
    pub tail_s: f64,
    /// The web client's backoff.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// `GATEWAY_DRAIN_WINDOW` and `SSE_RETRY` of every gateway.
    pub drain_window: Duration,
    pub sse_retry: Duration,
    /// The refetch's random wait after a reset.
    pub refetch_jitter: Duration,
    /// Clients a worker has connecting at once, at most, while opening.
    pub wave: usize,
    /// Longest wait for any one phase (open, recovery, settling).
    pub phase_limit: Duration,
}

impl FleetScenario {
    fn full(name: &str, disruption: Disruption) -> FleetScenario {
        FleetScenario {
            name: name.to_owned(),
            gateways: 4,
            connections: 56_000,
            workers: 4,
            sources: 4,
            ws_every: 3,
            rate: 2.0,
            traffic_s: 60.0,
            idle_window_s: 0.0,
            disruption,
            disrupt_after_s: 15.0,
            tail_s: 10.0,
            backoff_initial: crate::client::WEB_BACKOFF_INITIAL,
            backoff_max: crate::client::WEB_BACKOFF_MAX,
            drain_window: Duration::from_secs(5),
            sse_retry: Duration::from_secs(3),
            refetch_jitter: REFETCH_JITTER,
            wave: 500,
            phase_limit: Duration::from_secs(180),
        }
    }

    /// The same scenario made small and short (a quick check, not a measurement):
    /// connections divided by `factor` (at least 8 per worker), two source addresses, the
    /// load's and the idle window's length divided by `factor` (at least 4 s and 2 s), and
    /// every wait a client or gateway makes (backoff, `retry:`, drain window, refetch jitter)
    /// divided by `factor` up to 10.
    pub fn scaled_down(mut self, factor: usize) -> FleetScenario {
        if factor <= 1 {
            return self;
        }
        let f = factor as f64;
        let waits = factor.min(10) as u32;
        self.connections = (self.connections / factor).max(8 * self.workers);
        self.sources = self.sources.min(2);
        self.traffic_s = (self.traffic_s / f).max(4.0);
        if self.idle_window_s > 0.0 {
            self.idle_window_s = (self.idle_window_s / f).max(2.0);
        }
        self.disrupt_after_s = (self.disrupt_after_s / f).max(1.0);
        self.tail_s = (self.tail_s / f).max(1.0);
        self.backoff_initial = (self.backoff_initial / waits).max(Duration::from_millis(100));
        self.backoff_max = (self.backoff_max / waits).max(self.backoff_initial);
        self.drain_window /= waits;
        self.sse_retry = (self.sse_retry / waits).max(Duration::from_millis(100));
        self.refetch_jitter /= waits;
        self.wave = self.wave.min(100);
        self.phase_limit = Duration::from_secs(60);
        self
    }

    /// Clients per worker.
    pub fn per_worker(&self) -> usize {
        self.connections.div_ceil(self.workers.max(1))
    }
}

/// The four fleet scenarios `just bench` runs after the standard ones, in order.
pub fn standard() -> Vec<FleetScenario> {
    let mut fleet = FleetScenario::full("fleet-56k", Disruption::None);
    fleet.idle_window_s = 30.0;
    vec![
        fleet,
        FleetScenario::full("storm-kill", Disruption::KillGateway),
        FleetScenario::full("rolling-deploy", Disruption::RollingDeploy),
        FleetScenario::full("reset-herd", Disruption::RestartBridge),
    ]
}

/// The fleet scenario named `name`.
pub fn find(name: &str) -> Option<FleetScenario> {
    standard()
        .into_iter()
        .find(|scenario| scenario.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_fleet_fits_this_machine_s_limits() {
        for scenario in standard() {
            assert_eq!(scenario.connections, 56_000);
            assert_eq!(scenario.connections / scenario.gateways, 14_000);
            assert!(scenario.per_worker() <= MAX_CLIENTS_PER_WORKER);
            // One address's ~28,000 ephemeral ports hold a worker's clients twice over.
            assert!(scenario.workers <= scenario.sources * 2);
            // 2 events/s to every one of 56,000 clients: 112,000 deliveries/s.
            assert_eq!(scenario.rate * scenario.connections as f64, 112_000.0);
        }
    }

    #[test]
    fn scaling_down_keeps_several_workers_on_two_addresses_and_shortens_every_wait() {
        let scenario = find("rolling-deploy").expect("defined").scaled_down(200);
        assert_eq!(scenario.connections, 280);
        assert_eq!((scenario.workers, scenario.sources), (4, 2));
        assert_eq!(scenario.per_worker(), 70);
        assert_eq!(scenario.traffic_s, 4.0);
        assert_eq!(scenario.drain_window, Duration::from_millis(500));
        assert_eq!(scenario.backoff_initial, Duration::from_millis(300));
        assert_eq!(scenario.sse_retry, Duration::from_millis(300));
        let same = find("fleet-56k").expect("defined").scaled_down(1);
        assert_eq!(same.connections, 56_000);
        assert!(find("nope").is_none());
    }
}
