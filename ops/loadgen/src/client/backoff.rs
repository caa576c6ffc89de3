//! How long a subscriber waits before it reconnects: the load generator's own fast backoff, or
//! the web client's, down to its jitter and its respect for `Retry-After` and SSE `retry:`, so
//! that a fleet run meets the gateways as a fleet of browsers would.

use std::time::Duration;

use super::Target;

/// The web client's first reconnect delay (`DEFAULT_BACKOFF_INITIAL_MS` in
/// web/src/client/RealtimeClient.ts).
pub const WEB_BACKOFF_INITIAL: Duration = Duration::from_millis(3_000);
/// The web client's longest reconnect delay (`DEFAULT_BACKOFF_MAX_MS`).
pub const WEB_BACKOFF_MAX: Duration = Duration::from_millis(30_000);

/// A `Retry-After` is whole seconds; the web client waits it plus up to this much at random
/// (`RETRY_AFTER_JITTER_MS` in web/src/client/spread.ts), so clients told the same number do
/// not come back in the same instant.
pub const RETRY_AFTER_JITTER: Duration = Duration::from_millis(1_000);

/// How long a subscriber waits before it reconnects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// The load generator's own, to measure the gateway and not the wait: `reconnect_delay`
    /// after a stream that was open; after failed attempts from 100 ms, doubling up to
    /// `max_backoff`, 50–100% of it at random.
    Fast,
    /// As the web client does (`reconnectDelay` in web/src/client/RealtimeClient.ts): attempt
    /// `k` waits a random time in [0, min(max, initial·2^k)] ("full jitter"); `k` starts again
    /// at 0 once a connection carried a heartbeat or an event; a refusal's `Retry-After` is
    /// waited out plus up to [`RETRY_AFTER_JITTER`]. On top of the web client (whose
    /// `EventSource` is closed and reopened by its own backoff), the SSE `retry:` of a stream
    /// that ended is honoured as the protocol asks of an SSE client: at least that long.
    WebClient { initial: Duration, max: Duration },
}

/// The web client's delay before reconnect attempt `attempt` (0-based), `random` in [0, 1):
/// `backoffDelay`, full jitter over a window doubling from `initial` up to `max`.
pub fn web_client_delay(attempt: u32, initial: Duration, max: Duration, random: f64) -> Duration {
    let cap = max.max(initial);
    let ceiling = initial
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(cap)
        .min(cap);
    ceiling.mul_f64(random.clamp(0.0, 1.0))
}

/// The web client's `afterRetryAfter`: at least `retry_after` plus up to
/// [`RETRY_AFTER_JITTER`] when there is one, or `otherwise` when that is longer.
pub fn after_retry_after(
    retry_after: Option<Duration>,
    otherwise: Duration,
    random: f64,
) -> Duration {
    match retry_after {
        None => otherwise,
        Some(wait) => otherwise.max(wait + RETRY_AFTER_JITTER.mul_f64(random.clamp(0.0, 1.0))),
    }
}

/// Where a subscriber's backoff stands between attempts: the doubling wait of
/// [`Backoff::Fast`] and the attempt count of [`Backoff::WebClient`], each started afresh as
/// that backoff says.
pub(super) struct Waits {
    fast_backoff: Duration,
    attempt: u32,
}

impl Default for Waits {
    fn default() -> Waits {
        Waits {
            fast_backoff: Duration::from_millis(100),
            attempt: 0,
        }
    }
}

impl Waits {
    /// The wait before the next attempt, after one whose stream opened (`ready`: whether it
    /// carried a heartbeat) or never did (`None`), with what the server asked for: the SSE
    /// `retry:` of a stream that ended, or a refusal's `Retry-After`.
    pub(super) fn next(
        &mut self,
        target: &Target,
        ready: Option<bool>,
        retry: Option<Duration>,
        retry_after: Option<Duration>,
    ) -> Duration {
        match target.backoff {
            Backoff::Fast => match ready {
                Some(_) => {
                    self.fast_backoff = Duration::from_millis(100);
                    target.reconnect_delay
                }
                None => {
                    let delay = self.fast_backoff.mul_f64(0.5 + rand::random::<f64>() * 0.5);
                    self.fast_backoff = (self.fast_backoff * 2).min(target.max_backoff);
                    delay
                }
            },
            Backoff::WebClient { initial, max } => {
                // The web client starts its backoff afresh once a connection carried traffic.
                if ready == Some(true) {
                    self.attempt = 0;
                }
                let delay = web_client_delay(self.attempt, initial, max, rand::random::<f64>());
                self.attempt = self.attempt.saturating_add(1);
                after_retry_after(retry_after, delay, rand::random::<f64>())
                    .max(retry.unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_web_client_delay_is_full_jitter_over_a_doubling_window() {
        let (initial, max) = (WEB_BACKOFF_INITIAL, WEB_BACKOFF_MAX);
        // As backoffDelay: the first attempt is spread over [0, 3 s] too.
        assert_eq!(web_client_delay(0, initial, max, 0.0), Duration::ZERO);
        assert_eq!(
            web_client_delay(0, initial, max, 0.5),
            Duration::from_millis(1_500)
        );
        assert_eq!(
            web_client_delay(1, initial, max, 1.0),
            Duration::from_millis(6_000)
        );
        assert_eq!(
            web_client_delay(2, initial, max, 0.25),
            Duration::from_millis(3_000)
        );
        assert_eq!(web_client_delay(10, initial, max, 1.0), max);
        assert_eq!(web_client_delay(40, initial, max, 0.5), max / 2);
    }

    #[test]
    fn a_retry_after_is_waited_out_with_up_to_a_second_more() {
        let wait = Some(Duration::from_secs(3));
        assert_eq!(
            after_retry_after(wait, Duration::from_millis(500), 0.5),
            Duration::from_millis(3_500)
        );
        // A backoff already longer wins.
        assert_eq!(
            after_retry_after(wait, Duration::from_secs(9), 1.0),
            Duration::from_secs(9)
        );
        assert_eq!(
            after_retry_after(None, Duration::from_millis(700), 1.0),
            Duration::from_millis(700)
        );
    }
}
