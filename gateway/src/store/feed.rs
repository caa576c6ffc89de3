//! Reads the stream: one ordered consumer per instance, starting right after the stream's last
//! sequence at start-up (no gap, no history), re-created by itself after failures.

use async_nats::jetstream::{self, consumer::pull, consumer::DeliverPolicy};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rakuda_service::backoff::Backoff;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// How often the feed checks that the stream is still the one it is reading. An ordered
/// consumer quietly re-creates itself on a deleted-and-recreated stream, starting at the old
/// sequence: without this check the gateway would skip the new stream's first events.
const STREAM_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Checks in a row that may find the stream ahead of the consumer with nothing delivered before
/// the consumer is presumed stuck and re-created. When a NATS cluster node dies together with
/// the stream leader that hosted the ordered consumer, the client can wait on it forever.
const STALLED_CHECKS: u32 = 2;

/// The stream's identity: its creation time in unix milliseconds.
fn epoch_of(info: &jetstream::stream::Info) -> u64 {
    u64::try_from(info.created.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// What the feed hands to the pipeline.
#[derive(Debug)]
pub(crate) enum FeedItem {
    /// The stream's identity and where reading starts: all before `last_seq` is history.
    Start { epoch: u64, last_seq: u64 },
    Message {
        seq: u64,
        subject: String,
        payload: Bytes,
    },
}

pub(crate) struct Feed {
    pub jetstream: jetstream::Context,
    pub stream_name: String,
    /// Whether the NATS client is connected: after a reconnect the consumer is made anew at
    /// once, since a restarted server has lost it (ordered consumers live in memory) and
    /// waiting for the stall check would hold events back for seconds.
    pub connected: watch::Receiver<bool>,
    /// `gateway_feed_failures_total`.
    pub failures: rakuda_service::metric::ReadableCounter,
}

impl Feed {
    /// Reads until `shutdown` or until the pipeline is gone.
    pub(crate) async fn run(mut self, out: mpsc::Sender<FeedItem>, shutdown: CancellationToken) {
        let mut backoff = Backoff::new();
        let mut warned = false;
        // (epoch, next sequence to read) once known.
        let mut position: Option<(u64, u64)> = None;
        loop {
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                outcome = self.read(&mut position, &out, &mut warned, &mut backoff) => outcome,
            };
            match outcome {
                ReadEnd::PipelineGone => return,
                ReadEnd::Reconnected => {
                    tracing::info!(stream = %self.stream_name, "reconnected to NATS; reading the stream with a new consumer");
                    continue;
                }
                ReadEnd::Failed(error) => {
                    self.failures.increment(1);
                    if !warned {
                        tracing::warn!(%error, stream = %self.stream_name, "stream feed interrupted; retrying with backoff");
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

    async fn read(
        &mut self,
        position: &mut Option<(u64, u64)>,
        out: &mpsc::Sender<FeedItem>,
        warned: &mut bool,
        backoff: &mut Backoff,
    ) -> ReadEnd {
        let stream = match self.jetstream.get_stream(&self.stream_name).await {
            Ok(stream) => stream,
            Err(error) => return ReadEnd::Failed(format!("cannot find the stream: {error}")),
        };
        let info = stream.cached_info();
        let epoch = epoch_of(info);
        let start_seq = match *position {
            Some((known, next)) if known == epoch => next,
            _ => {
                // First start, or the stream was recreated: start after what it holds now.
                let last_seq = info.state.last_sequence;
                if out.send(FeedItem::Start { epoch, last_seq }).await.is_err() {
                    return ReadEnd::PipelineGone;
                }
                *position = Some((epoch, last_seq + 1));
                last_seq + 1
            }
        };
        let consumer = match stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start_seq,
                },
                ..Default::default()
            })
            .await
        {
            Ok(consumer) => consumer,
            Err(error) => {
                return ReadEnd::Failed(format!("cannot create the ordered consumer: {error}"))
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(error) => {
                return ReadEnd::Failed(format!("cannot read the ordered consumer: {error}"))
            }
        };
        tracing::info!(stream = %self.stream_name, epoch, from_seq = start_seq, "reading the stream");
        *warned = false;
        // Reading again: the next outage starts from the shortest delay, not from where the
        // last one left off (after a few outages every recovery would wait the maximum).
        backoff.reset();
        let mut check = tokio::time::interval(STREAM_CHECK_INTERVAL);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.reset();
        let mut received_since_check = false;
        let mut stalled_checks = 0;
        self.connected.mark_unchanged();
        let mut disconnected = false;
        let mut watching = true;
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                changed = self.connected.changed(), if watching => {
                    if changed.is_err() {
                        // The watcher is gone (shutting down); the stall check still guards.
                        watching = false;
                        continue;
                    }
                    let now_connected = *self.connected.borrow_and_update();
                    if now_connected && disconnected {
                        return ReadEnd::Reconnected;
                    }
                    disconnected |= !now_connected;
                    continue;
                }
                _ = check.tick() => {
                    let received = std::mem::take(&mut received_since_check);
                    match self.jetstream.get_stream(&self.stream_name).await {
                        Ok(current) if epoch_of(current.cached_info()) != epoch => {
                            return ReadEnd::Failed("the stream was recreated".into());
                        }
                        Ok(current) => {
                            let next = position.map(|(_, next)| next).unwrap_or(start_seq);
                            let behind = current.cached_info().state.last_sequence >= next;
                            stalled_checks = if behind && !received { stalled_checks + 1 } else { 0 };
                            if stalled_checks >= STALLED_CHECKS {
                                return ReadEnd::Failed(format!(
                                    "the ordered consumer delivered nothing for {:?} while the stream holds sequence {next} and later; re-creating it",
                                    STREAM_CHECK_INTERVAL * STALLED_CHECKS
                                ));
                            }
                            continue;
                        }
                        Err(error) if matches!(error.kind(), jetstream::context::GetStreamErrorKind::JetStream(_)) => {
                            return ReadEnd::Failed(format!("the stream is gone: {error}"));
                        }
                        // Same stream, or NATS unreachable for now: the consumer copes with that.
                        _ => continue,
                    }
                }
            };
            let Some(message) = message else { break };
            let message = match message {
                Ok(message) => message,
                Err(error) => return ReadEnd::Failed(format!("ordered consumer failed: {error}")),
            };
            let Ok(meta) = message.info() else { continue };
            let seq = meta.stream_sequence;
            let item = FeedItem::Message {
                seq,
                subject: message.subject.to_string(),
                payload: message.payload.clone(),
            };
            if out.send(item).await.is_err() {
                return ReadEnd::PipelineGone;
            }
            *position = Some((epoch, seq + 1));
            received_since_check = true;
        }
        ReadEnd::Failed("ordered consumer ended".into())
    }
}

enum ReadEnd {
    PipelineGone,
    /// NATS came back after a disconnect: read again at once with a new consumer.
    Reconnected,
    Failed(String),
}
