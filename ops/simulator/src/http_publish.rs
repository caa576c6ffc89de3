//! Publishing through the bridge's `POST /api/realtime/publish` (`rakuda-sim publish --http`),
//! and a comparison of that path with the Redis path (`rakuda-sim publish-bench`): N events
//! each way, on the same host in the same run, each timed from its send until the producer
//! knows it is stored: the HTTP answer (sent after JetStream's ack) for HTTP; for Redis, until a
//! JetStream consumer of the stream receives it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rakuda_schema::{Action, EventType, RealTimeEvent};

/// Why publishing over HTTP (or the comparison) failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpPublishError {
    #[error("cannot reach {url}: {error}")]
    Request { url: String, error: String },
    #[error("the bridge refused the event ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error("cannot read the stream from NATS: {0}")]
    Nats(String),
    #[error("cannot publish to redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// POSTs one event's JSON with the publish key: the answer's body on a 200.
pub async fn publish(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    json: String,
    idempotency_key: Option<&str>,
) -> Result<String, HttpPublishError> {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(json);
    if let Some(idempotency_key) = idempotency_key {
        request = request.header("idempotency-key", idempotency_key);
    }
    let response = request
        .send()
        .await
        .map_err(|error| HttpPublishError::Request {
            url: url.to_owned(),
            error: error.to_string(),
        })?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    if status == 200 {
        Ok(body)
    } else {
        Err(HttpPublishError::Refused { status, body })
    }
}

/// What one path did: events stored, their latencies, and the wall time for all of them.
#[derive(Debug)]
pub struct PathFigures {
    pub stored: usize,
    pub wall: Duration,
    pub latencies: Vec<Duration>,
}

impl PathFigures {
    pub fn per_second(&self) -> f64 {
        self.stored as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        self.latencies.sort();
        let Some(last) = self.latencies.len().checked_sub(1) else {
            return f64::NAN;
        };
        let index = ((last as f64) * q).round() as usize;
        self.latencies[index.min(last)].as_secs_f64() * 1000.0
    }
}

fn event(run: &str, path: &str, index: usize) -> String {
    let event = RealTimeEvent::now(
        EventType::InventoryChange,
        format!("bench-{run}-{path}-{index}"),
        Action::Updated,
    );
    // Serializing our own well-formed type cannot fail.
    serde_json::to_string(&event).unwrap_or_default()
}

/// `count` single-event POSTs, `concurrency` at a time.
pub async fn bench_http(
    url: &str,
    key: &str,
    count: usize,
    concurrency: usize,
    run: &str,
) -> Result<PathFigures, HttpPublishError> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let results: Vec<Result<Duration, HttpPublishError>> = futures::stream::iter(0..count)
        .map(|index| {
            let client = &client;
            async move {
                let sent = Instant::now();
                publish(client, url, key, event(run, "http", index), None)
                    .await
                    .map(|_| sent.elapsed())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let wall = started.elapsed();
    let mut latencies = Vec::with_capacity(count);
    for result in results {
        latencies.push(result?);
    }
    Ok(PathFigures {
        stored: latencies.len(),
        wall,
        latencies,
    })
}

/// `count` events PUBLISHed on Redis (`concurrency` commands in flight), each timed until a
/// JetStream consumer of `stream` receives it; gives up `deadline` after the last publish.
pub async fn bench_redis(
    redis_url: &str,
    prefix: &str,
    nats_url: &str,
    stream: &str,
    count: usize,
    concurrency: usize,
    run: &str,
) -> Result<PathFigures, HttpPublishError> {
    let nats = async_nats::connect(nats_url)
        .await
        .map_err(|error| HttpPublishError::Nats(error.to_string()))?;
    let jetstream = async_nats::jetstream::new(nats);
    let consumer = jetstream
        .get_stream(stream)
        .await
        .map_err(|error| HttpPublishError::Nats(error.to_string()))?
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
            filter_subject: "rakuda.realtime.inventory.>".into(),
            ..Default::default()
        })
        .await
        .map_err(|error| HttpPublishError::Nats(error.to_string()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|error| HttpPublishError::Nats(error.to_string()))?;
    let wanted = format!("bench-{run}-redis-");
    let reader = tokio::spawn(async move {
        let mut seen: HashMap<usize, Instant> = HashMap::with_capacity(count);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while seen.len() < count {
            let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, messages.next()).await
            else {
                break;
            };
            let at = Instant::now();
            let value: serde_json::Value =
                serde_json::from_slice(&message.payload).unwrap_or_default();
            let index = value["payload"]["id"]
                .as_str()
                .and_then(|id| id.strip_prefix(wanted.as_str()))
                .and_then(|index| index.parse().ok());
            if let Some(index) = index {
                seen.insert(index, at);
            }
        }
        seen
    });

    let redis = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    let channel = rakuda_schema::Channel::of(EventType::InventoryChange).redis_channel(prefix);
    let started = Instant::now();
    let sent: Vec<Result<(usize, Instant), redis::RedisError>> = futures::stream::iter(0..count)
        .map(|index| {
            let mut redis = redis.clone();
            let channel = &channel;
            async move {
                let at = Instant::now();
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(event(run, "redis", index))
                    .query_async::<i64>(&mut redis)
                    .await
                    .map(|_| (index, at))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let seen = reader
        .await
        .map_err(|error| HttpPublishError::Nats(error.to_string()))?;
    let mut sent_at = HashMap::with_capacity(count);
    for result in sent {
        let (index, at) = result?;
        sent_at.insert(index, at);
    }
    let wall = seen
        .values()
        .max()
        .map_or(Duration::ZERO, |last| last.duration_since(started));
    let latencies: Vec<Duration> = seen
        .iter()
        .filter_map(|(index, at)| sent_at.get(index).map(|sent| at.duration_since(*sent)))
        .collect();
    Ok(PathFigures {
        stored: latencies.len(),
        wall,
        latencies,
    })
}
