//! Fills the snapshot state ([`super::latest`]) from `<STREAM_NAME>_LATEST`: once per start of
//! the feed (at start, and when the stream was recreated), with one consumer for the whole
//! read, deleted at its end. A fill that fails is retried with backoff; until the first one is
//! in, snapshot requests wait a moment and are then refused (503 `snapshot_loading`).
//!
//! JetStream copies events into `<STREAM_NAME>_LATEST` a moment after storing them: the events
//! the feed started after but that were not copied yet are read from the event stream itself
//! (one more consumer, on that short range only), as the copy would store them. So the fill
//! holds everything up to where the feed starts, and the feed records the rest.
//!
//! Between fills it reads the stream's info (one request, no consumer) every
//! [`LATEST_CHECK_INTERVAL`]: a stream recreated, or purged (it holds clearly fewer entries
//! than this state), is read again; a changed `LATEST_MAX_ENTITIES` is applied to the state as
//! the stream applied it.
//!
//! Which consumers (where they start, what they filter) is the fill's choice and stays here;
//! reading one whole and the guard that deletes it are `crate::store`'s
//! ([`crate::store::latest`], [`crate::store::consumer`]).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, stream::Stream};
use rakuda_schema::channel::ENTITY_SUBJECTS;
use rakuda_service::backoff::Backoff;
use tokio_util::sync::CancellationToken;

use super::latest::{Filling, Latest, Wanted};
use super::{HistoryError, HISTORY_TIMEOUT};
use crate::metrics::{CacheResult, CacheRoute, HistoryMetrics};
use crate::store::consumer::{ConsumerGuard, CONSUMER_INACTIVE_THRESHOLD};
use crate::store::latest::{read_into, source_sequence, ReadError, MESSAGE_ROOM};

/// How often the stream's info is read between fills.
pub(crate) const LATEST_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// The longest one fill may take (a million entities read in a few seconds).
const FILL_TIMEOUT: Duration = Duration::from_secs(300);
/// Checks in a row that find the stream holding clearly fewer entries than this state before
/// it is read again (one could catch the stream a moment behind the feed).
const SHORT_CHECKS: u32 = 2;

/// What the fill task needs.
pub(crate) struct Filler {
    pub latest: Arc<Latest>,
    pub jetstream: jetstream::Context,
    /// `<STREAM_NAME>_LATEST`.
    pub stream_name: String,
    /// `STREAM_NAME`: where the events not copied yet are read.
    pub event_stream: String,
    pub metrics: Arc<HistoryMetrics>,
}

/// What was known of the stream at the last fill.
struct Known {
    /// Its creation time: another one means it was recreated.
    created: time::OffsetDateTime,
}

impl Filler {
    /// Fills whenever a fill is wanted, until `stop`.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut wanted = self.latest.wanted();
        let mut backoff = Backoff::new();
        let mut filled_gen = 0u32;
        let mut known: Option<Known> = None;
        let mut short_checks = 0u32;
        let mut warned = false;
        let mut check = tokio::time::interval(LATEST_CHECK_INTERVAL);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.reset();
        loop {
            let asked = *wanted.borrow_and_update();
            let gen = asked.gen;
            if gen > filled_gen {
                let started = std::time::Instant::now();
                let filled = tokio::select! {
                    _ = stop.cancelled() => return,
                    filled = tokio::time::timeout(FILL_TIMEOUT, self.fill(asked)) => filled,
                };
                let failure = match filled {
                    Ok(Ok((filling, created))) => {
                        let entities = filling.entries.len();
                        match self.latest.swap_in(gen, filling.entries) {
                            Ok(()) => {
                                filled_gen = gen;
                                known = Some(Known { created });
                                short_checks = 0;
                                backoff.reset();
                                warned = false;
                                self.metrics.snapshot_fills.increment(1);
                                self.metrics
                                    .cache(CacheRoute::Snapshot, CacheResult::Miss)
                                    .increment(1);
                                tracing::info!(
                                    stream = %self.stream_name,
                                    entities,
                                    took_ms = started.elapsed().as_millis() as u64,
                                    "snapshot state filled"
                                );
                                None
                            }
                            // The feed started anew meanwhile: fill again for that.
                            Err(_) => continue,
                        }
                    }
                    Ok(Err(error)) => Some(error.to_string()),
                    Err(_) => Some(format!("no end within {FILL_TIMEOUT:?}")),
                };
                if let Some(error) = failure {
                    self.metrics.snapshot_fill_failures.increment(1);
                    if !warned {
                        tracing::warn!(
                            %error,
                            stream = %self.stream_name,
                            "cannot fill the snapshot state; retrying with backoff (snapshot \
                             requests get 503 snapshot_loading until the first fill is in). \
                             Check that the stream exists and the gateway may read it"
                        );
                        warned = true;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        changed = wanted.changed() => if changed.is_err() { return },
                    }
                    continue;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = wanted.changed() => if changed.is_err() { return },
                _ = check.tick() => {
                    if let Some(known) = &known {
                        self.check(known, &mut short_checks).await;
                    }
                }
            }
        }
    }

    /// Reads the stream's info: asks for a fill if it was recreated or purged, applies a new
    /// limit.
    async fn check(&self, known: &Known, short_checks: &mut u32) {
        let info = tokio::time::timeout(HISTORY_TIMEOUT, async {
            let mut stream = self.jetstream.get_stream(&self.stream_name).await.ok()?;
            stream.info().await.ok().cloned()
        })
        .await;
        let Ok(Some(info)) = info else {
            // NATS away for now: the next check, or the next fill, will see.
            return;
        };
        if info.created != known.created {
            tracing::info!(stream = %self.stream_name, "the latest-state stream was recreated; reading it again");
            self.latest.refill();
            return;
        }
        let stream_cap = stream_cap(info.config.max_messages);
        let (cap, held) = self.latest.stream_cap_and_len();
        if cap != stream_cap {
            tracing::info!(stream = %self.stream_name, ?stream_cap, "the latest-state stream's limit changed; the snapshot state follows");
            self.latest.set_stream_cap(stream_cap);
        }
        // The stream is a moment behind the feed at most: holding clearly fewer entries, twice
        // in a row, means some were purged.
        let held = held as u64;
        let slack = (held / 100).max(64);
        if info.state.messages + slack < held {
            *short_checks += 1;
            if *short_checks >= SHORT_CHECKS {
                tracing::info!(
                    stream = %self.stream_name,
                    stream_messages = info.state.messages,
                    held,
                    "the latest-state stream holds fewer entries than the snapshot state (purged?); reading it again"
                );
                *short_checks = 0;
                self.latest.refill();
            }
        } else {
            *short_checks = 0;
        }
    }

    /// Reads the whole stream into a new state, and the events up to `wanted.through` it has
    /// not copied yet; with the stream's creation time.
    async fn fill(&self, wanted: Wanted) -> Result<(Filling, time::OffsetDateTime), HistoryError> {
        let read = |error: &dyn std::fmt::Display| HistoryError::Read(error.to_string());
        let (stream, info) = tokio::time::timeout(HISTORY_TIMEOUT, async {
            let mut stream: Stream = self.jetstream.get_stream(&self.stream_name).await?;
            let info = stream.info().await.map_err(|error| read(&error))?.clone();
            Ok::<_, HistoryError>((stream, info))
        })
        .await
        .map_err(|_| HistoryError::Timeout(HISTORY_TIMEOUT))??;
        let largest = usize::try_from(info.config.max_message_size).unwrap_or(0);
        let mut filling =
            Filling::new(stream_cap(info.config.max_messages), largest + MESSAGE_ROOM);
        let last = if info.state.messages == 0 {
            None
        } else {
            self.read_latest(stream, largest, &mut filling).await?
        };
        // Where the copy stands: after the last message copied, unless that one came from a
        // stream that was since recreated (stored before the current one was created), in
        // which case nothing of the current one was copied.
        let copied_through = match last {
            Some((seq, stored)) if stored_ms(stored) >= wanted.epoch => seq,
            _ => 0,
        };
        if copied_through < wanted.through {
            self.catch_up(copied_through + 1, wanted.through, largest, &mut filling)
                .await?;
        }
        Ok((filling, info.created))
    }

    /// Reads `<STREAM_NAME>_LATEST` whole into `filling`: the last message's source sequence
    /// and when it was stored.
    async fn read_latest(
        &self,
        stream: Stream,
        largest: usize,
        filling: &mut Filling,
    ) -> Result<Option<(u64, time::OffsetDateTime)>, HistoryError> {
        let consumer = tokio::time::timeout(
            HISTORY_TIMEOUT,
            stream.create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::None,
                memory_storage: true,
                inactive_threshold: CONSUMER_INACTIVE_THRESHOLD,
                ..Default::default()
            }),
        )
        .await
        .map_err(|_| HistoryError::Timeout(HISTORY_TIMEOUT))??;
        let (name, mut pending) = {
            let info = consumer.cached_info();
            (info.name.clone(), info.num_pending)
        };
        let guard = ConsumerGuard::new(stream, name, self.metrics.clone());
        let mut last = None;
        read_into(
            &consumer,
            largest,
            (&mut pending, u64::MAX),
            |subject, seq, event| filling.add(subject, seq, event),
            |message| {
                let seq = source_sequence(message.headers.as_ref());
                let stored = message
                    .info()
                    .map_err(|error| ReadError::Read(error.to_string()))?
                    .published;
                last = Some((seq, stored));
                Ok(seq)
            },
        )
        .await?;
        guard.delete().await;
        Ok(last)
    }

    /// Reads the event stream's events from `from` up to `through` that the latest-state stream
    /// takes, into `filling`, as the copy would store them.
    async fn catch_up(
        &self,
        from: u64,
        through: u64,
        largest: usize,
        filling: &mut Filling,
    ) -> Result<(), HistoryError> {
        let (stream, consumer) = tokio::time::timeout(HISTORY_TIMEOUT, async {
            let stream: Stream = self.jetstream.get_stream(&self.event_stream).await?;
            let consumer = stream
                .create_consumer(pull::Config {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: from,
                    },
                    filter_subject: ENTITY_SUBJECTS.into(),
                    ack_policy: AckPolicy::None,
                    memory_storage: true,
                    inactive_threshold: CONSUMER_INACTIVE_THRESHOLD,
                    ..Default::default()
                })
                .await?;
            Ok::<_, HistoryError>((stream, consumer))
        })
        .await
        .map_err(|_| HistoryError::Timeout(HISTORY_TIMEOUT))??;
        let (name, mut pending) = {
            let info = consumer.cached_info();
            (info.name.clone(), info.num_pending)
        };
        let guard = ConsumerGuard::new(stream, name, self.metrics.clone());
        read_into(
            &consumer,
            largest,
            (&mut pending, through),
            |subject, seq, event| filling.add(subject, seq, event),
            |message| {
                let seq = message
                    .info()
                    .map_err(|error| ReadError::Read(error.to_string()))?
                    .stream_sequence;
                Ok(seq)
            },
        )
        .await?;
        guard.delete().await;
        Ok(())
    }
}

/// An instant in unix milliseconds, as epochs are.
fn stored_ms(at: time::OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// The stream's `max_messages` as a limit (`None`: none).
fn stream_cap(max_messages: i64) -> Option<u64> {
    u64::try_from(max_messages).ok().filter(|max| *max > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_without_a_limit_has_none() {
        assert_eq!(stream_cap(-1), None);
        assert_eq!(stream_cap(0), None);
        assert_eq!(stream_cap(20), Some(20));
    }
}
