//! The retry delays of every loop that talks to a network: capped exponential with jitter, so
//! a fleet of bridges that lost Redis at once does not reconnect in lockstep.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

pub const MIN_DELAY: Duration = Duration::from_millis(100);
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// Delays for consecutive failures; call [`Backoff::reset`] after a success.
pub struct Backoff {
    delays: ExponentialBackoff,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            delays: builder().build(),
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        // Built without a maximum number of attempts, so the iterator never ends.
        self.delays.next().unwrap_or(MAX_DELAY)
    }

    pub fn reset(&mut self) {
        self.delays = builder().build();
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

fn builder() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_jitter()
        .without_max_times()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..20).map(|_| backoff.next_delay()).collect();
        assert!(
            delays[0] >= MIN_DELAY && delays[0] <= MIN_DELAY * 2,
            "{delays:?}"
        );
        // Jitter adds up to one minimum delay on top of the cap.
        assert!(delays.iter().all(|d| *d <= MAX_DELAY * 2), "{delays:?}");
        assert!(delays[19] >= MAX_DELAY, "{delays:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= MIN_DELAY * 2);
    }
}
