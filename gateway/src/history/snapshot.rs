//! `GET /api/realtime/snapshot`: the latest event of every entity, read from the latest-state
//! stream (`<STREAM_NAME>_LATEST`, one message per entity, filled by JetStream from the event
//! stream), in pages of at most `SNAPSHOT_MAX_LIMIT` events. Each event carries its sequence in
//! the event stream, so a client can tell it from a newer live one. Only channels that keep a
//! latest state are served (not orders). A page says `partial` while the stream is at
//! `LATEST_MAX_ENTITIES`, where the least recently changed entities are dropped.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, stream::Stream};
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use rakuda_schema::{Channel, Validator};

use super::budget::Answer;
use super::consumer::{ConsumerGuard, CONSUMER_INACTIVE_THRESHOLD};
use super::{HistoryError, HISTORY_TIMEOUT};
use crate::channels::ChannelSet;
use crate::event::StreamEvent;
use crate::metrics::HistoryMetrics;

/// Header JetStream sets on a sourced message: `<stream> <sequence> ...`.
const SOURCE_HEADER: &str = "Nats-Stream-Source";

/// Messages read per page at most, as a multiple of the page size, when several channels are
/// asked for and the others are skipped.
const SCAN_FACTOR: usize = 10;
/// Messages asked of JetStream at once at most.
const FETCH_MAX_MESSAGES: usize = 256;
/// Bytes asked of JetStream at once at least (more when the stream allows larger messages,
/// so that any one message fits in a batch).
const FETCH_MIN_BYTES: usize = 64 * 1024;
/// Room for a message's subject and headers beside its payload, in a batch's byte count.
const FETCH_MESSAGE_ROOM: usize = 1024;
/// The longest one answer may take, however steadily its client reads.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads pages of the latest-state stream.
pub struct Snapshots {
    pub jetstream: jetstream::Context,
    /// The latest-state stream's name.
    pub stream_name: String,
    /// `SNAPSHOT_MAX_LIMIT`.
    pub max_limit: usize,
    pub metrics: Arc<HistoryMetrics>,
    /// How long an answer waits for its client to take what it holds (`CLIENT_STALL_TIMEOUT`).
    pub stall_timeout: Duration,
}

/// A page ready to be written: the stream was read and its consumer made before the status
/// is sent, so that JetStream failing there is still a 503.
pub struct Opened {
    partial: bool,
    reading: Option<Reading>,
}

/// What a page reads with.
struct Reading {
    consumer: PullConsumer,
    guard: ConsumerGuard,
    channels: ChannelSet,
    limit: usize,
    after: u64,
    /// The stream's last sequence when the page was opened.
    last: u64,
    /// Messages matching the filter from `after` on, counted by the server when the consumer
    /// was made: the page ends there rather than waiting for one that may never match.
    pending: u64,
    /// Bytes asked of JetStream at once.
    fetch_bytes: usize,
    stall_timeout: Duration,
}

impl Snapshots {
    /// Opens a page of at most `limit` latest events of `channels` stored after position
    /// `after` (0: from the start).
    pub async fn open(
        &self,
        channels: ChannelSet,
        limit: usize,
        after: u64,
    ) -> Result<Opened, HistoryError> {
        tokio::time::timeout(
            HISTORY_TIMEOUT,
            self.open_now(channels, limit.clamp(1, self.max_limit), after),
        )
        .await
        .map_err(|_| HistoryError::Timeout(HISTORY_TIMEOUT))?
    }

    async fn open_now(
        &self,
        channels: ChannelSet,
        limit: usize,
        after: u64,
    ) -> Result<Opened, HistoryError> {
        let read = |error: &dyn std::fmt::Display| HistoryError::Read(error.to_string());
        let mut stream: Stream = self.jetstream.get_stream(&self.stream_name).await?;
        let info = stream.info().await.map_err(|error| read(&error))?;
        let last = info.state.last_sequence;
        let partial = at_cap(info.state.messages, info.config.max_messages);
        let largest = usize::try_from(info.config.max_message_size).unwrap_or(0);
        if partial {
            self.metrics.snapshot_partial.increment(1);
        }
        if after >= last || channels.is_empty() {
            return Ok(Opened {
                partial,
                reading: None,
            });
        }
        // One channel: the server filters. Several: read them all and skip the others.
        let only: Vec<&'static Channel> = channels.iter().collect();
        let filter = match only.as_slice() {
            [one] => one.subjects(),
            _ => String::new(),
        };
        let consumer = stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                filter_subject: filter,
                ack_policy: AckPolicy::None,
                memory_storage: true,
                inactive_threshold: CONSUMER_INACTIVE_THRESHOLD,
                ..Default::default()
            })
            .await?;
        let (name, pending) = {
            let info = consumer.cached_info();
            (info.name.clone(), info.num_pending)
        };
        let guard = ConsumerGuard::new(stream, name, self.metrics.clone());
        Ok(Opened {
            partial,
            reading: Some(Reading {
                consumer,
                guard,
                channels,
                limit,
                after,
                last,
                pending,
                fetch_bytes: (largest + FETCH_MESSAGE_ROOM).max(FETCH_MIN_BYTES),
                stall_timeout: self.stall_timeout,
            }),
        })
    }
}

impl Opened {
    /// The page as JSON, `{"events":[...],"next":N|null,"partial":bool}`, in chunks that
    /// stay within `answer`'s window; `keep` (the connection slot) is held until the last
    /// chunk. An error after the first chunk cuts the answer short: the client gets invalid
    /// JSON, never a page that looks whole.
    pub fn into_body<K: Send + 'static>(
        self,
        answer: Answer,
        keep: K,
    ) -> impl futures::Stream<Item = Result<Bytes, HistoryError>> + Send + 'static {
        let Opened { partial, reading } = self;
        async_stream::try_stream! {
            let _keep = keep;
            yield Bytes::from_static(b"{\"events\":[");
            let mut next = None;
            if let Some(reading) = reading {
                let mut pages = std::pin::pin!(reading.events(&answer));
                while let Some(step) = pages.next().await {
                    match step? {
                        Step::Chunk(chunk) => yield chunk,
                        Step::Next(position) => next = position,
                    }
                }
            }
            let mut tail = BytesMut::with_capacity(48);
            tail.put_slice(b"],\"next\":");
            match next {
                Some(position) => tail.put_slice(itoa::Buffer::new().format(position).as_bytes()),
                None => tail.put_slice(b"null"),
            }
            close(&mut tail, partial);
            yield tail.freeze();
        }
    }
}

/// What reading a page yields: chunks of events, then where the next page starts.
enum Step {
    Chunk(Bytes),
    Next(Option<u64>),
}

impl Reading {
    /// The page's events in chunks, then [`Step::Next`]; deletes the consumer at the end (and
    /// its guard does, if this is dropped before).
    fn events(
        self,
        answer: &Answer,
    ) -> impl futures::Stream<Item = Result<Step, HistoryError>> + Send + '_ {
        async_stream::try_stream! {
            let Reading { consumer, guard, channels, limit, after, last, pending, fetch_bytes, stall_timeout } = self;
            let read = |error: &dyn std::fmt::Display| HistoryError::Read(error.to_string());
            let validator = Validator::new(usize::MAX);
            let (mut listed, mut scanned, mut position) = (0usize, 0u64, after);
            let mut at_end = pending == 0;
            let most_scanned = (limit * SCAN_FACTOR) as u64;
            while !at_end && listed < limit && scanned < most_scanned {
                // Read no more than the window can hold: a client that stops reading stops this.
                let held = tokio::time::timeout(stall_timeout, answer.hold(fetch_bytes))
                    .await
                    .map_err(|_| HistoryError::Stalled(stall_timeout))?;
                let wanted = (limit - listed).min(FETCH_MAX_MESSAGES);
                let mut batch = tokio::time::timeout(
                    HISTORY_TIMEOUT,
                    consumer.fetch().max_messages(wanted).max_bytes(fetch_bytes).messages(),
                )
                .await
                .map_err(|_| HistoryError::Timeout(HISTORY_TIMEOUT))?
                .map_err(|error| read(&error))?;
                let mut out = BytesMut::new();
                let mut got = 0usize;
                while listed < limit {
                    let message = tokio::time::timeout(HISTORY_TIMEOUT, batch.next())
                        .await
                        .map_err(|_| HistoryError::Timeout(HISTORY_TIMEOUT))?;
                    let message = match message {
                        None => break,
                        Some(Ok(message)) => message,
                        // A batch that stops at its byte count ends with a status; after
                        // messages, it is only the end of this batch.
                        Some(Err(_)) if got > 0 => break,
                        Some(Err(error)) => Err::<jetstream::Message, _>(read(&error))?,
                    };
                    got += 1;
                    scanned += 1;
                    position = message.info().map_err(|error| read(&error))?.stream_sequence;
                    let channel = Channel::by_subject(message.subject.as_str())
                        .filter(|channel| channel.keeps_latest() && channels.contains(channel));
                    if let Some(channel) = channel {
                        let seq = source_sequence(message.headers.as_ref());
                        if let Ok(event) = StreamEvent::parse(&validator, channel, seq, message.payload.clone()) {
                            if listed > 0 {
                                out.put_u8(b',');
                            }
                            event.write_json(&mut out);
                            listed += 1;
                        }
                    }
                }
                at_end = got == 0 || scanned >= pending || position >= last;
                if !out.is_empty() {
                    yield Step::Chunk(answer.chunk(held, out));
                }
            }
            guard.delete().await;
            yield Step::Next((!at_end).then_some(position));
        }
    }
}

/// Whether the latest-state stream is at its cap (`LATEST_MAX_ENTITIES`): from then on each
/// new entity drops the least recently changed one, so the snapshot may miss entities. At the
/// cap exactly, nothing may have been dropped yet; the answer errs on the side of saying so.
fn at_cap(messages: u64, max_messages: i64) -> bool {
    u64::try_from(max_messages).is_ok_and(|max| max > 0 && messages >= max)
}

/// `,"partial":<bool>}`: ends a page.
fn close(out: &mut BytesMut, partial: bool) {
    out.put_slice(if partial {
        b",\"partial\":true}"
    } else {
        b",\"partial\":false}"
    });
}

/// The event's sequence in the event stream, from the header JetStream adds when it copies a
/// message into the latest-state stream; 0 when absent.
fn source_sequence(headers: Option<&async_nats::HeaderMap>) -> u64 {
    headers
        .and_then(|headers| headers.get(SOURCE_HEADER))
        .and_then(|value| value.as_str().split_whitespace().nth(1))
        .and_then(|seq| seq.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_sequence_is_read_from_the_header() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(SOURCE_HEADER, "RAKUDA_REALTIME 42 > >");
        assert_eq!(source_sequence(Some(&headers)), 42);
        assert_eq!(source_sequence(None), 0);
        let mut odd = async_nats::HeaderMap::new();
        odd.insert(SOURCE_HEADER, "garbage");
        assert_eq!(source_sequence(Some(&odd)), 0);
    }
}
