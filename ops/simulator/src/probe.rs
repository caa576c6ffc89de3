//! Measures publish-to-receive latency through the whole stack: Redis → bridge → NATS →
//! gateway → SSE client. Publishes probe orders one at a time, each carrying a nonce, and times
//! how long each takes to come back on the gateway's event stream. Run it against a gateway
//! with `SSE_DEBOUNCE_WINDOW=0`, or bursts would be folded into batches.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rakuda_schema::{Action, Channel, EventType, RealTimeEvent};
use serde_json::{json, Value};

use crate::sse::SseParser;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot publish to redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("gateway request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the gateway answered {status}: {body}")]
    Gateway { status: u16, body: String },
    #[error("the gateway closed the stream")]
    StreamClosed,
}

/// What a probe run measured, in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    pub samples: Vec<u64>,
    pub lost: usize,
    pub batched: usize,
}

impl Latencies {
    /// The value below which `fraction` of the samples fall.
    pub fn quantile(&self, fraction: f64) -> Option<u64> {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
        sorted.get(index).copied()
    }
}

pub struct Probe<'a> {
    pub gateway: &'a str,
    pub api_key: &'a str,
    pub count: usize,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Probe<'_> {
    pub async fn run(
        &self,
        redis: &mut redis::aio::MultiplexedConnection,
        prefix: &str,
    ) -> Result<Latencies, ProbeError> {
        let response = reqwest::Client::new()
            .get(format!(
                "{}/api/realtime/events?channels=orders",
                self.gateway
            ))
            .header("X-API-Key", self.api_key)
            .send()
            .await?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            return Err(ProbeError::Gateway {
                status,
                body: response.text().await.unwrap_or_default(),
            });
        }
        let mut body = response.bytes_stream();
        let mut parser = SseParser::new();
        let mut pending: HashMap<String, Instant> = HashMap::new();
        let mut latencies = Latencies {
            samples: Vec::new(),
            lost: 0,
            batched: 0,
        };
        let channel = Channel::of(EventType::OrderReceived).redis_channel(prefix);
        let run = format!("{:08x}", rand::random::<u32>());

        for n in 0..self.count {
            let nonce = format!("probe-{run}-{n}");
            let event = RealTimeEvent::now(EventType::OrderReceived, &nonce, Action::Created)
                .with_data(match json!({ "probe": true }) {
                    Value::Object(map) => map,
                    _ => Default::default(),
                });
            let payload = serde_json::to_string(&event).unwrap_or_default();
            let sent = Instant::now();
            let _: i64 = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(payload)
                .query_async(redis)
                .await?;
            pending.insert(nonce.clone(), sent);

            // Read until this probe is back (or time out), then pause before the next one.
            let deadline = tokio::time::Instant::now() + self.timeout;
            while pending.contains_key(&nonce) {
                let chunk = match tokio::time::timeout_at(deadline, body.next()).await {
                    Ok(Some(chunk)) => chunk?,
                    Ok(None) => return Err(ProbeError::StreamClosed),
                    Err(_) => break,
                };
                parser.push(&chunk);
                while let Some(record) = parser.next_record() {
                    let Ok(data) = serde_json::from_str::<Value>(&record.data) else {
                        continue;
                    };
                    let ids: Vec<String> = match data.get("events").and_then(Value::as_array) {
                        Some(events) => {
                            latencies.batched += 1;
                            events
                                .iter()
                                .filter_map(|e| e["payload"]["id"].as_str().map(String::from))
                                .collect()
                        }
                        None => data["payload"]["id"]
                            .as_str()
                            .map(String::from)
                            .into_iter()
                            .collect(),
                    };
                    for id in ids {
                        if let Some(sent) = pending.remove(&id) {
                            latencies.samples.push(sent.elapsed().as_micros() as u64);
                        }
                    }
                }
            }
            tokio::time::sleep(self.interval).await;
        }
        latencies.lost = pending.len();
        Ok(latencies)
    }
}
