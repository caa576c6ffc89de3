//! Shared helpers for the bridge's integration tests: real Redis, real NATS, the bridge
//! running in-process on ephemeral ports, and bounded waits everywhere.

#![allow(dead_code, unused_imports)]

use async_nats::jetstream::{self, consumer::pull, message::StreamMessage};
use futures::StreamExt;
use rakuda_bridge::Config;
use rakuda_schema::{Action, EventType, RealTimeEvent};
use rakuda_testkit::{NatsServer, RedisServer};

pub use rakuda_testkit::redis_client::{publish, wait_for_subscribers};
pub use rakuda_testkit::wait::{bounded, eventually, sample_value};

pub struct Backbone {
    pub redis: RedisServer,
    pub nats: NatsServer,
}

impl Backbone {
    pub fn start() -> Backbone {
        Backbone {
            redis: RedisServer::start().expect("start redis-server"),
            nats: NatsServer::start().expect("start nats-server"),
        }
    }

    pub fn config(&self) -> Config {
        Config::new(
            self.redis.url(),
            vec![self.nats.url().parse().expect("nats url")],
        )
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        rakuda_testkit::redis_client::connect(&self.redis.url()).await
    }

    pub async fn jetstream(&self) -> jetstream::Context {
        let client = bounded("nats connect", async_nats::connect(self.nats.url()))
            .await
            .expect("connect to nats");
        jetstream::new(client)
    }
}

/// A bridge running in this process; `url` serves its `/metrics`.
pub type RunningBridge = rakuda_testkit::InProcess<rakuda_bridge::Error>;

pub async fn start_bridge(config: Config) -> RunningBridge {
    RunningBridge::start(|listener, shutdown| rakuda_bridge::run(config, listener, shutdown)).await
}

/// Waits until the stream exists and holds `n` messages, not counting the bridges' own
/// control messages (source gap markers) in the event stream.
pub async fn wait_for_stream_len(jetstream: &jetstream::Context, stream: &str, n: u64) {
    eventually(&format!("{n} messages in {stream}"), || async {
        let info = jetstream
            .get_stream(stream)
            .await
            .ok()?
            .get_info()
            .await
            .ok()?;
        if info.state.messages < n {
            return None;
        }
        let events = read_stream(jetstream, stream).await;
        (events.len() as u64 == n).then_some(())
    })
    .await
}

/// Is this one of the bridges' control messages (a source gap marker)?
pub fn is_control(message: &StreamMessage) -> bool {
    message
        .subject
        .as_str()
        .starts_with("rakuda.realtime.control.")
}

/// Every message of a stream but the control messages, in stream order.
pub async fn read_stream(jetstream: &jetstream::Context, stream: &str) -> Vec<StreamMessage> {
    read_whole_stream(jetstream, stream)
        .await
        .into_iter()
        .filter(|message| !is_control(message))
        .collect()
}

/// Every message of a stream, control messages included, in stream order.
pub async fn read_whole_stream(jetstream: &jetstream::Context, stream: &str) -> Vec<StreamMessage> {
    let stream = bounded("get stream", jetstream.get_stream(stream))
        .await
        .expect("stream exists");
    let info = stream.get_info().await.expect("stream info");
    let total = info.state.messages as usize;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::with_capacity(total);
    bounded("reading the stream", async {
        while out.len() < total {
            let message = messages
                .next()
                .await
                .expect("stream open")
                .expect("message");
            let meta = message.info().expect("jetstream metadata");
            out.push(StreamMessage {
                subject: message.subject.clone(),
                sequence: meta.stream_sequence,
                headers: message.headers.clone().unwrap_or_default(),
                payload: message.payload.clone(),
                time: meta.published,
            });
        }
    })
    .await;
    out
}

/// A valid event's JSON for a type, with a unique id.
pub fn event_json(event_type: EventType, id: &str) -> String {
    serde_json::to_string(&RealTimeEvent::now(event_type, id, Action::Updated)).expect("serialize")
}

pub fn redis_channel(event_type: EventType) -> String {
    rakuda_schema::Channel::of(event_type).redis_channel("rakuda:realtime:")
}
