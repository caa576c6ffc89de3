//! `GET /api/realtime/dlq`: the messages the bridge rejected, read from the DLQ stream
//! (`DLQ_STREAM_NAME`, subject `rakuda.dlq.realtime`), newest first, with the count of each
//! reason in the last hour.
//!
//! A page is one consumer started at the page's oldest sequence (the DLQ has one subject and
//! the bridge never deletes from it, so sequences are contiguous), read forward and turned
//! round. The counts are one consumer started an hour ago that delivers headers only (the
//! reason is a header; the server cannot filter on it): the server says how many there are,
//! and the newest [`DLQ_COUNT_MAX_MESSAGES`] of them are read. Both consumers are deleted
//! however the request ends ([`crate::store::consumer`]); every batch is read inside the answer's
//! window of `HISTORY_REQUEST_MAX_BYTES` ([`super::budget`]); the whole answer has
//! [`DLQ_TIMEOUT`].
//!
//! Which consumers (where they start, what they deliver) is this reader's choice and stays
//! here; the guard that deletes them is `crate::store`'s, with every other JetStream read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, stream::Stream};
use futures::StreamExt;
use rakuda_schema::channel::{REJECT_REASON_HEADER, SOURCE_CHANNEL_HEADER};
use rakuda_schema::dlq::{
    escaped_head, DLQ_HEAD_BYTES, ORIGINAL_SIZE_HEADER, PRODUCER_HEADER, REJECT_MESSAGE_HEADER,
};
use rakuda_schema::{DlqPage, RejectCounts, RejectedMessage, Timestamp};

use super::budget::Answer;
use super::{HistoryError, HISTORY_TIMEOUT};
use crate::metrics::HistoryMetrics;
use crate::store::consumer::{ConsumerGuard, CONSUMER_INACTIVE_THRESHOLD};

/// Messages one page lists at most (`?limit=` is capped here), and when none is asked for.
pub(crate) const DLQ_MAX_LIMIT: usize = 50;
pub(crate) const DLQ_DEFAULT_LIMIT: usize = 20;
/// Messages of the last hour read at most to count their reasons: beyond it, the newest are
/// counted and the answer says `complete: false` (the total is still the server's).
pub(crate) const DLQ_COUNT_MAX_MESSAGES: u64 = 10_000;
/// The longest one DLQ answer may take to read, consumers included.
pub(crate) const DLQ_TIMEOUT: Duration = Duration::from_secs(10);
/// Characters of the channel and the reject message a page shows at most (the bridge caps
/// its headers at 512).
const TEXT_MAX_CHARS: usize = 200;
/// Messages asked of JetStream at once at most.
const FETCH_MAX_MESSAGES: usize = 1000;
/// Bytes asked of JetStream at once at least, and room for a message's subject and headers.
const FETCH_MIN_BYTES: usize = 64 * 1024;
const FETCH_MESSAGE_ROOM: usize = 4 * 1024;

/// Reads the DLQ stream.
pub(crate) struct Rejected {
    pub jetstream: jetstream::Context,
    /// `DLQ_STREAM_NAME`.
    pub stream_name: String,
    pub metrics: Arc<HistoryMetrics>,
}

impl Rejected {
    /// The page of at most `limit` messages stored before sequence `before` (the newest when
    /// `None`), and the last hour's counts; every batch read within `answer`'s window.
    pub(crate) async fn page(
        &self,
        before: Option<u64>,
        limit: usize,
        answer: &Answer,
    ) -> Result<DlqPage, HistoryError> {
        tokio::time::timeout(
            DLQ_TIMEOUT,
            self.read(before, limit.clamp(1, DLQ_MAX_LIMIT), answer),
        )
        .await
        .map_err(|_| HistoryError::TooLong(DLQ_TIMEOUT))?
    }

    async fn read(
        &self,
        before: Option<u64>,
        limit: usize,
        answer: &Answer,
    ) -> Result<DlqPage, HistoryError> {
        let read = |error: &dyn std::fmt::Display| HistoryError::Read(error.to_string());
        let mut stream = step(self.jetstream.get_stream(&self.stream_name)).await??;
        let info = step(stream.info()).await?.map_err(|error| read(&error))?;
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let largest = usize::try_from(info.config.max_message_size).unwrap_or(0);
        // A batch must fit the largest message, or JetStream answers none. The bridge sets no
        // size limit on the DLQ (it truncates what it writes there to EVENT_MAX_BYTES): then
        // half the window, the page's items (at most ~3 KiB each) taking the rest.
        let fetch_bytes = match largest {
            0 => answer.window_bytes / 2,
            largest => (largest + FETCH_MESSAGE_ROOM)
                .max(FETCH_MIN_BYTES)
                .min(answer.window_bytes),
        };
        let reader = Reader {
            stream: &stream,
            metrics: &self.metrics,
            answer,
            fetch_bytes,
        };

        let end = before.map_or(last, |before| before.saturating_sub(1).min(last));
        let (mut events, next) = if end == 0 || end < first {
            (Vec::new(), None)
        } else {
            let start = end.saturating_sub(limit as u64 - 1).max(first);
            let mut events = Vec::with_capacity(limit);
            let policy = DeliverPolicy::ByStartSequence {
                start_sequence: start,
            };
            let (consumer, guard, _) = reader.open(policy, false).await?;
            reader
                .drain(&consumer, end - start + 1, |message| {
                    let item = item(&message)?;
                    if item.seq <= end {
                        events.push(item);
                    }
                    Ok(())
                })
                .await?;
            guard.delete().await;
            (events, (start > first).then_some(start))
        };
        events.reverse();
        let last_hour = reader.count_last_hour(last).await?;
        Ok(DlqPage {
            events,
            next,
            last_seq: last,
            last_hour,
        })
    }
}

/// One step of the answer, within [`HISTORY_TIMEOUT`].
async fn step<T>(future: impl std::future::Future<Output = T>) -> Result<T, HistoryError> {
    tokio::time::timeout(HISTORY_TIMEOUT, future)
        .await
        .map_err(|_| HistoryError::Timeout(HISTORY_TIMEOUT))
}

/// What reading the stream needs.
struct Reader<'a> {
    stream: &'a Stream,
    metrics: &'a Arc<HistoryMetrics>,
    answer: &'a Answer,
    fetch_bytes: usize,
}

impl Reader<'_> {
    /// A consumer from `policy` (headers only, or whole messages), deleted by its guard; and
    /// how many messages it has to deliver, counted by the server.
    async fn open(
        &self,
        policy: DeliverPolicy,
        headers_only: bool,
    ) -> Result<(PullConsumer, ConsumerGuard, u64), HistoryError> {
        let consumer = step(self.stream.create_consumer(pull::Config {
            deliver_policy: policy,
            ack_policy: AckPolicy::None,
            memory_storage: true,
            headers_only,
            inactive_threshold: CONSUMER_INACTIVE_THRESHOLD,
            ..Default::default()
        }))
        .await??;
        let (name, pending) = {
            let info = consumer.cached_info();
            (info.name.clone(), info.num_pending)
        };
        let guard = ConsumerGuard::new(self.stream.clone(), name, self.metrics.clone());
        Ok((consumer, guard, pending))
    }

    /// Hands at most `most` messages of `consumer` to `each`, a batch at a time.
    async fn drain(
        &self,
        consumer: &PullConsumer,
        most: u64,
        mut each: impl FnMut(jetstream::Message) -> Result<(), HistoryError>,
    ) -> Result<(), HistoryError> {
        let read = |error: &dyn std::fmt::Display| HistoryError::Read(error.to_string());
        let mut taken = 0u64;
        while taken < most {
            // The batch's bytes are counted in the answer's window while it is read.
            let _held = self.answer.hold(self.fetch_bytes).await;
            let wanted = usize::try_from(most - taken)
                .unwrap_or(usize::MAX)
                .min(FETCH_MAX_MESSAGES);
            let mut batch = step(
                consumer
                    .fetch()
                    .max_messages(wanted)
                    .max_bytes(self.fetch_bytes)
                    .messages(),
            )
            .await?
            .map_err(|error| read(&error))?;
            let mut got = 0u64;
            while taken < most {
                match step(batch.next()).await? {
                    None => break,
                    Some(Ok(message)) => {
                        got += 1;
                        taken += 1;
                        each(message)?;
                    }
                    // A batch that stops at its byte count ends with a status.
                    Some(Err(_)) if got > 0 => break,
                    Some(Err(error)) => return Err(read(&error)),
                }
            }
            if got == 0 {
                break;
            }
        }
        Ok(())
    }

    /// The last hour's messages per reason: the newest [`DLQ_COUNT_MAX_MESSAGES`] of them read
    /// (headers only), the total from the server.
    async fn count_last_hour(&self, last: u64) -> Result<RejectCounts, HistoryError> {
        let since = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        let (mut consumer, mut guard, total) = self
            .open(DeliverPolicy::ByStartTime { start_time: since }, true)
            .await?;
        if total > DLQ_COUNT_MAX_MESSAGES {
            guard.delete().await;
            let start_sequence = last.saturating_sub(DLQ_COUNT_MAX_MESSAGES - 1).max(1);
            (consumer, guard, _) = self
                .open(DeliverPolicy::ByStartSequence { start_sequence }, true)
                .await?;
        }
        let mut by_reason = BTreeMap::new();
        let most = total.min(DLQ_COUNT_MAX_MESSAGES);
        self.drain(&consumer, most, |message| {
            let reason = header(&message, REJECT_REASON_HEADER).unwrap_or("unknown");
            *by_reason.entry(capped(reason)).or_insert(0u64) += 1;
            Ok(())
        })
        .await?;
        guard.delete().await;
        Ok(RejectCounts {
            since: Timestamp::from_instant(since),
            total,
            by_reason,
            complete: total <= DLQ_COUNT_MAX_MESSAGES,
        })
    }
}

fn header<'m>(message: &'m jetstream::Message, name: &str) -> Option<&'m str> {
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(name))
        .map(|value| value.as_str())
}

/// At most [`TEXT_MAX_CHARS`] characters of a header, with `…` marking a cut.
fn capped(text: &str) -> String {
    match text.char_indices().nth(TEXT_MAX_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// A stored DLQ message as a page shows it.
fn item(message: &jetstream::Message) -> Result<RejectedMessage, HistoryError> {
    let info = message
        .info()
        .map_err(|error| HistoryError::Read(error.to_string()))?;
    let payload = &message.payload;
    let size = header(message, ORIGINAL_SIZE_HEADER)
        .and_then(|size| size.parse().ok())
        .unwrap_or(payload.len() as u64);
    let cut = payload.len() > DLQ_HEAD_BYTES;
    Ok(RejectedMessage {
        seq: info.stream_sequence,
        time: Timestamp::from_instant(info.published),
        channel: capped(header(message, SOURCE_CHANNEL_HEADER).unwrap_or_default()),
        reason: capped(header(message, REJECT_REASON_HEADER).unwrap_or("unknown")),
        message: capped(header(message, REJECT_MESSAGE_HEADER).unwrap_or_default()),
        head: escaped_head(&payload[..payload.len().min(DLQ_HEAD_BYTES)], cut),
        truncated: cut || size > payload.len() as u64,
        size,
        producer: header(message, PRODUCER_HEADER).map(capped),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_headers_are_capped_at_a_character_boundary() {
        assert_eq!(capped("invalid_json"), "invalid_json");
        let long = "é".repeat(TEXT_MAX_CHARS + 5);
        let shown = capped(&long);
        assert_eq!(shown.chars().count(), TEXT_MAX_CHARS + 1);
        assert!(shown.ends_with('…'));
    }
}
