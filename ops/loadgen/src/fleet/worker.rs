//! A worker process (`rakuda-loadgen fleet-worker`, started by the coordinator): up to about
//! 15,000 clients from one source address, each auditing its own stream, driven by commands
//! on stdin and answering on stdout ([`super::wire`]). It ends by itself when stdin closes
//! (the coordinator is gone) or at its deadline, whichever comes first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::wire::{Audit, Command, HistoryStats, RefetchConfig, Reply, WorkerConfig, WorkerReport};
use crate::client::{
    self, http, lock, Backoff, Balancer, ResetHook, SharedTally, Target, Transport,
};
use crate::marker::now_us;
use crate::tally::{SessionInfo, Tally};

/// How often a wait looks at the clients again.
const POLL: Duration = Duration::from_millis(50);
/// One summary or snapshot request, from its connect to its whole answer.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// The largest answer read (a snapshot page of 1,000 entities is well under this).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Commands waiting to be handled (the coordinator sends one and waits for its reply).
const COMMAND_QUEUE: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot read the worker's settings from stdin: {0}")]
    Settings(String),
    #[error("cannot write to stdout (the coordinator is gone?): {0}")]
    Stdout(std::io::Error),
}

/// One client and where it started.
struct Client {
    tally: SharedTally,
    home: usize,
}

fn ready(tally: &Tally) -> bool {
    tally.is_live() && tally.instance().is_some()
}

fn stats(history: &Mutex<HistoryStats>) -> MutexGuard<'_, HistoryStats> {
    history
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs a worker: settings from stdin's first line, then commands until `stop`, stdin's end
/// or the deadline.
pub async fn run() -> Result<(), WorkerError> {
    // stdin is read on a thread of its own, not tokio's: a read on it cannot be cancelled, and
    // tokio's runtime would wait for it at exit. The thread ends with the process.
    let gone = CancellationToken::new();
    let (lines, mut queue) = mpsc::channel::<String>(COMMAND_QUEUE);
    {
        let gone = gone.clone();
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                for line in std::io::stdin().lines() {
                    let Ok(line) = line else { break };
                    if lines.blocking_send(line).is_err() {
                        break;
                    }
                }
                gone.cancel();
            })
            .map_err(|error| WorkerError::Settings(format!("cannot start reading: {error}")))?;
    }
    let config: WorkerConfig = match queue.recv().await {
        Some(line) => {
            serde_json::from_str(&line).map_err(|error| WorkerError::Settings(error.to_string()))?
        }
        None => return Err(WorkerError::Settings("stdin closed".into())),
    };
    let deadline = tokio::time::sleep(Duration::from_secs(config.deadline_s));
    tokio::pin!(deadline);
    let mut worker = Worker::new(config);
    let mut stdout = tokio::io::stdout();
    let result = loop {
        let line = tokio::select! {
            _ = &mut deadline => {
                eprintln!("rakuda-loadgen worker {}: deadline passed; exiting", worker.config.worker);
                break Ok(());
            }
            _ = gone.cancelled() => break Ok(()),
            line = queue.recv() => match line {
                Some(line) => line,
                None => break Ok(()),
            },
        };
        let (reply, stop) = match serde_json::from_str::<Command>(&line) {
            Ok(command) => {
                let stop = matches!(command, Command::Stop);
                let reply = tokio::select! {
                    _ = &mut deadline => break Ok(()),
                    _ = gone.cancelled() => break Ok(()),
                    reply = worker.handle(command) => reply,
                };
                (reply, stop)
            }
            Err(error) => (
                Reply::Error {
                    message: format!("cannot read the command {line:?}: {error}"),
                },
                false,
            ),
        };
        // Serializing our own plain data cannot fail.
        let mut text = serde_json::to_string(&reply).unwrap_or_default();
        text.push('\n');
        if let Err(error) = stdout.write_all(text.as_bytes()).await {
            break Err(WorkerError::Stdout(error));
        }
        if let Err(error) = stdout.flush().await {
            break Err(WorkerError::Stdout(error));
        }
        if stop {
            break Ok(());
        }
    };
    worker.close().await;
    result
}

struct Worker {
    config: WorkerConfig,
    /// Shared by every client of this worker, SSE and WebSocket.
    balancer: Arc<Balancer>,
    clients: Vec<Client>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
    history: Arc<Mutex<HistoryStats>>,
}

impl Worker {
    fn new(config: WorkerConfig) -> Worker {
        Worker {
            balancer: Arc::new(Balancer::new(config.gateways.len().max(1))),
            config,
            clients: Vec::new(),
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
            history: Arc::default(),
        }
    }

    fn target(&self, transport: Transport) -> Target {
        let config = &self.config;
        let first = config.gateways.first().map(String::as_str).unwrap_or("");
        let mut target = Target::new(first, transport).with_api_key(&config.api_key);
        target.gateways.clone_from(&config.gateways);
        target.source = Some(config.source);
        target.balancer = Some(self.balancer.clone());
        target.idle_timeout = Duration::from_millis(config.idle_timeout_ms);
        target.backoff = Backoff::WebClient {
            initial: Duration::from_millis(config.backoff_initial_ms),
            max: Duration::from_millis(config.backoff_max_ms),
        };
        if let Some(refetch) = &config.refetch {
            let refetcher = Refetcher {
                config: refetch.clone(),
                api_key: config.api_key.clone(),
                source: config.source,
                stats: self.history.clone(),
                permits: Arc::new(Semaphore::new(refetch.concurrency.max(1))),
                stop: self.stop.clone(),
            };
            target.on_reset = Some(refetcher.hook());
        }
        target
    }

    async fn handle(&mut self, command: Command) -> Reply {
        match command {
            Command::Open { within_ms } => self.open(Duration::from_millis(within_ms)).await,
            Command::WaitMarks {
                count,
                quiet_ms,
                limit_ms,
            } => {
                self.wait_marks(
                    count,
                    Duration::from_millis(quiet_ms),
                    Duration::from_millis(limit_ms),
                )
                .await
            }
            Command::WaitBack {
                since_us,
                gateway,
                limit_ms,
            } => {
                self.wait_back(since_us, gateway, Duration::from_millis(limit_ms))
                    .await
            }
            Command::WaitResets { count, limit_ms } => {
                self.wait_resets(count, Duration::from_millis(limit_ms))
                    .await
            }
            Command::Report {
                expected,
                first_published_us,
                published_us,
            } => Reply::Report(Box::new(self.report(
                expected,
                first_published_us,
                &published_us,
            ))),
            Command::Rotation { gateway, serving } => {
                self.balancer.set_serving(gateway, serving);
                Reply::Rotated
            }
            Command::Stop => {
                self.stop.cancel();
                Reply::Stopped
            }
        }
    }

    /// Opens every client in waves; replies with how many are ready.
    async fn open(&mut self, within: Duration) -> Reply {
        let deadline = Instant::now() + within;
        let sse = Arc::new(self.target(Transport::Sse));
        let ws = Arc::new(self.target(Transport::Ws));
        let gateways = self.config.gateways.len().max(1);
        // At most `wave` clients connecting at once: each new one starts as another becomes
        // ready, so a few refused clients backing off (the gateway's connection-rate cap)
        // hold up nobody.
        let wave = self.config.wave.max(1);
        let mut ready = 0;
        while self.clients.len() < self.config.clients && Instant::now() < deadline {
            let connecting = self.clients.len() - ready;
            let room = wave.saturating_sub(connecting);
            let next = self.clients.len();
            for index in next..(next + room).min(self.config.clients) {
                let fleet_index = self.config.first_client + index;
                let ws_client = self.config.ws_every > 0
                    && fleet_index % self.config.ws_every == self.config.ws_every - 1;
                let target = if ws_client { ws.clone() } else { sse.clone() };
                let home = fleet_index % gateways;
                let tally = SharedTally::default();
                self.tasks.spawn(client::run_from(
                    target,
                    tally.clone(),
                    self.stop.clone(),
                    None,
                    home,
                ));
                self.clients.push(Client { tally, home });
            }
            tokio::time::sleep(POLL).await;
            ready = self.ready_count();
        }
        // The last wave may still be on its way: give it until the deadline.
        while Instant::now() < deadline && self.ready_count() < self.clients.len() {
            tokio::time::sleep(POLL).await;
        }
        Reply::Opened {
            ready: self.ready_count(),
        }
    }

    fn ready_count(&self) -> usize {
        self.clients
            .iter()
            .filter(|client| ready(&lock(&client.tally)))
            .count()
    }

    async fn wait_marks(&self, count: u64, quiet: Duration, limit: Duration) -> Reply {
        let started = Instant::now();
        let mut last_total = 0;
        let mut last_progress = Instant::now();
        loop {
            let mut complete = 0;
            let mut total = 0;
            let mut away = 0;
            for client in &self.clients {
                let tally = lock(&client.tally);
                let marks = tally.marks.len() as u64;
                total += marks;
                complete += usize::from(marks >= count);
                away += usize::from(!ready(&tally));
            }
            // A client on its way back (its backoff may be 30 s) still has its resume to
            // come: nothing is quiet while one is away.
            if total != last_total || away > 0 {
                last_total = total;
                last_progress = Instant::now();
            }
            if complete == self.clients.len()
                || last_progress.elapsed() > quiet
                || started.elapsed() > limit
            {
                return Reply::Marks { complete };
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_back(&self, since_us: u64, gateway: usize, limit: Duration) -> Reply {
        let started = Instant::now();
        loop {
            let (mut dropped, mut back, mut last_back_us) = (0, 0, None);
            for client in &self.clients {
                let tally = lock(&client.tally);
                if let Some(back_us) = back_after(&tally.session_info, since_us, gateway) {
                    dropped += 1;
                    if let Some(ready_us) = back_us {
                        back += 1;
                        last_back_us = last_back_us.max(Some(ready_us));
                    }
                }
            }
            if back == dropped || started.elapsed() > limit {
                return Reply::Back {
                    dropped,
                    back,
                    last_back_us,
                };
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_resets(&self, count: usize, limit: Duration) -> Reply {
        let started = Instant::now();
        let refetching = self.config.refetch.is_some();
        loop {
            let (mut reset, mut refetched) = (0, 0);
            for client in &self.clients {
                let tally = lock(&client.tally);
                if tally.resets.len() >= count {
                    reset += 1;
                }
                let finished = tally.refetches_done + tally.refetches_failed;
                if !refetching || finished >= count as u64 {
                    refetched += 1;
                }
            }
            let all = self.clients.len();
            if (reset == all && refetched == all) || started.elapsed() > limit {
                return Reply::Resets {
                    reset,
                    refetched,
                    last_refetch_us: stats(&self.history).last_done_us,
                };
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn report(&self, expected: u64, first_published_us: u64, published_us: &[u64]) -> WorkerReport {
        let mut report = WorkerReport {
            worker: self.config.worker,
            clients: self.clients.len(),
            by_gateway: vec![Audit::default(); self.config.gateways.len().max(1)],
            ..WorkerReport::default()
        };
        let mut per_second: BTreeMap<(usize, u64), u64> = BTreeMap::new();
        for (index, client) in self.clients.iter().enumerate() {
            let fleet_index = self.config.first_client + index;
            if self.config.ws_every > 0
                && fleet_index % self.config.ws_every == self.config.ws_every - 1
            {
                report.ws += 1;
            } else {
                report.sse += 1;
            }
            let tally = lock(&client.tally);
            report.live += usize::from(ready(&tally));
            let audit = &mut report.by_gateway[client.home];
            audit.clients += 1;
            let first_ready = tally.session_info.iter().find_map(|s| s.ready_us);
            if first_ready.is_some_and(|ready| ready > first_published_us) {
                audit.late += 1;
            } else {
                audit_client(audit, &tally, expected, published_us);
            }
            if !tally.resets.is_empty() {
                report.clients_reset += 1;
            }
            for reason in &tally.resets {
                *report.resets.entry(reason.clone()).or_default() += 1;
            }
            for (what, count) in &tally.refusals {
                *report.refusals.entry(what.to_string()).or_default() += count;
            }
            report.failed_connects += tally.failed_connects;
            report.passed_on += tally.passed_on;
            if tally.last_error.is_some() {
                report.last_error.clone_from(&tally.last_error);
            }
            for info in tally.session_info.iter().filter(|info| info.resumed) {
                report.reconnects += 1;
                *per_second
                    .entry((info.gateway, info.opened_us / 1_000_000))
                    .or_default() += 1;
            }
            for session in &tally.sessions {
                if let Some(end) = &session.end {
                    *report.session_ends.entry(end.clone()).or_default() += 1;
                }
            }
            report.bad_frames += tally.bad_frames;
        }
        report.reconnects_per_second = per_second
            .into_iter()
            .map(|((gateway, second), count)| (gateway, second, count))
            .collect();
        for audit in &mut report.by_gateway {
            audit.latency.compact();
        }
        let mut history = stats(&self.history).clone();
        history.answer.compact();
        history.refetch.compact();
        report.history = history;
        report
    }

    async fn close(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// For a client that was streaming from `gateway` at `since_us`: `Some(when a later session
/// had its first heartbeat)`, `Some(None)` while none has. `None` for any other client.
fn back_after(sessions: &[SessionInfo], since_us: u64, gateway: usize) -> Option<Option<u64>> {
    let at = sessions.iter().rposition(|session| {
        session.opened_us <= since_us && session.ended_us.is_none_or(|ended| ended >= since_us)
    })?;
    (sessions[at].gateway == gateway).then(|| {
        sessions[at + 1..]
            .iter()
            .find_map(|session| session.ready_us)
    })
}

/// Adds one client's deliveries of events `0..expected` to `audit`. Events reach a client in
/// the order they were published, so a missing event is either a hole (a later one arrived) or
/// the tail (none later arrived yet). A hole published (`published_us`) after the client's last
/// `reset`, or in the stream of a client never reset, is lost unsignalled.
fn audit_client(audit: &mut Audit, tally: &Tally, expected: u64, published_us: &[u64]) {
    let received = (0..expected).filter(|n| tally.marks.contains(n)).count() as u64;
    let told_before = tally.last_reset_us.unwrap_or(0);
    let after_last = (0..expected)
        .rev()
        .find(|n| tally.marks.contains(n))
        .map_or(0, |last| last + 1);
    audit.lost_tail += expected - after_last;
    let unsignalled = (0..after_last)
        .filter(|n| !tally.marks.contains(n))
        .filter(|n| {
            // Unknown publish time (an older coordinator): counted as untold.
            published_us
                .get(*n as usize)
                .is_none_or(|published| *published >= told_before)
        })
        .count() as u64;
    audit.expected += expected;
    audit.received += received;
    audit.lost += expected - received;
    audit.lost_unsignalled += unsignalled;
    audit.clients_lost_unsignalled += usize::from(unsignalled > 0);
    audit.duplicates += tally.duplicates;
    audit.out_of_order += tally.out_of_order;
    for latency in &tally.latencies_us {
        audit.latency.record(*latency);
    }
}

/// Refetches a dashboard's state after a `reset`: the summary, then every snapshot page.
#[derive(Clone)]
struct Refetcher {
    config: RefetchConfig,
    api_key: String,
    source: std::net::IpAddr,
    stats: Arc<Mutex<HistoryStats>>,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
}

/// What a snapshot page says of the next one.
#[derive(serde::Deserialize)]
struct Page {
    next: Option<u64>,
}

impl Refetcher {
    fn hook(self) -> ResetHook {
        ResetHook(Arc::new(move |tally: &SharedTally, url: &str| {
            let refetcher = self.clone();
            let tally = tally.clone();
            let url = url.to_owned();
            tokio::spawn(async move { refetcher.refetch(tally, url).await });
        }))
    }

    async fn refetch(self, tally: SharedTally, url: String) {
        let started = Instant::now();
        stats(&self.stats).refetches_started += 1;
        let jitter = Duration::from_millis(self.config.jitter_ms).mul_f64(rand::random::<f64>());
        let limit = Duration::from_millis(self.config.limit_ms);
        let work = async {
            tokio::time::sleep(jitter).await;
            self.fetch_ok(&url, "/api/realtime/summary").await;
            let mut after = 0u64;
            loop {
                let path = format!(
                    "/api/realtime/snapshot?channels={}&limit={}&after={after}",
                    self.config.snapshot_channels, self.config.page_limit
                );
                let body = self.fetch_ok(&url, &path).await;
                match serde_json::from_slice::<Page>(&body) {
                    // A page that does not move forward would loop for ever (as the web client
                    // also stops).
                    Ok(Page { next: Some(next) }) if next > after => after = next,
                    Ok(_) => return true,
                    Err(_) => {
                        let mut stats = stats(&self.stats);
                        stats.errors += 1;
                        stats.last_error = Some("a snapshot page that is not JSON".into());
                        return false;
                    }
                }
            }
        };
        let finished = tokio::select! {
            _ = self.stop.cancelled() => return,
            finished = tokio::time::timeout(limit, work) => finished,
        };
        let mut stats = stats(&self.stats);
        if finished == Ok(true) {
            stats.refetches_done += 1;
            stats.refetch.record(started.elapsed().as_micros() as u64);
            stats.last_done_us = Some(now_us());
            lock(&tally).refetches_done += 1;
        } else {
            stats.refetches_failed += 1;
            lock(&tally).refetches_failed += 1;
        }
    }

    /// The dashboard's wait before asking again: uniform in [retry / 2, retry].
    fn retry_backoff(&self) -> Duration {
        let retry = Duration::from_millis(self.config.retry_ms);
        retry / 2 + (retry / 2).mul_f64(rand::random::<f64>())
    }

    /// The body of a 2xx answer to `GET url path`, asking again (after its `Retry-After`, or
    /// the dashboard's retry delay) until there is one; the caller bounds the whole.
    async fn fetch_ok(&self, url: &str, path: &str) -> Vec<u8> {
        loop {
            let answer = {
                // The semaphore is never closed; were it, the request would go unbounded.
                let _permit = self.permits.acquire().await.ok();
                let sent = Instant::now();
                let answer = http::get(
                    url,
                    path,
                    Some(&self.api_key),
                    Some(self.source),
                    REQUEST_LIMIT,
                    MAX_BODY,
                )
                .await;
                (answer, sent.elapsed())
            };
            let wait = {
                let mut stats = stats(&self.stats);
                match answer {
                    (Ok(response), took) => {
                        stats.requests += 1;
                        stats.answer.record(took.as_micros() as u64);
                        if (200..300).contains(&response.status) {
                            return response.body;
                        }
                        *stats
                            .non_2xx
                            .entry(client::refusal_name(response.status, &response.body))
                            .or_default() += 1;
                        client::after_retry_after(
                            response.retry_after,
                            self.retry_backoff(),
                            rand::random::<f64>(),
                        )
                    }
                    (Err(error), _) => {
                        stats.errors += 1;
                        stats.last_error = Some(error.to_string());
                        self.retry_backoff()
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marker::Delivered;

    #[test]
    fn a_client_is_back_once_a_session_after_the_one_it_lost_had_its_heartbeat() {
        let session = |gateway, opened_us, ready_us, ended_us| SessionInfo {
            gateway,
            resumed: true,
            opened_us,
            ready_us,
            ended_us,
        };
        // On gateway 0 at 100, dropped at 150, back on gateway 2 at 420.
        let moved = [
            session(0, 10, Some(11), Some(150)),
            session(2, 400, Some(420), None),
        ];
        assert_eq!(back_after(&moved, 100, 0), Some(Some(420)));
        // Not yet noticed the loss: still counted, not back.
        assert_eq!(back_after(&moved[..1], 100, 0), Some(None));
        let reconnecting = [
            session(0, 10, Some(11), Some(150)),
            session(1, 400, None, None),
        ];
        assert_eq!(back_after(&reconnecting, 100, 0), Some(None));
        // On another gateway at that moment: not one of its clients.
        assert_eq!(back_after(&moved, 100, 1), None);
        assert_eq!(back_after(&moved, 5, 0), None);
    }

    #[test]
    fn a_client_is_audited_against_every_expected_event() {
        let mut tally = Tally::default();
        let event = |seq, n| Delivered {
            seq,
            n: Some(n),
            sent_us: Some(0),
        };
        tally.record_typed_frame("ORDER_RECEIVED", &[event(10, 0), event(11, 1)], 2, 2_000);
        tally.record_typed_frame("ORDER_RECEIVED", &[event(11, 1), event(13, 3)], 2, 4_000);
        let mut audit = Audit::default();
        audit_client(&mut audit, &tally, 4, &[0, 0, 0, 0]);
        assert_eq!(audit.expected, 4);
        assert_eq!(audit.received, 3);
        assert_eq!(audit.lost, 1);
        assert_eq!(audit.lost_unsignalled, 1, "no reset told of event 2");
        assert_eq!(audit.duplicates, 1);
        assert_eq!(audit.out_of_order, 0);
        audit.latency.compact();
        assert_eq!(audit.latency.count, 3);
        assert_eq!(audit.latency.max_us, 4_000);
    }

    #[test]
    fn a_loss_is_signalled_only_by_a_reset_that_came_after_the_event_was_published() {
        let mut tally = Tally::default();
        let event = |seq, n| Delivered {
            seq,
            n: Some(n),
            sent_us: Some(0),
        };
        tally.record_typed_frame("ORDER_RECEIVED", &[event(10, 0), event(11, 1)], 2, 2_000);
        tally.last_reset_us = Some(5_000);
        tally.record_typed_frame("ORDER_RECEIVED", &[event(20, 4)], 1, 7_000);
        // Events 2 and 3 never arrived: 2 was published before the reset (told of), 3 after;
        // 5 and 6 are still on their way (nothing after them arrived): the tail, not holes.
        let mut audit = Audit::default();
        let published = [1_000, 1_500, 4_000, 6_000, 6_500, 7_000, 7_500];
        audit_client(&mut audit, &tally, 7, &published);
        assert_eq!(audit.lost, 4);
        assert_eq!(audit.lost_tail, 2);
        assert_eq!(audit.lost_unsignalled, 1);
        assert_eq!(audit.clients_lost_unsignalled, 1);
        let mut told = Audit::default();
        audit_client(&mut told, &tally, 5, &[1_000, 1_500, 4_000, 4_500, 6_500]);
        assert_eq!(
            (
                told.lost,
                told.lost_unsignalled,
                told.clients_lost_unsignalled
            ),
            (2, 0, 0)
        );
    }
}
