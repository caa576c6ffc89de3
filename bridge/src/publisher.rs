//! Publishes routed messages to JetStream with many acks in flight, without losing or
//! reordering anything when NATS fails, and without letting one message stop the rest.
//!
//! Messages are sent in queue order and their acks resolve in the same order. A failed publish
//! is one of two kinds ([`classify`]):
//! - **refused**: JetStream answered with a 4xx API error (over the stream's
//!   `max_message_size`, a bad subject, ...) or the client refused it (over `max_payload`).
//!   Sending it again would fail again forever, so it goes to the DLQ with reason
//!   `stream_rejected` and the server's words, and the messages behind it carry on at once.
//! - **transient**: a timeout, a lost connection, a missing stream. The failed message and
//!   every later one still in flight are sent again, in order, after a backoff: those JetStream
//!   had already stored are recognised by their `Nats-Msg-Id` and not stored twice, so the
//!   stream keeps Redis's order.
//!
//! The retry queue holds only messages that were in flight: while it is not empty nothing new
//! is taken from the queue, so it never holds more than `BRIDGE_MAX_IN_FLIGHT` messages.
//!
//! Coverage checkpoints ([`Checkpoint`]) travel in the queue between messages and are "acked"
//! in order like them: when one comes out, every message queued before it is in the stream.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, publish::PublishAck};
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use rakuda_schema::{Reject, RejectReason};
use tokio::sync::mpsc;

use crate::coverage::{Checkpoint, Coverage};
use crate::metrics::BridgeMetrics;
use crate::reject_log::{RejectLog, REJECT_LOG_INTERVAL};
use crate::route::{reroute_to_dlq, Outgoing, Verdict};
use crate::streams::{self, StreamSettings};
use rakuda_service::backoff::Backoff;

/// A publish's ack; `None` for a checkpoint, which needs none.
type AckFuture = BoxFuture<'static, Result<Option<PublishAck>, PublishError>>;

/// What the subscriber hands to the publisher, in Redis's order.
#[derive(Debug)]
pub enum Queued {
    Message(Outgoing),
    Checkpoint(Checkpoint),
}

/// What the publisher reads of the bridge's settings, taken from them by
/// [`crate::Config::publisher`]: no server addresses, no credentials.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    /// The streams it makes sure exist, at start and when a retry finds one gone.
    pub streams: StreamSettings,
    /// `BRIDGE_MAX_IN_FLIGHT`: publishes awaiting their ack at once.
    pub max_in_flight: usize,
    /// `EVENT_MAX_BYTES`: how much of a refused message its DLQ copy keeps.
    pub event_max_bytes: usize,
}

pub struct Publisher {
    jetstream: jetstream::Context,
    settings: PublisherSettings,
    metrics: Arc<BridgeMetrics>,
    coverage: Arc<Coverage>,
    refusals: RejectLog,
}

/// Items sent and awaiting their acks, oldest first; `acks` resolves in the same order.
struct Window {
    sent: VecDeque<(Queued, Instant)>,
    acks: FuturesOrdered<AckFuture>,
}

/// What to do about a failed publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// JetStream will never store this message; the reason is the server's (or client's) words.
    Refused(String),
    /// NATS is unreachable, slow or without the stream right now: send again later, in order.
    Transient,
}

/// Tells a refusal that would repeat forever from a failure that passes.
pub fn classify(error: &PublishError) -> Failure {
    match error.kind() {
        PublishErrorKind::MaxPayloadExceeded
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence => Failure::Refused(error.to_string()),
        PublishErrorKind::Other => {
            let api = std::error::Error::source(error)
                .and_then(|source| source.downcast_ref::<jetstream::Error>());
            match api {
                // 4xx: the request itself is wrong; 5xx (JetStream unavailable) passes.
                Some(api) if (400..500).contains(&api.code()) => Failure::Refused(api.to_string()),
                _ => Failure::Transient,
            }
        }
        PublishErrorKind::StreamNotFound
        | PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => Failure::Transient,
    }
}

/// What became of one publish.
enum Sent {
    Ok,
    Retry(Queued, PublishError),
}

impl Publisher {
    pub fn new(
        jetstream: jetstream::Context,
        settings: PublisherSettings,
        metrics: Arc<BridgeMetrics>,
        coverage: Arc<Coverage>,
    ) -> Publisher {
        Publisher {
            jetstream,
            settings,
            metrics,
            coverage,
            refusals: RejectLog::new(REJECT_LOG_INTERVAL),
        }
    }

    /// Makes sure the streams exist, retrying with backoff until NATS answers.
    pub async fn ensure_streams(&self) {
        let mut backoff = Backoff::new();
        let mut warned = false;
        loop {
            match streams::ensure(&self.jetstream, &self.settings.streams).await {
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
                        tracing::warn!(%error, stream = %self.settings.streams.name, "cannot create or update the stream; retrying with backoff");
                        warned = true;
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Publishes until `queue` is closed and empty and every ack is in.
    pub async fn run(mut self, mut queue: mpsc::Receiver<Queued>) {
        self.ensure_streams().await;
        let max_in_flight = self.settings.max_in_flight;
        let mut window = Window {
            sent: VecDeque::with_capacity(max_in_flight),
            acks: FuturesOrdered::new(),
        };
        // Messages to send again, in order, before anything new.
        let mut retry: VecDeque<Queued> = VecDeque::new();
        let mut backoff = Backoff::new();
        let mut failing = false;
        let mut queue_open = true;

        loop {
            debug_assert!(retry.len() + window.sent.len() <= max_in_flight + 1);
            if !retry.is_empty() && window.sent.is_empty() {
                tokio::time::sleep(backoff.next_delay()).await;
                // The stream may be gone (a NATS without its store); recreate it quietly.
                let _ = streams::ensure(&self.jetstream, &self.settings.streams).await;
                while let Some(outgoing) = retry.pop_front() {
                    self.metrics.publish_retries.increment(1);
                    if let Sent::Retry(outgoing, error) = self.send(outgoing, &mut window).await {
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
                            if let Sent::Retry(outgoing, error) = self.send(outgoing, &mut window).await {
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
                    let Some((queued, sent_at)) = window.sent.pop_front() else { continue };
                    self.metrics.in_flight.set(window.sent.len() as f64);
                    let outgoing = match queued {
                        Queued::Checkpoint(checkpoint) => {
                            // Everything queued before it is acknowledged.
                            self.coverage.stored(&checkpoint);
                            continue;
                        }
                        Queued::Message(outgoing) => outgoing,
                    };
                    match result.map_err(|error| (classify(&error), error)) {
                        Ok(ack) => {
                            self.metrics.publish_latency.record(sent_at.elapsed().as_secs_f64());
                            if let Some(ack) = ack {
                                self.record_ack(&outgoing, &ack);
                            }
                            if failing {
                                tracing::info!("publishing to NATS again");
                                failing = false;
                            }
                            backoff.reset();
                        }
                        Err((Failure::Refused(why), _)) => {
                            // The acks behind it are independent: they resolve as they come.
                            if let Some(dlq) = self.refused(outgoing, why) {
                                if let Sent::Retry(dlq, _) = self.send(Queued::Message(dlq), &mut window).await {
                                    retry.push_back(dlq);
                                }
                            }
                        }
                        Err((Failure::Transient, error)) => {
                            if !failing {
                                tracing::warn!(%error, in_flight = window.sent.len() + 1, "JetStream ack failed; resending in order with backoff");
                                failing = true;
                            }
                            // Everything after the failed message goes again too, behind it.
                            let mut again: VecDeque<Queued> = VecDeque::with_capacity(window.sent.len() + retry.len() + 1);
                            again.push_back(Queued::Message(outgoing));
                            again.extend(window.sent.drain(..).map(|(queued, _)| queued));
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

    /// Sends one message. A refusal before sending (over `max_payload`) reroutes it to the DLQ
    /// at once; a transient failure hands it back for a retry. A checkpoint takes its place in
    /// the window, to come out behind everything sent before it.
    async fn send(&mut self, queued: Queued, window: &mut Window) -> Sent {
        let mut outgoing = match queued {
            Queued::Message(outgoing) => outgoing,
            Queued::Checkpoint(checkpoint) => {
                window
                    .acks
                    .push_back(Box::pin(futures::future::ready(Ok(None))));
                window
                    .sent
                    .push_back((Queued::Checkpoint(checkpoint), Instant::now()));
                return Sent::Ok;
            }
        };
        loop {
            let publish = PublishMessage::build()
                .payload(outgoing.payload.clone())
                .headers(outgoing.headers.clone());
            match self
                .jetstream
                .send_publish(outgoing.subject.clone(), publish)
                .await
            {
                Ok(ack) => {
                    let ack = ack.into_future();
                    window
                        .acks
                        .push_back(Box::pin(async move { ack.await.map(Some) }));
                    window
                        .sent
                        .push_back((Queued::Message(outgoing), Instant::now()));
                    self.metrics.in_flight.set(window.sent.len() as f64);
                    return Sent::Ok;
                }
                Err(error) => match classify(&error) {
                    Failure::Transient => return Sent::Retry(Queued::Message(outgoing), error),
                    Failure::Refused(why) => match self.refused(outgoing, why) {
                        Some(dlq) => outgoing = dlq,
                        None => return Sent::Ok,
                    },
                },
            }
        }
    }

    /// A message JetStream will never store: its DLQ copy, counted and logged; `None` when the
    /// DLQ copy itself was refused (then it is dropped, counted and logged as an error).
    fn refused(&mut self, outgoing: Outgoing, why: String) -> Option<Outgoing> {
        if let Verdict::Rejected(reject) = &outgoing.verdict {
            self.metrics.dropped.increment(1);
            tracing::error!(
                reason = %reject.reason,
                channel = outgoing.redis_channel.escape_debug().to_string(),
                error = why.escape_debug().to_string(),
                "JetStream refused a message bound for the DLQ; dropped"
            );
            return None;
        }
        let reject = Reject::new(RejectReason::StreamRejected, why);
        if let Some(counter) = self.metrics.rejected(reject.reason) {
            counter.increment(1);
        }
        self.refusals
            .record(&reject, &outgoing.redis_channel, std::time::Instant::now());
        Some(reroute_to_dlq(
            outgoing,
            reject,
            self.settings.event_max_bytes,
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(json: &str) -> PublishError {
        let error: jetstream::Error = serde_json::from_str(json).expect("api error");
        PublishError::with_source(PublishErrorKind::Other, error)
    }

    #[test]
    fn client_errors_are_refusals_and_the_rest_is_transient() {
        let too_big = api_error(
            r#"{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}"#,
        );
        match classify(&too_big) {
            Failure::Refused(why) => assert!(why.contains("message size exceeds maximum allowed")),
            Failure::Transient => panic!("a 400 is a refusal"),
        }
        assert!(matches!(
            classify(&PublishError::new(PublishErrorKind::MaxPayloadExceeded)),
            Failure::Refused(_)
        ));
        let unavailable = api_error(
            r#"{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}"#,
        );
        assert_eq!(classify(&unavailable), Failure::Transient);
        for kind in [
            PublishErrorKind::TimedOut,
            PublishErrorKind::BrokenPipe,
            PublishErrorKind::StreamNotFound,
            PublishErrorKind::MaxAckPending,
            PublishErrorKind::Other,
        ] {
            assert_eq!(
                classify(&PublishError::new(kind)),
                Failure::Transient,
                "{kind:?}"
            );
        }
    }
}
