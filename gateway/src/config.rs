//! Settings, from the environment (and `.env`) or the command line. As for the bridge, each
//! value placeholder is the variable's name, so a bad value names it at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::ServerAddr;
use clap::Parser;
use rakuda_service::settings;

pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_STREAM_NAME: &str = "RAKUDA_REALTIME";
pub const DEFAULT_GATEWAY_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_HEARTBEAT_MS: u64 = 30_000;
pub const DEFAULT_DEBOUNCE_MS: u64 = 500;
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 1_000;
pub const DEFAULT_SSE_RETRY_MS: u64 = 3_000;
pub const DEFAULT_CLIENT_QUEUE_CAPACITY: usize = 1_024;
pub const DEFAULT_REPLAY_RING_CAPACITY: usize = 10_000;
pub const DEFAULT_RESUME_MAX_EVENTS: usize = 100_000;
pub const DEFAULT_REPLAY_BUDGET_BYTES: usize = 128 * 1024 * 1024;
pub const DEFAULT_REPLAY_CONNECTION_MAX_BYTES: usize = 16 * 1024 * 1024;
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_DRAIN_WINDOW: Duration = Duration::from_secs(5);
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_CANARY_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_CANARY_DEGRADED_AFTER: Duration = Duration::from_secs(20);
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
pub const DEFAULT_MAX_CONNECTIONS_PER_KEY: usize = 5_000;
pub const DEFAULT_WS_MAX_FRAME_BYTES: usize = 16 * 1024;
pub const DEFAULT_WS_MAX_BAD_FRAMES: usize = 5;
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
pub const DEFAULT_CLUSTER_STATS_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_CLIENT_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Shortest accepted API key: anything shorter is guessable.
pub const MIN_API_KEY_LEN: usize = 8;
/// Shortest accepted token secret.
pub const MIN_TOKEN_SECRET_LEN: usize = 32;

/// The gateway's settings. Tests build it with [`Config::new`] and never touch the process
/// environment.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rakuda-gateway",
    version,
    about = "Serves RAKUDA real-time events over SSE"
)]
pub struct Config {
    /// NATS servers, comma separated (several for a cluster).
    #[arg(long, env = "NATS_URL", default_value = DEFAULT_NATS_URL, value_delimiter = ',', value_parser = settings::nats_url)]
    pub nats_url: Vec<ServerAddr>,

    /// The JetStream stream the bridge writes (its sequence is the global event id).
    #[arg(long, env = "STREAM_NAME", default_value = DEFAULT_STREAM_NAME, value_parser = settings::stream_name)]
    pub stream_name: String,

    /// Where the gateway listens.
    #[arg(long, env = "GATEWAY_ADDR", default_value = DEFAULT_GATEWAY_ADDR)]
    pub gateway_addr: SocketAddr,

    /// API keys accepted in `X-API-Key`, comma separated (the existing apiKeyAuth keys).
    #[arg(long, env = "API_KEY", required = true, value_delimiter = ',', value_parser = parse_api_key, hide_env_values = true)]
    pub api_key: Vec<String>,

    /// Secret that signs `/token` tokens; the same on every instance. Derived from API_KEY when unset.
    #[arg(long, env = "TOKEN_SECRET", value_parser = parse_token_secret, hide_env_values = true)]
    pub token_secret: Option<String>,

    /// How long a `/token` token is valid (`15m`).
    #[arg(long, env = "TOKEN_TTL", default_value = "15m", value_parser = settings::positive_duration)]
    pub token_ttl: Duration,

    /// `false` turns the realtime endpoints off: they answer 503 with a JSON reason.
    #[arg(long, env = "REALTIME_ENABLED", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub realtime_enabled: bool,

    /// Milliseconds between `heartbeat` events on each SSE connection.
    #[arg(long, env = "SSE_HEARTBEAT_INTERVAL", default_value_t = DEFAULT_HEARTBEAT_MS, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub sse_heartbeat_interval: u64,

    /// Debounce window in milliseconds, per event type; 0 sends every event on its own.
    #[arg(long, env = "SSE_DEBOUNCE_WINDOW", default_value_t = DEFAULT_DEBOUNCE_MS, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub sse_debounce_window: u64,

    /// Most events listed in one batch frame (`count` stays exact; `truncated` marks the cut).
    #[arg(long, env = "DEBOUNCE_MAX_BATCH_EVENTS", default_value_t = DEFAULT_MAX_BATCH_EVENTS, value_parser = settings::nonzero)]
    pub debounce_max_batch_events: usize,

    /// Base reconnect delay sent as SSE `retry:` in milliseconds; each client gets it plus up to 50% jitter.
    #[arg(long, env = "SSE_RETRY", default_value_t = DEFAULT_SSE_RETRY_MS, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub sse_retry: u64,

    /// Frames a client may fall behind before it is reset and closed.
    #[arg(long, env = "CLIENT_QUEUE_CAPACITY", default_value_t = DEFAULT_CLIENT_QUEUE_CAPACITY, value_parser = settings::nonzero)]
    pub client_queue_capacity: usize,

    /// Recent events kept in memory to serve resumes without asking JetStream.
    #[arg(long, env = "REPLAY_RING_CAPACITY", default_value_t = DEFAULT_REPLAY_RING_CAPACITY, value_parser = settings::nonzero)]
    pub replay_ring_capacity: usize,

    /// Most events one resume replays from JetStream; further behind gets `event: reset`.
    #[arg(long, env = "RESUME_MAX_EVENTS", default_value_t = DEFAULT_RESUME_MAX_EVENTS, value_parser = settings::nonzero)]
    pub resume_max_events: usize,

    /// Bytes all resumes on this instance may hold at once (events fetched from JetStream, the
    /// frame being written); a resume that does not fit gets `reset` (`replay_budget`).
    #[arg(long, env = "REPLAY_BUDGET_BYTES", default_value_t = DEFAULT_REPLAY_BUDGET_BYTES, value_parser = settings::nonzero)]
    pub replay_budget_bytes: usize,

    /// Bytes one resume may hold; a bigger one gets `reset` (`replay_budget`).
    #[arg(long, env = "REPLAY_CONNECTION_MAX_BYTES", default_value_t = DEFAULT_REPLAY_CONNECTION_MAX_BYTES, value_parser = settings::nonzero)]
    pub replay_connection_max_bytes: usize,

    /// Browser origins allowed by CORS, comma separated; empty allows none (same origin only).
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,

    /// This instance's name in /status, heartbeats and logs; `gw-<random>` when unset.
    #[arg(long, env = "GATEWAY_INSTANCE_ID")]
    pub gateway_instance_id: Option<String>,

    /// On SIGTERM, how long open connections get to close before the process exits.
    #[arg(long, env = "GATEWAY_DRAIN_TIMEOUT", default_value = "10s", value_parser = settings::positive_duration)]
    pub gateway_drain_timeout: Duration,

    /// On SIGTERM, open connections close at random moments spread over this window, so a
    /// rolling restart does not make every client reconnect in the same second.
    #[arg(long, env = "GATEWAY_DRAIN_WINDOW", default_value = "5s", value_parser = settings::duration)]
    pub gateway_drain_window: Duration,

    /// Most client connections (SSE and WebSocket) this instance holds; past it, 503.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = settings::nonzero)]
    pub max_connections: usize,

    /// Most connections one API key (or the tokens it minted) holds on this instance; past it, 429.
    #[arg(long, env = "MAX_CONNECTIONS_PER_KEY", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_KEY, value_parser = settings::nonzero)]
    pub max_connections_per_key: usize,

    /// Largest WebSocket frame or message a client may send, in bytes; larger closes with 1009.
    #[arg(long, env = "WS_MAX_FRAME_BYTES", default_value_t = DEFAULT_WS_MAX_FRAME_BYTES, value_parser = settings::nonzero)]
    pub ws_max_frame_bytes: usize,

    /// Malformed client frames tolerated (each answered with an error frame) before a close with 1008.
    #[arg(long, env = "WS_MAX_BAD_FRAMES", default_value_t = DEFAULT_WS_MAX_BAD_FRAMES, value_parser = settings::nonzero)]
    pub ws_max_bad_frames: usize,

    /// Longest request URI (path and query) accepted, in bytes; longer gets 414.
    #[arg(long, env = "MAX_URI_BYTES", default_value_t = DEFAULT_MAX_URI_BYTES, value_parser = settings::nonzero)]
    pub max_uri_bytes: usize,

    /// Largest total of request header names and values accepted, in bytes; larger gets 431.
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES, value_parser = settings::nonzero)]
    pub max_header_bytes: usize,

    /// Redis the canary is published on (the one the workers and the bridge use).
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, value_parser = settings::redis_url)]
    pub redis_url: String,

    /// Prefix of the Redis channels (the canary goes to `<prefix>canary`).
    #[arg(long, env = "REDIS_CHANNEL_PREFIX", default_value = rakuda_schema::channel::DEFAULT_REDIS_CHANNEL_PREFIX)]
    pub redis_channel_prefix: String,

    /// How often this gateway sends a canary event through Redis -> bridge -> NATS; `0s` turns it off.
    #[arg(long, env = "CANARY_INTERVAL", default_value = "5s", value_parser = settings::duration)]
    pub canary_interval: Duration,

    /// With no canary back for this long, /status and /readyz report `degraded`.
    #[arg(long, env = "CANARY_DEGRADED_AFTER", default_value = "20s", value_parser = settings::positive_duration)]
    pub canary_degraded_after: Duration,

    /// `true`: /readyz answers 503 while degraded. Off by default: when the bridge is down every
    /// gateway is degraded, and failing them all would turn stale data into no connection at all.
    #[arg(long, env = "READYZ_FAIL_WHEN_DEGRADED", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub readyz_fail_when_degraded: bool,

    /// A client whose socket accepts nothing for this long (it stopped reading) is disconnected by
    /// the kernel (TCP_USER_TIMEOUT), so a stuck browser cannot hold a connection forever.
    #[arg(long, env = "CLIENT_STALL_TIMEOUT", default_value = "30s", value_parser = settings::positive_duration)]
    pub client_stall_timeout: Duration,

    /// A built dashboard (a directory with `index.html`) to serve at `/`; unknown paths get
    /// `index.html`, so the dashboard's own routes work on reload.
    #[arg(long, env = "GATEWAY_DASHBOARD_DIR", value_parser = parse_dashboard_dir)]
    pub gateway_dashboard_dir: Option<std::path::PathBuf>,

    /// How long `/stats?scope=cluster` waits for the other instances.
    #[arg(long, env = "CLUSTER_STATS_TIMEOUT", default_value = "1s", value_parser = settings::positive_duration)]
    pub cluster_stats_timeout: Duration,
}

impl Config {
    /// Defaults for everything but the NATS servers and the API keys.
    pub fn new(nats_url: Vec<ServerAddr>, api_keys: Vec<String>) -> Config {
        Config {
            nats_url,
            stream_name: DEFAULT_STREAM_NAME.into(),
            gateway_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_key: api_keys,
            token_secret: None,
            token_ttl: DEFAULT_TOKEN_TTL,
            realtime_enabled: true,
            sse_heartbeat_interval: DEFAULT_HEARTBEAT_MS,
            sse_debounce_window: DEFAULT_DEBOUNCE_MS,
            debounce_max_batch_events: DEFAULT_MAX_BATCH_EVENTS,
            sse_retry: DEFAULT_SSE_RETRY_MS,
            client_queue_capacity: DEFAULT_CLIENT_QUEUE_CAPACITY,
            replay_ring_capacity: DEFAULT_REPLAY_RING_CAPACITY,
            resume_max_events: DEFAULT_RESUME_MAX_EVENTS,
            replay_budget_bytes: DEFAULT_REPLAY_BUDGET_BYTES,
            replay_connection_max_bytes: DEFAULT_REPLAY_CONNECTION_MAX_BYTES,
            cors_origins: Vec::new(),
            gateway_instance_id: None,
            gateway_drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            gateway_drain_window: DEFAULT_DRAIN_WINDOW,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_key: DEFAULT_MAX_CONNECTIONS_PER_KEY,
            ws_max_frame_bytes: DEFAULT_WS_MAX_FRAME_BYTES,
            ws_max_bad_frames: DEFAULT_WS_MAX_BAD_FRAMES,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            redis_url: DEFAULT_REDIS_URL.into(),
            redis_channel_prefix: rakuda_schema::channel::DEFAULT_REDIS_CHANNEL_PREFIX.into(),
            canary_interval: DEFAULT_CANARY_INTERVAL,
            canary_degraded_after: DEFAULT_CANARY_DEGRADED_AFTER,
            readyz_fail_when_degraded: false,
            cluster_stats_timeout: DEFAULT_CLUSTER_STATS_TIMEOUT,
            client_stall_timeout: DEFAULT_CLIENT_STALL_TIMEOUT,
            gateway_dashboard_dir: None,
        }
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.sse_heartbeat_interval)
    }

    pub fn debounce_window(&self) -> Duration {
        Duration::from_millis(self.sse_debounce_window)
    }
}

/// Why a gateway setting was refused; the message says what a good value looks like.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("each key must be at least {MIN_API_KEY_LEN} characters")]
    ApiKeyTooShort,
    #[error("must be at least {MIN_TOKEN_SECRET_LEN} characters")]
    TokenSecretTooShort,
    #[error("`{0}` has no index.html: build the dashboard first, or unset it")]
    NoDashboardIndex(String),
    #[error("each origin must look like https://host[:port], without a path")]
    Origin,
}

fn parse_api_key(value: &str) -> Result<String, ConfigError> {
    let key = value.trim();
    if key.len() < MIN_API_KEY_LEN {
        return Err(ConfigError::ApiKeyTooShort);
    }
    Ok(key.to_owned())
}

fn parse_token_secret(value: &str) -> Result<String, ConfigError> {
    if value.len() < MIN_TOKEN_SECRET_LEN {
        return Err(ConfigError::TokenSecretTooShort);
    }
    Ok(value.to_owned())
}

fn parse_dashboard_dir(value: &str) -> Result<std::path::PathBuf, ConfigError> {
    let dir = std::path::PathBuf::from(value);
    if !dir.join("index.html").is_file() {
        return Err(ConfigError::NoDashboardIndex(value.to_owned()));
    }
    Ok(dir)
}

fn parse_origin(value: &str) -> Result<String, ConfigError> {
    let origin = value.trim();
    let scheme_ok = origin.starts_with("http://") || origin.starts_with("https://");
    if !scheme_ok || origin.ends_with('/') || origin.parse::<axum::http::HeaderValue>().is_err() {
        return Err(ConfigError::Origin);
    }
    Ok(origin.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let command = Config::command().mut_args(|arg| arg.env(None::<&str>));
        let matches = command
            .try_get_matches_from(std::iter::once("rakuda-gateway").chain(args.iter().copied()))?;
        <Config as clap::FromArgMatches>::from_arg_matches(&matches)
    }

    #[test]
    fn defaults_match_the_constants() {
        let parsed = parse(&["--api-key", "key-one-123"]).expect("parse");
        let built = Config::new(
            vec![DEFAULT_NATS_URL.parse().expect("url")],
            vec!["key-one-123".into()],
        );
        assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
    }

    #[test]
    fn errors_name_the_variable() {
        for (args, variable) in [
            (vec![], "API_KEY"),
            (vec!["--api-key", "short"], "API_KEY"),
            (
                vec!["--api-key", "long-enough", "--sse-debounce-window", "soon"],
                "SSE_DEBOUNCE_WINDOW",
            ),
            (
                vec!["--api-key", "long-enough", "--sse-heartbeat-interval", "5"],
                "SSE_HEARTBEAT_INTERVAL",
            ),
            (
                vec!["--api-key", "long-enough", "--realtime-enabled", "maybe"],
                "REALTIME_ENABLED",
            ),
            (
                vec!["--api-key", "long-enough", "--cors-origins", "example.com"],
                "CORS_ORIGINS",
            ),
            (
                vec!["--api-key", "long-enough", "--token-secret", "tiny"],
                "TOKEN_SECRET",
            ),
            (
                vec!["--api-key", "long-enough", "--gateway-addr", "everywhere"],
                "GATEWAY_ADDR",
            ),
        ] {
            let error = parse(&args).expect_err("bad value").to_string();
            assert!(error.contains(variable), "{variable}: {error}");
        }
    }

    #[test]
    fn realtime_enabled_reads_false() {
        let parsed =
            parse(&["--api-key", "long-enough", "--realtime-enabled", "false"]).expect("parse");
        assert!(!parsed.realtime_enabled);
    }

    /// `.env.example` is what a newcomer copies: it must list every setting with its default.
    #[test]
    fn env_example_documents_every_setting() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.env.example");
        let text = std::fs::read_to_string(&path).expect("read .env.example");
        let problems = rakuda_service::settings::env_example_problems(
            &<Config as clap::CommandFactory>::command(),
            &text,
        );
        assert!(problems.is_empty(), ".env.example: {problems:?}");
    }
}
