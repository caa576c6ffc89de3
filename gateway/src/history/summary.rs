//! `GET /api/realtime/summary`: how many events of each type since local midnight (in
//! `SUMMARY_TIMEZONE`) and in the last hour, without reading them: for each channel and window,
//! a consumer filtered to the channel's subjects and started at the window's start reports how
//! many messages it has pending. That is 2 windows × 4 channels = 8 consumers created and
//! deleted, one stream info read, per computation; a computation is shared by every request for
//! `SUMMARY_CACHE_TTL`.
//!
//! `throughSeq` is the stream's last sequence when counting began: a client adds the live events
//! after it. Events stored while the counts are taken (a few milliseconds) may be counted and
//! then also arrive live; on an idle stream the totals are exact.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::DeliverPolicy};
use jiff::tz::TimeZone;
use rakuda_schema::{Timestamp, CHANNELS};
use serde::Serialize;
use tokio::sync::Mutex;

use super::{HistoryError, HISTORY_TIMEOUT};
use crate::resume::stream::count_matching;

/// The answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `SUMMARY_TIMEZONE`.
    pub timezone: String,
    /// Local midnight, as an RFC 3339 instant.
    pub today_since: String,
    pub last_hour_since: String,
    /// Events per type since local midnight.
    pub today: BTreeMap<&'static str, u64>,
    /// Events per type in the last hour.
    pub last_hour: BTreeMap<&'static str, u64>,
    /// The stream's last sequence when the counts were taken: live events above it are not
    /// in them.
    pub through_seq: u64,
    /// Whether the counts hold exactly as of `through_seq`; `false` when events kept arriving
    /// through every attempt, and the counts may miss the few stored meanwhile.
    pub exact: bool,
    pub computed_at: String,
}

/// Counting attempts before a summary is served that may miss events stored meanwhile.
const COUNT_ATTEMPTS: usize = 3;

/// Computes summaries and keeps the last one for a while.
pub struct Summaries {
    pub jetstream: jetstream::Context,
    pub stream_name: String,
    pub timezone: TimeZone,
    pub timezone_name: String,
    /// `SUMMARY_CACHE_TTL`.
    pub cache_ttl: Duration,
    /// Held while computing, so concurrent requests share one computation.
    cached: Mutex<Option<(Instant, Arc<Summary>)>>,
}

impl Summaries {
    pub fn new(
        jetstream: jetstream::Context,
        stream_name: String,
        timezone_name: &str,
        cache_ttl: Duration,
    ) -> Result<Summaries, jiff::Error> {
        Ok(Summaries {
            jetstream,
            stream_name,
            timezone: TimeZone::get(timezone_name)?,
            timezone_name: timezone_name.to_owned(),
            cache_ttl,
            cached: Mutex::new(None),
        })
    }

    /// The last summary if it is fresh, else a new one.
    pub async fn get(&self) -> Result<Arc<Summary>, HistoryError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, summary)) = cached.as_ref() {
            if at.elapsed() < self.cache_ttl {
                return Ok(summary.clone());
            }
        }
        let summary = tokio::time::timeout(HISTORY_TIMEOUT, self.compute(jiff::Timestamp::now()))
            .await
            .map_err(|_| HistoryError::Timeout(HISTORY_TIMEOUT))??;
        let summary = Arc::new(summary);
        *cached = Some((Instant::now(), summary.clone()));
        Ok(summary)
    }

    /// Events per client type since `midnight` and since `hour_ago`.
    async fn count(
        &self,
        stream: &jetstream::stream::Stream,
        midnight: jiff::Timestamp,
        hour_ago: jiff::Timestamp,
    ) -> Result<(BTreeMap<&'static str, u64>, BTreeMap<&'static str, u64>), HistoryError> {
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
                today.insert(event_type, count);
            } else {
                last_hour.insert(event_type, count);
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
        let (today, last_hour, through_seq, exact) = loop {
            attempt += 1;
            let before = last_sequence(&mut stream).await?;
            let (today, last_hour) = self.count(&stream, midnight, hour_ago).await?;
            let after = last_sequence(&mut stream).await?;
            if before == after || attempt == COUNT_ATTEMPTS {
                break (today, last_hour, after, before == after);
            }
        };
        if !exact {
            tracing::debug!(
                "events kept arriving while the summary was counted; it may miss a few of them"
            );
        }
        Ok(Summary {
            timezone: self.timezone_name.clone(),
            today_since: midnight.to_string(),
            last_hour_since: hour_ago.to_string(),
            today,
            last_hour,
            through_seq,
            exact,
            computed_at: Timestamp::now().as_str().to_owned(),
        })
    }
}

/// The stream's last sequence now.
async fn last_sequence(stream: &mut jetstream::stream::Stream) -> Result<u64, HistoryError> {
    Ok(stream
        .info()
        .await
        .map_err(|error| HistoryError::Read(error.to_string()))?
        .state
        .last_sequence)
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
pub fn local_midnight(now: jiff::Timestamp, tz: &TimeZone) -> jiff::Timestamp {
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
