//! The memory resumes may hold: a per-connection bound and one budget for the whole instance.
//!
//! A resume holds the events it replays (fetched from JetStream, or kept alive past the ring)
//! and the frame being written, until the client has taken them. A client that resumes over
//! large events and then stops reading holds all of that until it is disconnected, so a few of
//! them could take the gateway's memory. Every replay reserves its bytes here first; a resume
//! that does not fit gets `reset` (`replay_budget`) instead of more memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use metrics::Gauge;

/// Bytes reserved by every replay in flight on this instance.
pub(crate) struct ReplayBudget {
    limit: usize,
    per_connection: usize,
    used: AtomicUsize,
    /// `gateway_replay_bytes_in_flight`.
    gauge: Gauge,
}

/// Bytes one replay holds; given back when dropped (the replay was written, or the client left).
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<ReplayBudget>,
    bytes: usize,
}

impl std::fmt::Debug for ReplayBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayBudget")
            .field("limit", &self.limit)
            .field("per_connection", &self.per_connection)
            .field("used", &self.used.load(Ordering::Relaxed))
            .finish()
    }
}

impl ReplayBudget {
    /// `limit` bytes in all, at most `per_connection` for one replay.
    pub(crate) fn new(limit: usize, per_connection: usize, gauge: Gauge) -> Arc<ReplayBudget> {
        gauge.set(0.0);
        Arc::new(ReplayBudget {
            limit,
            per_connection: per_connection.min(limit),
            used: AtomicUsize::new(0),
            gauge,
        })
    }

    /// An empty reservation, to grow as a replay is assembled.
    pub(crate) fn start(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    /// Bytes reserved now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    fn take(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let Some(after) = used.checked_add(bytes).filter(|after| *after <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(used, after, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.gauge.set(after as f64);
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, bytes: usize) {
        let after = self
            .used
            .fetch_sub(bytes, Ordering::AcqRel)
            .saturating_sub(bytes);
        self.gauge.set(after as f64);
    }
}

impl Reservation {
    /// Reserves `more` bytes; `false` (and nothing reserved) when this replay would pass the
    /// per-connection bound or the instance's budget.
    pub(crate) fn grow(&mut self, more: usize) -> bool {
        let fits = self
            .bytes
            .checked_add(more)
            .is_some_and(|total| total <= self.budget.per_connection);
        if !fits || !self.budget.take(more) {
            return false;
        }
        self.bytes += more;
        true
    }

    /// Gives back `less` bytes (at most what is held): part of the replay was let go.
    pub(crate) fn shrink(&mut self, less: usize) {
        let less = less.min(self.bytes);
        if less > 0 {
            self.bytes -= less;
            self.budget.give_back(less);
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.give_back(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: usize, per_connection: usize) -> Arc<ReplayBudget> {
        let recorder = rakuda_service::metric::recorder();
        let gauge = rakuda_service::metric::gauge(&recorder, "test_bytes", &[]);
        ReplayBudget::new(limit, per_connection, gauge)
    }

    #[test]
    fn replays_share_the_budget_within_their_own_bound() {
        let budget = budget(100, 60);
        let mut first = budget.start();
        assert!(first.grow(40));
        assert!(!first.grow(30), "over the per-connection bound");
        assert_eq!(first.bytes(), 40);
        let mut second = budget.start();
        assert!(second.grow(60));
        let mut third = budget.start();
        assert!(!third.grow(1), "the budget is spent");
        drop(first);
        assert_eq!(budget.used(), 60);
        assert!(
            third.grow(40),
            "what a finished replay gave back is available again"
        );
        third.shrink(15);
        assert_eq!((third.bytes(), budget.used()), (25, 85));
        third.shrink(1_000);
        assert_eq!((third.bytes(), budget.used()), (0, 60));
        drop((second, third));
        assert_eq!(budget.used(), 0);
    }
}
