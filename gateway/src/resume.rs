//! Resume after a reconnect: the events after the client's cursor, from this instance's ring
//! when it still has them, else from JetStream by sequence, coalesced per type. A cursor that
//! cannot be honoured (other stream epoch, older than the stream keeps, ahead of the stream,
//! too far behind, not a cursor) gives `reset`: the client refetches everything.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures::StreamExt;
use rakuda_schema::channel::SOURCE_GAP_SUBJECT;
use rakuda_schema::{Channel, Validator};

use crate::app::App;
use crate::channels::ChannelSet;
use crate::coalesce::{coalesce_replay, Folded};
use crate::cursor::{Cursor, MalformedCursor};
use crate::event::StreamEvent;
use crate::frame::folded_frame_bytes;
use crate::hub::Subscription;
use crate::metrics::ReplaySource;
use crate::replay_budget::Reservation;

/// How long fetching missed events from JetStream may take before the client is reset instead.
const STREAM_REPLAY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a new connection sends before the live feed.
#[derive(Debug)]
pub enum Plan {
    /// No cursor: live only.
    Live,
    /// Missed events, coalesced; live frames follow. `reservation` holds their bytes in the
    /// replay budget until they are written.
    Replay {
        frames: Vec<Folded>,
        source: ReplaySource,
        reservation: Reservation,
    },
    /// The cursor is ahead of this instance (another instance is further along): skip live
    /// events up to it.
    SkipThrough(u64),
    /// Send `reset` with this reason, then live.
    Reset(&'static str),
}

impl Plan {
    /// Live frames at or below this sequence were already sent to the client.
    pub fn skip_through(&self, subscription: &Subscription) -> u64 {
        match self {
            Plan::SkipThrough(seq) => *seq,
            _ => subscription.watermark,
        }
    }
}

/// Decides (and fetches) what the client missed. `cursor` is what it presented, if anything.
pub async fn plan(
    app: &App,
    cursor: Option<Result<Cursor, MalformedCursor>>,
    subscription: &Subscription,
    channels: ChannelSet,
) -> Plan {
    let plan = decide(app, cursor, subscription, channels).await;
    match &plan {
        Plan::Replay { source, .. } => app.metrics.replay(*source),
        Plan::Reset(_) => app.metrics.replay(ReplaySource::Reset),
        Plan::Live | Plan::SkipThrough(_) => {}
    }
    plan
}

async fn decide(
    app: &App,
    cursor: Option<Result<Cursor, MalformedCursor>>,
    subscription: &Subscription,
    channels: ChannelSet,
) -> Plan {
    let cursor = match cursor {
        None => return Plan::Live,
        Some(Err(_)) => return Plan::Reset("invalid_cursor"),
        Some(Ok(cursor)) => cursor,
    };
    if cursor.epoch != subscription.epoch {
        return Plan::Reset("stream_recreated");
    }
    let watermark = subscription.watermark;
    let mut reservation = app.replay_budget.start();
    if cursor.seq == watermark {
        return Plan::Replay {
            frames: Vec::new(),
            source: ReplaySource::Ring,
            reservation,
        };
    }
    if cursor.seq > watermark {
        // Another instance may simply be ahead of this one; only a cursor past the stream's end is wrong.
        return match stream_bounds(app).await {
            Some((_, last)) if cursor.seq <= last => Plan::SkipThrough(cursor.seq),
            Some(_) => Plan::Reset("cursor_ahead_of_stream"),
            None => Plan::Reset("replay_failed"),
        };
    }
    let max_events = app.config.debounce_max_batch_events;
    if let Some(from_ring) = &subscription.from_ring {
        if from_ring.gap {
            return Plan::Reset("source_gap");
        }
        let events = from_ring
            .events
            .iter()
            .filter(|e| channels.contains(Channel::of(e.event_type)))
            .cloned();
        // The events are the ring's; what the replay adds is the frame being written.
        return replay(
            coalesce_replay(events, max_events),
            ReplaySource::Ring,
            reservation,
        );
    }
    let Some((first, _)) = stream_bounds(app).await else {
        return Plan::Reset("replay_failed");
    };
    if cursor.seq + 1 < first {
        return Plan::Reset("cursor_expired");
    }
    let missed = watermark - cursor.seq;
    if missed > app.config.resume_max_events as u64 {
        return Plan::Reset("too_far_behind");
    }
    match tokio::time::timeout(
        STREAM_REPLAY_TIMEOUT,
        fetch(app, cursor.seq + 1, watermark, channels, &mut reservation),
    )
    .await
    {
        Ok(Ok(events)) => replay(
            coalesce_replay(events, max_events),
            ReplaySource::Stream,
            reservation,
        ),
        Ok(Err(FetchError::OverBudget)) => Plan::Reset("replay_budget"),
        Ok(Err(FetchError::SourceGap)) => Plan::Reset("source_gap"),
        Ok(Err(FetchError::Stream(error))) => {
            tracing::warn!(%error, from = cursor.seq + 1, to = watermark, "replay from the stream failed; resetting the client");
            Plan::Reset("replay_failed")
        }
        Err(_) => {
            tracing::warn!(
                from = cursor.seq + 1,
                to = watermark,
                "replay from the stream timed out; resetting the client"
            );
            Plan::Reset("replay_failed")
        }
    }
}

/// A replay of `frames` once the biggest of them (the one being written at a time) fits in the
/// budget; `reset` (`replay_budget`) when it does not.
fn replay(frames: Vec<Folded>, source: ReplaySource, mut reservation: Reservation) -> Plan {
    let biggest = frames.iter().map(folded_frame_bytes).max().unwrap_or(0);
    if !reservation.grow(biggest) {
        return Plan::Reset("replay_budget");
    }
    Plan::Replay {
        frames,
        source,
        reservation,
    }
}

/// Why events could not be fetched for a replay.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("the replay is over REPLAY_CONNECTION_MAX_BYTES or REPLAY_BUDGET_BYTES")]
    OverBudget,
    #[error("a source gap lies in the range")]
    SourceGap,
    #[error("{0}")]
    Stream(String),
}

/// The stream's first and last sequence now.
async fn stream_bounds(app: &App) -> Option<(u64, u64)> {
    let stream = app
        .jetstream
        .get_stream(&app.config.stream_name)
        .await
        .ok()?;
    let state = &stream.cached_info().state;
    Some((state.first_sequence, state.last_sequence))
}

/// Client events with `from <= seq <= to` on the given channels, read with a short-lived
/// ordered consumer; every event kept is reserved in the replay budget first.
async fn fetch(
    app: &App,
    from: u64,
    to: u64,
    channels: ChannelSet,
    reservation: &mut Reservation,
) -> Result<Vec<Arc<StreamEvent>>, FetchError> {
    let failed = |error: &dyn std::fmt::Display| FetchError::Stream(error.to_string());
    let stream = app
        .jetstream
        .get_stream(&app.config.stream_name)
        .await
        .map_err(|error| failed(&error))?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await
        .map_err(|error| failed(&error))?;
    let mut messages = consumer.messages().await.map_err(|error| failed(&error))?;
    let mut events = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.map_err(|error| failed(&error))?;
        let seq = message
            .info()
            .map_err(|error| failed(&error))?
            .stream_sequence;
        if seq > to {
            break;
        }
        if message.subject.as_str() == SOURCE_GAP_SUBJECT {
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
                if !reservation.grow(event.message_len()) {
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
