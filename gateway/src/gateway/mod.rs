//! The gateway's parts put together, in three steps: [`Gateway::build`] makes every component
//! and hands each the few handles it uses; [`Gateway::spawn`] starts them; [`Running::drain`]
//! stops them in order once the shutdown token is cancelled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod router;

use crate::config::{Config, ConfigError};
use crate::edge::auth::Auth;
use crate::edge::auth_failures::AuthFailures;
use crate::edge::client_addr::TrustedProxies;
use crate::edge::connection_rate::ConnectionRate;
use crate::edge::limits::Connections;
use crate::edge::origin::AllowedOrigins;
use crate::edge::routes::Minting;
use crate::edge::unauthenticated::Unauthenticated;
use crate::edge::ApiKeys;
use crate::edge::Refusals;
use crate::fanout::Hub;
use crate::fleet::canary::{Canary, CanaryTask};
use crate::fleet::cluster::Cluster;
use crate::fleet::drain::{self, DrainSignal};
use crate::history::fill::Filler;
use crate::history::latest::Latest;
use crate::ingest::pipeline::{Pipeline, PipelineOutputs, PipelineSettings};
use crate::ingest::thread::IngestThread;
use crate::ingest::{self, Reading};
use crate::metrics::GatewayMetrics;
use crate::resume::budget::ReplayBudget;
use crate::resume::ring::Ring;
use crate::resume::{BackfillCounts, ResumeLimits, Resumer};
use crate::server::head::HeadLimits;
use crate::server::listener::Listener;
use crate::status::StatusSources;
use crate::store::feed::Feed;
use crate::store::stream::StreamReader;
use crate::transport::{StreamSettings, Streams};
use rakuda_schema::{Channel, EventType};
use router::{router, shown_settings, token_signer, RouteParts};

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
    /// Connects to NATS (on the ingest thread) and makes every component. `shutdown` is the
    /// drain signal: cancelled on SIGTERM.
    pub(crate) async fn build(
        config: Config,
        shutdown: &CancellationToken,
    ) -> Result<Gateway, Error> {
        config.check()?;
        let instance: Arc<str> = config
            .fleet
            .gateway_instance_id
            .clone()
            .unwrap_or_else(|| format!("gw-{:06x}", rand::random::<u32>() & 0xff_ffff))
            .into();
        let metrics = Arc::new(GatewayMetrics::new());
        metrics
            .fleet
            .max_connections
            .set(config.limits.max_connections as f64);
        // The NATS client lives on the ingest thread: its connection task reads the stream there.
        let thread = IngestThread::start().map_err(Error::Ingest)?;
        let nats = thread
            .spawn({
                let (servers, auth) = (config.nats.nats_url.clone(), config.nats.nats_auth.clone());
                let name = format!("rakuda-gateway {instance}");
                async move {
                    let inbox = rakuda_service::nats::GATEWAY_INBOX_PREFIX;
                    rakuda_service::nats::connect(name, servers, &auth, inbox).await
                }
            })
            .await
            .map_err(|_| Error::IngestStopped)??;
        let jetstream = async_nats::jetstream::context::ContextBuilder::new()
            .timeout(rakuda_service::nats::REQUEST_TIMEOUT)
            .build(nats.clone());
        let connected = watch::channel(false);
        let hub = Arc::new(Hub::new(config.streams.client_queue_capacity));
        let ring = Arc::new(Ring::new(config.resume.replay_ring_capacity));
        let latest = Arc::new(Latest::new(metrics.history.clone()));
        let canary = Arc::new(Canary::new(
            config.fleet.canary_interval,
            config.fleet.canary_degraded_after,
        ));
        let reading = Reading::default();
        let refusals = Refusals::new(metrics.edge.clone());
        let drain = DrainSignal::new(shutdown.clone(), config.fleet.gateway_drain_window);
        let tokens = Arc::new(token_signer(&config));
        let cluster = Arc::new(Cluster::new(
            nats.clone(),
            instance.clone(),
            metrics.clone(),
            config.fleet.cluster_stats_timeout,
        ));

        let feed = Feed {
            jetstream: jetstream.clone(),
            stream_name: config.nats.stream_name.clone(),
            connected: connected.1.clone(),
            failures: metrics.ingest.feed_failures.clone(),
        };
        let pipeline = Pipeline::new(
            PipelineOutputs {
                hub: hub.clone(),
                ring: ring.clone(),
                latest: latest.clone(),
                metrics: metrics.ingest.clone(),
                reading: reading.clone(),
                canary: canary.clone(),
                instance: instance.clone(),
            },
            PipelineSettings {
                debounce_window: config.streams.debounce_window(),
                max_batch_events: config.streams.debounce_max_batch_events,
                heartbeat_interval: config.streams.heartbeat_interval(),
            },
        );
        // Streams and history answers take their slots from the same limits.
        let connections = Connections::new(
            config.limits.max_connections,
            config.limits.max_connections_per_key,
        );
        let streams = Arc::new(Streams::new(
            Resumer {
                hub: hub.clone(),
                ring: ring.clone(),
                stream: StreamReader {
                    jetstream: jetstream.clone(),
                    name: config.nats.stream_name.clone(),
                },
                budget: ReplayBudget::new(
                    config.resume.replay_budget_bytes,
                    config.resume.replay_connection_max_bytes,
                    metrics.connections.replay_bytes_in_flight.clone(),
                ),
                metrics: metrics.connections.clone(),
                limits: ResumeLimits {
                    max_batch_events: config.streams.debounce_max_batch_events,
                    max_events: config.resume.resume_max_events,
                    backfill_max_events: config.resume.backfill_max_events,
                    backfill_max_age: config.resume.backfill_max_age,
                },
                counts: BackfillCounts::new(&metrics.history),
            },
            connections.clone(),
            ConnectionRate::new(
                config.limits.connection_rate_limit,
                config.limits.connection_rate_burst,
                config.limits.connection_rate_retry_max,
            ),
            drain.clone(),
            refusals.clone(),
            metrics.connections.clone(),
            instance.clone(),
            StreamSettings {
                sse_retry_ms: config.streams.sse_retry,
                ws_max_frame_bytes: config.streams.ws_max_frame_bytes,
                ws_max_bad_frames: config.streams.ws_max_bad_frames,
            },
            AllowedOrigins::new(config.auth.cors_origins.clone()),
        ));
        let status = Arc::new(StatusSources {
            instance: instance.clone(),
            started: Instant::now(),
            metrics: metrics.clone(),
            hub: hub.clone(),
            reading,
            nats_connected: connected.1.clone(),
            canary: canary.clone(),
            drain,
            cluster: cluster.clone(),
            refusals: refusals.clone(),
            settings: shown_settings(&config),
        });
        let auth = Arc::new(Auth {
            keys: ApiKeys::from(config.auth.api_keys()?),
            tokens: tokens.clone(),
            refusals: refusals.clone(),
            failures: AuthFailures::new(
                std::num::NonZeroU32::new(config.auth.auth_failures_per_minute)
                    .unwrap_or(std::num::NonZeroU32::MIN),
            ),
            proxies: TrustedProxies::new(config.auth.trusted_proxies.clone()),
            enabled: config.realtime_enabled,
        });
        let minting = Arc::new(Minting {
            tokens,
            refusals: refusals.clone(),
        });
        let warm_reader = StreamReader {
            jetstream: jetstream.clone(),
            name: config.nats.stream_name.clone(),
        };
        let filler = Filler {
            latest: latest.clone(),
            jetstream: jetstream.clone(),
            stream_name: rakuda_schema::channel::latest_stream_name(&config.nats.stream_name),
            event_stream: config.nats.stream_name.clone(),
            metrics: metrics.history.clone(),
        };
        let history = Arc::new(router::history(
            &config,
            jetstream,
            latest,
            refusals.clone(),
            &metrics.history,
            connections,
        )?);
        let parts = RouteParts {
            streams,
            status,
            minting,
            auth,
            history,
        };
        let router = router(&config, parts, refusals.clone());
        let redis = rakuda_service::redis::client(
            config.fleet.redis_url.expose(),
            config.fleet.redis_tls_ca.as_deref(),
        )?;
        Ok(Gateway {
            canary: CanaryTask {
                redis,
                channel: Channel::of(EventType::Canary)
                    .redis_channel(&config.fleet.redis_channel_prefix),
                instance: instance.clone(),
                canary,
                metrics: metrics.fleet.clone(),
            },
            listener: Listener {
                router,
                limits: HeadLimits {
                    max_uri_bytes: config.limits.max_uri_bytes,
                    max_header_bytes: config.limits.max_header_bytes,
                },
                read_timeout: config.limits.request_read_timeout,
                unauthenticated: Unauthenticated::new(
                    config.limits.max_unauthenticated_connections,
                    config.limits.max_unauthenticated_per_address,
                    TrustedProxies::new(config.auth.trusted_proxies.clone()),
                    metrics.edge.unauthenticated.clone(),
                ),
                refusals,
                stall_timeout: config.limits.client_stall_timeout,
                connections: TaskTracker::new(),
            },
            drain_timeout: config.fleet.gateway_drain_timeout,
            instance,
            thread,
            nats,
            metrics,
            hub,
            connected,
            feed,
            pipeline,
            cluster,
            filler,
            ring_warmer: (ring, warm_reader),
        })
    }

    /// Starts the background work and serves `listener`.
    pub(crate) fn spawn(self, listener: TcpListener) -> Running {
        let background = CancellationToken::new();
        let tasks = TaskTracker::new();
        ingest::spawn(&self.thread, &tasks, self.feed, self.pipeline, &background);
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
