//! Warms the ring at each start of the feed: reads the last `REPLAY_RING_CAPACITY` sequences
//! the stream held before the start, once, and lays them under what the feed has recorded
//! since ([`Ring::warm`]).
//!
//! Without it a restarted instance's ring holds nothing from before its start, and every
//! client it takes over in a rolling deploy (or from a killed peer) resumes from JetStream with
//! a consumer of its own: thousands at once, which stretched a measured rolling deploy of
//! 56,000 clients into 4,000 consumers and resets (`replay_failed`). Until the warm-up is in,
//! resumes are served from JetStream as before; if it fails, they stay so, and it is retried
//! at the next start.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use rakuda_service::metric::ReadableCounter;

use super::ring::Ring;
use crate::store::stream::StreamReader;

/// The longest one warm-up may take; past it, resumes keep going to JetStream.
const WARM_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs until `stop`: one warm-up per start of the feed.
pub(crate) async fn run(
    ring: Arc<Ring>,
    reader: StreamReader,
    warmed_events: ReadableCounter,
    stop: CancellationToken,
) {
    let mut starts = ring.starts();
    loop {
        let start = *starts.borrow_and_update();
        let (epoch, last_seq) = start;
        if last_seq > 0 {
            let first = last_seq.saturating_sub(ring.capacity() as u64) + 1;
            let began = std::time::Instant::now();
            let read = tokio::select! {
                _ = stop.cancelled() => return,
                read = tokio::time::timeout(WARM_TIMEOUT, reader.recent(first, last_seq)) => read,
            };
            match read {
                Ok(Ok(recent)) => {
                    let events = recent.events.len();
                    let first_read = recent.first_read;
                    if ring.warm(start, first_read, recent.events, recent.gaps) {
                        warmed_events.increment(events as u64);
                        tracing::info!(
                            epoch,
                            from_seq = first_read,
                            through_seq = last_seq,
                            events,
                            elapsed_ms = began.elapsed().as_millis() as u64,
                            "resume ring warmed with the events before the feed's start"
                        );
                    }
                }
                Ok(Err(error)) => tracing::warn!(
                    epoch,
                    %error,
                    "cannot read recent events into the resume ring; resumes from before this start read JetStream"
                ),
                Err(_) => tracing::warn!(
                    epoch,
                    timeout_s = WARM_TIMEOUT.as_secs(),
                    "reading recent events into the resume ring took too long; resumes from before this start read JetStream"
                ),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = starts.changed() => if changed.is_err() { return },
        }
    }
}
