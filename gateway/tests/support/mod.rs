//! Shared helpers for the gateway's integration tests: real Redis and NATS, the bridge and
//! gateways running in-process on ephemeral ports, and an SSE client that reads the wire.

#![allow(dead_code, unused_imports)]

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use rakuda_gateway::Config;
use rakuda_schema::{Action, Channel, EventType, RealTimeEvent};
use rakuda_testkit::{NatsServer, RedisServer};
use serde_json::Value;

pub use rakuda_testkit::redis_client::{publish, publish_all, wait_for_subscribers};
pub use rakuda_testkit::wait::{bounded, eventually, sample_value, WAIT};

pub const API_KEY: &str = "test-api-key-0001";

/// Redis, NATS and a bridge between them.
pub struct Stack {
    pub redis: RedisServer,
    pub nats: NatsServer,
    bridge: Option<rakuda_testkit::InProcess<rakuda_bridge::Error>>,
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with(|_| {}).await
    }

    /// Starts with the bridge settings changed by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut rakuda_bridge::Config)) -> Stack {
        let redis = RedisServer::start().expect("start redis-server");
        let nats = NatsServer::start().expect("start nats-server");
        let mut config =
            rakuda_bridge::Config::new(redis.url(), vec![nats.url().parse().expect("nats url")]);
        adjust(&mut config);
        let bridge = rakuda_testkit::InProcess::start(|listener, shutdown| {
            rakuda_bridge::run(config, listener, shutdown)
        })
        .await;
        let stack = Stack {
            redis,
            nats,
            bridge: Some(bridge),
        };
        let mut redis = stack.redis_connection().await;
        wait_for_subscribers(&mut redis, 1).await;
        let jetstream = stack.jetstream().await;
        eventually("the bridge created the stream", || async {
            jetstream
                .get_stream("RAKUDA_REALTIME")
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        stack
    }

    pub async fn redis_connection(&self) -> redis::aio::MultiplexedConnection {
        rakuda_testkit::redis_client::connect(&self.redis.url()).await
    }

    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = bounded("nats connect", async_nats::connect(self.nats.url()))
            .await
            .expect("connect to nats");
        async_nats::jetstream::new(client)
    }

    /// Gateway settings for this stack: test key, defaults otherwise.
    pub fn gateway_config(&self) -> Config {
        Config::new(
            vec![self.nats.url().parse().expect("nats url")],
            vec![API_KEY.into()],
        )
    }

    /// Stops the bridge (events published afterwards go nowhere).
    pub async fn stop_bridge(&mut self) {
        if let Some(bridge) = self.bridge.take() {
            bridge.stop().await;
        }
    }
}

/// A valid event's JSON.
pub fn event_json(event_type: EventType, id: &str) -> String {
    serde_json::to_string(&RealTimeEvent::now(event_type, id, Action::Updated)).expect("serialize")
}

pub fn redis_channel(event_type: EventType) -> String {
    Channel::of(event_type).redis_channel("rakuda:realtime:")
}

/// `count` events of one type with ids from `ids` (cycled), ready for [`publish_all`]. Each
/// carries `data.n` so no two are byte-identical (the bridge rightly stores identical bytes once).
pub fn burst(event_type: EventType, count: usize, ids: usize, tag: &str) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            let mut data = serde_json::Map::new();
            data.insert("n".into(), Value::from(i));
            let event =
                RealTimeEvent::now(event_type, format!("{tag}_{}", i % ids), Action::Updated)
                    .with_data(data);
            (
                redis_channel(event_type),
                serde_json::to_string(&event).expect("serialize"),
            )
        })
        .collect()
}

/// A gateway running in this process.
pub type RunningGateway = rakuda_testkit::InProcess<rakuda_gateway::Error>;

/// Starts a gateway and waits until it reads the stream (`/readyz` 200).
pub async fn start_gateway(config: Config) -> RunningGateway {
    let gateway =
        RunningGateway::start(|listener, shutdown| rakuda_gateway::run(config, listener, shutdown))
            .await;
    gateway.wait_until_ok("/readyz").await;
    gateway
}

/// GET an API path with the test key; returns status and JSON body.
pub async fn get_json(gateway: &RunningGateway, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", gateway.url))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// One SSE record as read off the wire.
pub use rakuda_simulator::sse::SseRecord as SseEvent;

/// What the tests read out of a record.
pub trait RecordExt {
    fn json(&self) -> Value;
    /// The sequence part of `id: <epoch>-<seq>`.
    fn id_seq(&self) -> Option<u64>;
    /// Every `seq` inside (one for an event, several for a batch).
    fn seqs(&self) -> Vec<u64>;
    fn is_batch(&self) -> bool;
}

impl RecordExt for SseEvent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("data is JSON")
    }

    fn id_seq(&self) -> Option<u64> {
        self.id.as_ref()?.split_once('-')?.1.parse().ok()
    }

    fn seqs(&self) -> Vec<u64> {
        let json = self.json();
        match json.get("events").and_then(Value::as_array) {
            Some(events) => events.iter().filter_map(|e| e["seq"].as_u64()).collect(),
            None => json["seq"].as_u64().into_iter().collect(),
        }
    }

    fn is_batch(&self) -> bool {
        self.json().get("batch") == Some(&Value::Bool(true))
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Reads an SSE response record by record.
pub struct SseClient {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    body: ByteStream,
    parser: rakuda_simulator::sse::SseParser,
}

impl SseClient {
    /// `GET url` with the test API key.
    pub async fn connect(url: &str) -> SseClient {
        SseClient::connect_with(url, &[("X-API-Key", API_KEY)]).await
    }

    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> SseClient {
        let mut request = reqwest::Client::new().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = bounded("SSE connect", request.send())
            .await
            .expect("GET events");
        SseClient {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: Box::pin(response.bytes_stream()),
            parser: rakuda_simulator::sse::SseParser::new(),
        }
    }

    /// The next record, `None` when the server closed the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        bounded("the next SSE record", async {
            loop {
                if let Some(record) = self.parser.next_record() {
                    return Some(record);
                }
                match self.body.next().await {
                    Some(Ok(chunk)) => self.parser.push(&chunk),
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
    }

    /// The next record that is neither a heartbeat nor a bare `retry:`.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let record = self.next().await?;
            if record.event.as_deref() == Some("heartbeat") || record.event.is_none() {
                continue;
            }
            return Some(record);
        }
    }

    /// Event records until every sequence in `expected` was seen (in any frame).
    pub async fn events_covering(&mut self, expected: &[u64]) -> Vec<SseEvent> {
        let mut missing: std::collections::BTreeSet<u64> = expected.iter().copied().collect();
        let mut out = Vec::new();
        while !missing.is_empty() {
            let Some(record) = self.next_event().await else {
                panic!(
                    "stream closed with {} sequences missing: {missing:?}",
                    missing.len()
                )
            };
            if record.event.as_deref() != Some("reset") {
                for seq in record.seqs() {
                    missing.remove(&seq);
                }
            }
            out.push(record);
        }
        out
    }
}

/// The stream sequences of everything in the stream now, by reading its state.
pub async fn stream_last_seq(jetstream: &async_nats::jetstream::Context) -> u64 {
    let stream = jetstream
        .get_stream("RAKUDA_REALTIME")
        .await
        .expect("stream");
    stream.cached_info().state.last_sequence
}

/// Waits until the stream's last sequence reaches `seq`.
pub async fn wait_for_stream_seq(jetstream: &async_nats::jetstream::Context, seq: u64) {
    eventually(&format!("stream at sequence {seq}"), || async {
        let stream = jetstream.get_stream("RAKUDA_REALTIME").await.ok()?;
        (stream.cached_info().state.last_sequence >= seq).then_some(())
    })
    .await
}

pub fn sleep(ms: u64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(ms))
}
