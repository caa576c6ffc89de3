//! A worker process (`rakuda-loadgen fleet-worker`, started by the coordinator): up to about
//! 15,000 clients from one source address, each auditing its own stream, driven by commands
//! on stdin and answering on stdout ([`super::wire`]). It ends by itself when stdin closes
//! (the coordinator is gone) or at its deadline, whichever comes first.
//!
//! - this module — the command loop: read a command, act on every client, reply.
//! - `audit` — what each client received against every event published, and who is back.
//! - `refetcher` — a dashboard's summary and snapshot refetch after a `reset`.

mod audit;
mod refetcher;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::wire::{Command, HistoryStats, Reply, WorkerConfig};
use crate::client::{self, lock, Backoff, Balancer, SharedTally, Target, Transport};
use audit::back_after;
use refetcher::Refetcher;

/// How often a wait looks at the clients again.
const POLL: Duration = Duration::from_millis(50);
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
            } => Reply::Report(Box::new(audit::report(
                &self.config,
                &self.clients,
                &self.history,
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
                let target = if self.config.speaks_ws(index) {
                    ws.clone()
                } else {
                    sse.clone()
                };
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
            .filter(|client| lock(&client.tally).is_ready())
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
                away += usize::from(!tally.is_ready());
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
                    last_refetch_us: crate::unpoisoned(&self.history).last_done_us,
                };
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn close(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}
