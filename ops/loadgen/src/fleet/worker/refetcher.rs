//! A dashboard's refetch after a `reset`, as a fleet client makes it: after a random wait, the
//! summary, then every snapshot page, each request asked again after a refusal (its
//! `Retry-After`) or a failure, as the dashboard does, so that a reset herd meets the gateways'
//! history budget as real pages would.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::client::{self, http, lock, ResetHook, SharedTally};
use crate::fleet::wire::{HistoryStats, RefetchConfig};
use crate::marker::now_us;
use crate::unpoisoned;

/// One summary or snapshot request, from its connect to its whole answer.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// The largest answer read (a snapshot page of 1,000 entities is well under this).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Refetches a dashboard's state after a `reset`: the summary, then every snapshot page.
#[derive(Clone)]
pub(super) struct Refetcher {
    pub(super) config: RefetchConfig,
    pub(super) api_key: String,
    pub(super) source: std::net::IpAddr,
    pub(super) stats: Arc<Mutex<HistoryStats>>,
    pub(super) permits: Arc<Semaphore>,
    pub(super) stop: CancellationToken,
}

/// What a snapshot page says of the next one.
#[derive(serde::Deserialize)]
struct Page {
    next: Option<u64>,
}

impl Refetcher {
    pub(super) fn hook(self) -> ResetHook {
        ResetHook(Arc::new(move |tally: &SharedTally, url: &str| {
            let refetcher = self.clone();
            let tally = tally.clone();
            let url = url.to_owned();
            tokio::spawn(async move { refetcher.refetch(tally, url).await });
        }))
    }

    async fn refetch(self, tally: SharedTally, url: String) {
        let started = Instant::now();
        unpoisoned(&self.stats).refetches_started += 1;
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
                        let mut stats = unpoisoned(&self.stats);
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
        let mut stats = unpoisoned(&self.stats);
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
                let mut stats = unpoisoned(&self.stats);
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
