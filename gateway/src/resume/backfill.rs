//! Backfill: recent history for a first connection (`?backfill=<events>`, `?since=<duration>`).
//! It is a resume from a cursor worked out here, so that the events after it, up to the
//! watermark, include the last N of the connection's channels: found in the ring, or else
//! counted in JetStream on those channels' subjects without reading; the replay then reads
//! only those channels and keeps the last N (see [`super::by_channel`]).
//!
//! Counting costs consumers, and a herd of pages opening at once asks for the same counts:
//! they are computed once for every request that asks for them meanwhile, and kept for
//! [`BACKFILL_CACHE_TTL`] ([`BackfillCounts`], `gateway_history_cache_total{route="backfill"}`).

use std::sync::Arc;
use std::time::Duration;

use rakuda_schema::{Channel, ResetReason};

use super::by_channel::ChannelReader;
use super::{Resumer, STREAM_REPLAY_TIMEOUT};
use crate::channels::ChannelSet;
use crate::event::StreamEvent;
use crate::fanout::Tap;
use crate::metrics::{CacheRoute, HistoryMetrics};
use crate::store::flight::{Flights, Grounded};
use crate::store::stream::{FetchError, StreamReader};

/// How long a backfill's counts are served to identical requests after they were taken. They
/// hold as long as the stream keeps the events counted: they are counted up to a watermark,
/// and later events do not change them.
pub(crate) const BACKFILL_CACHE_TTL: Duration = Duration::from_secs(5);
/// Distinct counts kept at most (each key is a few words).
const BACKFILL_CACHE_KEYS: usize = 1_024;
/// How much longer a request waits than its computation may take.
const FLIGHT_MARGIN: Duration = Duration::from_secs(1);

/// What one count answers: the last `n` events of `channels` up to `watermark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct LastOf {
    n: u64,
    watermark: u64,
    channels: ChannelSet,
}

/// Where the last N start, and the reader of those channels the count made.
type LastStart = (u64, Option<Arc<ChannelReader>>);

/// A backfill's counts, each computed once for every request asking for it meanwhile.
pub(crate) struct BackfillCounts {
    last: Flights<LastOf, LastStart, ResetReason>,
    /// `?since=`: the first sequence stored since a whole second (unix time).
    since: Flights<i64, Option<u64>, ResetReason>,
}

impl BackfillCounts {
    pub(crate) fn new(metrics: &HistoryMetrics) -> BackfillCounts {
        BackfillCounts {
            last: Flights::new(
                BACKFILL_CACHE_TTL,
                BACKFILL_CACHE_KEYS,
                metrics,
                CacheRoute::Backfill,
            ),
            since: Flights::new(
                BACKFILL_CACHE_TTL,
                BACKFILL_CACHE_KEYS,
                metrics,
                CacheRoute::Backfill,
            ),
        }
    }

    /// See [`start_of_last_in_stream`].
    async fn start_of_last(
        &self,
        stream: &StreamReader,
        key: LastOf,
    ) -> Result<LastStart, ResetReason> {
        let stream = stream.clone();
        let counted = self
            .last
            .get(
                key,
                STREAM_REPLAY_TIMEOUT + FLIGHT_MARGIN,
                move || async move {
                    let LastOf {
                        n,
                        watermark,
                        channels,
                    } = key;
                    let counted = tokio::time::timeout(
                        STREAM_REPLAY_TIMEOUT,
                        start_of_last_in_stream(&stream, n, watermark, channels),
                    )
                    .await
                    .map_err(|_| ResetReason::ReplayFailed)??;
                    Ok((counted.0, counted.1.map(Arc::new)))
                },
            )
            .await;
        counted.map_err(grounded)
    }

    /// The first sequence stored at or after the whole second `since` falls in: identical
    /// `?since=` requests within a second share it (they start up to a second earlier).
    async fn first_since(
        &self,
        stream: &StreamReader,
        since: time::OffsetDateTime,
    ) -> Result<Option<u64>, ResetReason> {
        let second = since.unix_timestamp();
        let Ok(from) = time::OffsetDateTime::from_unix_timestamp(second) else {
            return Err(ResetReason::ReplayFailed);
        };
        let stream = stream.clone();
        let found = self
            .since
            .get(second, STREAM_REPLAY_TIMEOUT + FLIGHT_MARGIN, move || async move {
                match tokio::time::timeout(STREAM_REPLAY_TIMEOUT, stream.first_seq_since(from))
                    .await
                {
                    Ok(Ok(first)) => Ok(first),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "cannot find where ?since= starts; resetting the client");
                        Err(ResetReason::ReplayFailed)
                    }
                    Err(_) => Err(ResetReason::ReplayFailed),
                }
            })
            .await;
        found.map_err(grounded)
    }
}

fn grounded(grounded: Grounded<ResetReason>) -> ResetReason {
    match grounded {
        Grounded::Failed(reason) => reason,
        Grounded::TimedOut(_) | Grounded::Abandoned => ResetReason::ReplayFailed,
    }
}

/// How much history a new connection asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backfill {
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
    /// and other channels do not count); `None` when there is nothing to send. With it, the
    /// reader of those channels when the stream was asked (the replay reads with it too).
    pub(super) async fn backfill_from(
        &self,
        backfill: Backfill,
        tap: &Tap,
        channels: ChannelSet,
    ) -> Result<Option<(u64, Option<Arc<ChannelReader>>)>, ResetReason> {
        let watermark = tap.watermark;
        let most = self.backfill_most(backfill);
        if most == 0 || watermark == 0 {
            return Ok(None);
        }
        let wanted = |event: &StreamEvent| channels.contains(Channel::of(event.event_type));
        let (last_n, reader) = match self.ring.start_of_last(tap.epoch, most, watermark, wanted) {
            Some(start) => (start, None),
            None => {
                let key = LastOf {
                    n: most,
                    watermark,
                    channels,
                };
                self.counts.start_of_last(&self.stream, key).await?
            }
        };
        let start = match backfill {
            Backfill::Events(_) => last_n,
            Backfill::Since(age) => {
                let age = age.min(self.limits.backfill_max_age);
                let since = time::OffsetDateTime::now_utc() - age;
                match self.counts.first_since(&self.stream, since).await? {
                    Some(first) => first.saturating_sub(1).max(last_n),
                    None => return Ok(None),
                }
            }
        };
        Ok((start < watermark).then_some((start, reader)))
    }
}

/// Where the last `n` events of `channels` up to `watermark` start, when the ring does not
/// hold them, counted by the server on those channels' subjects only: a start that includes
/// at least `n` of them (all there are, if fewer) and not many more, found in a few rounds
/// (each creates and deletes a consumer per subject filter). The stream's first event is the
/// only floor: a quiet channel's last events may lie far behind busy ones.
async fn start_of_last_in_stream(
    stream: &StreamReader,
    n: u64,
    watermark: u64,
    channels: ChannelSet,
) -> Result<(u64, Option<ChannelReader>), ResetReason> {
    /// Counting rounds at most.
    const ROUNDS: usize = 24;
    let failed = |error: FetchError| {
        tracing::warn!(%error, "cannot count the stream's events for a backfill; resetting the client");
        ResetReason::ReplayFailed
    };
    let reader = stream.by_channel(channels).await.map_err(failed)?;
    let floor = reader.first_seq().saturating_sub(1).min(watermark);
    // Events on these channels after the watermark are not the backfill's.
    let beyond = reader.count_from(watermark + 1).await.map_err(failed)?;
    let mut search = StartSearch::new(n, floor, watermark);
    for _ in 0..ROUNDS {
        let Some(start) = search.next() else { break };
        let counted = reader
            .count_from(start + 1)
            .await
            .map_err(failed)?
            .saturating_sub(beyond);
        search.counted(start, counted);
    }
    Ok((search.best(), Some(reader)))
}

/// The search for where the last `n` events of some channels start, between `floor` (the
/// stream's beginning) and `watermark`, from exact counts of the events after a candidate.
/// It steps back in proportion to what is missing (at least doubling the span, so a quiet
/// channel reaches the floor in a few rounds), then halves the range between a start with too
/// few and one with enough until the latter holds at most half again as many as asked.
#[derive(Debug)]
pub(super) struct StartSearch {
    n: u64,
    floor: u64,
    watermark: u64,
    /// A start after which there are fewer than `n`.
    short: u64,
    /// A start after which there are at least `n`, and how many.
    enough: Option<(u64, u64)>,
    /// The last start counted and its count.
    last: Option<(u64, u64)>,
    done: bool,
}

impl StartSearch {
    pub(super) fn new(n: u64, floor: u64, watermark: u64) -> StartSearch {
        StartSearch {
            n: n.max(1),
            floor,
            watermark,
            short: watermark,
            enough: None,
            last: None,
            done: floor >= watermark,
        }
    }

    /// The next start to count; `None` once found.
    pub(super) fn next(&self) -> Option<u64> {
        if self.done {
            return None;
        }
        Some(match (self.enough, self.last) {
            (Some((enough, _)), _) => enough + (self.short - enough) / 2,
            (None, None) => self.watermark.saturating_sub(self.n).max(self.floor),
            (None, Some((start, counted))) => {
                let span = self.watermark - start;
                let per_event = span as f64 / counted.max(1) as f64;
                let step = ((self.n - counted) as f64 * per_event * 1.25).ceil() as u64;
                start.saturating_sub(step.max(span)).max(self.floor)
            }
        })
    }

    /// `counted` events lie after `start`.
    pub(super) fn counted(&mut self, start: u64, counted: u64) {
        self.last = Some((start, counted));
        if counted >= self.n {
            self.enough = Some((start, counted));
            let close = counted <= self.n + self.n / 2;
            self.done = close || self.short - start <= 1;
        } else {
            self.short = start;
            if start <= self.floor {
                // Fewer than `n` in the whole stream: all of them.
                self.enough = Some((self.floor, counted));
                self.done = true;
            } else if let Some((enough, _)) = self.enough {
                self.done = start - enough <= 1;
            }
        }
    }

    /// The start found (the floor if none was).
    pub(super) fn best(&self) -> u64 {
        self.enough.map_or(self.floor, |(start, _)| start)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against `events` (the sequences of the wanted channels' events).
    fn search(events: &[u64], n: u64, floor: u64, watermark: u64) -> (u64, usize) {
        let mut search = StartSearch::new(n, floor, watermark);
        let mut rounds = 0;
        while let Some(start) = search.next() {
            rounds += 1;
            assert!(rounds <= 64, "the search ends");
            let counted = events
                .iter()
                .filter(|seq| **seq > start && **seq <= watermark)
                .count() as u64;
            search.counted(start, counted);
        }
        (search.best(), rounds)
    }

    fn after(events: &[u64], start: u64, watermark: u64) -> usize {
        events
            .iter()
            .filter(|seq| **seq > start && **seq <= watermark)
            .count()
    }

    #[test]
    fn a_dense_channel_is_found_at_once() {
        let events: Vec<u64> = (1..=10_000).collect();
        let (start, rounds) = search(&events, 100, 0, 10_000);
        assert_eq!((start, rounds), (9_900, 1));
    }

    #[test]
    fn a_sparse_channel_is_found_within_a_few_rounds_and_not_much_early() {
        // Every 10th of 300, as in the issue; and a quiet channel far behind a busy one.
        let every_tenth: Vec<u64> = (1..=300).filter(|s| s % 10 == 0).collect();
        let (start, rounds) = search(&every_tenth, 20, 0, 300);
        let got = after(&every_tenth, start, 300);
        assert!((20..=30).contains(&got), "{got} events after {start}");
        assert!(rounds <= 12, "{rounds} rounds");

        let quiet: Vec<u64> = (2..=1_201).collect();
        let (start, rounds) = search(&quiet, 1_000, 0, 1_000_000);
        let got = after(&quiet, start, 1_000_000);
        assert!((1_000..=1_500).contains(&got), "{got} events after {start}");
        assert!(rounds <= 24, "{rounds} rounds");
    }

    #[test]
    fn fewer_than_asked_means_all_of_them() {
        let events = [5, 50, 500];
        assert_eq!(search(&events, 10, 0, 1_000).0, 0);
        assert_eq!(search(&[], 10, 3, 1_000).0, 3, "none: the floor");
        assert_eq!(
            search(&events, 10, 1_000, 1_000).0,
            1_000,
            "nothing to search"
        );
    }
}
