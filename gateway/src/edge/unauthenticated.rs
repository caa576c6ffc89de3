//! Sockets that hold no authenticated request yet: accepted, still sending a head, or on their
//! way to a refusal. They are counted and capped (`MAX_UNAUTHENTICATED_CONNECTIONS`) apart from
//! the connection limit, which only counts streams, so a crowd of silent or refused sockets
//! cannot take the gateway's descriptors or memory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use rakuda_service::metric::ReadableGauge;

pub struct Unauthenticated {
    held: Arc<AtomicUsize>,
    max: usize,
    gauge: ReadableGauge,
}

impl Unauthenticated {
    pub fn new(max: usize, gauge: ReadableGauge) -> Unauthenticated {
        Unauthenticated {
            held: Arc::new(AtomicUsize::new(0)),
            max,
            gauge,
        }
    }

    /// A slot for a socket just accepted, or `None` when all are taken.
    pub fn hold(&self) -> Option<Slot> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max).then_some(held + 1)
            })
            .ok()?;
        self.gauge.increment();
        Some(Slot(Arc::new(SlotInner {
            released: AtomicBool::new(false),
            held: self.held.clone(),
            gauge: self.gauge.clone(),
        })))
    }
}

/// One socket's place among the unauthenticated. The listener keeps it for the socket's life
/// and puts a copy on the request; authentication releases it early. Released once, however
/// many copies exist.
#[derive(Clone)]
pub struct Slot(Arc<SlotInner>);

struct SlotInner {
    released: AtomicBool,
    held: Arc<AtomicUsize>,
    gauge: ReadableGauge,
}

impl Slot {
    pub fn release(&self) {
        self.0.release();
    }
}

impl SlotInner {
    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.held.fetch_sub(1, Ordering::AcqRel);
            self.gauge.decrement();
        }
    }
}

impl Drop for SlotInner {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge() -> ReadableGauge {
        let recorder = rakuda_service::metric::recorder();
        rakuda_service::metric::readable_gauge(&recorder, "test_unauthenticated", &[])
    }

    #[test]
    fn slots_are_capped_and_released_once() {
        let gauge = gauge();
        let pending = Unauthenticated::new(2, gauge.clone());
        let first = pending.hold().expect("first");
        let second = pending.hold().expect("second");
        assert!(pending.hold().is_none(), "capped at 2");
        assert_eq!(gauge.get(), 2);
        let copy = first.clone();
        first.release();
        copy.release();
        drop(copy);
        drop(first);
        assert_eq!(gauge.get(), 1, "released once across copies");
        assert!(pending.hold().is_some(), "the slot is free again");
        drop(second);
        assert_eq!(gauge.get(), 0);
    }
}
