//! Many subscribers at once: opened in waves (so the gateway's accept backlog is never
//! flooded), watched as a group, kicked all at once for a reconnect storm, and stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{self, lock, SharedTally, Target};
use crate::tally::Tally;

/// Connections opened per wave; the next wave starts once this one is live.
const WAVE: usize = 500;
/// How long one wave may take to connect before the next starts anyway.
const WAVE_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

pub struct Subscribers {
    pub tallies: Vec<SharedTally>,
    stop: CancellationToken,
    kick: watch::Sender<u64>,
    tasks: JoinSet<()>,
}

impl Subscribers {
    /// Opens `count` connections to `target`, in waves, and waits until they are ready (or a
    /// wave times out: `ready_count` tells how many made it).
    pub async fn open(target: Target, count: usize) -> Subscribers {
        let target = Arc::new(target);
        let stop = CancellationToken::new();
        let (kick, _) = watch::channel(0u64);
        let mut subscribers = Subscribers {
            tallies: Vec::with_capacity(count),
            stop,
            kick,
            tasks: JoinSet::new(),
        };
        while subscribers.tallies.len() < count {
            let first = subscribers.tallies.len();
            let wave = WAVE.min(count - first);
            for _ in 0..wave {
                let tally = SharedTally::default();
                subscribers.tasks.spawn(client::run_kickable(
                    target.clone(),
                    tally.clone(),
                    subscribers.stop.clone(),
                    Some(subscribers.kick.subscribe()),
                ));
                subscribers.tallies.push(tally);
            }
            let deadline = Instant::now() + WAVE_TIMEOUT;
            while Instant::now() < deadline
                && !subscribers.tallies[first..]
                    .iter()
                    .all(|tally| lock(tally).is_ready())
            {
                tokio::time::sleep(POLL).await;
            }
        }
        subscribers
    }

    /// Subscribers ready now.
    pub fn ready_count(&self) -> usize {
        self.tallies
            .iter()
            .filter(|tally| lock(tally).is_ready())
            .count()
    }

    /// Waits until every subscriber that was ready holds `count` marks, or until nothing has
    /// arrived for `quiet`, or `limit`; the instant the last one completed (or the wait ended).
    pub async fn wait_for_marks(&self, count: usize, quiet: Duration, limit: Duration) -> Instant {
        self.wait_until(|tally| tally.marks.len() >= count, quiet, limit)
            .await
    }

    /// As [`Subscribers::wait_for_marks`], counting the events frames stand for (batches).
    pub async fn wait_for_represented(
        &self,
        count: u64,
        quiet: Duration,
        limit: Duration,
    ) -> Instant {
        self.wait_until(|tally| tally.represented >= count, quiet, limit)
            .await
    }

    async fn wait_until(
        &self,
        done: impl Fn(&Tally) -> bool,
        quiet: Duration,
        limit: Duration,
    ) -> Instant {
        let started = Instant::now();
        let mut last_progress = Instant::now();
        let mut last_total = 0u64;
        loop {
            let mut complete = true;
            let mut total = 0u64;
            for tally in &self.tallies {
                let tally = lock(tally);
                total += tally.represented;
                if !done(&tally) {
                    complete = false;
                }
            }
            let now = Instant::now();
            if complete {
                return now;
            }
            if total != last_total {
                last_total = total;
                last_progress = now;
            }
            if now - last_progress > quiet || now - started > limit {
                return last_progress;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Drops every connection at once; each reconnects immediately with its cursor.
    pub fn kick_all(&self) {
        self.kick.send_modify(|generation| *generation += 1);
    }

    /// Waits until every subscriber has a new session (opened after `since`) that is ready;
    /// how long that took, or `None` at `limit`.
    pub async fn wait_all_back(&self, since: Instant, limit: Duration) -> Option<Duration> {
        let deadline = since + limit;
        loop {
            let back = self.tallies.iter().all(|tally| {
                let tally = lock(tally);
                tally.is_ready()
                    && tally
                        .sessions
                        .last()
                        .is_some_and(|session| session.connected_at >= since)
            });
            if back {
                return Some(since.elapsed());
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Resets every tally's measurement window.
    pub fn start_window(&self) {
        for tally in &self.tallies {
            lock(tally).start_window();
        }
    }

    /// Stops every subscriber and waits for their tasks.
    pub async fn close(mut self) -> Vec<SharedTally> {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.tallies
    }
}
