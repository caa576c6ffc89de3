//! The gateway's parts put together, in three steps: [`Gateway::build`] makes every component
//! from its group of settings and the handles it uses; [`Gateway::spawn`] starts them;
//! [`Running::drain`] stops them in order once the shutdown token is cancelled.
//!
//! Each component's build is a small function in the file named after the folder it comes
//! from (`ingest.rs`, `streams.rs`, `edge.rs`, `history.rs`, `fleet.rs`; the routes and what
//! `/status` reads in `router.rs`); the handles several of them hold are made once, in
//! `shared.rs`. The components themselves never see [`Config`]. Inside this module `ingest`,
//! `edge`… are those files: the crate's folders are `crate::ingest`, `crate::edge`….

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod edge;
mod fleet;
mod history;
mod ingest;
mod router;
mod shared;
mod streams;

use crate::config::{Config, ConfigError};
use crate::edge::routes::Minting;
use crate::fanout::Hub;
use crate::fleet::canary::CanaryTask;
use crate::fleet::cluster::Cluster;
use crate::fleet::drain;
use crate::history::fill::Filler;
use crate::ingest::pipeline::Pipeline;
use crate::ingest::thread::IngestThread;
use crate::metrics::GatewayMetrics;
use crate::resume::ring::Ring;
use crate::server::listener::Listener;
use crate::store::feed::Feed;
use crate::store::stream::StreamReader;
use router::RouteParts;
use shared::Shared;

/// After the drain, how long the connections still open get to finish.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the background tasks, then the ingest thread, get to stop once told to: a stop
/// that hangs (a peer that never answers) must not keep the process from exiting.
const BACKGROUND_STOP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Nats(#[from] rakuda_service::nats::ConnectError),
    #[error("cannot start the ingest thread: {0}")]
    Ingest(#[source] std::io::Error),
    #[error("the ingest thread stopped while connecting to NATS")]
    IngestStopped,
    #[error(transparent)]
    Redis(#[from] rakuda_service::redis::RedisSettingError),
}

/// Every component, built and not yet running.
pub(crate) struct Gateway {
    instance: Arc<str>,
    thread: IngestThread,
    nats: async_nats::Client,
    metrics: Arc<GatewayMetrics>,
    hub: Arc<Hub>,
    connected: (watch::Sender<bool>, watch::Receiver<bool>),
    feed: Feed,
    pipeline: Pipeline,
    canary: CanaryTask,
    cluster: Arc<Cluster>,
    filler: Filler,
    /// Fills the resume ring with what the stream held before each start of the feed.
    ring_warmer: (Arc<Ring>, StreamReader),
    listener: Listener,
    drain_timeout: Duration,
}

/// The gateway running: what [`Running::drain`] stops.
pub(crate) struct Running {
    instance: Arc<str>,
    thread: IngestThread,
    hub: Arc<Hub>,
    metrics: Arc<GatewayMetrics>,
    drain_timeout: Duration,
    /// The feed, the pipeline and the watchers: they outlive the drain, so streams keep
    /// receiving until they close.
    background: CancellationToken,
    tasks: TaskTracker,
    stop_accepting: CancellationToken,
    accepting: JoinHandle<()>,
    connections: TaskTracker,
}

impl Gateway {
    /// Connects to NATS (on the ingest thread) and makes every component, each from its group
    /// of settings and the handles it uses. `shutdown` is the drain signal: cancelled on SIGTERM.
    pub(crate) async fn build(
        config: Config,
        shutdown: &CancellationToken,
    ) -> Result<Gateway, Error> {
        config.check()?;
        let instance = fleet::instance_name(&config.fleet);
        let (thread, nats) = ingest::connect(&config.nats, &instance).await?;
        let connected = watch::channel(false);
        let shared = Shared::new(&config, instance, &nats, connected.1.clone(), shutdown);
        let cluster = fleet::cluster(&config.fleet, nats.clone(), &shared);
        let connections = edge::connections(&config.limits, &shared);
        let resumer = streams::resumer(&config.resume, &config.streams, &config.nats, &shared);
        let tokens = Arc::new(edge::token_signer(&config.auth));
        let parts = RouteParts {
            streams: Arc::new(streams::streams(
                &config.streams,
                &config.limits,
                &config.auth,
                resumer,
                connections.clone(),
                &shared,
            )),
            status: Arc::new(router::status(&config, &shared, cluster.clone())),
            minting: Arc::new(Minting {
                tokens: tokens.clone(),
                refusals: shared.refusals.clone(),
            }),
            auth: Arc::new(edge::auth(
                &config.auth,
                config.realtime_enabled,
                tokens,
                &shared,
            )?),
            history: Arc::new(history::history(
                &config.history,
                &config.nats,
                &config.limits,
                connections,
                &shared,
            )?),
        };
        let router = router::router(&config, parts, &shared);
        Ok(Gateway {
            feed: ingest::feed(&config.nats, &shared),
            pipeline: ingest::pipeline(&config.streams, &shared),
            canary: fleet::canary_task(&config.fleet, &shared)?,
            filler: history::filler(&config.nats, &shared),
            ring_warmer: (
                shared.ring.clone(),
                ingest::stream_reader(&config.nats, &shared),
            ),
            listener: edge::listener(&config.limits, &config.auth, router, &shared),
            drain_timeout: config.fleet.gateway_drain_timeout,
            cluster,
            thread,
            nats,
            connected,
            instance: shared.instance,
            metrics: shared.metrics,
            hub: shared.hub,
        })
    }

    /// Starts the background work and serves `listener`.
    pub(crate) fn spawn(self, listener: TcpListener) -> Running {
        let background = CancellationToken::new();
        let tasks = TaskTracker::new();
        crate::ingest::spawn(&self.thread, &tasks, self.feed, self.pipeline, &background);
        let (connected, _) = self.connected;
        let gauge = self.metrics.fleet.clone();
        tasks.spawn(rakuda_service::nats::watch_connection(
            self.nats.clone(),
            background.clone(),
            move |up| {
                gauge.nats_connected.set(if up { 1.0 } else { 0.0 });
                connected.send_replace(up);
            },
        ));
        // Keeps the latency histograms' memory flat when nothing scrapes /metrics.
        tasks.spawn(rakuda_service::metric::keep_up(
            self.metrics.handle(),
            rakuda_service::metric::UPKEEP_INTERVAL,
            background.clone(),
        ));
        tasks.spawn(self.canary.run(background.clone()));
        tasks.spawn(self.cluster.run(background.clone()));
        tasks.spawn(self.filler.run(background.clone()));
        let (ring, reader) = self.ring_warmer;
        tasks.spawn(crate::resume::warm::run(
            ring,
            reader,
            self.metrics.connections.ring_warmed_events.clone(),
            background.clone(),
        ));

        // The listener stays open while draining, so late arrivals get a 503 that names the
        // reason instead of a refused connection; it closes once the last stream is gone.
        let stop_accepting = CancellationToken::new();
        let connections = self.listener.connections.clone();
        let accepting = tokio::spawn(self.listener.run(listener, stop_accepting.clone()));
        tracing::info!(instance = %self.instance, "gateway started");
        Running {
            instance: self.instance,
            thread: self.thread,
            hub: self.hub,
            metrics: self.metrics,
            drain_timeout: self.drain_timeout,
            background,
            tasks,
            stop_accepting,
            accepting,
            connections,
        }
    }
}

impl Running {
    /// Every open stream closes at its moment within the drain window (at most the drain
    /// timeout), then the listener, the connections left, the background tasks and the ingest
    /// thread stop, in that order.
    pub(crate) async fn drain(self) {
        drain::drain(&self.hub, &self.metrics.connections, self.drain_timeout).await;
        self.stop_accepting.cancel();
        let _ = self.accepting.await;
        self.connections.close();
        if tokio::time::timeout(SERVER_STOP_TIMEOUT, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the drain; leaving them");
        }
        self.background.cancel();
        self.tasks.close();
        if tokio::time::timeout(BACKGROUND_STOP_TIMEOUT, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.tasks.len(),
                "background tasks still running after {BACKGROUND_STOP_TIMEOUT:?}; leaving them"
            );
        }
        if tokio::time::timeout(BACKGROUND_STOP_TIMEOUT, self.thread.stop())
            .await
            .is_err()
        {
            tracing::warn!(
                "the ingest thread did not stop within {BACKGROUND_STOP_TIMEOUT:?}; leaving it"
            );
        }
        tracing::info!(instance = %self.instance, "gateway stopped");
    }
}
