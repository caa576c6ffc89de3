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

use std::sync::Arc;

use rakuda_schema::Validator;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use metrics::BridgeMetrics;

use coverage::{Coverage, CoverageTask};
use publisher::Publisher;
use subscriber::Subscriber;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] config::CheckError),
    #[error(transparent)]
    Redis(#[from] rakuda_service::redis::RedisSettingError),
    #[error(transparent)]
    Nats(#[from] rakuda_service::nats::ConnectError),
    #[error("{0}")]
    Listen(String),
    #[error("the {0} task stopped unexpectedly")]
    TaskEnded(&'static str),
}

/// Runs the bridge until `shutdown` is cancelled, then drains: stops reading Redis, publishes
/// what is queued and waits for in-flight acks, at most `bridge_drain_timeout`. Binds
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
    let metrics = Arc::new(BridgeMetrics::new());
    let tasks = TaskTracker::new();
    // Background tasks outlive the drain so the last metrics can still be scraped.
    let background = CancellationToken::new();
    tasks.spawn(http::serve(
        metrics_listener,
        metrics.clone(),
        background.clone(),
    ));
    // Keeps the publish-latency histogram's memory flat when nothing scrapes /metrics.
    tasks.spawn(rakuda_service::metric::keep_up(
        metrics.handle(),
        rakuda_service::metric::UPKEEP_INTERVAL,
        background.clone(),
    ));

    config.check()?;
    let redis =
        rakuda_service::redis::client(config.redis_url.expose(), config.redis_tls_ca.as_deref())?;
    let nats = rakuda_service::nats::connect(
        "rakuda-bridge".into(),
        config.nats_url.clone(),
        &config.nats_auth,
        rakuda_service::nats::BRIDGE_INBOX_PREFIX,
    )
    .await?;
    let gauge = metrics.clone();
    tasks.spawn(rakuda_service::nats::watch_connection(
        nats.clone(),
        background.clone(),
        move |connected| gauge.set_nats_connected(connected),
    ));
    let jetstream = jetstream_context(nats.clone(), config.bridge_max_in_flight);
    // Stops when the Redis reader does, before the drain; requests under way finish.
    let stop_publish_api = shutdown.child_token();
    if let Some(listener) = publish_listener {
        // Its own context: HTTP publishes never take places in the Redis path's ack window.
        let context = jetstream_context(nats.clone(), config.bridge_max_in_flight);
        let settings = config.publish_api().map_err(config::CheckError::from)?;
        let api = publish_api::PublishApi::new(context, settings, metrics.clone());
        tasks.spawn(publish_api::serve(
            listener,
            Arc::new(api),
            stop_publish_api.clone(),
        ));
    }

    // Beacons and the registry first, so the first subscription knows where it begins.
    let coverage = Arc::new(Coverage::new());
    coverage.attach_gauge(metrics.stored_through_beacon.clone());
    let stop_coverage = CancellationToken::new();
    let coverage_task = tokio::spawn(
        CoverageTask::new(
            redis.clone(),
            &config.redis_channel_prefix,
            coverage.clone(),
            jetstream.clone(),
            metrics.clone(),
            config.bridge_beacon_interval,
        )
        .run(stop_coverage.clone()),
    );

    let (queue, queued) = mpsc::channel(config.bridge_queue_capacity);
    let subscriber = Subscriber::new(
        redis,
        config.redis_channel_prefix.clone(),
        Validator::new(config.event_max_bytes),
        queue,
        metrics.clone(),
        coverage.clone(),
        config.redis_keepalive,
    );
    let drain_timeout = config.bridge_drain_timeout;
    // The reader stops on this token: on shutdown, or when the publisher died unexpectedly.
    let stop_reading = shutdown.child_token();
    let mut reader = tokio::spawn(subscriber.run(stop_reading.clone()));
    let mut publisher = tokio::spawn(
        Publisher::new(jetstream, config.publisher(), metrics.clone(), coverage).run(queued),
    );

    let (mut reader_done, mut publisher_done) = (false, false);
    let outcome = tokio::select! {
        // Biased: the reader also ends on shutdown, and that is not a failure.
        biased;
        _ = shutdown.cancelled() => Ok(()),
        _ = &mut reader => {
            reader_done = true;
            Err(Error::TaskEnded("redis subscriber"))
        }
        _ = &mut publisher => {
            publisher_done = true;
            Err(Error::TaskEnded("publisher"))
        }
    };

    tracing::info!("shutting down: no more reads from redis; draining queued events and acks");
    stop_reading.cancel();
    stop_publish_api.cancel();
    if !reader_done {
        let _ = reader.await;
    }
    if !publisher_done {
        match tokio::time::timeout(drain_timeout, &mut publisher).await {
            Ok(_) => tracing::info!("drained: every queued event was acknowledged"),
            Err(_) => {
                publisher.abort();
                tracing::warn!(timeout = ?drain_timeout, "drain timeout expired with events unacknowledged");
            }
        }
    }
    // What this bridge read is stored (or the drain gave up): its subscription ends in the
    // registry, so another bridge, or its successor, decides whether anyone covered it.
    stop_coverage.cancel();
    if let Ok(coverage_task) = coverage_task.await {
        coverage_task.close().await;
    }
    if let Err(error) = nats.flush().await {
        tracing::debug!(%error, "final NATS flush failed");
    }
    background.cancel();
    tasks.close();
    tasks.wait().await;
    outcome
}

fn jetstream_context(
    client: async_nats::Client,
    max_in_flight: usize,
) -> async_nats::jetstream::Context {
    async_nats::jetstream::context::ContextBuilder::new()
        .timeout(rakuda_service::nats::REQUEST_TIMEOUT)
        .max_ack_inflight(max_in_flight)
        .backpressure_on_inflight(true)
        .build(client)
}
