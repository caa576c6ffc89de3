//! `rakuda-loadgen publish`: publish numbered load events to a running Redis, at a rate or as
//! one burst, and print one JSON line of how it went.

use rakuda_schema::{Channel, EventType};

use crate::loopback::{ensure_loopback, NotLoopback};
use crate::publish::{connect, LoadEvents, PublishError};

#[derive(Debug, thiserror::Error)]
pub enum PublishCommandError {
    #[error(transparent)]
    NotLoopback(#[from] NotLoopback),
    #[error("unknown channel `{0}`: use orders, inventory, pricing or listings")]
    UnknownChannel(String),
    #[error("cannot connect to Redis at {url} (--redis-url): {source}")]
    Connect {
        url: String,
        source: redis::RedisError,
    },
    #[error("--rate must be above zero")]
    RateNotPositive,
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// The `publish` subcommand's flags.
#[derive(Debug, Clone)]
pub struct Publish {
    pub redis_url: String,
    pub count: u64,
    /// Events per second; `None`: all at once.
    pub rate: Option<f64>,
    /// Client channel names, used round-robin.
    pub channels: Vec<String>,
    pub pad: usize,
    pub ids: Option<u64>,
    pub first: u64,
}

impl Publish {
    /// Publishes the events and prints `{"events":…,"seconds":…,"receivers":…}` on stdout.
    pub async fn run(self) -> Result<(), PublishCommandError> {
        ensure_loopback(&self.redis_url, "--redis-url")?;
        let events = LoadEvents {
            types: event_types(&self.channels)?,
            pad_bytes: self.pad,
            distinct_ids: self.ids,
            ..LoadEvents::default()
        };
        let mut redis =
            connect(&self.redis_url)
                .await
                .map_err(|source| PublishCommandError::Connect {
                    url: self.redis_url.clone(),
                    source,
                })?;
        let published = match self.rate {
            Some(rate) if rate > 0.0 => {
                events
                    .paced(&mut redis, self.first, self.count, rate)
                    .await?
            }
            Some(_) => return Err(PublishCommandError::RateNotPositive),
            None => events.burst(&mut redis, self.first, self.count).await?,
        };
        println!(
            "{}",
            serde_json::json!({
                "events": published.events,
                "seconds": published.elapsed.as_secs_f64(),
                "receivers": published.receivers,
            })
        );
        if published.receivers == 0 {
            eprintln!(
                "rakuda-loadgen: nobody subscribed on Redis received the events: is a bridge \
                 running?"
            );
        }
        Ok(())
    }
}

/// The event type of each named client channel (internal channels such as `canary` are not
/// the workers' to publish on).
fn event_types(channels: &[String]) -> Result<Vec<EventType>, PublishCommandError> {
    channels
        .iter()
        .map(|name| {
            Channel::by_name(name)
                .filter(|channel| !channel.internal)
                .map(|channel| channel.event_type)
                .ok_or_else(|| PublishCommandError::UnknownChannel(name.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_channels_can_be_published_on() {
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let types = event_types(&names(&["orders", "inventory"])).expect("client channels");
        assert_eq!(
            types,
            vec![EventType::OrderReceived, EventType::InventoryChange]
        );
        for bad in ["canary", "nope"] {
            let error = event_types(&names(&["orders", bad])).expect_err(bad);
            assert_eq!(
                error.to_string(),
                format!("unknown channel `{bad}`: use orders, inventory, pricing or listings")
            );
        }
    }
}
