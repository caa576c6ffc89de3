//! rakuda-gateway: serves the `RAKUDA_REALTIME` stream to browsers over Server-Sent Events and
//! WebSocket.
//!
//! The folders follow the path of an event:
//!
//! ```text
//! store/   ingest/           fanout/                          transport/            browser
//! JetStream ─> feed ─> pipeline ─> frame ─> hub ─(broadcast)─> outbox ─> sse / ws ─> client
//!              (thread)  debounce   once      ring of            per connection
//!                        cursor     for all   messages           filter, heartbeat
//!                            │                                       ▲
//!                            └─> resume/ring ──> resume ─────────────┘ what a reconnecting
//!                                                (ring, JetStream,       client missed
//!                                                 budget)
//! server/  the front door: the accept loop and request heads, by hand (`paths` says where each
//!          path goes)
//! edge/    what a request passes first: auth, tokens, limits, refusals
//! store/   every JetStream read: the feed, counts, replays (one computation per request)
//! history/ what a dashboard asks for when it opens: summary, snapshot, DLQ
//! status/  what the instance tells about itself: status, stats, metrics, health
//! fleet/   one instance among many: the drain, the canary, cluster stats
//! ```
//!
//! # Layout
//! - [`config`] — settings, validated before anything starts.
//! - [`event`] — an event as read from the stream: the worker's bytes.
//! - [`channels`] — sets of client channels.
//! - [`metrics`] — the counters of each stage, and the typed snapshot `/stats` reads.
//! - [`ingest`] — the feed, the pipeline, debounce, on a thread of their own.
//! - [`fanout`] — coalescing, wire frames, the hub, each connection's outbox.
//! - [`resume`] — the ring, JetStream replays, the replay budget, backfill.
//! - [`store`] — every read of JetStream: the feed, counts, replays, single-flight.
//! - [`history`] — today's totals, the latest state of every entity, the DLQ, and their routes.
//! - [`paths`] — every path served, in one table.
//! - [`server`] — the front door: the accept loop, request heads, SSE on the socket.
//! - [`transport`] — SSE and WebSocket streams: admission, then frames to the client.
//! - [`edge`] — auth, tokens, connection limits, refusals.
//! - [`status`] — `/status`, `/stats`, `/metrics`, `/healthz`, `/readyz`.
//! - [`fleet`] — drain, canary, cluster stats.
//! - [`gateway`] — the parts put together: build, spawn, drain.

#![warn(unreachable_pub)]

mod channels;
mod config;
mod edge;
mod event;
mod fanout;
mod fleet;
mod gateway;
mod history;
mod ingest;
mod metrics;
mod paths;
mod resume;
mod server;
mod status;
mod store;
mod transport;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{
    AuthConfig, Config, ConfigError, FleetConfig, HistoryConfig, LimitsConfig, NatsConfig,
    ResumeConfig, StreamsConfig,
};
pub use gateway::Error;

/// The parts the benchmarks (`benches/hot_paths.rs`), the hostile-input tests and the token
/// expiry test (a token signed as the gateway signs, already expired) drive directly, without a
/// running gateway. Nothing else inside the crate is public: the gateway is
/// run through [`run`] with a [`Config`], and everything it serves is tested through its sockets.
pub mod parts {
    pub use crate::channels::{ChannelSet, UnknownChannel};
    pub use crate::edge::token::{Scope, TokenSigner};
    pub use crate::event::StreamEvent;
    pub use crate::fanout::coalesce::Folded;
    pub use crate::fanout::cursor::{Cursor, MalformedCursor};
    pub use crate::fanout::frame::OutFrame;
    pub use crate::fanout::hub::Hub;
    pub use crate::history::latest::{Entries, Latest};
    pub use crate::ingest::debounce::Debouncer;
    pub use crate::metrics::GatewayMetrics;
    pub use crate::server::head::{parse, read_head, HeadError, HeadLimits, MAX_HEADERS};
    pub use crate::transport::admission::ConnectQuery;
}

use gateway::Gateway;

/// Serves until `shutdown`; then drains: `/readyz` turns 503, new connections get 503, open ones
/// close at random moments over `gateway_drain_window` (SSE with a jittered `retry:`, WebSocket
/// with 1012), and it returns once they all have, or after `gateway_drain_timeout`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let running = Gateway::build(config, &shutdown).await?.spawn(listener);
    shutdown.cancelled().await;
    running.drain().await;
    Ok(())
}
