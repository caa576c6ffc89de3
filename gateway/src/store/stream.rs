//! Reading missed events back from JetStream, by sequence, for a resume the ring cannot serve.

use std::sync::Arc;

use async_nats::jetstream::{self, consumer::pull, consumer::DeliverPolicy};
use futures::StreamExt;
use rakuda_schema::channel::SOURCE_GAP_SUBJECT;
use rakuda_schema::{Channel, Validator};

use crate::channels::ChannelSet;
use crate::event::StreamEvent;

/// What a replay read does at a source gap marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gaps {
    /// Stops with [`FetchError::SourceGap`]: the reader's state may miss what the gap lost, so
    /// it is reset (`source_gap`) rather than replayed across it.
    Reset,
    /// Reads on: a backfill for a client that holds nothing yet.
    Skip,
}

/// Why events could not be fetched for a replay.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("the replay is over REPLAY_CONNECTION_MAX_BYTES or REPLAY_BUDGET_BYTES")]
    OverBudget,
    #[error("a source gap lies in the range")]
    SourceGap,
    #[error("cannot find the stream: {0}")]
    Stream(#[from] jetstream::context::GetStreamError),
    #[error("cannot create a consumer to replay from: {0}")]
    Consumer(#[from] jetstream::stream::ConsumerError),
    #[error("cannot read the replay consumer: {0}")]
    Read(String),
}

/// What the stream held over a range, read whole for `resume`'s ring warm-up.
pub(crate) struct Recent {
    /// The first message read (every later one up to the range's end was read too); past the
    /// range's end when it held none.
    pub first_read: u64,
    /// Client events of every channel, oldest first.
    pub events: Vec<Arc<StreamEvent>>,
    /// Source gap markers, oldest first.
    pub gaps: Vec<u64>,
}

/// A throwaway consumer the server removes by itself if this instance forgets it.
pub(crate) const CONSUMER_INACTIVE_THRESHOLD: std::time::Duration =
    std::time::Duration::from_secs(5);

/// Why the server could not count messages.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CountError {
    #[error("cannot create a counting consumer: {0}")]
    Consumer(#[from] jetstream::stream::ConsumerError),
    #[error("cannot read the counting consumer: {0}")]
    Read(String),
}

impl From<CountError> for FetchError {
    fn from(error: CountError) -> FetchError {
        match error {
            CountError::Consumer(error) => FetchError::Consumer(error),
            CountError::Read(text) => FetchError::Read(text),
        }
    }
}

/// How many messages on `filter` the stream holds from `start` on: the pending count of a
/// consumer made there, which the server keeps without anyone reading a message. The consumer
/// is deleted at once (and would expire by itself after [`CONSUMER_INACTIVE_THRESHOLD`]).
pub(crate) async fn count_matching(
    stream: &jetstream::stream::Stream,
    start: DeliverPolicy,
    filter: &str,
) -> Result<u64, CountError> {
    let mut consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: start,
            filter_subject: filter.to_owned(),
            inactive_threshold: CONSUMER_INACTIVE_THRESHOLD,
            ..Default::default()
        })
        .await?;
    let info = consumer
        .info()
        .await
        .map_err(|error| CountError::Read(error.to_string()))?;
    let (pending, name) = (info.num_pending, info.name.clone());
    if let Err(error) = stream.delete_consumer(&name).await {
        tracing::debug!(%error, "cannot delete a counting consumer; it expires by itself");
    }
    Ok(pending)
}

/// The event stream, as resumes read it.
#[derive(Clone)]
pub(crate) struct StreamReader {
    pub jetstream: jetstream::Context,
    pub name: String,
}

impl StreamReader {
    /// The stream's first and last sequence now.
    pub(crate) async fn bounds(&self) -> Option<(u64, u64)> {
        let stream = self.jetstream.get_stream(&self.name).await.ok()?;
        let state = &stream.cached_info().state;
        Some((state.first_sequence, state.last_sequence))
    }

    /// The sequence of the first message stored at or after `since`; `None` when there is none.
    pub(crate) async fn first_seq_since(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Option<u64>, FetchError> {
        let stream = self.jetstream.get_stream(&self.name).await?;
        let mut consumer = stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::ByStartTime { start_time: since },
                inactive_threshold: CONSUMER_INACTIVE_THRESHOLD,
                ..Default::default()
            })
            .await?;
        let read = |error: &dyn std::fmt::Display| FetchError::Read(error.to_string());
        let pending = consumer
            .info()
            .await
            .map_err(|error| read(&error))?
            .num_pending;
        if pending == 0 {
            return Ok(None);
        }
        let mut batch = consumer
            .fetch()
            .max_messages(1)
            .messages()
            .await
            .map_err(|error| read(&error))?;
        let first = match batch.next().await {
            Some(Ok(message)) => Some(
                message
                    .info()
                    .map_err(|error| read(&error))?
                    .stream_sequence,
            ),
            Some(Err(error)) => return Err(read(&error)),
            None => None,
        };
        Ok(first)
    }

    /// Every client event and source gap marker with `from <= seq <= to`, read with one
    /// short-lived ordered consumer (the caller bounds the range and the time).
    pub(crate) async fn recent(&self, from: u64, to: u64) -> Result<Recent, FetchError> {
        let stream = self.jetstream.get_stream(&self.name).await?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from.max(1),
                },
                ..Default::default()
            })
            .await?;
        let read = |error: &dyn std::fmt::Display| FetchError::Read(error.to_string());
        let mut messages = consumer.messages().await.map_err(|error| read(&error))?;
        let mut recent = Recent {
            first_read: to + 1,
            events: Vec::new(),
            gaps: Vec::new(),
        };
        let validator = Validator::new(usize::MAX);
        while let Some(message) = messages.next().await {
            let message = message.map_err(|error| read(&error))?;
            let info = message.info().map_err(|error| read(&error))?;
            let (seq, pending) = (info.stream_sequence, info.pending);
            if seq > to {
                break;
            }
            recent.first_read = recent.first_read.min(seq);
            if message.subject.as_str() == SOURCE_GAP_SUBJECT {
                recent.gaps.push(seq);
            } else if let Some(channel) =
                Channel::by_subject(message.subject.as_str()).filter(|channel| !channel.internal)
            {
                // What the live pipeline skips as invalid is skipped here too.
                if let Ok(event) =
                    StreamEvent::parse(&validator, channel, seq, message.payload.clone())
                {
                    recent.events.push(Arc::new(event));
                }
            }
            // Nothing more stored for now: the end of the range was removed (age, limits).
            if seq == to || pending == 0 {
                break;
            }
        }
        Ok(recent)
    }

    /// Client events with `from <= seq <= to` on the given channels, read with a short-lived
    /// ordered consumer. `reserve` is asked for each event's size before it is kept (the
    /// replay budget, in `resume`); a refusal ends the read with [`FetchError::OverBudget`].
    pub(crate) async fn fetch(
        &self,
        from: u64,
        to: u64,
        channels: ChannelSet,
        gaps: Gaps,
        reserve: &mut (dyn FnMut(usize) -> bool + Send),
    ) -> Result<Vec<Arc<StreamEvent>>, FetchError> {
        let stream = self.jetstream.get_stream(&self.name).await?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                ..Default::default()
            })
            .await?;
        let read = |error: &dyn std::fmt::Display| FetchError::Read(error.to_string());
        let mut messages = consumer.messages().await.map_err(|error| read(&error))?;
        let mut events = Vec::new();
        while let Some(message) = messages.next().await {
            let message = message.map_err(|error| read(&error))?;
            let seq = message
                .info()
                .map_err(|error| read(&error))?
                .stream_sequence;
            if seq > to {
                break;
            }
            if message.subject.as_str() == SOURCE_GAP_SUBJECT && gaps == Gaps::Reset {
                return Err(FetchError::SourceGap);
            }
            let channel = Channel::by_subject(message.subject.as_str())
                .filter(|channel| !channel.internal && channels.contains(channel));
            if let Some(channel) = channel {
                // What the live pipeline skips as invalid, a replay skips too.
                if let Ok(event) = StreamEvent::parse(
                    &Validator::new(usize::MAX),
                    channel,
                    seq,
                    message.payload.clone(),
                ) {
                    if !reserve(event.message_len()) {
                        return Err(FetchError::OverBudget);
                    }
                    events.push(Arc::new(event));
                }
            }
            if seq == to {
                break;
            }
        }
        Ok(events)
    }
}
