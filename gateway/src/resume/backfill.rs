//! Backfill: recent history for a first connection (`?backfill=<events>`, `?since=<duration>`).
//! It is a resume from a cursor worked out here, so that the events after it, up to the
//! watermark, include the last N of the connection's channels: found in the ring, or else
//! counted in JetStream without reading; the replay then keeps the last N.

use std::time::Duration;

use rakuda_schema::{Channel, ResetReason};

use super::{Resumer, STREAM_REPLAY_TIMEOUT};
use crate::channels::ChannelSet;
use crate::event::StreamEvent;
use crate::fanout::Tap;

/// How much history a new connection asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backfill {
    /// The last N events of the connection's channels.
    Events(u64),
    /// The events stored within this long.
    Since(Duration),
}

impl Resumer {
    /// The most events a backfill sends: what it asked for, within `BACKFILL_MAX_EVENTS`.
    pub(super) fn backfill_most(&self, backfill: Backfill) -> u64 {
        match backfill {
            Backfill::Events(n) => n.min(self.limits.backfill_max_events),
            Backfill::Since(_) => self.limits.backfill_max_events,
        }
    }

    /// The cursor a backfill starts after, so that the events after it up to the watermark
    /// include the last [`Resumer::backfill_most`] of the connection's channels (canary probes
    /// and other channels do not count); `None` when there is nothing to send.
    pub(super) async fn backfill_from(
        &self,
        backfill: Backfill,
        tap: &Tap,
        channels: ChannelSet,
    ) -> Result<Option<u64>, ResetReason> {
        let watermark = tap.watermark;
        let most = self.backfill_most(backfill);
        if most == 0 || watermark == 0 {
            return Ok(None);
        }
        let wanted = |event: &StreamEvent| channels.contains(Channel::of(event.event_type));
        let last_n = match self.ring.start_of_last(tap.epoch, most, watermark, wanted) {
            Some(start) => start,
            None => tokio::time::timeout(
                STREAM_REPLAY_TIMEOUT,
                self.start_of_last_in_stream(most, watermark),
            )
            .await
            .map_err(|_| ResetReason::ReplayFailed)??,
        };
        let start = match backfill {
            Backfill::Events(_) => last_n,
            Backfill::Since(age) => {
                let age = age.min(self.limits.backfill_max_age);
                let since = time::OffsetDateTime::now_utc() - age;
                let first =
                    tokio::time::timeout(STREAM_REPLAY_TIMEOUT, self.stream.first_seq_since(since))
                        .await;
                match first {
                    Ok(Ok(Some(first))) => first.saturating_sub(1).max(last_n),
                    Ok(Ok(None)) => return Ok(None),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "cannot find where ?since= starts; resetting the client");
                        return Err(ResetReason::ReplayFailed);
                    }
                    Err(_) => return Err(ResetReason::ReplayFailed),
                }
            }
        };
        Ok((start < watermark).then_some(start))
    }

    /// Where the last `n` client events up to `watermark` start, when the ring does not hold
    /// them: the server counts client events from a candidate start (canary probes are not
    /// client events), and the start steps back in proportion to what is missing, a few rounds
    /// at most; never before the stream's first event or `RESUME_MAX_EVENTS` back. It may start
    /// early: the replay keeps the last `n`.
    async fn start_of_last_in_stream(&self, n: u64, watermark: u64) -> Result<u64, ResetReason> {
        /// Counting rounds: each one creates and deletes one consumer.
        const ROUNDS: usize = 4;
        let Some((first, _)) = self.stream.bounds().await else {
            return Err(ResetReason::ReplayFailed);
        };
        let floor = first
            .saturating_sub(1)
            .max(watermark.saturating_sub(self.limits.max_events as u64));
        let mut start = watermark.saturating_sub(n).max(floor);
        for _ in 0..ROUNDS {
            if start <= floor {
                break;
            }
            let counted = self.stream.client_events_from(start + 1).await.map_err(|error| {
                tracing::warn!(%error, "cannot count the stream's events for a backfill; resetting the client");
                ResetReason::ReplayFailed
            })?;
            if counted >= n {
                break;
            }
            let span = (watermark - start) as f64;
            let per_event = span / counted.max(1) as f64;
            let step = ((n - counted) as f64 * per_event).ceil() as u64;
            start = start.saturating_sub(step.max(1)).max(floor);
        }
        Ok(start)
    }
}

/// The last `most` of `events` (all of them when `None`): a backfill that started early sends
/// no more than it asked for.
pub(super) fn keep_last<T>(mut events: Vec<T>, most: Option<u64>) -> Vec<T> {
    let most = most.map_or(usize::MAX, |most| {
        usize::try_from(most).unwrap_or(usize::MAX)
    });
    if events.len() > most {
        events.drain(..events.len() - most);
    }
    events
}
