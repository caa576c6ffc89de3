//! rakuda-gateway: serves the `RAKUDA_REALTIME` stream to browsers over Server-Sent Events.
//!
//! ```text
//! JetStream ─> Feed ─(bounded)─> Pipeline ─────────────> Hub ─(broadcast ring)─> SSE connections
//!  ordered      one per          parse once, debounce,    serialized once,        filter, batch writes,
//!  consumer     instance         cursor = watermark       ring of recent events   heartbeat, resume
//! ```
//!
//! The NATS client, the feed and the pipeline run on the ingest thread ([`ingest`]); the
//! connections on the main runtime.
//!
//! # Layout
//! - [`config`] — settings, validated before anything starts.
//! - [`ingest`] — the thread the NATS client, the feed and the pipeline run on.
//! - [`feed`] — the ordered consumer on the stream.
//! - [`pipeline`] — parse, ring, debounce, publish with a safe cursor.
//! - [`debounce`], [`coalesce`] — the per-type window and how a batch folds events.
//! - [`hub`] — fan-out and the ring of recent events.
//! - [`sse`], [`resume`], [`cursor`], [`frame`] — the SSE endpoint and its wire format.
//! - [`sse_socket`] — SSE requests served straight on the socket, past hyper's buffers.
//! - [`auth`], [`token`], [`channels`] — API keys, signed tokens, channel sets.
//! - [`ws`] — the WebSocket endpoint and its client ops.
//! - [`outbox`] — what every connection shares: start, batched live frames, heartbeat cursor.
//! - [`limits`] — connection limits (per instance, per key) and request size limits.
//! - [`canary`] — the end-to-end probe behind `degraded`.
//! - [`cluster`] — presence and cluster-wide stats over NATS request/reply.
//! - [`stats`], [`metrics`] — `/status`, `/stats`, `/metrics`, `/healthz`, `/readyz`.
//! - [`routes`], [`app`], [`error`] — the router, shared state, JSON errors.

pub mod app;
pub mod auth;
pub mod canary;
pub mod channels;
pub mod cluster;
pub mod coalesce;
pub mod config;
pub mod cursor;
pub mod debounce;
pub mod error;
pub mod event;
pub mod feed;
pub mod frame;
pub mod hub;
pub mod ingest;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod replay_budget;
pub mod resume;
pub mod routes;
pub mod sse;
pub mod sse_socket;
pub mod stats;
pub mod token;
pub mod ws;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

use app::App;
use feed::Feed;
use hub::Hub;
use ingest::IngestThread;
use metrics::GatewayMetrics;
use pipeline::Pipeline;
use sse_socket::SseSocketListener;

/// Stream messages read ahead of the pipeline.
const FEED_QUEUE_CAPACITY: usize = 4_096;
/// How often the drain checks whether every connection has closed.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// After the drain, how long idle keep-alive connections get to close.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot set up the NATS client for NATS_URL: {0}")]
    Nats(#[source] async_nats::ConnectError),
    #[error("cannot start the ingest thread: {0}")]
    Ingest(#[source] std::io::Error),
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Serves until `shutdown`; then drains: `/readyz` turns 503, new connections get 503, open ones
/// close at random moments over `gateway_drain_window` (SSE with a jittered `retry:`, WebSocket
/// with 1012), and it returns once they all have, or after `gateway_drain_timeout`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let instance = config
        .gateway_instance_id
        .clone()
        .unwrap_or_else(|| format!("gw-{:06x}", rand::random::<u32>() & 0xff_ffff));
    let metrics = Arc::new(GatewayMetrics::new());
    metrics.max_connections.set(config.max_connections as f64);
    // The NATS client lives on the ingest thread: its connection task reads the stream there.
    let ingest = IngestThread::start().map_err(Error::Ingest)?;
    let nats = ingest
        .spawn(rakuda_service::nats::connect(
            format!("rakuda-gateway {instance}"),
            config.nats_url.clone(),
        ))
        .await
        .map_err(|join| Error::Ingest(std::io::Error::other(join.to_string())))?
        .map_err(Error::Nats)?;
    let jetstream = async_nats::jetstream::context::ContextBuilder::new()
        .timeout(rakuda_service::nats::REQUEST_TIMEOUT)
        .build(nats.clone());
    let hub = Arc::new(Hub::new(
        config.client_queue_capacity,
        config.replay_ring_capacity,
    ));
    let drain_timeout = config.gateway_drain_timeout;
    let stream_name = config.stream_name.clone();
    let app = Arc::new(App::new(
        config,
        instance.clone(),
        hub,
        metrics.clone(),
        jetstream.clone(),
        nats.clone(),
        shutdown.clone(),
    ));
    tracing::info!(%instance, "gateway starting");

    // The feed and pipeline outlive the drain so streams keep receiving until they close.
    let background = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (feed_out, feed_in) = mpsc::channel(FEED_QUEUE_CAPACITY);
    let (connected_tx, connected) = tokio::sync::watch::channel(false);
    tasks.spawn_on(
        Feed {
            jetstream,
            stream_name,
            connected,
            failures: metrics.feed_failures.clone(),
        }
        .run(feed_out, background.clone()),
        ingest.handle(),
    );
    tasks.spawn_on(
        Pipeline::new(app.clone()).run(feed_in, background.clone()),
        ingest.handle(),
    );
    let gauge = metrics.clone();
    tasks.spawn(rakuda_service::nats::watch_connection(
        nats.clone(),
        background.clone(),
        move |connected| {
            gauge.nats_connected.set(if connected { 1.0 } else { 0.0 });
            connected_tx.send_replace(connected);
        },
    ));
    // Keeps the latency histograms' memory flat when nothing scrapes /metrics.
    tasks.spawn(rakuda_service::metric::keep_up(
        metrics.handle(),
        rakuda_service::metric::UPKEEP_INTERVAL,
        background.clone(),
    ));
    tasks.spawn(canary::run(app.clone(), background.clone()));
    tasks.spawn(cluster::run(app.clone(), background.clone()));

    // The listener stays open while draining, so late arrivals get a 503 that names the reason
    // instead of a refused connection; it closes once the last stream is gone.
    let stop_serving = CancellationToken::new();
    let stall_timeout = app.config.client_stall_timeout;
    let listener = listener.tap_io(move |tcp| tune_client_socket(tcp, stall_timeout));
    let router = routes::router(app.clone());
    // SSE streams are served straight on their sockets (see sse_socket); these tasks own them.
    let sse_connections = TaskTracker::new();
    let listener = SseSocketListener::new(
        listener,
        app.clone(),
        router.clone(),
        sse_connections.clone(),
    );
    // `into_make_service` shares one finished router across connections; serving a `Router`
    // directly re-applies its state per connection, rebuilding the route table (about 6 KiB for
    // every client, measured with massif).
    let server = axum::serve(listener, router.into_make_service())
        .with_graceful_shutdown(stop_serving.clone().cancelled_owned())
        .into_future();
    let mut server = tokio::spawn(server);
    let failed = tokio::select! {
        result = &mut server => Some(result),
        _ = shutdown.cancelled() => None,
    };
    let result = match failed {
        Some(result) => result,
        None => {
            // Every open stream picks its moment to close (connections that subscribe from now
            // on see `draining` themselves).
            app.hub.drain();
            tracing::info!(
                connections = app.connections.total(),
                window = ?app.config.gateway_drain_window,
                timeout = ?drain_timeout,
                "draining: /readyz is 503, new connections are refused, open ones close spread over the window"
            );
            let drained = tokio::time::timeout(drain_timeout, async {
                while app.connections.total() > 0 {
                    tokio::time::sleep(DRAIN_POLL).await;
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!(
                    connections = app.connections.total(),
                    "drain timeout expired; closing the rest"
                );
            }
            stop_serving.cancel();
            match tokio::time::timeout(SERVER_STOP_TIMEOUT, &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    server.abort();
                    Ok(Ok(()))
                }
            }
        }
    };
    // Every SSE stream has ended by now (drained or timed out with the server); give the
    // tasks a moment to write their last bytes.
    sse_connections.close();
    if tokio::time::timeout(SERVER_STOP_TIMEOUT, sse_connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("SSE connections still open after the server stopped; leaving them");
    }
    background.cancel();
    tasks.close();
    tasks.wait().await;
    ingest.stop().await;
    tracing::info!(%instance, "gateway stopped");
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Error::Serve(error)),
        // A panic in the server task; nothing to return but the fact.
        Err(join) => Err(Error::Serve(std::io::Error::other(join.to_string()))),
    }
}

/// Every accepted client socket: frames go out as soon as they are written (no Nagle delay), and
/// a peer that stops reading for `stall_timeout` is disconnected by the kernel, which is the
/// only party that sees a send that makes no progress.
fn tune_client_socket(tcp: &mut TcpStream, stall_timeout: Duration) {
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on a client socket");
    }
    if let Err(error) = socket2::SockRef::from(&*tcp).set_tcp_user_timeout(Some(stall_timeout)) {
        tracing::debug!(%error, "cannot set TCP_USER_TIMEOUT on a client socket");
    }
}
