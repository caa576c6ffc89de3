//! Per-instance, per-type debounce, before fan-out.
//!
//! The first event of a type goes out at once, so an isolated event gets no added latency, and
//! opens a window. Further events of that type inside the window are held and go out at the
//! window's end as one batch; if any were held, the next window opens right away, so sustained
//! traffic yields one batch per window. Types never wait for each other.
//!
//! This file decides *when* a batch goes out; *what* goes in it (how events of one type fold into
//! one batch frame, the cap, the sequences a batch stands for) is the other half, in
//! `crate::fanout::coalesce`, because resume folds its replays with the same code.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rakuda_schema::EventType;
use tokio::time::Instant;

use crate::event::StreamEvent;
use crate::fanout::coalesce::{Folded, Pending};

pub struct Debouncer {
    window: Duration,
    max_batch_events: usize,
    lanes: HashMap<EventType, Lane>,
}

struct Lane {
    /// End of the open window, if one is open.
    window_ends: Option<Instant>,
    pending: Pending,
}

impl Debouncer {
    /// `window` zero turns debounce off: every event goes out alone.
    pub fn new(window: Duration, max_batch_events: usize) -> Debouncer {
        Debouncer {
            window,
            max_batch_events,
            lanes: HashMap::new(),
        }
    }

    /// Takes an event; returns it when it goes out at once, `None` when it is held.
    pub fn push(&mut self, event: Arc<StreamEvent>, now: Instant) -> Option<Folded> {
        if self.window.is_zero() {
            return Some(Folded::Single(event));
        }
        let max = self.max_batch_events;
        let lane = self.lanes.entry(event.event_type).or_insert_with(|| Lane {
            window_ends: None,
            pending: Pending::new(event.event_type, max),
        });
        let window_open = lane.window_ends.is_some_and(|end| now < end);
        // Held events not yet flushed keep later ones behind them, whatever the clock says.
        if window_open || !lane.pending.is_empty() {
            lane.pending.push(event);
            return None;
        }
        lane.window_ends = Some(now + self.window);
        Some(Folded::Single(event))
    }

    /// When [`Debouncer::pop_due`] next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lanes
            .values()
            .filter_map(|lane| lane.window_ends)
            .min()
    }

    /// One batch whose window has ended, if any. Call until `None`; each call may change
    /// [`Debouncer::lowest_held_seq`], which is why batches come out one at a time.
    pub fn pop_due(&mut self, now: Instant) -> Option<Folded> {
        for lane in self.lanes.values_mut() {
            let Some(end) = lane.window_ends else {
                continue;
            };
            if end > now {
                continue;
            }
            if lane.pending.is_empty() {
                lane.window_ends = None;
                continue;
            }
            // Keep the cadence of the windows unless the timer fired very late.
            let next_end = end + self.window;
            lane.window_ends = Some(if next_end > now {
                next_end
            } else {
                now + self.window
            });
            return Some(Folded::Batch(lane.pending.take_batch()));
        }
        None
    }

    /// The lowest sequence held back; every event below it has gone out.
    pub fn lowest_held_seq(&self) -> Option<u64> {
        self.lanes
            .values()
            .filter_map(|lane| lane.pending.lowest_seq())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::event;

    const WINDOW: Duration = Duration::from_millis(500);

    fn drain(debouncer: &mut Debouncer, now: Instant) -> Vec<Folded> {
        std::iter::from_fn(|| debouncer.pop_due(now)).collect()
    }

    #[test]
    fn an_isolated_event_goes_out_at_once() {
        let mut debouncer = Debouncer::new(WINDOW, 1000);
        let t0 = Instant::now();
        let out = debouncer.push(event(EventType::InventoryChange, 1, "p1"), t0);
        assert!(matches!(out, Some(Folded::Single(e)) if e.seq == 1));
        assert_eq!(debouncer.next_deadline(), Some(t0 + WINDOW));
        // The window ends with nothing held: it closes quietly.
        assert!(drain(&mut debouncer, t0 + WINDOW).is_empty());
        assert_eq!(debouncer.next_deadline(), None);
        // The next isolated event again goes out at once.
        let out = debouncer.push(event(EventType::InventoryChange, 2, "p1"), t0 + WINDOW * 3);
        assert!(matches!(out, Some(Folded::Single(e)) if e.seq == 2));
    }

    #[test]
    fn a_thousand_in_one_window_are_the_leading_event_plus_one_batch() {
        let mut debouncer = Debouncer::new(WINDOW, 1000);
        let t0 = Instant::now();
        let mut immediate = Vec::new();
        for seq in 1..=1000u64 {
            let now = t0 + Duration::from_micros(seq * 100);
            if let Some(out) = debouncer.push(
                event(EventType::InventoryChange, seq, &format!("p{seq}")),
                now,
            ) {
                immediate.push(out);
            }
        }
        assert_eq!(immediate.len(), 1);
        assert_eq!(debouncer.lowest_held_seq(), Some(2));
        assert!(drain(&mut debouncer, t0 + WINDOW - Duration::from_millis(1)).is_empty());
        let batches = drain(&mut debouncer, t0 + WINDOW + Duration::from_millis(1));
        assert_eq!(batches.len(), 1);
        match &batches[0] {
            Folded::Batch(batch) => {
                assert_eq!(batch.count, 999);
                assert_eq!(batch.events.len(), 999);
            }
            other => panic!("expected a batch, got {other:?}"),
        }
        assert_eq!(debouncer.lowest_held_seq(), None);
    }

    #[test]
    fn types_do_not_wait_for_each_other() {
        let mut debouncer = Debouncer::new(WINDOW, 1000);
        let t0 = Instant::now();
        assert!(debouncer
            .push(event(EventType::PriceChange, 1, "p"), t0)
            .is_some());
        assert!(debouncer
            .push(event(EventType::PriceChange, 2, "p"), t0)
            .is_none());
        let order = debouncer.push(
            event(EventType::OrderReceived, 3, "o"),
            t0 + Duration::from_millis(10),
        );
        assert!(matches!(order, Some(Folded::Single(e)) if e.seq == 3));
        // The held price event bounds the cursor even though a later order went out.
        assert_eq!(debouncer.lowest_held_seq(), Some(2));
    }

    #[test]
    fn sustained_traffic_gives_one_batch_per_window() {
        let mut debouncer = Debouncer::new(WINDOW, 1000);
        let t0 = Instant::now();
        let mut frames = 0;
        let mut seq = 0;
        // 2.5 windows of steady traffic, one event per millisecond.
        for ms in 0..1250u64 {
            seq += 1;
            let now = t0 + Duration::from_millis(ms);
            frames += drain(&mut debouncer, now).len();
            if debouncer
                .push(
                    event(EventType::ListingUpdate, seq, &format!("l{seq}")),
                    now,
                )
                .is_some()
            {
                frames += 1;
            }
        }
        frames += drain(&mut debouncer, t0 + Duration::from_secs(10)).len();
        // The leading event, then one batch at each of the three window ends.
        assert_eq!(frames, 4);
    }

    #[test]
    fn window_zero_passes_every_event_through() {
        let mut debouncer = Debouncer::new(Duration::ZERO, 1000);
        let t0 = Instant::now();
        for seq in 1..=100 {
            assert!(debouncer
                .push(event(EventType::OrderReceived, seq, "o"), t0)
                .is_some());
        }
        assert_eq!(debouncer.next_deadline(), None);
        assert_eq!(debouncer.lowest_held_seq(), None);
    }
}
