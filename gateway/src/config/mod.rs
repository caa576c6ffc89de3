//! Settings, from the environment (and `.env`) or the command line. As for the bridge, each
//! value placeholder is the variable's name, so a bad value names it at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::ServerAddr;
use clap::Parser;
use rakuda_service::settings::Secret;

mod checks;
mod groups;

use checks::parse_dashboard_dir;
pub use checks::ConfigError;
pub use groups::{
    AuthConfig, FleetConfig, HistoryConfig, LimitsConfig, NatsConfig, ResumeConfig, StreamsConfig,
};

pub(crate) const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub(crate) const DEFAULT_STREAM_NAME: &str = "RAKUDA_REALTIME";
pub(crate) const DEFAULT_DLQ_STREAM_NAME: &str = "RAKUDA_DLQ";
pub(crate) const DEFAULT_GATEWAY_ADDR: &str = "127.0.0.1:8080";
pub(crate) const DEFAULT_HEARTBEAT_MS: u64 = 30_000;
pub(crate) const DEFAULT_DEBOUNCE_MS: u64 = 500;
pub(crate) const DEFAULT_MAX_BATCH_EVENTS: usize = 1_000;
pub(crate) const DEFAULT_SSE_RETRY_MS: u64 = 3_000;
pub(crate) const DEFAULT_CLIENT_QUEUE_CAPACITY: usize = 1_024;
pub(crate) const DEFAULT_REPLAY_RING_CAPACITY: usize = 10_000;
pub(crate) const DEFAULT_RESUME_MAX_EVENTS: usize = 100_000;
pub(crate) const DEFAULT_REPLAY_BUDGET_BYTES: usize = 128 * 1024 * 1024;
pub(crate) const DEFAULT_REPLAY_CONNECTION_MAX_BYTES: usize = 16 * 1024 * 1024;
pub(crate) const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
pub(crate) const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_DRAIN_WINDOW: Duration = Duration::from_secs(5);
pub(crate) const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub(crate) const DEFAULT_CANARY_INTERVAL: Duration = Duration::from_secs(5);
pub(crate) const DEFAULT_CANARY_DEGRADED_AFTER: Duration = Duration::from_secs(20);
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
pub(crate) const DEFAULT_MAX_CONNECTIONS_PER_KEY: usize = 5_000;
/// See `LimitsConfig::connection_rate_limit` for why this figure.
pub(crate) const DEFAULT_CONNECTION_RATE_LIMIT: u32 = 2_000;
pub(crate) const DEFAULT_CONNECTION_RATE_RETRY_MAX: Duration = Duration::from_secs(5);
/// The longest `CONNECTION_RATE_RETRY_MAX` accepted: past it a refused client waits longer than
/// any storm lasts.
pub(crate) const MAX_CONNECTION_RATE_RETRY_MAX: Duration = Duration::from_secs(300);
pub(crate) const DEFAULT_WS_MAX_FRAME_BYTES: usize = 16 * 1024;
pub(crate) const DEFAULT_WS_MAX_BAD_FRAMES: usize = 5;
pub(crate) const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
pub(crate) const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
pub(crate) const DEFAULT_CLUSTER_STATS_TIMEOUT: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_CLIENT_STALL_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_MAX_UNAUTHENTICATED_CONNECTIONS: usize = 1_024;
pub(crate) const DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS: usize = 64;
pub(crate) const DEFAULT_AUTH_FAILURES_PER_MINUTE: u32 = 30;
pub(crate) const DEFAULT_BACKFILL_MAX_EVENTS: u64 = 1_000;
pub(crate) const DEFAULT_BACKFILL_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
pub(crate) const DEFAULT_SUMMARY_TIMEZONE: &str = "UTC";
pub(crate) const DEFAULT_SUMMARY_CACHE_TTL: Duration = Duration::from_secs(5);
pub(crate) const DEFAULT_SNAPSHOT_MAX_LIMIT: usize = 1_000;
pub(crate) const DEFAULT_HISTORY_BUDGET_BYTES: usize = 64 * 1024 * 1024;
pub(crate) const DEFAULT_HISTORY_REQUEST_MAX_BYTES: usize = 1024 * 1024;
/// Shortest accepted API key: anything shorter is guessable.
pub(crate) const MIN_API_KEY_LEN: usize = 8;
/// Shortest accepted token secret.
pub(crate) const MIN_TOKEN_SECRET_LEN: usize = 32;

/// The gateway's settings, one group per component; the few that belong to none stay here.
/// Each setting is found by its variable's name: the field is that name in lower case. Tests
/// build it with [`Config::new`] and never touch the process environment.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rakuda-gateway",
    version,
    about = "Serves RAKUDA real-time events over SSE"
)]
pub struct Config {
    #[command(flatten)]
    pub nats: NatsConfig,

    /// Where the gateway listens.
    #[arg(long, env = "GATEWAY_ADDR", default_value = DEFAULT_GATEWAY_ADDR)]
    pub gateway_addr: SocketAddr,

    /// `false` turns the realtime endpoints off: they answer 503 with a JSON reason.
    #[arg(long, env = "REALTIME_ENABLED", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub realtime_enabled: bool,

    /// A built dashboard (a directory with `index.html`) to serve at `/`; unknown paths get
    /// `index.html`, so the dashboard's own routes work on reload.
    #[arg(long, env = "GATEWAY_DASHBOARD_DIR", value_parser = parse_dashboard_dir)]
    pub gateway_dashboard_dir: Option<PathBuf>,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub streams: StreamsConfig,

    #[command(flatten)]
    pub resume: ResumeConfig,

    #[command(flatten)]
    pub limits: LimitsConfig,

    #[command(flatten)]
    pub fleet: FleetConfig,

    #[command(flatten)]
    pub history: HistoryConfig,
}

impl Config {
    /// Defaults for everything but the NATS servers and the API keys.
    /// Tests then set `auth.token_secret` (or `auth.gateway_dev_mode`).
    pub fn new(nats_url: Vec<ServerAddr>, api_keys: Vec<Secret>) -> Config {
        Config {
            nats: NatsConfig::new(nats_url),
            gateway_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            realtime_enabled: true,
            gateway_dashboard_dir: None,
            auth: AuthConfig::new(api_keys),
            streams: StreamsConfig::default(),
            resume: ResumeConfig::default(),
            limits: LimitsConfig::default(),
            fleet: FleetConfig::default(),
            history: HistoryConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests;
