//! The coverage task: every beacon interval it publishes a beacon, reports this bridge's spans
//! to the registry, and writes the gap markers the registry hands it into the stream.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use bytes::Bytes;
use rakuda_schema::channel::SOURCE_GAP_SUBJECT;
use rakuda_schema::{GapReason, SourceGap, Timestamp};
use redis::aio::MultiplexedConnection;
use tokio_util::sync::CancellationToken;

use super::registry::{Registry, RegistryError};
use super::spans::Coverage;
use crate::metrics::BridgeMetrics;
use crate::route::{content_hash, MSG_ID_HEADER};

/// How long one Redis round trip may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Shortest staleness limit: a bridge silent for this long is taken as gone.
const MIN_STALE_AFTER: Duration = Duration::from_secs(2);
/// How long the last report may take when the bridge stops.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// The staleness limit for beacons every `interval`: five missed reports, at least 2 s.
pub fn stale_after(interval: Duration) -> Duration {
    (interval * 5).max(MIN_STALE_AFTER)
}

pub struct CoverageTask {
    redis: redis::Client,
    connection: Option<MultiplexedConnection>,
    registry: Registry,
    coverage: Arc<Coverage>,
    jetstream: jetstream::Context,
    metrics: Arc<BridgeMetrics>,
    interval: Duration,
    /// The chain of the last beacon this task published.
    chain: Option<String>,
    /// Gap markers decided but not yet acknowledged by JetStream, with the spans to confirm.
    unsent: Vec<(SourceGap, Vec<String>)>,
    failing: bool,
}

impl CoverageTask {
    pub fn new(
        redis: redis::Client,
        prefix: &str,
        coverage: Arc<Coverage>,
        jetstream: jetstream::Context,
        metrics: Arc<BridgeMetrics>,
        interval: Duration,
    ) -> CoverageTask {
        CoverageTask {
            redis,
            connection: None,
            registry: Registry::new(prefix),
            coverage,
            jetstream,
            metrics,
            interval,
            chain: None,
            unsent: Vec::new(),
            failing: false,
        }
    }

    /// Reports every interval until `stop`; returns itself for [`CoverageTask::close`].
    pub async fn run(mut self, stop: CancellationToken) -> CoverageTask {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let coverage = self.coverage.clone();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return self,
                _ = tick.tick() => {}
                _ = coverage.span_begun() => {}
            }
            let outcome = tokio::select! {
                _ = stop.cancelled() => return self,
                outcome = self.report(false) => outcome,
            };
            self.note(outcome);
        }
    }

    /// The bridge is stopping and everything it read is in the stream: its spans end.
    pub async fn close(mut self) {
        let outcome = tokio::time::timeout(CLOSE_TIMEOUT, self.report(true)).await;
        match outcome {
            Ok(outcome) => self.note(outcome),
            Err(_) => tracing::warn!(
                "could not report this bridge's end to the registry in time; the other bridges will notice it is gone"
            ),
        }
    }

    fn note(&mut self, outcome: Result<(), RegistryError>) {
        match outcome {
            Ok(()) => {
                if self.failing {
                    tracing::info!("coverage registry reachable again");
                    self.failing = false;
                }
            }
            Err(error) => {
                self.metrics.coverage_errors.increment(1);
                self.connection = None;
                if !self.failing {
                    tracing::warn!(%error, "cannot reach the coverage registry in Redis; gaps are decided once it answers");
                    self.failing = true;
                }
            }
        }
    }

    async fn connection(&mut self) -> Result<MultiplexedConnection, RegistryError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let connection =
            tokio::time::timeout(REDIS_TIMEOUT, self.redis.get_multiplexed_async_connection())
                .await
                .map_err(|_| RegistryError::Answer("redis did not answer".into()))??;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// One round: a beacon (not when closing), this bridge's spans, and the markers due.
    async fn report(&mut self, closing: bool) -> Result<(), RegistryError> {
        let mut redis = self.connection().await?;
        if !closing || self.chain.is_none() {
            let (chain, n) = timed(self.registry.beacon(&mut redis)).await?;
            self.coverage.published(&chain, n);
            self.chain = Some(chain);
        }
        let Some(chain) = self.chain.clone() else {
            return Ok(());
        };
        let records = self.coverage.records(&chain, closing);
        let outcome = timed(self.registry.refresh(
            &mut redis,
            stale_after(self.interval),
            &chain,
            &records,
            self.coverage.bridge(),
        ))
        .await?;
        if outcome.chain != chain {
            // Redis lost the registry between the beacon and now; the next round starts anew.
            self.chain = None;
            return Ok(());
        }
        self.coverage.reported(&records);
        if !outcome.revoked.is_empty() {
            self.metrics.subscription_ended("liveness_lapsed");
            tracing::warn!(
                spans = ?outcome.revoked,
                "this bridge was silent for too long and its subscription was taken as ended; carrying on as a new one"
            );
            self.coverage.revoked(&outcome.revoked);
        }
        if outcome.start || outcome.restarted {
            let reason = if outcome.restarted {
                GapReason::RedisRestarted
            } else {
                GapReason::Start
            };
            let spans = self.coverage.current_id().into_iter().collect();
            self.unsend(gap(reason, spans, &self.coverage), Vec::new());
        }
        if !outcome.gaps.is_empty() {
            let marker = gap(GapReason::Departed, outcome.gaps.clone(), &self.coverage);
            self.unsend(marker, outcome.gaps);
        }
        self.send_markers(&mut redis).await
    }

    /// Queues a marker, unless one for the same spans is queued already (a claim of ours that
    /// lapsed while NATS was away and was taken again).
    fn unsend(&mut self, marker: SourceGap, spans: Vec<String>) {
        let queued = self
            .unsent
            .iter()
            .any(|(other, _)| other.reason == marker.reason && other.spans == marker.spans);
        if !queued {
            self.unsent.push((marker, spans));
        }
    }

    /// Writes every unsent marker into the stream; the spans of those acknowledged are
    /// confirmed. What fails stays for the next round.
    async fn send_markers(
        &mut self,
        redis: &mut MultiplexedConnection,
    ) -> Result<(), RegistryError> {
        let mut index = 0;
        while index < self.unsent.len() {
            let (marker, spans) = &self.unsent[index];
            match self.publish(marker).await {
                Ok(()) => {
                    let what = match marker.reason {
                        GapReason::RedisRestarted => "Redis is another process than the one the bridges' account was kept in (restarted, restored from a snapshot, or a replica took over): events published before the bridges subscribed again may be lost; clients get reset (source_gap)",
                        _ => "no bridge was subscribed to Redis for a while: events published then may be lost; clients get reset (source_gap)",
                    };
                    tracing::warn!(reason = ?marker.reason, spans = ?marker.spans, "{what}");
                    self.metrics.source_gap(marker.reason);
                    if !spans.is_empty() {
                        timed(self.registry.confirm(redis, spans)).await?;
                    }
                    self.unsent.remove(index);
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot write the gap marker yet; retrying next round");
                    index += 1;
                }
            }
        }
        Ok(())
    }

    async fn publish(&self, marker: &SourceGap) -> Result<(), MarkerError> {
        let payload = serde_json::to_vec(marker)?;
        // The same decision written twice (a retry, another bridge reclaiming it) is stored once.
        let id = content_hash(
            SOURCE_GAP_SUBJECT,
            format!("{:?}:{}", marker.reason, marker.spans.join(",")).as_bytes(),
        );
        let mut headers = HeaderMap::new();
        headers.insert(MSG_ID_HEADER, id.as_str());
        let ack = self
            .jetstream
            .publish_with_headers(SOURCE_GAP_SUBJECT, headers, Bytes::from(payload))
            .await?;
        ack.await?;
        Ok(())
    }
}

/// Why a gap marker is not in the stream yet; it is retried on the next round either way.
#[derive(Debug, thiserror::Error)]
enum MarkerError {
    #[error("cannot encode the marker: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("JetStream did not store the marker: {0}")]
    Publish(#[from] async_nats::jetstream::context::PublishError),
}

fn gap(reason: GapReason, spans: Vec<String>, coverage: &Coverage) -> SourceGap {
    SourceGap {
        reason,
        spans,
        noticed_by: coverage
            .current_id()
            .unwrap_or_else(|| coverage.bridge().to_owned()),
        at: Timestamp::now(),
    }
}

async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, RegistryError>>,
) -> Result<T, RegistryError> {
    tokio::time::timeout(REDIS_TIMEOUT, call)
        .await
        .map_err(|_| RegistryError::Answer("redis did not answer in time".into()))?
}
