//! The settings of each component, one clap group each, flattened into [`Config`].
//! Every field keeps the name of its variable (`SSE_DEBOUNCE_WINDOW` is
//! `streams.sse_debounce_window`): clap makes the flag and the value placeholder that errors
//! show from the field's name. Each group's [`Default`] is what clap applies when nothing is set
//! (a config test holds them equal).

use std::path::PathBuf;
use std::time::Duration;

use async_nats::ServerAddr;
use ipnet::IpNet;
use rakuda_service::nats::NatsAuth;
use rakuda_service::settings::{self, Secret};

use super::checks::{self, parse_origin, parse_trusted_proxy};
use super::*;

/// The NATS servers, how to log in to them, and the streams read.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsConfig {
    /// NATS servers, comma separated (several for a cluster).
    #[arg(long, env = "NATS_URL", default_value = DEFAULT_NATS_URL, value_delimiter = ',', value_parser = settings::nats_url)]
    pub nats_url: Vec<ServerAddr>,

    /// The JetStream stream the bridge writes (its sequence is the global event id).
    #[arg(long, env = "STREAM_NAME", default_value = DEFAULT_STREAM_NAME, value_parser = settings::stream_name)]
    pub stream_name: String,

    /// The stream the bridge keeps rejected messages in, read by `/api/realtime/dlq`.
    #[arg(long, env = "DLQ_STREAM_NAME", default_value = DEFAULT_DLQ_STREAM_NAME, value_parser = settings::stream_name)]
    pub dlq_stream_name: String,

    #[command(flatten)]
    pub nats_auth: NatsAuth,
}

/// Who may connect: API keys, tokens, failed-auth pacing, proxies, browser origins.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthConfig {
    /// API keys accepted in `X-API-Key`, comma separated (the existing apiKeyAuth keys); each
    /// may be written `id:key` to name it in logs, limits and tokens (else `key-<position>`).
    #[arg(long, env = "API_KEY", required = true, value_delimiter = ',', value_parser = Secret::parse, hide_env_values = true)]
    pub api_key: Vec<Secret>,

    /// Secrets (32+ bytes) that sign `/token` tokens, comma separated, the same on every
    /// instance: the first signs, every one verifies, so a new one can be rolled in first.
    #[arg(long, env = "TOKEN_SECRET", value_delimiter = ',', value_parser = Secret::parse, hide_env_values = true)]
    pub token_secret: Vec<Secret>,

    /// `true` lets a single local gateway start without TOKEN_SECRET (a random one is used), and
    /// with the example secrets shipped in this repository (they contain `change-me`).
    #[arg(long, env = "GATEWAY_DEV_MODE", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub gateway_dev_mode: bool,

    /// How long a `/token` token is valid (`15m`).
    #[arg(long, env = "TOKEN_TTL", default_value = "15m", value_parser = settings::positive_duration)]
    pub token_ttl: Duration,

    /// Failed authentications one client address may make per minute (as a burst, refilled
    /// evenly); past it, 429 with Retry-After, whatever it sends.
    #[arg(long, env = "AUTH_FAILURES_PER_MINUTE", default_value_t = DEFAULT_AUTH_FAILURES_PER_MINUTE, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub auth_failures_per_minute: u32,

    /// Proxies (addresses or networks, comma separated) whose X-Forwarded-For names the client;
    /// from anyone else the header is ignored. They carry many clients, so
    /// MAX_UNAUTHENTICATED_PER_ADDRESS does not apply to them.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_trusted_proxy)]
    pub trusted_proxies: Vec<IpNet>,

    /// Browser origins allowed by CORS, comma separated; empty allows none (same origin only).
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
}

/// Each SSE and WebSocket stream: debounce, heartbeats, retry, queue, frame limits.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamsConfig {
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

    /// Largest WebSocket frame or message a client may send, in bytes; larger closes with 1009.
    #[arg(long, env = "WS_MAX_FRAME_BYTES", default_value_t = DEFAULT_WS_MAX_FRAME_BYTES, value_parser = settings::nonzero)]
    pub ws_max_frame_bytes: usize,

    /// Malformed client frames tolerated (each answered with an error frame) before a close with 1008.
    #[arg(long, env = "WS_MAX_BAD_FRAMES", default_value_t = DEFAULT_WS_MAX_BAD_FRAMES, value_parser = settings::nonzero)]
    pub ws_max_bad_frames: usize,
}

/// What a reconnecting or new client may be sent from before: the ring, replays, backfill.
#[derive(Debug, Clone, clap::Args)]
pub struct ResumeConfig {
    /// Recent events kept in memory to serve resumes without asking JetStream.
    #[arg(long, env = "REPLAY_RING_CAPACITY", default_value_t = DEFAULT_REPLAY_RING_CAPACITY, value_parser = settings::nonzero)]
    pub replay_ring_capacity: usize,

    /// Most events one resume replays from JetStream; further behind gets `event: reset`.
    #[arg(long, env = "RESUME_MAX_EVENTS", default_value_t = DEFAULT_RESUME_MAX_EVENTS, value_parser = settings::nonzero)]
    pub resume_max_events: usize,

    /// The most history a new connection gets with `?backfill=` or `?since=` (events).
    #[arg(long, env = "BACKFILL_MAX_EVENTS", default_value_t = DEFAULT_BACKFILL_MAX_EVENTS, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub backfill_max_events: u64,

    /// How far back `?since=` reaches (`24h`).
    #[arg(long, env = "BACKFILL_MAX_AGE", default_value = "24h", value_parser = settings::positive_duration)]
    pub backfill_max_age: Duration,

    /// Bytes all resumes on this instance may hold at once (events fetched from JetStream, the
    /// frame being written); a resume that does not fit gets `reset` (`replay_budget`).
    #[arg(long, env = "REPLAY_BUDGET_BYTES", default_value_t = DEFAULT_REPLAY_BUDGET_BYTES, value_parser = settings::nonzero)]
    pub replay_budget_bytes: usize,

    /// Bytes one resume may hold; a bigger one gets `reset` (`replay_budget`).
    #[arg(long, env = "REPLAY_CONNECTION_MAX_BYTES", default_value_t = DEFAULT_REPLAY_CONNECTION_MAX_BYTES, value_parser = settings::nonzero)]
    pub replay_connection_max_bytes: usize,
}

/// What connections and requests may take: counts, rates, sizes, timeouts.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitsConfig {
    /// Most client connections (SSE and WebSocket) this instance holds; past it, 503.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = settings::nonzero)]
    pub max_connections: usize,

    /// Most connections one API key (or the tokens it minted) holds on this instance; past it, 429.
    #[arg(long, env = "MAX_CONNECTIONS_PER_KEY", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_KEY, value_parser = settings::nonzero)]
    pub max_connections_per_key: usize,

    /// New streams (SSE and WebSocket) this instance admits per second; past it, 503
    /// `connection_rate` with a random `Retry-After`. `0` turns the cap off. /healthz, /metrics,
    /// tokens and history requests are not counted.
    ///
    /// Why 2,000: a gateway holding ~15,000 clients that dies should have them back on the
    /// other three within ~10 s. 15,000 / 3 peers / 10 s = 500 a second each is the floor, but
    /// a refused client waits up to CONNECTION_RATE_RETRY_MAX (5 s) before it tries again, so
    /// the backlog must clear in about half the window: 1,000 a second each. That is met only
    /// if the load balancer spreads the crowd evenly and nothing else connects meanwhile;
    /// twice that leaves room for both. A storm larger than planned (two gateways lost, every
    /// client reconnecting in the same instant) is still refused past it and spread out.
    #[arg(long, env = "CONNECTION_RATE_LIMIT", default_value_t = DEFAULT_CONNECTION_RATE_LIMIT, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub connection_rate_limit: u32,

    /// New streams admitted at once before CONNECTION_RATE_LIMIT paces them (token bucket
    /// size); unset: one second's worth (CONNECTION_RATE_LIMIT).
    #[arg(long, env = "CONNECTION_RATE_BURST", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub connection_rate_burst: Option<u32>,

    /// A stream refused for the connection rate is told to come back after a random number of
    /// whole seconds between 1 and this (`Retry-After`), so the refused return spread out.
    #[arg(long, env = "CONNECTION_RATE_RETRY_MAX", default_value = "5s", value_parser = checks::parse_retry_max)]
    pub connection_rate_retry_max: Duration,

    /// Longest request URI (path and query) accepted, in bytes; longer gets 414.
    #[arg(long, env = "MAX_URI_BYTES", default_value_t = DEFAULT_MAX_URI_BYTES, value_parser = settings::nonzero)]
    pub max_uri_bytes: usize,

    /// Largest total of request header names and values accepted, in bytes; larger gets 431.
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES, value_parser = settings::nonzero)]
    pub max_header_bytes: usize,

    /// How long a client has to send a whole request (its head, and its body if any); past it
    /// the gateway answers 408 and closes. Bounds what a silent or trickling socket holds.
    #[arg(long, env = "REQUEST_READ_TIMEOUT", default_value = "10s", value_parser = settings::positive_duration)]
    pub request_read_timeout: Duration,

    /// A client whose socket accepts nothing for this long (it stopped reading) is disconnected by
    /// the kernel (TCP_USER_TIMEOUT), so a stuck browser cannot hold a connection forever.
    #[arg(long, env = "CLIENT_STALL_TIMEOUT", default_value = "30s", value_parser = settings::positive_duration)]
    pub client_stall_timeout: Duration,

    /// Most sockets holding no authenticated request (still sending a head, or refused) at
    /// once; past it, new sockets get 503 at once.
    #[arg(long, env = "MAX_UNAUTHENTICATED_CONNECTIONS", default_value_t = DEFAULT_MAX_UNAUTHENTICATED_CONNECTIONS, value_parser = settings::nonzero)]
    pub max_unauthenticated_connections: usize,

    /// Most of those sockets one client address (an IPv6 /64) holds; a newer one from it closes
    /// its oldest still waiting for a request head (429). `TRUSTED_PROXIES` have no such cap.
    #[arg(long, env = "MAX_UNAUTHENTICATED_PER_ADDRESS", default_value_t = DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS, value_parser = settings::nonzero)]
    pub max_unauthenticated_per_address: usize,
}

/// One instance among many: its name, the drain, the canary through Redis, cluster stats.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetConfig {
    /// This instance's name in /status, heartbeats and logs; `gw-<random>` when unset.
    #[arg(long, env = "GATEWAY_INSTANCE_ID", value_parser = checks::parse_instance_id)]
    pub gateway_instance_id: Option<String>,

    /// On SIGTERM, how long open connections get to close before the process exits.
    #[arg(long, env = "GATEWAY_DRAIN_TIMEOUT", default_value = "10s", value_parser = settings::positive_duration)]
    pub gateway_drain_timeout: Duration,

    /// On SIGTERM, open connections close at random moments spread over this window, so a
    /// rolling restart does not make every client reconnect in the same second.
    #[arg(long, env = "GATEWAY_DRAIN_WINDOW", default_value = "5s", value_parser = settings::duration)]
    pub gateway_drain_window: Duration,

    /// Redis the canary is published on (the one the workers and the bridge use).
    /// An ACL user and password go in the URL (`redis://user:password@host:port`);
    /// `rediss://` for TLS.
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, value_parser = Secret::parse, hide_env_values = true)]
    pub redis_url: Secret,

    /// PEM file of the CA that signed Redis's certificate, for `rediss://` with a private CA.
    #[arg(long, env = "REDIS_TLS_CA")]
    pub redis_tls_ca: Option<PathBuf>,

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

    /// How long `/stats?scope=cluster` waits for the other instances.
    #[arg(long, env = "CLUSTER_STATS_TIMEOUT", default_value = "1s", value_parser = settings::positive_duration)]
    pub cluster_stats_timeout: Duration,
}

/// The history answers: `/summary` and `/snapshot`, and the memory they may hold.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryConfig {
    /// The time zone whose midnight starts "today" in `/api/realtime/summary` (`Asia/Tokyo`).
    #[arg(long, env = "SUMMARY_TIMEZONE", default_value = DEFAULT_SUMMARY_TIMEZONE)]
    pub summary_timezone: String,

    /// How long one computed summary is served before it is counted again.
    #[arg(long, env = "SUMMARY_CACHE_TTL", default_value = "5s", value_parser = settings::positive_duration)]
    pub summary_cache_ttl: Duration,

    /// The most entities one `/api/realtime/snapshot` page lists.
    #[arg(long, env = "SNAPSHOT_MAX_LIMIT", default_value_t = DEFAULT_SNAPSHOT_MAX_LIMIT, value_parser = settings::nonzero)]
    pub snapshot_max_limit: usize,

    /// Bytes all summary and snapshot answers on this instance may hold at once; each answer
    /// reserves its share first, and one that does not fit gets 503 `history_budget`.
    #[arg(long, env = "HISTORY_BUDGET_BYTES", default_value_t = DEFAULT_HISTORY_BUDGET_BYTES, value_parser = settings::nonzero)]
    pub history_budget_bytes: usize,

    /// Bytes one snapshot answer may hold (read from JetStream, not yet written to the
    /// socket); it streams through this window, so HISTORY_BUDGET_BYTES / this many fit at once.
    #[arg(long, env = "HISTORY_REQUEST_MAX_BYTES", default_value_t = DEFAULT_HISTORY_REQUEST_MAX_BYTES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(256 * 1024..=1024 * 1024 * 1024))]
    pub history_request_max_bytes: usize,
}

impl NatsConfig {
    /// The defaults, with `nats_url` (`NATS_URL`).
    pub fn new(nats_url: Vec<ServerAddr>) -> NatsConfig {
        NatsConfig {
            nats_url,
            stream_name: DEFAULT_STREAM_NAME.into(),
            dlq_stream_name: DEFAULT_DLQ_STREAM_NAME.into(),
            nats_auth: NatsAuth::default(),
        }
    }
}

impl AuthConfig {
    /// The defaults, with `api_keys` (`API_KEY`) and no token secret.
    pub fn new(api_keys: Vec<Secret>) -> AuthConfig {
        AuthConfig {
            api_key: api_keys,
            token_secret: Vec::new(),
            gateway_dev_mode: false,
            token_ttl: DEFAULT_TOKEN_TTL,
            auth_failures_per_minute: DEFAULT_AUTH_FAILURES_PER_MINUTE,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
        }
    }
}

impl Default for StreamsConfig {
    fn default() -> StreamsConfig {
        StreamsConfig {
            sse_heartbeat_interval: DEFAULT_HEARTBEAT_MS,
            sse_debounce_window: DEFAULT_DEBOUNCE_MS,
            debounce_max_batch_events: DEFAULT_MAX_BATCH_EVENTS,
            sse_retry: DEFAULT_SSE_RETRY_MS,
            client_queue_capacity: DEFAULT_CLIENT_QUEUE_CAPACITY,
            ws_max_frame_bytes: DEFAULT_WS_MAX_FRAME_BYTES,
            ws_max_bad_frames: DEFAULT_WS_MAX_BAD_FRAMES,
        }
    }
}

impl StreamsConfig {
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.sse_heartbeat_interval)
    }

    pub fn debounce_window(&self) -> Duration {
        Duration::from_millis(self.sse_debounce_window)
    }
}

impl Default for ResumeConfig {
    fn default() -> ResumeConfig {
        ResumeConfig {
            replay_ring_capacity: DEFAULT_REPLAY_RING_CAPACITY,
            resume_max_events: DEFAULT_RESUME_MAX_EVENTS,
            backfill_max_events: DEFAULT_BACKFILL_MAX_EVENTS,
            backfill_max_age: DEFAULT_BACKFILL_MAX_AGE,
            replay_budget_bytes: DEFAULT_REPLAY_BUDGET_BYTES,
            replay_connection_max_bytes: DEFAULT_REPLAY_CONNECTION_MAX_BYTES,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_key: DEFAULT_MAX_CONNECTIONS_PER_KEY,
            connection_rate_limit: DEFAULT_CONNECTION_RATE_LIMIT,
            connection_rate_burst: None,
            connection_rate_retry_max: DEFAULT_CONNECTION_RATE_RETRY_MAX,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            request_read_timeout: DEFAULT_REQUEST_READ_TIMEOUT,
            client_stall_timeout: DEFAULT_CLIENT_STALL_TIMEOUT,
            max_unauthenticated_connections: DEFAULT_MAX_UNAUTHENTICATED_CONNECTIONS,
            max_unauthenticated_per_address: DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS,
        }
    }
}

impl Default for FleetConfig {
    fn default() -> FleetConfig {
        FleetConfig {
            gateway_instance_id: None,
            gateway_drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            gateway_drain_window: DEFAULT_DRAIN_WINDOW,
            redis_url: DEFAULT_REDIS_URL.into(),
            redis_tls_ca: None,
            redis_channel_prefix: rakuda_schema::channel::DEFAULT_REDIS_CHANNEL_PREFIX.into(),
            canary_interval: DEFAULT_CANARY_INTERVAL,
            canary_degraded_after: DEFAULT_CANARY_DEGRADED_AFTER,
            readyz_fail_when_degraded: false,
            cluster_stats_timeout: DEFAULT_CLUSTER_STATS_TIMEOUT,
        }
    }
}

impl Default for HistoryConfig {
    fn default() -> HistoryConfig {
        HistoryConfig {
            summary_timezone: DEFAULT_SUMMARY_TIMEZONE.into(),
            summary_cache_ttl: DEFAULT_SUMMARY_CACHE_TTL,
            snapshot_max_limit: DEFAULT_SNAPSHOT_MAX_LIMIT,
            history_budget_bytes: DEFAULT_HISTORY_BUDGET_BYTES,
            history_request_max_bytes: DEFAULT_HISTORY_REQUEST_MAX_BYTES,
        }
    }
}
