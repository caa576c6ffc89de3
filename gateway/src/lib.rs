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

pub mod channels;
pub mod config;
pub mod edge;
pub mod event;
pub mod fanout;
pub mod fleet;
pub mod gateway;
pub mod history;
pub mod ingest;
pub mod metrics;
pub mod paths;
pub mod resume;
pub mod server;
pub mod status;
pub mod store;
pub mod transport;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use gateway::Error;

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
