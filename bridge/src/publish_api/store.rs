//! Storing a request's events: publishes in request order, then the acks, all by the request's
//! deadline; refused events (by the validator or by JetStream) to the DLQ.

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use rakuda_schema::{Reject, RejectReason};
use tokio::time::timeout_at;

use super::body::Outcome;
use super::{count, unacknowledged, PublishApi, PRODUCER_HEADER};
use crate::publisher::{classify, Failure};
use crate::route::{reroute_to_dlq, Outgoing, Verdict};

impl PublishApi {
    /// Publishes every event (in request order), then awaits their acks, all by `deadline`.
    pub(super) async fn store(
        &self,
        routed: Vec<Outgoing>,
        producer: &str,
        deadline: tokio::time::Instant,
    ) -> Vec<Outcome> {
        enum Pending {
            Ack(PublishAckFuture, Outgoing),
            Done(Outcome),
        }
        let mut pending = Vec::with_capacity(routed.len());
        let mut dlq = Vec::new();
        for outgoing in routed {
            if let Verdict::Rejected(reject) = &outgoing.verdict {
                let outcome = self.rejected(reject, &outgoing);
                dlq.push(outgoing);
                pending.push(Pending::Done(outcome));
                continue;
            }
            match timeout_at(deadline, self.send(&outgoing)).await {
                Ok(Ok(ack)) => pending.push(Pending::Ack(ack, outgoing)),
                Ok(Err(error)) => {
                    pending.push(Pending::Done(self.failed(error, outgoing, &mut dlq)))
                }
                Err(_) => pending.push(Pending::Done(unacknowledged(
                    "the publish could not be sent within PUBLISH_TIMEOUT",
                ))),
            }
        }
        let mut outcomes = Vec::with_capacity(pending.len());
        for item in pending {
            let outcome = match item {
                Pending::Done(outcome) => outcome,
                Pending::Ack(ack, outgoing) => match timeout_at(deadline, ack).await {
                    Ok(Ok(ack)) => {
                        let result = if ack.duplicate { "duplicate" } else { "stored" };
                        self.metrics.http_events(result, 1);
                        if ack.duplicate {
                            self.metrics.deduplicated.increment(1);
                        } else if let Verdict::Event { channel } = outgoing.verdict {
                            if let Some(counter) = self.metrics.forwarded(channel) {
                                counter.increment(1);
                            }
                        }
                        Outcome::Stored {
                            seq: ack.sequence,
                            duplicate: ack.duplicate,
                        }
                    }
                    Ok(Err(error)) => self.failed(error, outgoing, &mut dlq),
                    Err(_) => {
                        unacknowledged("JetStream did not acknowledge within PUBLISH_TIMEOUT")
                    }
                },
            };
            outcomes.push(outcome);
        }
        self.send_to_dlq(dlq, producer, deadline).await;
        let unknown = count(&outcomes, |o| matches!(o, Outcome::Unacknowledged { .. }));
        if unknown > 0 {
            self.metrics.http_events("unacknowledged", unknown as u64);
        }
        outcomes
    }

    async fn send(
        &self,
        outgoing: &Outgoing,
    ) -> Result<PublishAckFuture, jetstream::context::PublishError> {
        let message = PublishMessage::build()
            .payload(outgoing.payload.clone())
            .headers(outgoing.headers.clone());
        self.jetstream
            .send_publish(outgoing.subject.clone(), message)
            .await
    }

    /// A publish that failed: refused for good (its copy goes to the DLQ), or not known.
    fn failed(
        &self,
        error: jetstream::context::PublishError,
        outgoing: Outgoing,
        dlq: &mut Vec<Outgoing>,
    ) -> Outcome {
        match classify(&error) {
            Failure::Refused(why) => {
                let reject = Reject::new(RejectReason::StreamRejected, why);
                let outcome = self.rejected(&reject, &outgoing);
                dlq.push(reroute_to_dlq(outgoing, reject, self.validator.max_bytes()));
                outcome
            }
            Failure::Transient => unacknowledged(&format!("JetStream did not store it: {error}")),
        }
    }

    /// A refused event: counted by reason as on the Redis path, logged (rate-limited).
    fn rejected(&self, reject: &Reject, outgoing: &Outgoing) -> Outcome {
        if let Some(counter) = self.metrics.rejected(reject.reason) {
            counter.increment(1);
        }
        self.metrics.http_events("rejected", 1);
        if let Ok(mut logs) = self.logs.lock() {
            logs.0
                .record(reject, &outgoing.redis_channel, std::time::Instant::now());
        }
        Outcome::Rejected {
            reason: reject.reason,
            message: reject.message.clone(),
        }
    }

    /// The DLQ copies, with the producer's key id; a copy that cannot be stored is logged.
    async fn send_to_dlq(
        &self,
        copies: Vec<Outgoing>,
        producer: &str,
        deadline: tokio::time::Instant,
    ) {
        let mut acks = Vec::with_capacity(copies.len());
        for mut copy in copies {
            copy.headers.insert(PRODUCER_HEADER, producer);
            acks.push(timeout_at(deadline, self.send(&copy)).await);
        }
        for ack in acks {
            let stored = match ack {
                Ok(Ok(ack)) => timeout_at(deadline, ack)
                    .await
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string())),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err("timed out".to_owned()),
            };
            if let Err(error) = stored {
                self.metrics.dropped.increment(1);
                tracing::error!(%error, producer, "the DLQ copy of an event refused over HTTP was not stored");
            }
        }
    }
}
