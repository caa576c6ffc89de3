//! Cluster-wide stats over NATS request/reply.
//!
//! Every gateway announces itself on `rakuda.gateway.presence` each second and answers requests
//! on `rakuda.gateway.stats` with its `/stats`. `GET /api/realtime/stats?scope=cluster` on any
//! instance asks them all, waits at most `CLUSTER_STATS_TIMEOUT`, and names the instances it
//! knows to be alive (announced within the last few seconds) that did not answer in time.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::app::App;

pub const PRESENCE_SUBJECT: &str = "rakuda.gateway.presence";
pub const STATS_SUBJECT: &str = "rakuda.gateway.stats";
const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);
/// An instance not heard from for this long is no longer expected to answer.
const PRESENCE_TTL: Duration = Duration::from_secs(5);

/// The instances heard from recently.
#[derive(Default)]
pub struct Cluster {
    peers: Mutex<HashMap<String, Instant>>,
}

impl Cluster {
    fn heard(&self, instance: String) {
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        peers.insert(instance, now);
        peers.retain(|_, seen| now.duration_since(*seen) < PRESENCE_TTL * 4);
    }

    /// Instances announced within [`PRESENCE_TTL`].
    pub fn alive(&self) -> BTreeSet<String> {
        let peers = self
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        peers
            .iter()
            .filter(|(_, seen)| seen.elapsed() < PRESENCE_TTL)
            .map(|(instance, _)| instance.clone())
            .collect()
    }
}

/// Announces this instance, tracks the others, and answers stats requests, until `stop`.
pub async fn run(app: Arc<App>, stop: CancellationToken) {
    let nats = app.nats.clone();
    let (mut presence, mut requests) = loop {
        match (
            nats.subscribe(PRESENCE_SUBJECT).await,
            nats.subscribe(STATS_SUBJECT).await,
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
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = announce.tick() => {
                let _ = nats.publish(PRESENCE_SUBJECT, Bytes::from(app.instance.clone())).await;
            }
            Some(message) = presence.next() => {
                if let Ok(instance) = std::str::from_utf8(&message.payload) {
                    app.cluster.heard(instance.to_owned());
                }
            }
            Some(request) = requests.next() => {
                if let Some(reply) = request.reply {
                    let body = serde_json::to_vec(&crate::stats::stats(&app)).unwrap_or_default();
                    let _ = nats.publish(reply, body.into()).await;
                }
            }
        }
    }
}

/// Every live instance's stats, their totals, and who did not answer in time.
pub async fn gather(app: &App) -> Value {
    let timeout = app.config.cluster_stats_timeout;
    let mut expected = app.cluster.alive();
    expected.insert(app.instance.clone());
    let mut rows: Vec<Value> = Vec::new();
    let inbox = app.nats.new_inbox();
    let gathered = async {
        let mut replies = app.nats.subscribe(inbox.clone()).await.ok()?;
        app.nats
            .publish_with_reply(STATS_SUBJECT, inbox.clone(), Bytes::new())
            .await
            .ok()?;
        let mut answered = BTreeSet::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while !expected.is_subset(&answered) {
            let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await else {
                break;
            };
            let Ok(row) = serde_json::from_slice::<Value>(&message.payload) else {
                continue;
            };
            if let Some(instance) = row["instance"].as_str() {
                if answered.insert(instance.to_owned()) {
                    rows.push(row);
                }
            }
        }
        Some(answered)
    }
    .await;
    let answered = gathered.unwrap_or_default();
    rows.sort_by(|a, b| a["instance"].as_str().cmp(&b["instance"].as_str()));
    let missing: Vec<&String> = expected.difference(&answered).collect();
    let mut totals = Value::Object(Map::new());
    for row in &rows {
        add_into(&mut totals, row);
    }
    if let Value::Object(map) = &mut totals {
        map.remove("instance");
    }
    json!({
        "scope": "cluster",
        "instances": rows,
        "totals": totals,
        "missing": missing,
        "timeoutMs": timeout.as_millis() as u64,
    })
}

/// Adds every number in `from` into `into`, recursively, creating what is absent.
fn add_into(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                let slot = into.entry(key.clone()).or_insert_with(|| match value {
                    Value::Object(_) => Value::Object(Map::new()),
                    Value::Number(_) => json!(0),
                    other => other.clone(),
                });
                add_into(slot, value);
            }
        }
        (slot @ Value::Number(_), Value::Number(add)) => {
            let sum = slot.as_u64().zip(add.as_u64()).map(|(a, b)| json!(a + b));
            *slot = sum.unwrap_or_else(|| {
                json!(slot.as_f64().unwrap_or(0.0) + add.as_f64().unwrap_or(0.0))
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_every_number() {
        let mut totals = Value::Object(Map::new());
        add_into(
            &mut totals,
            &json!({"instance": "a", "x": 1, "nested": {"y": 2}}),
        );
        add_into(
            &mut totals,
            &json!({"instance": "b", "x": 3, "nested": {"y": 4, "z": 1}}),
        );
        assert_eq!(totals["x"], 4);
        assert_eq!(totals["nested"], json!({"y": 6, "z": 1}));
    }
}
