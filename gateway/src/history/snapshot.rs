//! `GET /api/realtime/snapshot`: the latest event of every entity, read from the latest-state
//! stream (`<STREAM_NAME>_LATEST`, one message per entity, filled by JetStream from the event
//! stream), in pages of at most `SNAPSHOT_MAX_LIMIT` events. Each event carries its sequence in
//! the event stream, so a client can tell it from a newer live one. Only channels that keep a
//! latest state are served (not orders). A page says `partial` while the stream is at
//! `LATEST_MAX_ENTITIES`, where the least recently changed entities are dropped.

use std::sync::Arc;

use async_nats::jetstream::{self, consumer::pull, consumer::DeliverPolicy};
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use rakuda_schema::channel::latest_stream_name;
use rakuda_schema::{Channel, Validator};
use rakuda_service::metric::ReadableCounter;

use super::{HistoryError, HISTORY_TIMEOUT};
use crate::channels::ChannelSet;
use crate::event::StreamEvent;

/// Header JetStream sets on a sourced message: `<stream> <sequence> ...`.
const SOURCE_HEADER: &str = "Nats-Stream-Source";

/// Messages read per page at most, as a multiple of the page size, when several channels are
/// asked for and the others are skipped.
const SCAN_FACTOR: usize = 10;

/// One page: `{"events":[...],"next":N|null,"partial":bool}`, built as JSON bytes with the
/// workers' bytes.
pub struct Page {
    pub json: Bytes,
}

/// Reads pages of the latest-state stream.
pub struct Snapshots {
    pub jetstream: jetstream::Context,
    /// The latest-state stream's name.
    pub stream_name: String,
    /// `SNAPSHOT_MAX_LIMIT`.
    pub max_limit: usize,
    /// `gateway_snapshot_partial_total`.
    pub partial: ReadableCounter,
}

impl Snapshots {
    pub fn new(
        jetstream: jetstream::Context,
        event_stream: &str,
        max_limit: usize,
        partial: ReadableCounter,
    ) -> Snapshots {
        Snapshots {
            jetstream,
            stream_name: latest_stream_name(event_stream),
            max_limit,
            partial,
        }
    }

    /// At most `limit` latest events of `channels` stored after position `after` (0: from the
    /// start); `next` is where the following page starts, `null` at the end.
    pub async fn page(
        &self,
        channels: ChannelSet,
        limit: usize,
        after: u64,
    ) -> Result<Page, HistoryError> {
        tokio::time::timeout(
            HISTORY_TIMEOUT,
            self.read(channels, limit.clamp(1, self.max_limit), after),
        )
        .await
        .map_err(|_| HistoryError::Timeout(HISTORY_TIMEOUT))?
    }

    async fn read(
        &self,
        channels: ChannelSet,
        limit: usize,
        after: u64,
    ) -> Result<Page, HistoryError> {
        let read = |error: &dyn std::fmt::Display| HistoryError::Read(error.to_string());
        let mut stream = self.jetstream.get_stream(&self.stream_name).await?;
        let info = stream.info().await.map_err(|error| read(&error))?;
        let last = info.state.last_sequence;
        let partial = at_cap(info.state.messages, info.config.max_messages);
        if partial {
            self.partial.increment(1);
        }
        let mut out = BytesMut::with_capacity(256);
        out.put_slice(b"{\"events\":[");
        if after >= last {
            out.put_slice(b"],\"next\":null");
            close(&mut out, partial);
            return Ok(Page { json: out.freeze() });
        }
        // One channel: the server filters. Several: read them all and skip the others.
        let only: Vec<&'static Channel> = channels.iter().collect();
        let filter = match only.as_slice() {
            [one] => one.subjects(),
            _ => String::new(),
        };
        let mut consumer = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                filter_subject: filter,
                ..Default::default()
            })
            .await?;
        // What matches the filter from `after` on, counted by the server when the consumer was
        // made: the page ends there rather than waiting for a message that may never match.
        let pending = consumer
            .info()
            .await
            .map_err(|error| read(&error))?
            .num_pending;
        let mut messages = consumer.messages().await.map_err(|error| read(&error))?;
        let (mut listed, mut scanned, mut position) = (0, 0u64, after);
        let mut at_end = pending == 0;
        while !at_end && listed < limit && scanned < (limit * SCAN_FACTOR) as u64 {
            let Some(message) = messages.next().await else {
                at_end = true;
                break;
            };
            let message = message.map_err(|error| read(&error))?;
            position = message
                .info()
                .map_err(|error| read(&error))?
                .stream_sequence;
            scanned += 1;
            let channel = Channel::by_subject(message.subject.as_str())
                .filter(|channel| !channel.internal && channels.contains(channel));
            if let Some(channel) = channel {
                let seq = source_sequence(message.headers.as_ref());
                if let Ok(event) = StreamEvent::parse(
                    &Validator::new(usize::MAX),
                    channel,
                    seq,
                    message.payload.clone(),
                ) {
                    if listed > 0 {
                        out.put_u8(b',');
                    }
                    event.write_json(&mut out);
                    listed += 1;
                }
            }
            at_end = scanned >= pending || position >= last;
        }
        out.put_slice(b"],\"next\":");
        if at_end {
            out.put_slice(b"null");
        } else {
            out.put_slice(itoa::Buffer::new().format(position).as_bytes());
        }
        close(&mut out, partial);
        Ok(Page { json: out.freeze() })
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

/// For callers that hold the snapshot reader shared.
pub type SharedSnapshots = Arc<Snapshots>;

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
