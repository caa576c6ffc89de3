//! Publishing numbered load events to Redis exactly as the workers do, at a steady rate or as
//! one burst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rakuda_schema::{Action, Channel, EventType, RealTimeEvent, CHANNELS};
use redis::aio::MultiplexedConnection;
use serde_json::{Map, Value};

use crate::marker::now_us;

/// Commands per pipeline: big enough to amortise round trips, small enough that a paced run's
/// timestamps stay honest.
const PIPELINE: usize = 500;
/// A paced publisher wakes this often and sends what is due.
const TICK: Duration = Duration::from_millis(2);
/// How long one pipeline may wait for Redis. The client's default (500 ms) failed a 50,000
/// event burst while the load generator's own core was saturated by its subscribers.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection for publishing load, with a response timeout sized for saturated runs.
pub async fn connect(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
    redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct LoadEvents {
    /// Event types, used round-robin by `lg_n`.
    pub types: Vec<EventType>,
    /// Bytes of padding in `payload.data`, to reach a realistic size (workers send 200–600 B).
    pub pad_bytes: usize,
    /// Distinct `payload.id`s, round-robin; `None` gives every event its own id.
    pub distinct_ids: Option<u64>,
    /// Redis channel prefix (`rakuda:realtime:`).
    pub prefix: String,
}

impl Default for LoadEvents {
    fn default() -> LoadEvents {
        LoadEvents {
            types: vec![EventType::OrderReceived],
            pad_bytes: 200,
            distinct_ids: None,
            prefix: rakuda_schema::channel::DEFAULT_REDIS_CHANNEL_PREFIX.to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("no event types to publish: give `LoadEvents::types` at least one")]
    NoEventTypes,
    #[error("no client channel carries event type {0:?}")]
    NoChannel(EventType),
    #[error("cannot publish to Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// How a run went.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub events: u64,
    pub elapsed: Duration,
    /// Redis subscribers that received the first event (the bridges listening).
    pub receivers: i64,
}

impl LoadEvents {
    fn channel(&self, event_type: EventType) -> Result<&'static Channel, PublishError> {
        CHANNELS
            .iter()
            .find(|channel| channel.event_type == event_type && !channel.internal)
            .ok_or(PublishError::NoChannel(event_type))
    }

    /// Event number `n` as (Redis channel, JSON), stamped with the current time.
    pub fn event(&self, n: u64) -> Result<(String, String), PublishError> {
        let index = (n % self.types.len().max(1) as u64) as usize;
        let event_type = *self.types.get(index).ok_or(PublishError::NoEventTypes)?;
        let channel = self.channel(event_type)?;
        let id = match self.distinct_ids {
            Some(ids) => format!("lg_{}", n % ids.max(1)),
            None => format!("lg_{n}"),
        };
        let mut data = Map::new();
        data.insert("lg_n".into(), Value::from(n));
        data.insert("lg_sent_us".into(), Value::from(now_us()));
        if self.pad_bytes > 0 {
            data.insert("pad".into(), Value::from("x".repeat(self.pad_bytes)));
        }
        let action = if event_type == EventType::OrderReceived {
            Action::Created
        } else {
            Action::Updated
        };
        let event = RealTimeEvent::now(event_type, id, action).with_data(data);
        // Serializing our own well-formed types cannot fail.
        let json = serde_json::to_string(&event).unwrap_or_default();
        Ok((channel.redis_channel(&self.prefix), json))
    }

    /// Publishes events `first..first + count` pipelined, as fast as Redis takes them.
    pub async fn burst(
        &self,
        redis: &mut MultiplexedConnection,
        first: u64,
        count: u64,
    ) -> Result<Published, PublishError> {
        let started = Instant::now();
        let mut receivers = None;
        let mut n = first;
        while n < first + count {
            let end = (n + PIPELINE as u64).min(first + count);
            let got = self.send(redis, n..end).await?;
            receivers.get_or_insert(got);
            n = end;
        }
        Ok(Published {
            events: count,
            elapsed: started.elapsed(),
            receivers: receivers.unwrap_or(0),
        })
    }

    /// Publishes events `first..first + count` at `per_second`, each stamped when sent.
    pub async fn paced(
        &self,
        redis: &mut MultiplexedConnection,
        first: u64,
        count: u64,
        per_second: f64,
    ) -> Result<Published, PublishError> {
        self.paced_counting(redis, first, count, per_second, &AtomicU64::new(0))
            .await
    }

    /// As [`LoadEvents::paced`], adding to `published` the events Redis has taken as each
    /// pipeline is answered: a test can act at a point of the run (while events flow, after so
    /// many more) instead of at a guessed time.
    pub async fn paced_counting(
        &self,
        redis: &mut MultiplexedConnection,
        first: u64,
        count: u64,
        per_second: f64,
        published: &AtomicU64,
    ) -> Result<Published, PublishError> {
        let started = Instant::now();
        let mut sent = 0u64;
        let mut receivers = None;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while sent < count {
            tick.tick().await;
            let due = ((started.elapsed().as_secs_f64() * per_second) as u64 + 1).min(count);
            while sent < due {
                let end = due.min(sent + PIPELINE as u64);
                let got = self.send(redis, first + sent..first + end).await?;
                receivers.get_or_insert(got);
                published.fetch_add(end - sent, Ordering::Relaxed);
                sent = end;
            }
        }
        Ok(Published {
            events: count,
            elapsed: started.elapsed(),
            receivers: receivers.unwrap_or(0),
        })
    }

    /// One pipeline of PUBLISH commands; the receivers of the first.
    async fn send(
        &self,
        redis: &mut MultiplexedConnection,
        range: std::ops::Range<u64>,
    ) -> Result<i64, PublishError> {
        let mut pipe = redis::pipe();
        for n in range {
            let (channel, json) = self.event(n)?;
            pipe.cmd("PUBLISH").arg(channel).arg(json);
        }
        let receivers: Vec<i64> = pipe.query_async(redis).await?;
        Ok(receivers.first().copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_events_pass_the_bridge_validator_and_carry_their_markers() {
        let events = LoadEvents {
            types: EventType::CLIENT.to_vec(),
            pad_bytes: 300,
            distinct_ids: Some(10),
            ..LoadEvents::default()
        };
        for n in 0..8 {
            let (channel, json) = events.event(n).expect("event");
            let name = channel.trim_start_matches(&events.prefix);
            assert!(
                rakuda_schema::validate(name, json.as_bytes()).is_ok(),
                "{json}"
            );
            let value: Value = serde_json::from_str(&json).expect("json");
            assert_eq!(value["payload"]["data"]["lg_n"], n);
            assert!(value["payload"]["data"]["lg_sent_us"].as_u64() > Some(0));
        }
    }

    #[test]
    fn no_event_types_is_an_error_not_a_panic() {
        let events = LoadEvents {
            types: Vec::new(),
            ..LoadEvents::default()
        };
        assert!(matches!(events.event(0), Err(PublishError::NoEventTypes)));
    }
}
