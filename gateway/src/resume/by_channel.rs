//! Reading the events of some channels only, for backfill: the last N events of a connection's
//! channels may lie far back when other channels are busy, so they are counted and read with
//! filtered consumers, one per subject filter (NATS 2.9 takes one filter per consumer), and the
//! server skips the other channels. A resume reads every channel by sequence instead (see
//! [`crate::store::stream`]), because it must also see source gap markers in order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use futures::{StreamExt, TryStreamExt};
use rakuda_schema::channel::SUBJECT_PREFIX;
use rakuda_schema::{Channel, Validator, CHANNELS};

use super::budget::Reservation;
use crate::channels::ChannelSet;
use crate::event::StreamEvent;
use crate::store::stream::{count_matching, FetchError, StreamReader, CONSUMER_INACTIVE_THRESHOLD};

/// Messages asked for in one pull.
const PULL_BATCH: usize = 256;
/// How long one pull may wait for messages the consumer said are there.
const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// The stream as one set of channels reads it: fetched once, with the subject filters that
/// select those channels' events, for every count and read of one backfill.
pub(crate) struct ChannelReader {
    stream: jetstream::stream::Stream,
    filters: Vec<String>,
}

impl StreamReader {
    /// A reader of `channels`: each channel's per-entity subjects, and its older one-subject
    /// form (`rakuda.realtime.<channel>`) while the stream still holds events stored that way.
    pub(crate) async fn by_channel(
        &self,
        channels: ChannelSet,
    ) -> Result<ChannelReader, FetchError> {
        let stream = self.jetstream.get_stream(&self.name).await?;
        let legacy: Vec<String> = stream
            .info_with_subjects(format!("{SUBJECT_PREFIX}*"))
            .await
            .map_err(|error| FetchError::Read(error.to_string()))?
            .map_ok(|(subject, _)| subject)
            .try_collect()
            .await
            .map_err(|error| FetchError::Read(error.to_string()))?;
        let mut filters = Vec::new();
        for channel in CHANNELS
            .iter()
            .filter(|c| !c.internal && channels.contains(c))
        {
            filters.push(channel.subjects());
            let old_form = format!("{SUBJECT_PREFIX}{}", channel.name);
            if legacy.contains(&old_form) {
                filters.push(old_form);
            }
        }
        Ok(ChannelReader { stream, filters })
    }
}

impl ChannelReader {
    /// The stream's first sequence, as of when this reader was made.
    pub(crate) fn first_seq(&self) -> u64 {
        self.stream.cached_info().state.first_sequence
    }

    /// How many events of these channels the stream holds from `start` on, counted by the
    /// server.
    pub(crate) async fn count_from(&self, start: u64) -> Result<u64, FetchError> {
        let mut total = 0u64;
        for filter in &self.filters {
            let start = DeliverPolicy::ByStartSequence {
                start_sequence: start.max(1),
            };
            total = total.saturating_add(count_matching(&self.stream, start, filter).await?);
        }
        Ok(total)
    }

    /// The last `most` events of these channels with `from <= seq <= to`, in stream order.
    /// Every event held is reserved in the replay budget first; one pushed out of the window
    /// by a later one is given back.
    pub(crate) async fn fetch_last(
        &self,
        (from, to): (u64, u64),
        most: usize,
        reservation: &mut Reservation,
    ) -> Result<Vec<Arc<StreamEvent>>, FetchError> {
        let mut events: Vec<Arc<StreamEvent>> = Vec::new();
        for filter in &self.filters {
            let consumer = self
                .stream
                .create_consumer(pull::Config {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: from.max(1),
                    },
                    filter_subject: filter.clone(),
                    ack_policy: AckPolicy::None,
                    inactive_threshold: CONSUMER_INACTIVE_THRESHOLD,
                    ..Default::default()
                })
                .await?;
            let mut window = VecDeque::new();
            let read = read_window(&consumer, to, most, &mut window, reservation).await;
            let name = consumer.cached_info().name.clone();
            if let Err(error) = self.stream.delete_consumer(&name).await {
                tracing::debug!(%error, "cannot delete a backfill consumer; it expires by itself");
            }
            read?;
            events.extend(window);
        }
        // Each filter's window is in order; together they are sorted once and cut to `most`.
        events.sort_by_key(|event| event.seq);
        if events.len() > most {
            for dropped in events.drain(..events.len() - most) {
                reservation.shrink(dropped.message_len());
            }
        }
        Ok(events)
    }
}

/// Reads `consumer` up to sequence `to` (the messages it had pending when made, at most),
/// keeping its last `most` events in `kept`.
async fn read_window(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    to: u64,
    most: usize,
    kept: &mut VecDeque<Arc<StreamEvent>>,
    reservation: &mut Reservation,
) -> Result<(), FetchError> {
    let read = |error: &dyn std::fmt::Display| FetchError::Read(error.to_string());
    let mut pending = consumer.cached_info().num_pending;
    while pending > 0 {
        let mut batch = consumer
            .batch()
            .max_messages(PULL_BATCH.min(usize::try_from(pending).unwrap_or(PULL_BATCH)))
            .expires(PULL_EXPIRES)
            .messages()
            .await
            .map_err(|error| read(&error))?;
        let mut got = 0u64;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|error| read(&error))?;
            got += 1;
            let seq = message
                .info()
                .map_err(|error| read(&error))?
                .stream_sequence;
            if seq > to {
                return Ok(());
            }
            let Some(channel) = Channel::by_subject(message.subject.as_str()) else {
                continue;
            };
            // What the live pipeline skips as invalid, a backfill skips too.
            let Ok(event) = StreamEvent::parse(
                &Validator::new(usize::MAX),
                channel,
                seq,
                message.payload.clone(),
            ) else {
                continue;
            };
            if !reservation.grow(event.message_len()) {
                return Err(FetchError::OverBudget);
            }
            kept.push_back(Arc::new(event));
            if kept.len() > most {
                if let Some(dropped) = kept.pop_front() {
                    reservation.shrink(dropped.message_len());
                }
            }
        }
        if got == 0 {
            // The messages counted when the consumer was made are gone (the stream's limits
            // removed them meanwhile): what was read is what there is.
            return Ok(());
        }
        pending = pending.saturating_sub(got);
    }
    Ok(())
}
