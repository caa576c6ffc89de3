//! The registry of every bridge's spans, kept in Redis next to the beacon counter, and the
//! scripts that read and change it atomically (see `refresh.lua` for the rules).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Script;
use serde::Deserialize;

use super::spans::Record;

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the registry script answered something unexpected: {0}")]
    Answer(String),
}

/// What a refresh decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The registry's chain; another than the caller's means its records were not taken.
    pub chain: String,
    /// Ended spans nobody covered, now claimed by the caller: it writes their gap marker.
    pub gaps: Vec<String>,
    /// The caller's new span is the first the registry knows of.
    pub start: bool,
    /// The registry was begun anew for another Redis process (see `beacon.lua`), and the
    /// caller is the first to read beacons since: it writes the marker.
    pub restarted: bool,
    /// The caller's spans the registry had already declared ended.
    pub revoked: Vec<String>,
}

/// `cjson` writes an empty Lua table as `{}`: an empty list either way.
#[derive(Deserialize)]
#[serde(untagged)]
enum List {
    Items(Vec<String>),
    Empty(serde::de::IgnoredAny),
}

impl From<List> for Vec<String> {
    fn from(list: List) -> Vec<String> {
        match list {
            List::Items(items) => items,
            List::Empty(_) => Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    chain: String,
    gaps: List,
    start: bool,
    restarted: bool,
    revoked: List,
}

pub struct Registry {
    key: String,
    channel: String,
    beacon: Script,
    refresh: Script,
    confirm: Script,
}

impl Registry {
    /// The registry of the bridges subscribed to `<prefix>*`.
    pub fn new(prefix: &str) -> Registry {
        Registry {
            key: format!("{prefix}bridges"),
            channel: format!("{prefix}{}", rakuda_schema::channel::BEACON_CHANNEL),
            beacon: Script::new(include_str!("beacon.lua")),
            refresh: Script::new(include_str!("refresh.lua")),
            confirm: Script::new(include_str!("confirm.lua")),
        }
    }

    /// The Redis key it lives in.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The Redis channel beacons are published on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Publishes the next beacon; its chain and number.
    pub async fn beacon(
        &self,
        redis: &mut MultiplexedConnection,
    ) -> Result<(String, u64), RegistryError> {
        let chain = format!("{:016x}", rand::random::<u64>());
        Ok(self
            .beacon
            .key(&self.key)
            .arg(&self.channel)
            .arg(chain)
            .invoke_async(redis)
            .await?)
    }

    /// Records `records` (numbers of `chain`) for `caller` and decides what ended spans mean.
    pub async fn refresh(
        &self,
        redis: &mut MultiplexedConnection,
        stale_after: Duration,
        chain: &str,
        records: &[Record],
        caller: &str,
    ) -> Result<Outcome, RegistryError> {
        let records = serde_json::to_string(records)
            .map_err(|error| RegistryError::Answer(error.to_string()))?;
        let answer: String = self
            .refresh
            .key(&self.key)
            .arg(stale_after.as_millis() as u64)
            .arg(chain)
            .arg(records)
            .arg(caller)
            .invoke_async(redis)
            .await?;
        let answer: Answer = serde_json::from_str(&answer)
            .map_err(|error| RegistryError::Answer(format!("{error}: {answer}")))?;
        Ok(Outcome {
            chain: answer.chain,
            gaps: answer.gaps.into(),
            start: answer.start,
            restarted: answer.restarted,
            revoked: answer.revoked.into(),
        })
    }

    /// The gap marker for `spans` is in the stream.
    pub async fn confirm(
        &self,
        redis: &mut MultiplexedConnection,
        spans: &[String],
    ) -> Result<(), RegistryError> {
        let mut invocation = self.confirm.key(&self.key);
        for span in spans {
            invocation.arg(span);
        }
        let _: i64 = invocation.invoke_async(redis).await?;
        Ok(())
    }
}
