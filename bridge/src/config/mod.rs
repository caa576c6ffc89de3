//! Settings, from the environment (and `.env`) or the command line.
//!
//! Every setting has an environment variable of the same name as its value placeholder, so a
//! bad value stops start-up with a message that names the variable, e.g.
//! `invalid value 'abc' for '--stream-max-messages <STREAM_MAX_MESSAGES>'`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::ServerAddr;
use clap::Parser;
use rakuda_service::nats::NatsAuth;
use rakuda_service::settings::{self, PlaceholderSecret, Secret};

use crate::publish_api::settings::{PublishKeyError, PublishSettings};
use crate::publish_api::ApiSettings;
use crate::publisher::PublisherSettings;
use crate::streams::StreamSettings;

pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_STREAM_NAME: &str = "RAKUDA_REALTIME";
pub const DEFAULT_DLQ_STREAM_NAME: &str = "RAKUDA_DLQ";
pub const DEFAULT_STREAM_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
pub const DEFAULT_STREAM_MAX_MESSAGES: u64 = 1_000_000;
pub const DEFAULT_STREAM_REPLICAS: usize = 1;
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9101";
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_REDIS_KEEPALIVE: Duration = Duration::from_secs(5);
pub const DEFAULT_BEACON_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
pub const DEFAULT_LATEST_MAX_ENTITIES: u64 = 1_000_000;
/// Room in a stored message for the headers the bridge adds (`Nats-Msg-Id` on events; reason,
/// message, source channel and size on the DLQ): JetStream's `max_message_size` and NATS's
/// `max_payload` count headers too, so the stream allows `EVENT_MAX_BYTES` plus this.
pub const HEADER_ROOM_BYTES: usize = 2048;
/// NATS's default `max_payload`: no message, headers included, may be larger.
pub const NATS_MAX_PAYLOAD: usize = 1_048_576;

/// The bridge's settings. Tests build it with [`Config::new`] and never touch the process
/// environment.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rakuda-bridge",
    version,
    about = "Mirrors Redis rakuda:realtime:* into NATS JetStream"
)]
pub struct Config {
    /// Redis server whose pub/sub channels are mirrored. An ACL user and password go in the
    /// URL (`redis://user:password@host:port`); `rediss://` for TLS. Checked at start-up, and
    /// never repeated in a message, since it may hold a password.
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, value_parser = Secret::parse, hide_env_values = true)]
    pub redis_url: Secret,

    /// PEM file of the CA that signed Redis's certificate, for `rediss://` with a private CA.
    #[arg(long, env = "REDIS_TLS_CA")]
    pub redis_tls_ca: Option<PathBuf>,

    /// NATS servers, comma separated (several for a cluster).
    #[arg(long, env = "NATS_URL", default_value = DEFAULT_NATS_URL, value_delimiter = ',', value_parser = settings::nats_url)]
    pub nats_url: Vec<ServerAddr>,

    /// Prefix of the Redis channels; the bridge PSUBSCRIBEs `<prefix>*`.
    #[arg(long, env = "REDIS_CHANNEL_PREFIX", default_value = rakuda_schema::channel::DEFAULT_REDIS_CHANNEL_PREFIX, value_parser = parse_prefix)]
    pub redis_channel_prefix: String,

    /// JetStream stream that holds every event (subjects `rakuda.realtime.>`).
    #[arg(long, env = "STREAM_NAME", default_value = DEFAULT_STREAM_NAME, value_parser = settings::stream_name)]
    pub stream_name: String,

    /// JetStream stream that keeps rejected messages (subjects `rakuda.dlq.>`).
    #[arg(long, env = "DLQ_STREAM_NAME", default_value = DEFAULT_DLQ_STREAM_NAME, value_parser = settings::stream_name)]
    pub dlq_stream_name: String,

    /// How long the stream keeps events (`24h`, `30m`): the furthest back a client can resume.
    #[arg(long, env = "STREAM_MAX_AGE", default_value = "24h", value_parser = settings::positive_duration)]
    pub stream_max_age: Duration,

    /// How many events the stream keeps at most.
    #[arg(long, env = "STREAM_MAX_MESSAGES", default_value_t = DEFAULT_STREAM_MAX_MESSAGES, value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    pub stream_max_messages: u64,

    /// Stream replicas: 1 for one NATS server, 3 for a 3-node cluster.
    #[arg(long, env = "STREAM_REPLICAS", default_value_t = DEFAULT_STREAM_REPLICAS, value_parser = parse_replicas)]
    pub stream_replicas: usize,

    /// Largest event accepted, in bytes; larger messages go to the DLQ as `too_large`. The
    /// stream's `max_message_size` is set from it, with room for the headers the bridge adds.
    #[arg(long, env = "EVENT_MAX_BYTES", default_value_t = rakuda_schema::DEFAULT_MAX_EVENT_BYTES, value_parser = parse_event_max_bytes)]
    pub event_max_bytes: usize,

    /// Entities whose latest event the `<STREAM_NAME>_LATEST` stream keeps (for the dashboard's
    /// snapshot); past it, the least recently changed ones are dropped.
    #[arg(long, env = "LATEST_MAX_ENTITIES", default_value_t = DEFAULT_LATEST_MAX_ENTITIES, value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    pub latest_max_entities: u64,

    /// How long JetStream remembers a `Nats-Msg-Id` (`2m`): a second bridge's copy, or a retry
    /// of a publish whose ack was lost, is stored once within it.
    #[arg(long, env = "STREAM_DUPLICATE_WINDOW", default_value = "2m", value_parser = settings::positive_duration)]
    pub stream_duplicate_window: Duration,

    /// How often the Redis subscription is pinged (and how long a reply may take) to notice a
    /// Redis that hangs without closing the connection.
    #[arg(long, env = "REDIS_KEEPALIVE", default_value = "5s", value_parser = settings::positive_duration)]
    pub redis_keepalive: Duration,

    /// How often the bridge publishes a beacon and reports its subscription to the shared
    /// registry in Redis (`1s`). A bridge silent for five intervals (at least 2 s) is taken as
    /// gone; a gap nobody covered is reported within a few intervals.
    #[arg(long, env = "BRIDGE_BEACON_INTERVAL", default_value = "1s", value_parser = settings::positive_duration)]
    pub bridge_beacon_interval: Duration,

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, env = "BRIDGE_METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR)]
    pub bridge_metrics_addr: SocketAddr,

    /// Events read from Redis waiting to be published; past it the reader waits briefly, then drops.
    #[arg(long, env = "BRIDGE_QUEUE_CAPACITY", default_value_t = DEFAULT_QUEUE_CAPACITY, value_parser = settings::nonzero)]
    pub bridge_queue_capacity: usize,

    /// Publishes awaiting their JetStream ack at once.
    #[arg(long, env = "BRIDGE_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT, value_parser = settings::nonzero)]
    pub bridge_max_in_flight: usize,

    /// On SIGTERM, how long to wait for queued events and in-flight acks (`10s`).
    #[arg(long, env = "BRIDGE_DRAIN_TIMEOUT", default_value = "10s", value_parser = settings::positive_duration)]
    pub bridge_drain_timeout: Duration,

    #[command(flatten)]
    pub nats_auth: NatsAuth,

    #[command(flatten)]
    pub publish: PublishSettings,
}

impl Config {
    /// Defaults for everything but the two servers.
    pub fn new(redis_url: impl Into<String>, nats_url: Vec<ServerAddr>) -> Config {
        Config {
            redis_url: Secret::from(redis_url.into()),
            redis_tls_ca: None,
            nats_url,
            redis_channel_prefix: rakuda_schema::channel::DEFAULT_REDIS_CHANNEL_PREFIX.into(),
            stream_name: DEFAULT_STREAM_NAME.into(),
            dlq_stream_name: DEFAULT_DLQ_STREAM_NAME.into(),
            stream_max_age: DEFAULT_STREAM_MAX_AGE,
            stream_max_messages: DEFAULT_STREAM_MAX_MESSAGES,
            stream_replicas: DEFAULT_STREAM_REPLICAS,
            event_max_bytes: rakuda_schema::DEFAULT_MAX_EVENT_BYTES,
            stream_duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            latest_max_entities: DEFAULT_LATEST_MAX_ENTITIES,
            redis_keepalive: DEFAULT_REDIS_KEEPALIVE,
            bridge_beacon_interval: DEFAULT_BEACON_INTERVAL,
            bridge_metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9101)),
            bridge_queue_capacity: DEFAULT_QUEUE_CAPACITY,
            bridge_max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            bridge_drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            nats_auth: NatsAuth::default(),
            publish: PublishSettings::default(),
        }
    }

    /// The stream's `max_message_size`: an event at the limit plus the bridge's headers.
    pub fn stream_max_message_bytes(&self) -> usize {
        self.event_max_bytes + HEADER_ROOM_BYTES
    }

    /// What clap could not check: the Redis URL (which may hold a password, so clap must not
    /// repeat it) and the NATS credentials. `main` calls it first, to exit with status 2.
    ///
    /// The example passwords shipped in this repository are refused always: the bridge has no
    /// development mode because nothing needs one (`just dev`'s Redis and NATS take no password,
    /// the fleet and the tests make their own).
    pub fn check(&self) -> Result<(), CheckError> {
        if self.redis_url.is_placeholder() {
            return Err(CheckError::Placeholder(PlaceholderSecret {
                variable: "REDIS_URL",
                which: String::new(),
                remedy: "put the password of the bridge's Redis user in the URL (`just certs` \
                         makes one, in .dev/certs/bridge.env and users.conf)",
            }));
        }
        if self
            .nats_auth
            .nats_password
            .as_ref()
            .is_some_and(Secret::is_placeholder)
        {
            return Err(CheckError::Placeholder(PlaceholderSecret {
                variable: "NATS_PASSWORD",
                which: String::new(),
                remedy: "set the bridge's own NATS password (`openssl rand -hex 24`, its bcrypt \
                         hash in auth-password.conf), or use the nkey seed `just certs` makes",
            }));
        }
        rakuda_service::redis::client(self.redis_url.expose(), self.redis_tls_ca.as_deref())?;
        self.nats_auth.check()?;
        self.publish.keys()?;
        Ok(())
    }

    /// The Redis pattern the bridge subscribes to.
    pub fn redis_pattern(&self) -> String {
        format!("{}*", self.redis_channel_prefix)
    }

    // What each part reads of the settings is handed out here, and only that: the parts never
    // hold the whole `Config`, with the Redis URL's password and the NATS credentials in it.

    /// The streams' names and limits.
    pub fn streams(&self) -> StreamSettings {
        StreamSettings {
            name: self.stream_name.clone(),
            dlq_name: self.dlq_stream_name.clone(),
            max_age: self.stream_max_age,
            max_messages: self.stream_max_messages,
            max_message_bytes: self.stream_max_message_bytes(),
            replicas: self.stream_replicas,
            duplicate_window: self.stream_duplicate_window,
            latest_max_entities: self.latest_max_entities,
        }
    }

    /// What the publisher reads.
    pub fn publisher(&self) -> PublisherSettings {
        PublisherSettings {
            streams: self.streams(),
            max_in_flight: self.bridge_max_in_flight,
            event_max_bytes: self.event_max_bytes,
        }
    }

    /// What the publish API reads, its keys checked.
    pub fn publish_api(&self) -> Result<ApiSettings, PublishKeyError> {
        Ok(ApiSettings {
            keys: self.publish.keys()?,
            redis_channel_prefix: self.redis_channel_prefix.clone(),
            event_max_bytes: self.event_max_bytes,
            max_body_bytes: self.publish.publish_max_body_bytes,
            max_batch: self.publish.publish_max_batch,
            max_concurrent: self.publish.publish_max_concurrent,
            timeout: self.publish.publish_timeout,
        })
    }
}

/// Why the settings, as a whole, cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Placeholder(#[from] PlaceholderSecret),
    #[error(transparent)]
    Redis(#[from] rakuda_service::redis::RedisSettingError),
    #[error(transparent)]
    Nats(#[from] rakuda_service::nats::NatsAuthError),
    #[error(transparent)]
    PublishKeys(#[from] PublishKeyError),
}

/// Why a bridge setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("must be a non-empty channel prefix without glob characters")]
    ChannelPrefix,
    #[error(transparent)]
    Setting(#[from] settings::SettingError),
}

fn parse_prefix(value: &str) -> Result<String, ConfigError> {
    if value.is_empty() || value.contains(['*', '?', '[', ']']) {
        return Err(ConfigError::ChannelPrefix);
    }
    Ok(value.to_owned())
}

fn parse_replicas(value: &str) -> Result<usize, ConfigError> {
    Ok(settings::bounded(value, 1, 5)?)
}

fn parse_event_max_bytes(value: &str) -> Result<usize, ConfigError> {
    // NATS refuses messages over its max_payload (1 MiB by default), headers included.
    Ok(settings::bounded(
        value,
        1,
        NATS_MAX_PAYLOAD - HEADER_ROOM_BYTES,
    )?)
}

#[cfg(test)]
mod tests;
