//! rakuda-bridge: mirrors the Redis pub/sub channels `rakuda:realtime:*` into the NATS
//! JetStream stream `RAKUDA_REALTIME`.
//!
//! ```text
//! Redis PSUBSCRIBE ──> Subscriber ──(bounded queue)──> Publisher ──> JetStream
//!                      validate, route                 pipelined acks, in-order retry
//!                      invalid -> rakuda.dlq.realtime
//! ```
//!
//! # Layout
//! - [`bridge`] — the parts put together: [`Bridge::build`], then `spawn`, then `drain`, each
//!   wait of the drain with a deadline.
//! - [`config`] — settings from env / command line, validated before anything starts.
//! - [`subscriber`] — the Redis side, with reconnect and keepalive.
//! - [`route`] — valid event → its subject with a `Nats-Msg-Id`; invalid → the DLQ.
//! - [`publisher`] — the JetStream side, many acks in flight, retries without reordering.
//! - [`streams`] — idempotent creation of the event and DLQ streams.
//! - [`metrics`], [`http`] — `/metrics`, `/healthz`, `/readyz`.
//! - [`publish_api`] — `POST /api/realtime/publish` on `BRIDGE_HTTP_ADDR`: events over HTTP,
//!   answered after JetStream's ack, with their own JetStream context beside the Redis path.
//! - [`reject_log`] — rate-limited reject logging.
//! - [`coverage`] — beacons and the registry the bridges share: gap markers when nobody was
//!   subscribed to Redis.

pub mod bridge;
pub mod config;
pub mod coverage;
pub mod http;
pub mod metrics;
pub mod publish_api;
pub mod publisher;
pub mod reject_log;
pub mod route;
pub mod streams;
pub mod subscriber;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use bridge::{Bridge, Error};
pub use config::Config;
pub use metrics::BridgeMetrics;

/// Runs the bridge until `shutdown` is cancelled, then drains: stops reading Redis, publishes
/// what is queued and waits for in-flight acks, at most `bridge_drain_timeout` (every other
/// step of the drain has its own deadline: [`bridge::Running::drain`]). Binds
/// `BRIDGE_HTTP_ADDR` itself when it is set.
pub async fn run(
    config: Config,
    metrics_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let publish_listener = match config.publish.bridge_http_addr {
        Some(addr) => Some(
            rakuda_service::startup::bind("rakuda-bridge", "BRIDGE_HTTP_ADDR", addr)
                .await
                .map_err(|error| Error::Listen(error.to_string()))?,
        ),
        None => None,
    };
    run_with(config, metrics_listener, publish_listener, shutdown).await
}

/// [`run`] on listeners bound by the caller; `publish_listener` serves the publish API.
pub async fn run_with(
    config: Config,
    metrics_listener: TcpListener,
    publish_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let mut running = Bridge::build(config)
        .await?
        .spawn(metrics_listener, publish_listener);
    let outcome = running.wait(&shutdown).await;
    running.drain().await;
    outcome
}
