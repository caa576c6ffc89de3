//! Rate-limited logging of rejects: a worker that sends a flood of bad messages produces one
//! log line per reason per interval (with the number suppressed since), not one per message.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use rakuda_schema::{Reject, RejectReason};

/// How often each reason may be logged.
pub const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Keyed by reject reason; the publish API keys it by its own refusal reasons.
#[derive(Debug)]
pub struct RejectLog<K = RejectReason> {
    interval: Duration,
    last: HashMap<K, (Instant, u64)>,
}

impl<K: Hash + Eq> RejectLog<K> {
    pub fn new(interval: Duration) -> RejectLog<K> {
        RejectLog {
            interval,
            last: HashMap::new(),
        }
    }

    /// `Some(suppressed since the last line)` when `key` may be logged now.
    pub fn admit(&mut self, key: K, now: Instant) -> Option<u64> {
        match self.last.get_mut(&key) {
            Some((at, suppressed)) if now.duration_since(*at) < self.interval => {
                *suppressed += 1;
                None
            }
            Some(entry) => {
                let suppressed = entry.1;
                *entry = (now, 0);
                Some(suppressed)
            }
            None => {
                self.last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

impl RejectLog {
    /// Logs `reject` unless its reason was logged within the interval.
    pub fn record(&mut self, reject: &Reject, redis_channel: &str, now: Instant) {
        if let Some(suppressed) = self.admit(reject.reason, now) {
            tracing::warn!(
                reason = %reject.reason,
                // Both carry a worker's bytes: escaped (`\n` stays two characters), so a
                // message cannot forge a log line.
                channel = redis_channel.escape_debug().to_string(),
                suppressed,
                error = reject.message.escape_debug().to_string(),
                "rejected message sent to the DLQ"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_per_reason_per_interval() {
        let mut log = RejectLog::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(log.admit(RejectReason::InvalidJson, start), Some(0));
        assert_eq!(
            log.admit(RejectReason::InvalidJson, start + Duration::from_secs(1)),
            None
        );
        assert_eq!(
            log.admit(RejectReason::InvalidJson, start + Duration::from_secs(2)),
            None
        );
        assert_eq!(
            log.admit(RejectReason::TooLarge, start + Duration::from_secs(2)),
            Some(0)
        );
        assert_eq!(
            log.admit(RejectReason::InvalidJson, start + Duration::from_secs(11)),
            Some(2)
        );
    }
}
