//! How many new streams (SSE and WebSocket) one gateway admits per second
//! (`CONNECTION_RATE_LIMIT`, like Centrifugo's `connection_rate_limit`). When a gateway dies, or
//! a load balancer moves a crowd at once, its clients all reconnect within seconds; each new
//! stream costs a resume (the ring, or a JetStream read), a token check and a first write, and
//! thousands at once would starve the clients this gateway already serves. A token bucket
//! (governor) lets `CONNECTION_RATE_BURST` in at once and `CONNECTION_RATE_LIMIT` a second after
//! that; past it a new stream is answered 503 `connection_rate` with a `Retry-After` drawn at
//! random in `[1, CONNECTION_RATE_RETRY_MAX]` seconds, so the refused come back spread over that
//! window instead of as the next wave. One bucket per gateway, no state per client: its memory
//! is constant whatever the storm.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The bucket, or nothing when `CONNECTION_RATE_LIMIT=0`.
pub(crate) struct ConnectionRate {
    limiter: Option<DefaultDirectRateLimiter>,
    per_second: u32,
    /// `CONNECTION_RATE_RETRY_MAX` in whole seconds, at least 1.
    retry_max_secs: u64,
}

/// A stream refused: the bucket is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverRate {
    /// `CONNECTION_RATE_LIMIT`, for the message.
    pub per_second: u32,
    /// When the client may try again: whole seconds, at random within the window.
    pub retry_after: Duration,
}

impl ConnectionRate {
    /// `per_second` new streams a second (0: no cap), `burst` at once (one second's worth when
    /// `None`), refused ones told to come back within `retry_max` (whole seconds, at least 1).
    pub(crate) fn new(per_second: u32, burst: Option<u32>, retry_max: Duration) -> ConnectionRate {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = burst.and_then(NonZeroU32::new).unwrap_or(rate);
            RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
        });
        ConnectionRate {
            limiter,
            per_second,
            retry_max_secs: retry_max.as_secs().max(1),
        }
    }

    /// Takes one new stream's place in this second, or says when to come back.
    pub(crate) fn admit(&self) -> Result<(), OverRate> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check().map_err(|_| OverRate {
            per_second: self.per_second,
            // Not the bucket's own "next token" time: every client refused in the same instant
            // would get the same one and come back together. A random wait within the window
            // spreads them over it, and the window is long enough for the bucket to refill.
            retry_after: Duration::from_secs(rand::random_range(1..=self.retry_max_secs)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_admitted_then_refusals_say_when_within_the_window() {
        let rate = ConnectionRate::new(1, Some(3), Duration::from_secs(4));
        for _ in 0..3 {
            assert!(rate.admit().is_ok(), "within the burst");
        }
        let mut waits = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let over = rate.admit().expect_err("past the burst within the second");
            assert_eq!(over.per_second, 1);
            assert!((1..=4).contains(&over.retry_after.as_secs()), "{over:?}");
            assert_eq!(over.retry_after.subsec_nanos(), 0, "whole seconds");
            waits.insert(over.retry_after.as_secs());
        }
        assert_eq!(
            waits.len(),
            4,
            "every second of the window is drawn: {waits:?}"
        );
    }

    #[test]
    fn the_burst_defaults_to_one_second_and_zero_turns_the_cap_off() {
        let rate = ConnectionRate::new(5, None, Duration::from_secs(5));
        let started = std::time::Instant::now();
        let admitted = (0..50).filter(|_| rate.admit().is_ok()).count();
        // One second's worth, and what refilled while the loop ran (a loaded machine may
        // pause it): one more per fifth of a second.
        let refilled = (started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
        assert!(
            (5..=5 + refilled).contains(&admitted),
            "admitted {admitted}"
        );
        let off = ConnectionRate::new(0, Some(1), Duration::from_secs(5));
        assert!((0..10_000).all(|_| off.admit().is_ok()));
    }

    #[test]
    fn a_retry_window_under_a_second_still_says_one_second() {
        let rate = ConnectionRate::new(1, Some(1), Duration::from_millis(200));
        assert!(rate.admit().is_ok());
        let over = rate.admit().expect_err("past the burst");
        assert_eq!(over.retry_after, Duration::from_secs(1));
    }
}
