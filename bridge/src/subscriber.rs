//! Reads Redis: `PSUBSCRIBE <prefix>*`, routes each message, and hands it to the publisher.
//!
//! The connection is re-established with backoff whenever it drops or stops answering pings.
//! Redis pub/sub does not buffer for absent subscribers, so the reader must never stall: the
//! hand-off queue is bounded and a full queue is waited on only briefly before a message is
//! dropped and counted. Every subscription, and every drop, is a span for [`crate::coverage`]:
//! beacons read on the beacon channel go into the queue as checkpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rakuda_schema::Validator;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::coverage::Coverage;
use crate::metrics::BridgeMetrics;
use crate::publisher::Queued;
use crate::reject_log::{RejectLog, REJECT_LOG_INTERVAL};
use crate::route::{route, Verdict};
use rakuda_service::backoff::Backoff;

/// How long the reader waits for room in a full queue before dropping a message.
const QUEUE_FULL_WAIT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Subscriber {
    client: redis::Client,
    pattern: String,
    prefix: String,
    validator: Validator,
    queue: mpsc::Sender<Queued>,
    metrics: Arc<BridgeMetrics>,
    coverage: Arc<Coverage>,
    /// `<prefix>control:beacon`
    beacon_channel: String,
    rejects: RejectLog,
    /// How often the subscription is pinged, and how long a reply may take, to detect a Redis
    /// that hangs without closing the connection.
    keepalive: Duration,
}

/// Why a subscription ended.
enum End {
    Shutdown,
    /// Redis closed the connection (a restart, or the pub/sub output buffer limit).
    Closed,
    /// Redis stopped answering the keepalive ping.
    Unresponsive,
}

impl Subscriber {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: redis::Client,
        prefix: String,
        validator: Validator,
        queue: mpsc::Sender<Queued>,
        metrics: Arc<BridgeMetrics>,
        coverage: Arc<Coverage>,
        keepalive: Duration,
    ) -> Subscriber {
        Subscriber {
            client,
            pattern: format!("{prefix}*"),
            beacon_channel: format!("{prefix}{}", rakuda_schema::channel::BEACON_CHANNEL),
            prefix,
            validator,
            queue,
            metrics,
            coverage,
            rejects: RejectLog::new(REJECT_LOG_INTERVAL),
            keepalive,
        }
    }

    /// The longest [`Subscriber::run`] may take to return once told to stop: a keepalive ping
    /// may be awaiting its reply (at most the keepalive interval) or a message room in a full
    /// queue (at most `QUEUE_FULL_WAIT`); every other wait gives way to the stop at once.
    pub fn longest_stop(&self) -> Duration {
        self.keepalive.max(QUEUE_FULL_WAIT)
    }

    /// Subscribes and forwards until `shutdown`; dropping `self` closes the queue, which tells
    /// the publisher that no more messages come.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new();
        // Log a failing Redis once, not once per retry.
        let mut warned = false;
        let mut subscribed_before = false;
        loop {
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => return,
                attempt = tokio::time::timeout(CONNECT_TIMEOUT, self.subscribe()) => attempt,
            };
            match attempt {
                Ok(Ok((sink, stream))) => {
                    self.metrics.set_redis_connected(true);
                    if subscribed_before {
                        self.metrics.redis_reconnects.increment(1);
                    }
                    subscribed_before = true;
                    tracing::info!(pattern = %self.pattern, "subscribed to redis");
                    backoff.reset();
                    self.coverage.begin();
                    let end = self.forward(sink, stream, &shutdown).await;
                    self.metrics.set_redis_connected(false);
                    self.coverage.end();
                    match end {
                        End::Shutdown => return,
                        End::Closed => {
                            self.metrics.subscription_ended("connection_closed");
                            tracing::warn!(
                                "redis closed the subscription (a restart, or the subscriber's output buffer passed client-output-buffer-limit pubsub); reconnecting"
                            );
                            warned = true;
                        }
                        End::Unresponsive => {
                            self.metrics.subscription_ended("keepalive_failed");
                            tracing::warn!(
                                "redis stopped answering the keepalive ping; reconnecting"
                            );
                            warned = true;
                        }
                    }
                }
                Ok(Err(error)) => {
                    if !warned {
                        tracing::warn!(%error, "cannot subscribe to redis; retrying with backoff");
                        warned = true;
                    }
                }
                Err(_elapsed) => {
                    if !warned {
                        tracing::warn!(timeout = ?CONNECT_TIMEOUT, "redis did not answer; retrying with backoff");
                        warned = true;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    async fn subscribe(&self) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
        let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
        sink.psubscribe(&self.pattern).await?;
        Ok((sink, stream))
    }

    async fn forward(
        &mut self,
        mut sink: PubSubSink,
        mut stream: PubSubStream,
        shutdown: &CancellationToken,
    ) -> End {
        let mut keepalive = tokio::time::interval(self.keepalive);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keepalive.reset();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return End::Shutdown,
                message = stream.next() => {
                    let Some(message) = message else {
                        return End::Closed;
                    };
                    if message.get_channel_name() == self.beacon_channel {
                        if let Some(checkpoint) = self.coverage.beacon(message.get_payload_bytes()) {
                            // Behind everything read so far; skipping one when the queue is
                            // full only delays what the span can claim.
                            let _ = self.queue.try_send(Queued::Checkpoint(checkpoint));
                        }
                        continue;
                    }
                    let channel = message.get_channel_name().to_owned();
                    let payload = Bytes::copy_from_slice(message.get_payload_bytes());
                    if !self.hand_off(&channel, payload).await {
                        return End::Shutdown;
                    }
                }
                _ = keepalive.tick() => {
                    // In subscribed mode Redis answers PING with ["pong", ""], not +PONG: any
                    // reply proves the connection alive.
                    let ping = tokio::time::timeout(self.keepalive, sink.ping::<redis::Value>()).await;
                    if !matches!(ping, Ok(Ok(_))) {
                        return End::Unresponsive;
                    }
                }
            }
        }
    }

    /// Routes one message and queues it; `false` when the publisher is gone.
    async fn hand_off(&mut self, channel: &str, payload: Bytes) -> bool {
        self.metrics.received.increment(1);
        let outgoing = route(&self.validator, &self.prefix, channel, payload);
        if let Verdict::Rejected(reject) = &outgoing.verdict {
            if let Some(counter) = self.metrics.rejected(reject.reason) {
                counter.increment(1);
            }
            self.rejects.record(reject, channel, Instant::now());
        }
        let outgoing = match self.queue.try_send(Queued::Message(outgoing)) {
            Ok(()) => {
                self.update_queue_depth();
                return true;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(outgoing)) => outgoing,
        };
        // Full: the publisher is behind (NATS slow or down). Wait a little, then drop rather
        // than let Redis disconnect us for an overflowing client output buffer.
        match tokio::time::timeout(QUEUE_FULL_WAIT, self.queue.send(outgoing)).await {
            Ok(Ok(())) => {
                self.update_queue_depth();
                true
            }
            Ok(Err(_closed)) => false,
            Err(_elapsed) => {
                self.metrics.dropped.increment(1);
                self.metrics.subscription_ended("queue_full");
                // What this subscription claims ends here; it carries on as a new one.
                self.coverage.begin();
                tracing::error!(
                    channel = channel.escape_debug().to_string(),
                    capacity = self.queue.max_capacity(),
                    "publish queue full for {QUEUE_FULL_WAIT:?}; message dropped (a source gap unless another bridge stored it)"
                );
                true
            }
        }
    }

    fn update_queue_depth(&self) {
        let depth = self.queue.max_capacity() - self.queue.capacity();
        self.metrics.queue_depth.set(depth as f64);
    }
}
