//! Resume after a reconnect, on any instance: the events after the client's cursor, from this
//! instance's ring when it still has them, else from JetStream by sequence, coalesced per type
//! exactly as debounce would, within the replay budget. A cursor that cannot be honoured gives
//! `reset`: the client refetches everything.
//!
//! A first connection may ask for recent history instead (`?backfill=<events>` or
//! `?since=<duration>`): that is a resume from a cursor the gateway works out, so history comes
//! under the same rules, from the ring or JetStream, before the live feed.
//!
//! - [`backfill`] — where a first connection's history starts.
//! - [`by_channel`] — counting and reading only a connection's channels, for backfill.
//! - [`ring`] — recent events (and source gap markers) in memory.
//! - missed events are read back from JetStream through [`crate::store::stream`].
//! - [`warm`] — the ring filled with the events before each start of the feed.
//! - [`budget`] — the memory replays may hold, per connection and in all.
//! - [`replay`](mod@replay) — what a connection sends before going live.

pub(crate) mod backfill;
pub(crate) mod budget;
pub(crate) mod by_channel;
pub(crate) mod replay;
pub(crate) mod ring;
pub(crate) mod warm;

use std::sync::Arc;
use std::time::Duration;

use rakuda_schema::{Channel, ReplaySource, ResetReason};

use crate::channels::ChannelSet;
use crate::fanout::coalesce::{coalesce_replay, Folded};
use crate::fanout::cursor::MalformedCursor;
use crate::fanout::frame::folded_frame_bytes;
use crate::fanout::{Cursor, Hub, Tap};
use crate::metrics::ConnectionMetrics;
use crate::store::stream::{FetchError, Gaps, StreamReader};
use backfill::keep_last;
pub(crate) use backfill::{Backfill, BackfillCounts};
use budget::{ReplayBudget, Reservation};
use by_channel::ChannelReader;
use replay::{Replay, Start};
use ring::{FromRing, Ring};

/// How long fetching missed events from JetStream may take before the client is reset instead.
const STREAM_REPLAY_TIMEOUT: Duration = Duration::from_secs(10);

/// The most event bytes one replay frame lists: a replay over large events goes out as
/// several frames, so the one being written stays small next to the events it is made of.
pub(crate) const REPLAY_FRAME_MAX_BYTES: usize = 128 * 1024;

/// What the client missed, decided.
enum Plan {
    /// No cursor: live only.
    Live,
    /// Missed events, coalesced; `reservation` holds their bytes until they are written.
    Replay {
        frames: Vec<Folded>,
        source: ReplaySource,
        reservation: Reservation,
    },
    /// The cursor is ahead of this instance (another instance is further along): skip live
    /// events up to it.
    SkipThrough(u64),
    /// Send `reset` with this reason, then live.
    Reset(ResetReason),
}

/// Where a new connection starts: its tap on the hub, what it sends first, and the sequence up
/// to which live frames were already sent to the client.
pub(crate) struct Resumption {
    pub tap: Tap,
    pub start: Start,
    pub skip_through: u64,
}

/// Settings of resumes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResumeLimits {
    /// `DEBOUNCE_MAX_BATCH_EVENTS`: a replay batch lists no more than a live one.
    pub max_batch_events: usize,
    /// `RESUME_MAX_EVENTS`: further behind gets `reset`.
    pub max_events: usize,
    /// `BACKFILL_MAX_EVENTS`: the most history a new connection gets.
    pub backfill_max_events: u64,
    /// `BACKFILL_MAX_AGE`: the furthest back `?since=` reaches.
    pub backfill_max_age: Duration,
}

/// Where a new connection asks to start.
#[derive(Debug, Clone)]
pub(crate) enum Asked {
    /// Live events only.
    Live,
    /// After a cursor: a reconnect (a malformed one gets `reset`).
    Cursor(Result<Cursor, MalformedCursor>),
    /// Recent history first, then live.
    Backfill(Backfill),
}

/// Decides and assembles resumes; one per gateway, shared by every connection.
pub(crate) struct Resumer {
    pub hub: Arc<Hub>,
    pub ring: Arc<Ring>,
    pub stream: StreamReader,
    pub budget: Arc<ReplayBudget>,
    pub metrics: Arc<ConnectionMetrics>,
    pub limits: ResumeLimits,
    /// Backfill counts, shared by identical requests.
    pub counts: BackfillCounts,
}

impl Resumer {
    /// Taps the hub and decides what the client should get before going live.
    pub(crate) async fn resume(&self, asked: Asked, channels: ChannelSet) -> Resumption {
        let tap = self.hub.tap();
        // A gap in the history a new connection asks for invalidates nothing it holds: it gets
        // what the stream has. A reconnecting client's state may miss what the gap lost.
        let (gaps, most) = match asked {
            Asked::Backfill(backfill) => (Gaps::Skip, Some(self.backfill_most(backfill))),
            Asked::Live | Asked::Cursor(_) => (Gaps::Reset, None),
        };
        let mut reader = None;
        let cursor = match asked {
            Asked::Live => None,
            Asked::Cursor(cursor) => Some(cursor),
            Asked::Backfill(backfill) => match self.backfill_from(backfill, &tap, channels).await {
                Ok(Some((seq, counted_with))) => {
                    reader = counted_with;
                    Some(Ok(Cursor {
                        epoch: tap.epoch,
                        seq,
                    }))
                }
                Ok(None) => None,
                Err(reason) => {
                    self.metrics.replay(ReplaySource::Reset);
                    let present = Cursor {
                        epoch: tap.epoch,
                        seq: tap.watermark,
                    };
                    let skip_through = tap.watermark;
                    return Resumption {
                        tap,
                        start: Start::Reset(reason, present),
                        skip_through,
                    };
                }
            },
        };
        // The ring is read after the tap's watermark: every event at or below it was recorded
        // before the watermark moved.
        let from_ring = cursor
            .as_ref()
            .and_then(|c| c.as_ref().ok())
            .and_then(|c| self.ring.after(tap.epoch, c.seq, tap.watermark));
        let plan = self
            .decide(
                cursor.as_ref(),
                &tap,
                from_ring,
                channels,
                (gaps, most, reader),
            )
            .await;
        log(cursor.as_ref(), &plan);
        match &plan {
            Plan::Replay { source, .. } => self.metrics.replay(*source),
            Plan::Reset(_) => self.metrics.replay(ReplaySource::Reset),
            Plan::Live | Plan::SkipThrough(_) => {}
        }
        let present = Cursor {
            epoch: tap.epoch,
            seq: tap.watermark,
        };
        let skip_through = match plan {
            Plan::SkipThrough(seq) => seq,
            _ => tap.watermark,
        };
        let start = match plan {
            Plan::Reset(reason) => Start::Reset(reason, present),
            Plan::Replay {
                frames,
                reservation,
                ..
            } if !frames.is_empty() => Start::Replay(Replay::new(frames, present, reservation)),
            _ => Start::Nothing,
        };
        Resumption {
            tap,
            start,
            skip_through,
        }
    }

    async fn decide(
        &self,
        cursor: Option<&Result<Cursor, MalformedCursor>>,
        tap: &Tap,
        from_ring: Option<FromRing>,
        channels: ChannelSet,
        (gaps, most, reader): (Gaps, Option<u64>, Option<Arc<ChannelReader>>),
    ) -> Plan {
        let cursor = match cursor {
            None => return Plan::Live,
            Some(Err(_)) => return Plan::Reset(ResetReason::InvalidCursor),
            Some(Ok(cursor)) => *cursor,
        };
        if cursor.epoch != tap.epoch {
            return Plan::Reset(ResetReason::StreamRecreated);
        }
        let watermark = tap.watermark;
        let mut reservation = self.budget.start();
        if cursor.seq == watermark {
            // Nothing missed: counted as a (empty) replay from the ring.
            return Plan::Replay {
                frames: Vec::new(),
                source: ReplaySource::Ring,
                reservation,
            };
        }
        if cursor.seq > watermark {
            // Another instance may simply be ahead of this one; only a cursor past the stream's
            // end is wrong.
            return match self.stream.bounds().await {
                Some((_, last)) if cursor.seq <= last => Plan::SkipThrough(cursor.seq),
                Some(_) => Plan::Reset(ResetReason::CursorAheadOfStream),
                None => Plan::Reset(ResetReason::ReplayFailed),
            };
        }
        let max_events = self.limits.max_batch_events;
        if let Some(from_ring) = from_ring {
            if from_ring.gap && gaps == Gaps::Reset {
                return Plan::Reset(ResetReason::SourceGap);
            }
            let events: Vec<_> = from_ring
                .events
                .into_iter()
                .filter(|e| channels.contains(Channel::of(e.event_type)))
                .collect();
            let events = keep_last(events, most);
            // The replay keeps these events alive until it is written, after the ring may have
            // let them go: what they hold counts, like a replay read from the stream.
            let pinned = events.iter().map(|event| event.message_len()).sum();
            if !reservation.grow(pinned) {
                return Plan::Reset(ResetReason::ReplayBudget);
            }
            return replay(
                coalesce_replay(events, max_events, REPLAY_FRAME_MAX_BYTES),
                ReplaySource::Ring,
                reservation,
            );
        }
        let Some((first, _)) = self.stream.bounds().await else {
            return Plan::Reset(ResetReason::ReplayFailed);
        };
        if cursor.seq + 1 < first {
            return Plan::Reset(ResetReason::CursorExpired);
        }
        let (from, to) = (cursor.seq + 1, watermark);
        let fetched = match most {
            // Backfill: only the connection's channels are read, and only their last `most`
            // kept, however far back they lie (the search found where they start).
            Some(most) => {
                let most = usize::try_from(most).unwrap_or(usize::MAX);
                tokio::time::timeout(STREAM_REPLAY_TIMEOUT, async {
                    let reader = match reader {
                        Some(reader) => reader,
                        None => Arc::new(self.stream.by_channel(channels).await?),
                    };
                    reader.fetch_last((from, to), most, &mut reservation).await
                })
                .await
            }
            None => {
                if watermark - cursor.seq > self.limits.max_events as u64 {
                    return Plan::Reset(ResetReason::TooFarBehind);
                }
                tokio::time::timeout(
                    STREAM_REPLAY_TIMEOUT,
                    self.stream
                        .fetch(from, to, channels, gaps, &mut |len| reservation.grow(len)),
                )
                .await
            }
        };
        match fetched {
            Ok(Ok(events)) => replay(
                coalesce_replay(keep_last(events, most), max_events, REPLAY_FRAME_MAX_BYTES),
                ReplaySource::Stream,
                reservation,
            ),
            Ok(Err(FetchError::OverBudget)) => Plan::Reset(ResetReason::ReplayBudget),
            Ok(Err(FetchError::SourceGap)) => Plan::Reset(ResetReason::SourceGap),
            Ok(Err(error)) => {
                tracing::warn!(%error, from, to, "replay from the stream failed; resetting the client");
                Plan::Reset(ResetReason::ReplayFailed)
            }
            Err(_) => {
                tracing::warn!(
                    from,
                    to,
                    "replay from the stream timed out; resetting the client"
                );
                Plan::Reset(ResetReason::ReplayFailed)
            }
        }
    }
}

/// A replay of `frames` once the biggest of them (the one being written at a time) fits in the
/// budget next to the events already reserved; `reset` (`replay_budget`) when it does not.
fn replay(frames: Vec<Folded>, source: ReplaySource, mut reservation: Reservation) -> Plan {
    let biggest = frames.iter().map(folded_frame_bytes).max().unwrap_or(0);
    if !reservation.grow(biggest) {
        return Plan::Reset(ResetReason::ReplayBudget);
    }
    Plan::Replay {
        frames,
        source,
        reservation,
    }
}

fn log(cursor: Option<&Result<Cursor, MalformedCursor>>, plan: &Plan) {
    match plan {
        Plan::Reset(reason) => tracing::info!(
            cursor = ?cursor.map(|c| c.as_ref().map(ToString::to_string).unwrap_or_else(|e| e.0.clone())),
            reason = reason.as_str(),
            "resume impossible; client will be reset"
        ),
        Plan::Replay {
            frames,
            source,
            reservation,
        } => tracing::debug!(
            frames = frames.len(),
            source = source.as_str(),
            bytes = reservation.bytes(),
            "resuming"
        ),
        Plan::Live | Plan::SkipThrough(_) => {}
    }
}
