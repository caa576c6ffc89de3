//! The memory history answers may hold: each answer reserves its share of one budget for the
//! instance (`HISTORY_BUDGET_BYTES`) before anything is read, the way resumes reserve theirs in
//! [`crate::resume::budget`]; an answer that does not fit is refused (503 `history_budget`).
//!
//! A snapshot answer then streams through its share, a window of `HISTORY_REQUEST_MAX_BYTES`:
//! a batch is read from JetStream only once its bytes fit in the window, and they stay counted
//! until the socket has taken them (the chunk handed to the HTTP server is dropped). A client
//! that stops reading stops the reading; 40 of them hold at most the budget, not 40 pages.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use metrics::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::resume::budget::{ReplayBudget, Reservation};

/// The instance's budget for history answers.
pub(crate) struct AnswerBudget {
    reserved: Arc<ReplayBudget>,
    window: usize,
    /// `gateway_history_bytes_in_flight`: bytes of answers built and not yet written.
    in_flight: Gauge,
}

/// One answer's share of the budget, held until the answer is dropped.
pub(crate) struct Answer {
    _reservation: Reservation,
    window: Arc<Semaphore>,
    /// What the window holds at most, in bytes.
    pub window_bytes: usize,
    in_flight: Gauge,
}

/// Bytes of the window held for a batch being read, before it becomes a chunk.
pub(crate) struct Held(OwnedSemaphorePermit);

/// A chunk of an answer: its bytes stay counted until the HTTP server drops it.
struct Chunk {
    bytes: BytesMut,
    _held: Option<OwnedSemaphorePermit>,
    in_flight: Gauge,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.in_flight.decrement(self.bytes.len() as f64);
    }
}

impl AnswerBudget {
    /// `limit` bytes in all (`gateway_history_bytes_reserved` shows what is reserved), a
    /// snapshot window of `window` (at most `limit`).
    pub(crate) fn new(
        limit: usize,
        window: usize,
        reserved: Gauge,
        in_flight: Gauge,
    ) -> AnswerBudget {
        let window = window.min(limit);
        in_flight.set(0.0);
        AnswerBudget {
            reserved: ReplayBudget::new(limit, window, reserved),
            window,
            in_flight,
        }
    }

    /// The share of a snapshot answer: a whole window; `None` when it does not fit now.
    pub(crate) fn snapshot(&self) -> Option<Answer> {
        self.admit(self.window)
    }

    /// A share of `bytes` (a summary, already built); `None` when it does not fit now.
    pub(crate) fn admit(&self, bytes: usize) -> Option<Answer> {
        let mut reservation = self.reserved.start();
        if !reservation.grow(bytes.max(1)) {
            return None;
        }
        // A semaphore holds at most u32::MAX permits; windows are far below (validated).
        let permits = bytes.min(Semaphore::MAX_PERMITS).min(u32::MAX as usize);
        Some(Answer {
            _reservation: reservation,
            window: Arc::new(Semaphore::new(permits)),
            window_bytes: permits,
            in_flight: self.in_flight.clone(),
        })
    }
}

impl Answer {
    /// Waits until `bytes` (at most the window) are free in the window: the client has read
    /// what came before.
    pub(crate) async fn hold(&self, bytes: usize) -> Held {
        let wanted = bytes.clamp(1, self.window_bytes) as u32;
        match self.window.clone().acquire_many_owned(wanted).await {
            Ok(permit) => Held(permit),
            // The semaphore is never closed: this arm cannot be reached.
            Err(_) => unreachable!("the answer's window is never closed"),
        }
    }

    /// `bytes` as a chunk of the answer, holding what it takes of `held` (the rest is given
    /// back) until the HTTP server drops it. The JSON of an event is a few bytes longer than
    /// its payload but shorter than the message JetStream counted (subject and headers), so a
    /// chunk fits in what was held for its batch.
    pub(crate) fn chunk(&self, held: Held, bytes: BytesMut) -> Bytes {
        let Held(mut permit) = held;
        let spare = permit.num_permits().saturating_sub(bytes.len());
        if spare > 0 {
            drop(permit.split(spare));
        }
        self.owned(bytes, Some(permit))
    }

    /// `bytes` as a chunk counted in flight, inside this answer's reservation (a summary).
    pub(crate) fn whole(&self, bytes: BytesMut) -> Bytes {
        self.owned(bytes, None)
    }

    fn owned(&self, bytes: BytesMut, held: Option<OwnedSemaphorePermit>) -> Bytes {
        self.in_flight.increment(bytes.len() as f64);
        Bytes::from_owner(Chunk {
            bytes,
            _held: held,
            in_flight: self.in_flight.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: usize, window: usize) -> AnswerBudget {
        let recorder = rakuda_service::metric::recorder();
        let gauge = |name| rakuda_service::metric::gauge(&recorder, name, &[]);
        AnswerBudget::new(limit, window, gauge("reserved"), gauge("in_flight"))
    }

    #[tokio::test]
    async fn answers_share_the_budget_and_stream_through_their_window() {
        let budget = budget(300, 100);
        let (first, second, third) = (budget.snapshot(), budget.snapshot(), budget.snapshot());
        assert!(first.is_some() && second.is_some() && third.is_some());
        assert!(budget.snapshot().is_none(), "the budget is spent");
        assert!(budget.admit(1).is_none(), "even a summary waits");
        drop(third);
        let answer = budget
            .admit(40)
            .expect("what an answer gave back is free again");
        drop(answer);

        let answer = first.expect("admitted");
        let held = answer.hold(80).await;
        let chunk = answer.chunk(held, BytesMut::from(&b"0123456789"[..]));
        assert_eq!(&chunk[..], b"0123456789");
        // The chunk holds its 10 bytes; 90 are free.
        let more = answer.hold(90).await;
        assert_eq!(
            answer.window.available_permits(),
            0,
            "the window is full until the chunk is written"
        );
        drop(chunk);
        assert_eq!(answer.window.available_permits(), 10);
        drop(more);
        assert_eq!(answer.window.available_permits(), 100);
    }
}
