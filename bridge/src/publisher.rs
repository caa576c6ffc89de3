//! Publishes routed messages to JetStream with many acks in flight, without losing or
//! reordering anything when NATS fails.
//!
//! Messages are sent in queue order and their acks resolve in the same order. When an ack
//! fails (timeout, disconnect), the failed message and every later one still in flight are sent
//! again, in order, after a backoff: those JetStream had already stored are recognised by their
//! `Nats-Msg-Id` and not stored twice, so the stream keeps Redis's order.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, publish::PublishAck};
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::metrics::BridgeMetrics;
use crate::route::{Outgoing, Verdict};
use crate::streams;
use rakuda_service::backoff::Backoff;

type AckFuture = BoxFuture<'static, Result<PublishAck, PublishError>>;

pub struct Publisher {
    jetstream: jetstream::Context,
    config: Config,
    metrics: Arc<BridgeMetrics>,
}

/// Messages sent and awaiting their acks, oldest first; `acks` resolves in the same order.
struct Window {
    sent: VecDeque<(Outgoing, Instant)>,
    acks: FuturesOrdered<AckFuture>,
}

impl Publisher {
    pub fn new(
        jetstream: jetstream::Context,
        config: Config,
        metrics: Arc<BridgeMetrics>,
    ) -> Publisher {
        Publisher {
            jetstream,
            config,
            metrics,
        }
    }

    /// Makes sure the streams exist, retrying with backoff until NATS answers.
    pub async fn ensure_streams(&self) {
        let mut backoff = Backoff::new();
        let mut warned = false;
        loop {
            match streams::ensure(&self.jetstream, &self.config).await {
                Ok(info) => {
                    tracing::info!(
                        stream = %info.config.name,
                        last_sequence = info.state.last_sequence,
                        messages = info.state.messages,
                        "stream ready"
                    );
                    return;
                }
                Err(error) => {
                    if !warned {
                        tracing::warn!(%error, stream = %self.config.stream_name, "cannot create or update the stream; retrying with backoff");
                        warned = true;
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Publishes until `queue` is closed and empty and every ack is in.
    pub async fn run(self, mut queue: mpsc::Receiver<Outgoing>) {
        self.ensure_streams().await;
        let max_in_flight = self.config.bridge_max_in_flight;
        let mut window = Window {
            sent: VecDeque::with_capacity(max_in_flight),
            acks: FuturesOrdered::new(),
        };
        // Messages to send again, in order, before anything new.
        let mut retry: VecDeque<Outgoing> = VecDeque::new();
        let mut backoff = Backoff::new();
        let mut failing = false;
        let mut queue_open = true;

        loop {
            if !retry.is_empty() && window.sent.is_empty() {
                tokio::time::sleep(backoff.next_delay()).await;
                // The stream may be gone (a NATS without its store); recreate it quietly.
                let _ = streams::ensure(&self.jetstream, &self.config).await;
                while let Some(outgoing) = retry.pop_front() {
                    self.metrics.publish_retries.increment(1);
                    if let Err((outgoing, error)) = self.send(outgoing, &mut window).await {
                        tracing::debug!(%error, "publish failed again; backing off");
                        retry.push_front(outgoing);
                        break;
                    }
                }
                continue;
            }

            tokio::select! {
                message = queue.recv(), if queue_open && retry.is_empty() && window.sent.len() < max_in_flight => {
                    match message {
                        Some(outgoing) => {
                            self.metrics.queue_depth.set(queue.len() as f64);
                            if let Err((outgoing, error)) = self.send(outgoing, &mut window).await {
                                if !failing {
                                    tracing::warn!(%error, "publish to NATS failed; retrying in order with backoff");
                                    failing = true;
                                }
                                retry.push_back(outgoing);
                            }
                        }
                        None => queue_open = false,
                    }
                }
                Some(result) = window.acks.next(), if !window.acks.is_empty() => {
                    let Some((outgoing, sent_at)) = window.sent.pop_front() else { continue };
                    self.metrics.in_flight.set(window.sent.len() as f64);
                    match result {
                        Ok(ack) => {
                            self.metrics.publish_latency.record(sent_at.elapsed().as_secs_f64());
                            self.record_ack(&outgoing, &ack);
                            if failing {
                                tracing::info!("publishing to NATS again");
                                failing = false;
                            }
                            backoff.reset();
                        }
                        Err(error) => {
                            if !failing {
                                tracing::warn!(%error, in_flight = window.sent.len() + 1, "JetStream ack failed; resending in order with backoff");
                                failing = true;
                            }
                            // Everything after the failed message goes again too, behind it.
                            let mut again: VecDeque<Outgoing> = VecDeque::with_capacity(window.sent.len() + retry.len() + 1);
                            again.push_back(outgoing);
                            again.extend(window.sent.drain(..).map(|(outgoing, _)| outgoing));
                            again.extend(retry.drain(..));
                            retry = again;
                            window.acks = FuturesOrdered::new();
                            self.metrics.in_flight.set(0.0);
                        }
                    }
                }
                // Both branches are off only when the queue is closed and nothing is pending.
                else => return,
            }
        }
    }

    /// Sends one message; on failure hands it back for a retry.
    async fn send(
        &self,
        outgoing: Outgoing,
        window: &mut Window,
    ) -> Result<(), (Outgoing, PublishError)> {
        let publish = PublishMessage::build()
            .payload(outgoing.payload.clone())
            .headers(outgoing.headers.clone());
        match self
            .jetstream
            .send_publish(outgoing.subject.clone(), publish)
            .await
        {
            Ok(ack) => {
                window.acks.push_back(Box::pin(ack.into_future()));
                window.sent.push_back((outgoing, Instant::now()));
                self.metrics.in_flight.set(window.sent.len() as f64);
                Ok(())
            }
            Err(error) => Err((outgoing, error)),
        }
    }

    fn record_ack(&self, outgoing: &Outgoing, ack: &PublishAck) {
        if ack.duplicate {
            self.metrics.deduplicated.increment(1);
            return;
        }
        if let Verdict::Event { channel } = outgoing.verdict {
            if let Some(counter) = self.metrics.forwarded(channel) {
                counter.increment(1);
            }
        }
    }
}
