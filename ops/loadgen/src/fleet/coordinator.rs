//! The coordinator's side of its workers: each a child process of this binary
//! (`rakuda-loadgen fleet-worker`), given its settings and then one command at a time on
//! stdin, answering each with one line on stdout. Killed when dropped, so a coordinator that
//! fails leaves no worker behind (and a worker whose stdin closes ends by itself anyway). What
//! each worker is told first (`worker_configs`) is worked out here too.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::wire::{Command, RefetchConfig, Reply, WorkerConfig};
use super::{Disruption, FleetScenario, REFETCH_RETRY, SNAPSHOT_PAGE};
use crate::stack::API_KEY;

/// History requests one worker has open at once: with its ~15,000 streams, under the
/// open-files limit.
const HISTORY_CONCURRENCY: usize = 2_000;

/// `127.0.0.{2 + index % count}`: the source address of worker `index`.
fn source_address(index: usize, count: usize) -> IpAddr {
    let last = 2 + (index % count.max(1)) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// What each worker of `scenario` is told: its share of the clients, its source address,
/// every gateway, the backoff, whether it refetches after a reset, and when to stop by itself
/// (`deadline` after it started).
pub(super) fn worker_configs(
    scenario: &FleetScenario,
    urls: &[String],
    deadline: Duration,
) -> Vec<WorkerConfig> {
    let per_worker = scenario.per_worker();
    let refetch = (scenario.disruption == Disruption::RestartBridge).then(|| RefetchConfig {
        jitter_ms: scenario.refetch_jitter.as_millis() as u64,
        snapshot_channels: "inventory".into(),
        page_limit: SNAPSHOT_PAGE,
        retry_ms: REFETCH_RETRY.as_millis() as u64,
        concurrency: HISTORY_CONCURRENCY,
        limit_ms: scenario.phase_limit.as_millis() as u64,
    });
    (0..scenario.workers)
        .map(|worker| {
            let first_client = worker * per_worker;
            WorkerConfig {
                worker,
                source: source_address(worker, scenario.sources),
                gateways: urls.to_vec(),
                api_key: API_KEY.to_owned(),
                clients: per_worker.min(scenario.connections.saturating_sub(first_client)),
                first_client,
                ws_every: scenario.ws_every,
                wave: scenario.wave,
                backoff_initial_ms: scenario.backoff_initial.as_millis() as u64,
                backoff_max_ms: scenario.backoff_max.as_millis() as u64,
                // The browser client's watchdog: two heartbeat intervals (30 s by default).
                idle_timeout_ms: 60_000,
                refetch: refetch.clone(),
                deadline_s: deadline.as_secs(),
            }
        })
        .collect()
}

/// Why talking to a worker failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerFailure {
    #[error("cannot start worker {worker} ({exe}): {source}")]
    Spawn {
        worker: usize,
        exe: String,
        source: std::io::Error,
    },
    #[error("worker {worker} is gone ({what}); its stderr above says why")]
    Gone { worker: usize, what: String },
    #[error("worker {worker} did not answer `{command}` within {limit:?}")]
    TimedOut {
        worker: usize,
        command: String,
        limit: Duration,
    },
    #[error("worker {worker} refused a command: {message}")]
    Refused { worker: usize, message: String },
}

struct WorkerProcess {
    worker: usize,
    child: Child,
    /// Closed (`None`) once the worker is told to stop: its end of stdin tells it to go.
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl WorkerProcess {
    async fn send(&mut self, line: &str) -> Result<(), WorkerFailure> {
        let worker = self.worker;
        let gone = |error: std::io::Error| WorkerFailure::Gone {
            worker,
            what: format!("cannot write to it: {error}"),
        };
        let Some(stdin) = &mut self.stdin else {
            return Err(WorkerFailure::Gone {
                worker,
                what: "its stdin is closed".into(),
            });
        };
        stdin.write_all(line.as_bytes()).await.map_err(gone)?;
        stdin.write_all(b"\n").await.map_err(gone)?;
        stdin.flush().await.map_err(gone)
    }

    async fn reply(&mut self, command: &str, limit: Duration) -> Result<Reply, WorkerFailure> {
        let worker = self.worker;
        let line = match tokio::time::timeout(limit, self.stdout.next_line()).await {
            Err(_) => {
                return Err(WorkerFailure::TimedOut {
                    worker,
                    command: command.to_owned(),
                    limit,
                })
            }
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                return Err(WorkerFailure::Gone {
                    worker,
                    what: "its stdout closed".into(),
                })
            }
            Ok(Err(error)) => {
                return Err(WorkerFailure::Gone {
                    worker,
                    what: format!("cannot read from it: {error}"),
                })
            }
        };
        match serde_json::from_str::<Reply>(&line) {
            Ok(Reply::Error { message }) => Err(WorkerFailure::Refused { worker, message }),
            Ok(reply) => Ok(reply),
            Err(error) => Err(WorkerFailure::Gone {
                worker,
                what: format!("it said something unreadable ({error}): {line:?}"),
            }),
        }
    }
}

/// Every worker of a run.
pub struct Workers {
    workers: Vec<WorkerProcess>,
}

impl Workers {
    /// Starts one worker per config with `exe fleet-worker`, and hands each its settings.
    pub async fn spawn(exe: &Path, configs: &[WorkerConfig]) -> Result<Workers, WorkerFailure> {
        let mut workers = Vec::with_capacity(configs.len());
        for config in configs {
            let spawned = tokio::process::Command::new(exe)
                .arg("fleet-worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn();
            let mut child = spawned.map_err(|source| WorkerFailure::Spawn {
                worker: config.worker,
                exe: exe.display().to_string(),
                source,
            })?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err(WorkerFailure::Gone {
                    worker: config.worker,
                    what: "no pipes to it".into(),
                });
            };
            let mut worker = WorkerProcess {
                worker: config.worker,
                child,
                stdin: Some(stdin),
                stdout: BufReader::new(stdout).lines(),
            };
            // Serializing our own plain data cannot fail.
            worker
                .send(&serde_json::to_string(config).unwrap_or_default())
                .await?;
            workers.push(worker);
        }
        Ok(Workers { workers })
    }

    /// Sends `command` to every worker, then waits up to `limit` for all their replies (in
    /// worker order).
    pub async fn ask(
        &mut self,
        command: &Command,
        limit: Duration,
    ) -> Result<Vec<Reply>, WorkerFailure> {
        let line = serde_json::to_string(command).unwrap_or_default();
        let name = line.split('"').nth(3).unwrap_or("command").to_owned();
        for worker in &mut self.workers {
            worker.send(&line).await?;
        }
        let replies = futures::future::join_all(
            self.workers
                .iter_mut()
                .map(|worker| worker.reply(&name, limit)),
        )
        .await;
        replies.into_iter().collect()
    }

    /// The workers' process ids, for their CPU readings.
    pub fn pids(&self) -> Vec<u32> {
        self.workers
            .iter()
            .filter_map(|worker| worker.child.id())
            .collect()
    }

    /// Tells every worker to stop and waits up to `limit` for each to exit; kills the rest.
    pub async fn stop(mut self, limit: Duration) {
        // A worker that is gone already needs no stopping.
        let _ = self.ask(&Command::Stop, limit).await;
        for worker in &mut self.workers {
            worker.stdin = None;
            if tokio::time::timeout(limit, worker.child.wait())
                .await
                .is_err()
            {
                let _ = worker.child.kill().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_take_addresses_in_turn_and_share_the_clients() {
        let scenario = super::super::find("fleet-56k").expect("defined");
        let urls: Vec<String> = (0..4)
            .map(|i| format!("http://127.0.0.1:{}", 9000 + i))
            .collect();
        let configs = worker_configs(&scenario, &urls, Duration::from_secs(600));
        assert_eq!(configs.len(), 4);
        assert_eq!(configs.iter().map(|c| c.clients).sum::<usize>(), 56_000);
        let sources: Vec<String> = configs.iter().map(|c| c.source.to_string()).collect();
        assert_eq!(
            sources,
            ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
        );
        assert_eq!(configs[3].first_client, 42_000);
        assert!(configs.iter().all(|c| c.refetch.is_none()));
        let small = super::super::find("reset-herd")
            .expect("defined")
            .scaled_down(200);
        let configs = worker_configs(&small, &urls, Duration::from_secs(60));
        let sources: Vec<String> = configs.iter().map(|c| c.source.to_string()).collect();
        assert_eq!(
            sources,
            ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]
        );
        assert!(configs.iter().all(|c| c.refetch.is_some()));
    }
}
