//! The bridge's parts put together, in three steps, as in the gateway: [`Bridge::build`] checks
//! the settings and makes every part, handing each only the settings it reads;
//! [`Bridge::spawn`] starts them; [`Running::drain`] stops them in order. Every wait of the drain
//! has a deadline, so a Redis or NATS that is gone or hangs cannot keep the bridge from exiting.

use std::sync::Arc;
use std::time::Duration;

use rakuda_schema::Validator;
use rakuda_service::nats::REQUEST_TIMEOUT;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, Config};
use crate::coverage::{Coverage, CoverageTask};
use crate::http;
use crate::metrics::BridgeMetrics;
use crate::publish_api::{self, PublishApi};
use crate::publisher::{Publisher, Queued};
use crate::subscriber::Subscriber;

/// Room beyond the longest wait a drain step is known to contain, for a machine under load to
/// run the task that ends it: a step past it is stuck, not slow.
const STOP_MARGIN: Duration = Duration::from_secs(1);

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

/// Every part, built and not yet running.
pub struct Bridge {
    metrics: Arc<BridgeMetrics>,
    nats: async_nats::Client,
    /// Served only when [`Bridge::spawn`] is given its listener.
    publish_api: PublishApi,
    coverage_task: CoverageTask,
    subscriber: Subscriber,
    publisher: (Publisher, mpsc::Receiver<Queued>),
    deadlines: Deadlines,
}

/// How long each step of the drain may take.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    /// The Redis reader: its longest wait that does not give way to the stop, plus the margin.
    reader: Duration,
    /// Queued events and in-flight acks: `BRIDGE_DRAIN_TIMEOUT`.
    publisher: Duration,
    /// The metrics server and the publish API: a request under way finishes within
    /// `PUBLISH_TIMEOUT` of its start, and it started before the drain did.
    background: Duration,
}

/// The bridge running: what [`Running::drain`] stops.
pub struct Running {
    /// `None` once it returned (by itself, before the drain).
    reader: Option<JoinHandle<()>>,
    publisher: Option<JoinHandle<()>>,
    coverage: JoinHandle<CoverageTask>,
    stop_reading: CancellationToken,
    stop_publish_api: CancellationToken,
    stop_coverage: CancellationToken,
    nats: async_nats::Client,
    /// The metrics server and the watchers: they outlive the drain so the last metrics can
    /// still be scraped.
    background: CancellationToken,
    tasks: TaskTracker,
    deadlines: Deadlines,
}

impl Bridge {
    /// Checks the settings and makes every part. Nothing here waits on Redis or NATS: the Redis
    /// client connects when first used, and the NATS client is made at once and connects in its
    /// own task (so the bridge can start before NATS); only the credential files are read.
    pub async fn build(config: Config) -> Result<Bridge, Error> {
        config.check()?;
        let metrics = Arc::new(BridgeMetrics::new());
        let redis = rakuda_service::redis::client(
            config.redis_url.expose(),
            config.redis_tls_ca.as_deref(),
        )?;
        let nats = rakuda_service::nats::connect(
            "rakuda-bridge".into(),
            config.nats_url.clone(),
            &config.nats_auth,
            rakuda_service::nats::BRIDGE_INBOX_PREFIX,
        )
        .await?;
        let jetstream = jetstream_context(nats.clone(), config.bridge_max_in_flight);
        // Its own context: HTTP publishes never take places in the Redis path's ack window.
        let publish_api = PublishApi::new(
            jetstream_context(nats.clone(), config.bridge_max_in_flight),
            config.publish_api().map_err(config::CheckError::from)?,
            metrics.clone(),
        );

        let coverage = Arc::new(Coverage::new());
        coverage.attach_gauge(metrics.stored_through_beacon.clone());
        let coverage_task = CoverageTask::new(
            redis.clone(),
            &config.redis_channel_prefix,
            coverage.clone(),
            jetstream.clone(),
            metrics.clone(),
            config.bridge_beacon_interval,
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
        let publisher = Publisher::new(jetstream, config.publisher(), metrics.clone(), coverage);
        let deadlines = Deadlines {
            reader: subscriber.longest_stop() + STOP_MARGIN,
            publisher: config.bridge_drain_timeout,
            background: config.publish.publish_timeout + STOP_MARGIN,
        };
        Ok(Bridge {
            metrics,
            nats,
            publish_api,
            coverage_task,
            subscriber,
            publisher: (publisher, queued),
            deadlines,
        })
    }

    /// Serves `/metrics` on `metrics_listener` and the publish API on `publish_listener`, and
    /// starts mirroring Redis into the stream.
    pub fn spawn(
        self,
        metrics_listener: TcpListener,
        publish_listener: Option<TcpListener>,
    ) -> Running {
        let tasks = TaskTracker::new();
        let background = CancellationToken::new();
        tasks.spawn(http::serve(
            metrics_listener,
            self.metrics.clone(),
            background.clone(),
        ));
        // Keeps the publish-latency histogram's memory flat when nothing scrapes /metrics.
        tasks.spawn(rakuda_service::metric::keep_up(
            self.metrics.handle(),
            rakuda_service::metric::UPKEEP_INTERVAL,
            background.clone(),
        ));
        let gauge = self.metrics.clone();
        tasks.spawn(rakuda_service::nats::watch_connection(
            self.nats.clone(),
            background.clone(),
            move |connected| gauge.set_nats_connected(connected),
        ));
        // Stops when the Redis reader does, before the drain; requests under way finish.
        let stop_publish_api = CancellationToken::new();
        if let Some(listener) = publish_listener {
            tasks.spawn(publish_api::serve(
                listener,
                Arc::new(self.publish_api),
                stop_publish_api.clone(),
            ));
        }

        // Beacons and the registry first, so the first subscription knows where it begins.
        let stop_coverage = CancellationToken::new();
        let coverage = tokio::spawn(self.coverage_task.run(stop_coverage.clone()));
        // The reader stops on this token: on shutdown, or when the publisher died unexpectedly.
        let stop_reading = CancellationToken::new();
        let reader = tokio::spawn(self.subscriber.run(stop_reading.clone()));
        let (publisher, queued) = self.publisher;
        let publisher = tokio::spawn(publisher.run(queued));
        Running {
            reader: Some(reader),
            publisher: Some(publisher),
            coverage,
            stop_reading,
            stop_publish_api,
            stop_coverage,
            nats: self.nats,
            background,
            tasks,
            deadlines: self.deadlines,
        }
    }
}

impl Running {
    /// Until `shutdown` is cancelled; an error when the reader or the publisher stopped by
    /// itself before, which they never do unless something is badly wrong.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> Result<(), Error> {
        let (Some(reader), Some(publisher)) = (&mut self.reader, &mut self.publisher) else {
            return Err(Error::TaskEnded("redis subscriber or publisher"));
        };
        let reader_ended = tokio::select! {
            // Biased: the reader also ends on shutdown, and that is not a failure.
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            _ = reader => true,
            _ = publisher => false,
        };
        // Awaited already: the drain must not await it again (a finished handle panics).
        if reader_ended {
            self.reader = None;
            Err(Error::TaskEnded("redis subscriber"))
        } else {
            self.publisher = None;
            Err(Error::TaskEnded("publisher"))
        }
    }

    /// Stops reading Redis, publishes what is queued and waits for the in-flight acks (at most
    /// `BRIDGE_DRAIN_TIMEOUT`), reports the end of this bridge's subscription, then stops the
    /// rest. A step that passes its deadline is logged as a warning and left behind.
    pub async fn drain(mut self) {
        tracing::info!("shutting down: no more reads from redis; draining queued events and acks");
        self.stop_reading.cancel();
        self.stop_publish_api.cancel();
        if let Some(mut reader) = self.reader.take() {
            let deadline = self.deadlines.reader;
            if tokio::time::timeout(deadline, &mut reader).await.is_err() {
                // Dropping it closes the queue, which tells the publisher nothing more comes.
                reader.abort();
                tracing::warn!(
                    timeout = ?deadline,
                    "the redis reader did not stop in time; stopped it (a message it was queueing, if any, is not published)"
                );
            }
        }
        if let Some(mut publisher) = self.publisher.take() {
            let deadline = self.deadlines.publisher;
            match tokio::time::timeout(deadline, &mut publisher).await {
                Ok(_) => tracing::info!("drained: every queued event was acknowledged"),
                Err(_) => {
                    publisher.abort();
                    tracing::warn!(timeout = ?deadline, "drain timeout expired with events unacknowledged");
                }
            }
        }
        // What this bridge read is stored (or the drain gave up): its subscription ends in the
        // registry, so another bridge, or its successor, decides whether anyone covered it.
        self.stop_coverage.cancel();
        // The task gives way to the stop at once; `close` reports within CLOSE_TIMEOUT.
        match tokio::time::timeout(STOP_MARGIN, &mut self.coverage).await {
            Ok(Ok(coverage_task)) => coverage_task.close().await,
            Ok(Err(_)) => {}
            Err(_) => {
                self.coverage.abort();
                tracing::warn!(
                    timeout = ?STOP_MARGIN,
                    "the coverage task did not stop in time; this bridge's end is not reported (the other bridges will notice it is gone)"
                );
            }
        }
        // Every ack that mattered is in (or the drain gave up): this is what is left in the
        // client's buffer. It waits for a connection, so NATS gone would hold it for ever.
        match tokio::time::timeout(REQUEST_TIMEOUT, self.nats.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "final NATS flush failed"),
            Err(_) => tracing::warn!(
                timeout = ?REQUEST_TIMEOUT,
                "the final NATS flush did not finish in time (NATS unreachable); leaving it"
            ),
        }
        self.background.cancel();
        self.tasks.close();
        let deadline = self.deadlines.background;
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout = ?deadline,
                tasks = self.tasks.len(),
                "the metrics server or the publish API did not stop in time; leaving them"
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Building waits on no server, so it needs no deadline of its own: a NATS that takes the
    /// connection and never answers (a listener nobody accepts on) does not hold it up.
    #[tokio::test]
    async fn building_waits_on_no_server() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = silent.local_addr().expect("addr");
        let config = Config::new(
            format!("redis://{addr}"),
            vec![format!("nats://{addr}").parse().expect("nats url")],
        );
        let built = tokio::time::timeout(Duration::from_secs(5), Bridge::build(config))
            .await
            .expect("build returns without waiting for the servers");
        assert!(built.is_ok(), "{:?}", built.err());
    }
}
