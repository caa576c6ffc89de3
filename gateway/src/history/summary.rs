//! `GET /api/realtime/summary`: how many events of each type since local midnight (in
//! `SUMMARY_TIMEZONE`) and in the last hour, without reading them: for each channel and window,
//! a consumer filtered to the channel's subjects and started at the window's start reports how
//! many messages it has pending. That is 2 windows × 4 channels = 8 consumers created and
//! deleted, two stream infos read, per counting attempt. One computation serves every request
//! that arrives while it runs (they join it, a failure included) and, once done, every request
//! for `SUMMARY_CACHE_TTL` ([`crate::store::flight`]): a thousand dashboards opening at once cost the
//! consumers of one summary.
//!
//! `throughSeq` is the stream's last sequence when the counts were taken: a client adds the live
//! events after it. The stream's end is read before and after counting, and the counts are taken
//! again (up to three times) if an event was stored meanwhile; `exact` is `false` when events
//! kept arriving through every attempt.
//!
//! The counts are of what the stream still holds. `STREAM_MAX_MESSAGES` or `STREAM_MAX_AGE` may
//! have removed events of today (or of the last hour): when the oldest event held is later than
//! a window's start and events before it were removed, that window is not complete
//! (`todayComplete`, `lastHourComplete`), `exact` is `false`, and `firstHeldSeq`/`firstHeldAt`
//! say where the count really starts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{HistoryError, HISTORY_TIMEOUT};
use crate::metrics::{CacheRoute, HistoryMetrics};
use crate::store::flight::{Flights, Grounded};
use crate::store::stream::count_matching;
use async_nats::jetstream::{self, consumer::DeliverPolicy};
use jiff::tz::TimeZone;
use rakuda_schema::{Summary, Timestamp, CHANNELS};

/// Counting attempts before a summary is served that may miss events stored meanwhile.
const COUNT_ATTEMPTS: usize = 3;

/// Computes summaries, one at a time, and keeps the last one for a while.
pub(crate) struct Summaries {
    counter: Arc<Counter>,
    flights: Flights<(), Arc<Summary>, Arc<HistoryError>>,
}

/// What a computation reads with.
struct Counter {
    jetstream: jetstream::Context,
    stream_name: String,
    timezone: TimeZone,
    timezone_name: String,
}

impl Summaries {
    /// Summaries of `stream_name` in `timezone_name`, each served for `cache_ttl`
    /// (`SUMMARY_CACHE_TTL`), counted in `gateway_history_cache_total{route="summary"}`.
    pub(crate) fn new(
        jetstream: jetstream::Context,
        stream_name: String,
        timezone_name: &str,
        cache_ttl: Duration,
        metrics: &HistoryMetrics,
    ) -> Result<Summaries, jiff::Error> {
        Ok(Summaries {
            counter: Arc::new(Counter {
                jetstream,
                stream_name,
                timezone: TimeZone::get(timezone_name)?,
                timezone_name: timezone_name.to_owned(),
            }),
            // One summary for everyone: one key.
            flights: Flights::new(cache_ttl, 1, metrics, CacheRoute::Summary),
        })
    }

    /// The last summary if it is fresh, the one being computed if there is one, else a new
    /// one.
    pub(crate) async fn get(&self) -> Result<Arc<Summary>, Arc<HistoryError>> {
        let counter = self.counter.clone();
        let computed = self
            .flights
            .get((), HISTORY_TIMEOUT + FLIGHT_MARGIN, move || async move {
                tokio::time::timeout(HISTORY_TIMEOUT, counter.compute(jiff::Timestamp::now()))
                    .await
                    .map_err(|_| HistoryError::Timeout(HISTORY_TIMEOUT))
                    .and_then(|counted| counted)
                    .map(Arc::new)
                    .map_err(Arc::new)
            })
            .await;
        computed.map_err(|grounded| match grounded {
            Grounded::Failed(error) => error,
            Grounded::TimedOut(wait) => Arc::new(HistoryError::Timeout(wait)),
            Grounded::Abandoned => Arc::new(HistoryError::Read(
                "the computation ended without a result (shutting down?)".into(),
            )),
        })
    }
}

/// How much longer a request waits than its computation may take: the computation's own
/// deadline answers first.
const FLIGHT_MARGIN: Duration = Duration::from_secs(1);

impl Counter {
    /// Events per client type since `midnight` and since `hour_ago`.
    async fn count(
        &self,
        stream: &jetstream::stream::Stream,
        midnight: jiff::Timestamp,
        hour_ago: jiff::Timestamp,
    ) -> Result<(BTreeMap<String, u64>, BTreeMap<String, u64>), HistoryError> {
        let clients = CHANNELS.iter().filter(|channel| !channel.internal);
        let counts = clients.flat_map(|channel| {
            [midnight, hour_ago].map(|since| async move {
                let count = count_since(stream, &channel.subjects(), since).await?;
                Ok::<_, HistoryError>((channel.event_type.as_str(), since == midnight, count))
            })
        });
        let mut today = BTreeMap::new();
        let mut last_hour = BTreeMap::new();
        for result in futures::future::join_all(counts).await {
            let (event_type, is_today, count) = result?;
            if is_today {
                today.insert(event_type.to_owned(), count);
            } else {
                last_hour.insert(event_type.to_owned(), count);
            }
        }
        Ok((today, last_hour))
    }

    async fn compute(&self, now: jiff::Timestamp) -> Result<Summary, HistoryError> {
        let midnight = local_midnight(now, &self.timezone);
        let hour_ago = now - jiff::SignedDuration::from_hours(1);
        let mut stream = self.jetstream.get_stream(&self.stream_name).await?;
        // The counts hold as of `through_seq` only if no event was stored while the consumers
        // were being made (each counts up to the end of the stream at its making): the stream's
        // end is read before and after, and the count made again if it moved.
        let mut attempt = 0;
        let (today, last_hour, held, settled) = loop {
            attempt += 1;
            let before = held(&mut stream).await?;
            let (today, last_hour) = self.count(&stream, midnight, hour_ago).await?;
            let after = held(&mut stream).await?;
            let settled = before.last_seq == after.last_seq;
            if settled || attempt == COUNT_ATTEMPTS {
                break (today, last_hour, after, settled);
            }
        };
        if !settled {
            tracing::debug!(
                "events kept arriving while the summary was counted; it may miss a few of them"
            );
        }
        let (today_complete, last_hour_complete) = (
            held.holds_all_since(midnight),
            held.holds_all_since(hour_ago),
        );
        if !today_complete {
            tracing::debug!(
                first_held_seq = held.first_seq,
                "the stream no longer holds all of today's events; the summary says so"
            );
        }
        Ok(Summary {
            timezone: self.timezone_name.clone(),
            today_since: midnight.to_string(),
            last_hour_since: hour_ago.to_string(),
            today,
            last_hour,
            through_seq: held.last_seq,
            exact: settled && today_complete && last_hour_complete,
            today_complete,
            last_hour_complete,
            first_held_seq: held.first_seq,
            first_held_at: held.first_at.to_string(),
            computed_at: Timestamp::now().as_str().to_owned(),
        })
    }
}

/// What the stream holds now: from which event, up to which.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Held {
    /// The oldest event held (the last sequence + 1 when it holds none).
    first_seq: u64,
    first_at: jiff::Timestamp,
    last_seq: u64,
    last_at: jiff::Timestamp,
    messages: u64,
}

impl Held {
    /// Whether every event stored since `since` is still held. Removal by the stream's limits
    /// starts with the oldest, so it is enough that nothing was ever removed (the stream starts
    /// at sequence 1), or that an event from before `since` is still there. An empty stream
    /// holds all since `since` only if its last event is older. When the oldest event held is
    /// newer than `since` and events before it were removed, those may have been of the window:
    /// not complete.
    fn holds_all_since(&self, since: jiff::Timestamp) -> bool {
        if self.first_seq <= 1 {
            return true;
        }
        if self.messages == 0 {
            return self.last_at < since;
        }
        self.first_at <= since
    }
}

/// The stream's bounds now.
async fn held(stream: &mut jetstream::stream::Stream) -> Result<Held, HistoryError> {
    let state = &stream
        .info()
        .await
        .map_err(|error| HistoryError::Read(error.to_string()))?
        .state;
    let instant = |at: time::OffsetDateTime| {
        jiff::Timestamp::from_nanosecond(at.unix_timestamp_nanos())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    };
    Ok(Held {
        first_seq: state.first_sequence,
        first_at: instant(state.first_timestamp),
        last_seq: state.last_sequence,
        last_at: instant(state.last_timestamp),
        messages: state.messages,
    })
}

/// Messages on `filter` stored at or after `since`, counted by the server.
async fn count_since(
    stream: &jetstream::stream::Stream,
    filter: &str,
    since: jiff::Timestamp,
) -> Result<u64, HistoryError> {
    let start_time = time::OffsetDateTime::from_unix_timestamp_nanos(since.as_nanosecond())
        .map_err(|error| HistoryError::Read(error.to_string()))?;
    let start = DeliverPolicy::ByStartTime { start_time };
    count_matching(stream, start, filter)
        .await
        .map_err(|error| HistoryError::Read(error.to_string()))
}

/// The start of `now`'s day in `tz` (the first instant of the day where a DST change skips
/// midnight).
pub(crate) fn local_midnight(now: jiff::Timestamp, tz: &TimeZone) -> jiff::Timestamp {
    let zoned = now.to_zoned(tz.clone());
    zoned
        .start_of_day()
        .map(|start| start.timestamp())
        // Only out-of-range dates fail; the instant itself is then the safest bound.
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn midnight_is_local_midnight_in_a_timezone_ahead_of_utc() {
        let tokyo = TimeZone::get("Asia/Tokyo").expect("tz");
        // 23:30 UTC on the 1st is 08:30 on the 2nd in Tokyo: the day began at 15:00 UTC.
        assert_eq!(
            local_midnight(at("2026-12-01T23:30:00Z"), &tokyo),
            at("2026-12-01T15:00:00Z")
        );
        // One second before Tokyo's midnight still belongs to the 1st.
        assert_eq!(
            local_midnight(at("2026-12-01T14:59:59Z"), &tokyo),
            at("2026-11-30T15:00:00Z")
        );
        assert_eq!(
            local_midnight(at("2026-12-01T15:00:00Z"), &tokyo),
            at("2026-12-01T15:00:00Z")
        );
    }

    #[test]
    fn a_window_is_complete_unless_events_of_it_may_have_been_removed() {
        let held = |first_seq, first_at, messages| Held {
            first_seq,
            first_at: at(first_at),
            last_seq: 100,
            last_at: at("2026-12-01T12:00:00Z"),
            messages,
        };
        let midnight = at("2026-12-01T00:00:00Z");
        // Nothing ever removed: complete, however young the stream.
        assert!(held(1, "2026-12-01T08:00:00Z", 100).holds_all_since(midnight));
        // Removed, but an event from yesterday is still held: today is whole.
        assert!(held(40, "2026-11-30T23:00:00Z", 61).holds_all_since(midnight));
        // Removed up to an event of today: today's count starts later.
        assert!(!held(40, "2026-12-01T08:00:00Z", 61).holds_all_since(midnight));
        // Everything removed, the last event today: not complete; yesterday: nothing missing.
        assert!(!held(101, "1970-01-01T00:00:00Z", 0).holds_all_since(midnight));
        assert!(held(101, "1970-01-01T00:00:00Z", 0).holds_all_since(at("2026-12-01T13:00:00Z")));
    }

    #[test]
    fn midnight_follows_daylight_saving_time() {
        let new_york = TimeZone::get("America/New_York").expect("tz");
        // After the switch to summer time (8 March 2026), midnight is 04:00 UTC, before it 05:00.
        assert_eq!(
            local_midnight(at("2026-03-09T12:00:00Z"), &new_york),
            at("2026-03-09T04:00:00Z")
        );
        assert_eq!(
            local_midnight(at("2026-03-07T12:00:00Z"), &new_york),
            at("2026-03-07T05:00:00Z")
        );
        // Where a DST change skips midnight itself (Santiago, September), the day starts at 01:00.
        let santiago = TimeZone::get("America/Santiago").expect("tz");
        let start = local_midnight(at("2026-09-06T15:00:00Z"), &santiago);
        assert_eq!(start.to_zoned(santiago).hour(), 1);
    }
}
