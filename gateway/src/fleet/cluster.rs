//! Cluster-wide stats over NATS request/reply.
//!
//! Every gateway announces itself on `rakuda.gateway.presence` each second and answers requests
//! on `rakuda.gateway.stats` with its stats snapshot. `GET /api/realtime/stats?scope=cluster` on
//! any instance asks them all, waits at most `CLUSTER_STATS_TIMEOUT`, adds the typed snapshots up,
//! and names the instances it knows to be alive (announced within the last few seconds) that did
//! not answer in time.
//!
//! These subjects are for gateways only: the shipped NATS permissions let only the gateway user
//! publish on them (docs/SECURITY.md). Still, what arrives is bounded, so a misconfigured or
//! compromised peer cannot grow this instance's memory: names are short and plain, peers and
//! replies are capped in number and size, counts add up without overflow, and stats requests
//! are answered at a bounded rate. What is dropped is counted in
//! `gateway_cluster_messages_dropped_total`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::metrics::{GatewayMetrics, StatsSnapshot};

pub(crate) const PRESENCE_SUBJECT: &str = "rakuda.gateway.presence";
pub(crate) const STATS_SUBJECT: &str = "rakuda.gateway.stats";
const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);
/// An instance not heard from for this long is no longer expected to answer.
const PRESENCE_TTL: Duration = Duration::from_secs(5);
/// Longest instance name taken from a presence message.
pub(crate) const MAX_INSTANCE_NAME_BYTES: usize = 64;
/// Most instances remembered, and most stats replies read for one request.
const MAX_PEERS: usize = 256;
/// Largest stats reply read (a real one is about 2 KiB).
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Stats requests answered per second, and as a burst: far above any real use (a dashboard
/// asks every few seconds), low enough that a flood of requests costs little.
const ANSWERS_PER_SECOND: std::num::NonZeroU32 = std::num::NonZeroU32::new(100).expect("nonzero");

/// This instance's place in the cluster: it announces itself, remembers who else did, and
/// answers and asks for stats.
pub(crate) struct Cluster {
    nats: async_nats::Client,
    instance: Arc<str>,
    metrics: Arc<GatewayMetrics>,
    timeout: Duration,
    peers: Mutex<HashMap<String, Instant>>,
    dropped: rakuda_service::metric::ReadableCounter,
}

/// Every live instance's stats, their totals, and who did not answer in time.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClusterStats {
    pub scope: &'static str,
    pub instances: Vec<StatsSnapshot>,
    pub totals: StatsSnapshot,
    pub missing: Vec<String>,
    pub timeout_ms: u64,
}

impl Cluster {
    /// `timeout` is `CLUSTER_STATS_TIMEOUT`.
    pub(crate) fn new(
        nats: async_nats::Client,
        instance: Arc<str>,
        metrics: Arc<GatewayMetrics>,
        timeout: Duration,
    ) -> Cluster {
        Cluster {
            nats,
            instance,
            dropped: metrics.fleet.cluster_dropped.clone(),
            metrics,
            timeout,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn peers(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        // Each update is one insert or retain: a panic leaves the map consistent.
        self.peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn heard(&self, payload: &[u8]) {
        let Some(instance) = instance_name(payload) else {
            self.dropped.increment(1);
            return;
        };
        let mut peers = self.peers();
        let now = Instant::now();
        peers.retain(|_, seen| now.duration_since(*seen) < PRESENCE_TTL * 4);
        if peers.len() >= MAX_PEERS && !peers.contains_key(instance) {
            self.dropped.increment(1);
            return;
        }
        peers.insert(instance.to_owned(), now);
    }

    /// Instances announced within [`PRESENCE_TTL`].
    pub(crate) fn alive(&self) -> BTreeSet<String> {
        self.peers()
            .iter()
            .filter(|(_, seen)| seen.elapsed() < PRESENCE_TTL)
            .map(|(instance, _)| instance.clone())
            .collect()
    }

    /// Announces this instance, tracks the others, and answers stats requests, until `stop`.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let (mut presence, mut requests) = loop {
            match (
                self.nats.subscribe(PRESENCE_SUBJECT).await,
                self.nats.subscribe(STATS_SUBJECT).await,
            ) {
                (Ok(presence), Ok(requests)) => break (presence, requests),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, "cannot subscribe for cluster stats; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(PRESENCE_INTERVAL) => {}
                    }
                }
            }
        };
        let mut announce = tokio::time::interval(PRESENCE_INTERVAL);
        let answers =
            governor::RateLimiter::direct(governor::Quota::per_second(ANSWERS_PER_SECOND));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = announce.tick() => {
                    let name = Bytes::copy_from_slice(self.instance.as_bytes());
                    let _ = self.nats.publish(PRESENCE_SUBJECT, name).await;
                }
                Some(message) = presence.next() => self.heard(&message.payload),
                Some(request) = requests.next() => {
                    if answers.check().is_err() {
                        self.dropped.increment(1);
                        continue;
                    }
                    if let Some(reply) = request.reply {
                        let snapshot = self.metrics.snapshot(&self.instance);
                        let body = serde_json::to_vec(&snapshot).unwrap_or_default();
                        let _ = self.nats.publish(reply, body.into()).await;
                    }
                }
            }
        }
    }

    /// Asks every instance for its stats and adds them up.
    pub(crate) async fn gather(&self) -> ClusterStats {
        let mut expected = self.alive();
        expected.insert(self.instance.to_string());
        let mut rows: Vec<StatsSnapshot> = Vec::new();
        let inbox = self.nats.new_inbox();
        let gathered = async {
            let mut replies = self.nats.subscribe(inbox.clone()).await.ok()?;
            self.nats
                .publish_with_reply(STATS_SUBJECT, inbox.clone(), Bytes::new())
                .await
                .ok()?;
            let mut answered = BTreeSet::new();
            let deadline = tokio::time::Instant::now() + self.timeout;
            let mut read = 0;
            while !expected.is_subset(&answered) && read < MAX_PEERS {
                let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await
                else {
                    break;
                };
                read += 1;
                let row = (message.payload.len() <= MAX_REPLY_BYTES)
                    .then(|| serde_json::from_slice::<StatsSnapshot>(&message.payload).ok())
                    .flatten()
                    .filter(|row| instance_name(row.instance.as_bytes()).is_some());
                let Some(row) = row else {
                    self.dropped.increment(1);
                    continue;
                };
                if answered.insert(row.instance.clone()) {
                    rows.push(row);
                }
            }
            Some(answered)
        }
        .await;
        let answered = gathered.unwrap_or_default();
        rows.sort_by(|a, b| a.instance.cmp(&b.instance));
        let mut totals = StatsSnapshot::default();
        for row in &rows {
            totals.add(row);
        }
        ClusterStats {
            scope: "cluster",
            instances: rows,
            totals,
            missing: expected.difference(&answered).cloned().collect(),
            timeout_ms: self.timeout.as_millis() as u64,
        }
    }
}

/// A plain instance name (letters, digits, `-`, `_`, `.`, at most [`MAX_INSTANCE_NAME_BYTES`]),
/// as `GATEWAY_INSTANCE_ID` allows.
pub(crate) fn instance_name(bytes: &[u8]) -> Option<&str> {
    let plain = !bytes.is_empty()
        && bytes.len() <= MAX_INSTANCE_NAME_BYTES
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plain.then(|| std::str::from_utf8(bytes).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_are_short_and_plain() {
        assert_eq!(instance_name(b"gw-1a2b3c"), Some("gw-1a2b3c"));
        assert_eq!(instance_name(b"gateway_2.eu"), Some("gateway_2.eu"));
        assert_eq!(instance_name(b""), None);
        assert_eq!(instance_name(&[b'a'; MAX_INSTANCE_NAME_BYTES + 1]), None);
        assert_eq!(instance_name(b"gw\nforged"), None);
        assert_eq!(instance_name("gw-é".as_bytes()), None);
    }
}
