//! What the coordinator and its worker processes say to each other: one JSON object a line,
//! the worker's settings first on its stdin, then a command at a time, each answered by one
//! reply on its stdout, in order.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::histogram::Histogram;

/// A worker's settings: its first line on stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerConfig {
    pub worker: usize,
    /// The loopback address its clients connect from (`127.0.0.2`).
    pub source: IpAddr,
    /// Every gateway's base URL; client `i` starts on gateway `i % len`.
    pub gateways: Vec<String>,
    pub api_key: String,
    /// How many clients this worker holds.
    pub clients: usize,
    /// The fleet-wide number of this worker's first client: transports and home gateways
    /// follow the fleet-wide number, so every gateway gets its share of each.
    pub first_client: usize,
    /// Every `ws_every`-th client (fleet-wide) speaks WebSocket, the others SSE; 0: none.
    pub ws_every: usize,
    /// Clients connecting at once, at most, while opening.
    pub wave: usize,
    /// The web client's backoff (`Backoff::WebClient`), in ms.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// With nothing for this long a client presumes its stream dead (ms).
    pub idle_timeout_ms: u64,
    /// Refetch summary and snapshot after every `reset`, as the dashboard does.
    pub refetch: Option<RefetchConfig>,
    /// The worker ends by itself this long after it started (s), whatever it is doing.
    pub deadline_s: u64,
}

impl WorkerConfig {
    /// Whether this worker's client `index` speaks WebSocket: every `ws_every`-th client of the
    /// fleet (by its fleet-wide number) does.
    pub fn speaks_ws(&self, index: usize) -> bool {
        let fleet_index = self.first_client + index;
        self.ws_every > 0 && fleet_index % self.ws_every == self.ws_every - 1
    }
}

/// What a client fetches after a `reset`, as the dashboard does (web/dashboard/useOpeningState.ts).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefetchConfig {
    /// A random wait of up to this long first (ms), as pages opened after a reset spread
    /// their refetch.
    pub jitter_ms: u64,
    /// `channels=` of the snapshot (`inventory`).
    pub snapshot_channels: String,
    /// `limit=` of each snapshot page.
    pub page_limit: usize,
    /// A failed request is tried again after a random wait in [retry_ms / 2, retry_ms], or
    /// its `Retry-After` plus up to a second when that is longer.
    pub retry_ms: u64,
    /// Requests this worker has open at once, at most (each is a file descriptor).
    pub concurrency: usize,
    /// A refetch that has not completed within this long (ms) is given up and counted.
    pub limit_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Open every client, in waves; answered when all are ready or `within_ms` passed.
    Open { within_ms: u64 },
    /// Answered when every client holds marks `0..count`, or nothing arrived for `quiet_ms`,
    /// or `limit_ms` passed.
    WaitMarks {
        count: u64,
        quiet_ms: u64,
        limit_ms: u64,
    },
    /// Answered when every client that was streaming from `gateway` at `since_us` is live
    /// again (a later session had its first heartbeat), or `limit_ms` passed.
    WaitBack {
        since_us: u64,
        gateway: usize,
        limit_ms: u64,
    },
    /// Answered when every client saw `count` resets and (if it refetches) finished as many
    /// refetches, or `limit_ms` passed.
    WaitResets { count: usize, limit_ms: u64 },
    /// What every client saw, audited against events `0..expected` published from
    /// `first_published_us` on.
    Report {
        expected: u64,
        first_published_us: u64,
        /// When each event `0..expected` was published (µs since the epoch): a missing event
        /// published before the client's last `reset` was told of; one published after was
        /// lost silently.
        published_us: Vec<u64>,
    },
    /// Puts a gateway in the clients' rotation or takes it out (a rolling deploy does, as an
    /// orchestrator does with its load balancer).
    Rotation { gateway: usize, serving: bool },
    /// Close every client and exit.
    Stop,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Opened {
        ready: usize,
    },
    Marks {
        complete: usize,
    },
    Back {
        /// Clients that were streaming from the gateway at `since_us`.
        dropped: usize,
        back: usize,
        /// When the last of them became live again (µs since the epoch).
        last_back_us: Option<u64>,
    },
    Resets {
        reset: usize,
        refetched: usize,
        /// When the last refetch finished (µs since the epoch).
        last_refetch_us: Option<u64>,
    },
    Report(Box<WorkerReport>),
    Rotated,
    Stopped,
    /// The command could not be read.
    Error {
        message: String,
    },
}

/// One gateway's clients (by the gateway each started on), audited.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Audit {
    pub clients: usize,
    /// Clients that became ready only after the first audited event was published: left out
    /// of the audit (nothing is expected of them), counted here.
    pub late: usize,
    pub expected: u64,
    /// Distinct expected events delivered.
    pub received: u64,
    pub lost: u64,
    /// Of `lost`, the events after the last one the client received: still on their way (a
    /// client behind, or not reconnected) when the audit was taken, not holes in its stream.
    pub lost_tail: u64,
    /// Of `lost`, holes (a later event arrived) that were published after the client's last
    /// `reset`, or to a client never reset: lost without the client being told. Must be 0.
    pub lost_unsignalled: u64,
    /// Clients with at least one such loss.
    pub clients_lost_unsignalled: usize,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub latency: Histogram,
}

impl Audit {
    pub fn add(&mut self, other: &Audit) {
        self.clients += other.clients;
        self.late += other.late;
        self.expected += other.expected;
        self.received += other.received;
        self.lost += other.lost;
        self.lost_tail += other.lost_tail;
        self.lost_unsignalled += other.lost_unsignalled;
        self.clients_lost_unsignalled += other.clients_lost_unsignalled;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.latency.add(&other.latency);
    }
}

/// Summary and snapshot requests made after resets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistoryStats {
    pub refetches_started: u64,
    pub refetches_done: u64,
    /// Refetches given up at their limit.
    pub refetches_failed: u64,
    /// Requests answered (any status).
    pub requests: u64,
    /// Answers that were not 2xx, by `<status> <reason>` (`503 history_budget`). Keys are
    /// strings: a map inside a tagged enum cannot be read back with number keys.
    pub non_2xx: BTreeMap<String, u64>,
    /// Requests that got no whole answer (connect failed, cut, timed out).
    pub errors: u64,
    pub last_error: Option<String>,
    /// From a request's send to its whole answer, 2xx or not.
    pub answer: Histogram,
    /// From the `reset` to the refetch's end, for the refetches that finished.
    pub refetch: Histogram,
    pub last_done_us: Option<u64>,
}

impl HistoryStats {
    pub fn add(&mut self, other: &HistoryStats) {
        self.refetches_started += other.refetches_started;
        self.refetches_done += other.refetches_done;
        self.refetches_failed += other.refetches_failed;
        self.requests += other.requests;
        for (status, count) in &other.non_2xx {
            *self.non_2xx.entry(status.clone()).or_default() += count;
        }
        self.errors += other.errors;
        if other.last_error.is_some() {
            self.last_error.clone_from(&other.last_error);
        }
        self.answer.add(&other.answer);
        self.refetch.add(&other.refetch);
        self.last_done_us = self.last_done_us.max(other.last_done_us);
    }
}

/// What one worker's clients saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerReport {
    pub worker: usize,
    pub clients: usize,
    pub sse: usize,
    pub ws: usize,
    /// Clients whose stream is open and had its heartbeat, now.
    pub live: usize,
    /// Indexed by the gateway each client started on.
    pub by_gateway: Vec<Audit>,
    /// `reset`s received, by reason.
    pub resets: BTreeMap<String, u64>,
    pub clients_reset: usize,
    /// Refusals before streaming, by `<status> <reason>`.
    pub refusals: BTreeMap<String, u64>,
    /// Connection attempts that never streamed on any gateway (the client backed off).
    pub failed_connects: u64,
    /// Gateways passed over within an attempt (unreachable, 502 or 503), as nginx's
    /// `proxy_next_upstream` does.
    pub passed_on: u64,
    pub last_error: Option<String>,
    /// Sessions opened with a cursor.
    pub reconnects: u64,
    /// `(gateway, second since the epoch, sessions opened with a cursor)`.
    pub reconnects_per_second: Vec<(usize, u64, u64)>,
    /// How sessions ended, by what the client saw (`close 1012`, `closed by server`).
    pub session_ends: BTreeMap<String, u64>,
    pub bad_frames: u64,
    pub history: HistoryStats,
}

impl WorkerReport {
    /// Adds another worker's report to this one (the fleet's total).
    pub fn add(&mut self, other: &WorkerReport) {
        self.clients += other.clients;
        self.sse += other.sse;
        self.ws += other.ws;
        self.live += other.live;
        if self.by_gateway.len() < other.by_gateway.len() {
            self.by_gateway
                .resize(other.by_gateway.len(), Audit::default());
        }
        for (mine, theirs) in self.by_gateway.iter_mut().zip(&other.by_gateway) {
            mine.add(theirs);
        }
        for (reason, count) in &other.resets {
            *self.resets.entry(reason.clone()).or_default() += count;
        }
        self.clients_reset += other.clients_reset;
        for (what, count) in &other.refusals {
            *self.refusals.entry(what.clone()).or_default() += count;
        }
        self.failed_connects += other.failed_connects;
        self.passed_on += other.passed_on;
        if other.last_error.is_some() {
            self.last_error.clone_from(&other.last_error);
        }
        self.reconnects += other.reconnects;
        self.reconnects_per_second
            .extend_from_slice(&other.reconnects_per_second);
        for (why, count) in &other.session_ends {
            *self.session_ends.entry(why.clone()).or_default() += count;
        }
        self.bad_frames += other.bad_frames;
        self.history.add(&other.history);
    }

    /// The most sessions opened with a cursor on each gateway in any one second, over every
    /// worker's counts (call on the total).
    pub fn max_reconnects_per_second(&self, gateways: usize) -> Vec<u64> {
        let mut per: BTreeMap<(usize, u64), u64> = BTreeMap::new();
        for (gateway, second, count) in &self.reconnects_per_second {
            *per.entry((*gateway, *second)).or_default() += count;
        }
        let mut max = vec![0; gateways];
        for ((gateway, _), count) in per {
            if let Some(slot) = max.get_mut(gateway) {
                *slot = (*slot).max(count);
            }
        }
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_replies_are_one_json_line_each() {
        let command = Command::WaitMarks {
            count: 120,
            quiet_ms: 5_000,
            limit_ms: 60_000,
        };
        let line = serde_json::to_string(&command).expect("serialize");
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"cmd":"wait_marks""#), "{line}");
        let back: Command = serde_json::from_str(&line).expect("parse");
        assert!(matches!(back, Command::WaitMarks { count: 120, .. }));
        let reply: Reply = serde_json::from_str(r#"{"reply":"opened","ready":3}"#).expect("reply");
        assert!(matches!(reply, Reply::Opened { ready: 3 }));
    }

    #[test]
    fn reconnect_rates_add_up_across_workers_before_the_maximum_is_taken() {
        let mut total = WorkerReport::default();
        let mut a = WorkerReport {
            reconnects_per_second: vec![(0, 100, 30), (0, 101, 5), (1, 100, 7)],
            ..WorkerReport::default()
        };
        a.by_gateway = vec![Audit::default(); 2];
        let b = WorkerReport {
            reconnects_per_second: vec![(0, 101, 40), (1, 102, 1)],
            ..WorkerReport::default()
        };
        total.add(&a);
        total.add(&b);
        assert_eq!(total.max_reconnects_per_second(3), vec![45, 7, 0]);
    }
}
