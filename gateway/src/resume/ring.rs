//! The instance's memory of recent events, for resumes: a resume whose missed events are all
//! still here is served without asking JetStream. It also remembers the source gap markers it
//! covers, so a resume across one gets `reset` instead of a replay that looks complete.
//!
//! At each start of the feed the ring covers nothing before it; [`super::warm`] then reads the
//! last `REPLAY_RING_CAPACITY` sequences back from JetStream into it ([`Ring::warm`]), so the
//! clients a restarted or newly started instance takes over in a rolling deploy resume from
//! memory instead of each asking JetStream for a consumer of its own.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::event::StreamEvent;

pub(crate) struct Ring {
    state: Mutex<State>,
    /// `(epoch, last_seq)` of the feed's latest start, for the warm-up task.
    started: watch::Sender<(u64, u64)>,
}

struct State {
    /// The stream the events belong to.
    epoch: u64,
    events: VecDeque<Arc<StreamEvent>>,
    /// Sequences of the source gap markers the ring covers (a few at most), oldest first.
    gaps: VecDeque<u64>,
    capacity: usize,
    /// Highest sequence the ring no longer (or never did) cover.
    floor: u64,
}

/// The ring's part of a resume.
pub(crate) struct FromRing {
    pub events: Vec<Arc<StreamEvent>>,
    /// A source gap marker lies in the range: events may be missing that no replay can give.
    pub gap: bool,
}

impl Ring {
    /// Keeps the last `capacity` client events.
    pub(crate) fn new(capacity: usize) -> Ring {
        Ring {
            state: Mutex::new(State {
                epoch: 0,
                events: VecDeque::with_capacity(capacity.min(65_536)),
                gaps: VecDeque::new(),
                capacity: capacity.max(1),
                floor: 0,
            }),
            started: watch::Sender::new((0, 0)),
        }
    }

    /// The feed's starts, `(epoch, last_seq)`: what [`Ring::warm`] may fill in below.
    pub(crate) fn starts(&self) -> watch::Receiver<(u64, u64)> {
        self.started.subscribe()
    }

    /// The most events the ring holds.
    pub(crate) fn capacity(&self) -> usize {
        self.lock().capacity
    }

    /// Fills in what the stream held before the start `(epoch, last_seq)`: `events` and source
    /// gap markers `gaps`, every message from `first_read` to `last_seq` read in order (client
    /// events of any channel; the rest skipped as the live pipeline skips it). Below what live
    /// events left room for, the oldest are dropped. Nothing is changed, and `false` returned,
    /// when the feed started again since or the ring already evicted (it covers enough then).
    pub(crate) fn warm(
        &self,
        (epoch, last_seq): (u64, u64),
        first_read: u64,
        events: Vec<Arc<StreamEvent>>,
        gaps: Vec<u64>,
    ) -> bool {
        let mut state = self.lock();
        if state.epoch != epoch || state.floor != last_seq || first_read == 0 {
            return false;
        }
        let room = state.capacity.saturating_sub(state.events.len());
        let skip = events.len().saturating_sub(room);
        let mut floor = first_read - 1;
        if skip > 0 {
            floor = events[skip - 1].seq;
        }
        for event in events.into_iter().skip(skip).rev() {
            state.events.push_front(event);
        }
        for gap in gaps.into_iter().rev().filter(|gap| *gap > floor) {
            state.gaps.push_front(gap);
        }
        state.floor = floor;
        true
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation is a push, a pop or a clear: a panic leaves the ring consistent, so a
        // poisoned lock is still safe to use.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// (Re)starts on a stream: nothing at or below `last_seq` is covered.
    pub(crate) fn start(&self, epoch: u64, last_seq: u64) {
        let mut state = self.lock();
        state.epoch = epoch;
        state.events.clear();
        state.gaps.clear();
        state.floor = last_seq;
        drop(state);
        self.started.send_replace((epoch, last_seq));
    }

    /// Keeps a client event.
    pub(crate) fn record(&self, event: Arc<StreamEvent>) {
        let mut state = self.lock();
        if state.events.len() == state.capacity {
            if let Some(evicted) = state.events.pop_front() {
                state.floor = evicted.seq;
            }
        }
        state.events.push_back(event);
        let floor = state.floor;
        while state.gaps.front().is_some_and(|gap| *gap <= floor) {
            state.gaps.pop_front();
        }
    }

    /// Remembers a source gap marker at `seq`.
    pub(crate) fn record_gap(&self, seq: u64) {
        self.lock().gaps.push_back(seq);
    }

    /// The cursor after which the ring holds the last `n` events (up to `watermark`) that
    /// `wanted` keeps; `None` when it holds fewer (or another stream).
    pub(crate) fn start_of_last(
        &self,
        epoch: u64,
        n: u64,
        watermark: u64,
        wanted: impl Fn(&StreamEvent) -> bool,
    ) -> Option<u64> {
        let state = self.lock();
        if state.epoch != epoch || n == 0 {
            return None;
        }
        state
            .events
            .iter()
            .rev()
            .filter(|event| event.seq <= watermark && wanted(event))
            .nth(usize::try_from(n - 1).ok()?)
            .map(|event| event.seq - 1)
    }

    /// The events of stream `epoch` after `after` up to `watermark`, when the ring still holds
    /// every one of them; `None` when it does not (or holds another stream).
    pub(crate) fn after(&self, epoch: u64, after: u64, watermark: u64) -> Option<FromRing> {
        let state = self.lock();
        if state.epoch != epoch || after < state.floor {
            return None;
        }
        let in_range = |seq: u64| seq > after && seq <= watermark;
        Some(FromRing {
            events: state
                .events
                .iter()
                .filter(|event| in_range(event.seq))
                .cloned()
                .collect(),
            gap: state.gaps.iter().any(|gap| in_range(*gap)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::event;
    use rakuda_schema::EventType;

    #[test]
    fn a_warmed_ring_serves_cursors_from_before_the_start() {
        let ring = Ring::new(10);
        ring.start(7, 20);
        ring.record(event(EventType::OrderReceived, 21, "a"));
        // A resume from before the start is not the ring's until it is warmed.
        assert!(ring.after(7, 15, 21).is_none());
        let before: Vec<_> = (16..=20)
            .filter(|seq| *seq != 18)
            .map(|seq| event(EventType::OrderReceived, seq, "b"))
            .collect();
        assert!(ring.warm((7, 20), 16, before, vec![18]));
        let from = ring.after(7, 15, 21).expect("covered");
        assert_eq!(
            from.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![16, 17, 19, 20, 21]
        );
        assert!(from.gap, "the gap marker at 18 is remembered");
        assert!(ring.after(7, 14, 21).is_none(), "15 was not read");
    }

    #[test]
    fn a_warm_up_keeps_only_what_fits_beside_live_events() {
        let ring = Ring::new(4);
        ring.start(7, 10);
        ring.record(event(EventType::OrderReceived, 11, "a"));
        let before: Vec<_> = (1..=10)
            .map(|seq| event(EventType::OrderReceived, seq, "b"))
            .collect();
        assert!(ring.warm((7, 10), 1, before, vec![2]));
        let from = ring.after(7, 7, 11).expect("covered from 8");
        assert_eq!(
            from.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![8, 9, 10, 11]
        );
        assert!(!from.gap, "the gap at 2 was dropped with its events");
        assert!(ring.after(7, 6, 11).is_none());
    }

    #[test]
    fn a_warm_up_for_an_older_start_changes_nothing() {
        let ring = Ring::new(10);
        ring.start(7, 10);
        ring.start(7, 12);
        let before = vec![event(EventType::OrderReceived, 10, "b")];
        assert!(!ring.warm((7, 10), 10, before.clone(), vec![]));
        assert!(ring.after(7, 9, 12).is_none());
        ring.start(8, 12);
        assert!(!ring.warm((7, 12), 10, before, vec![]));
        assert_eq!(*ring.starts().borrow(), (8, 12));
    }

    fn seqs(from: Option<FromRing>) -> Option<Vec<u64>> {
        from.map(|from| from.events.iter().map(|event| event.seq).collect())
    }

    #[test]
    fn the_last_n_wanted_events_start_after_a_cursor_the_ring_can_tell() {
        let ring = Ring::new(10);
        ring.start(7, 0);
        for seq in 1..=6 {
            let event_type = if seq % 2 == 0 {
                EventType::OrderReceived
            } else {
                EventType::PriceChange
            };
            ring.record(event(event_type, seq, "x"));
        }
        let orders = |e: &StreamEvent| e.event_type == EventType::OrderReceived;
        assert_eq!(
            ring.start_of_last(7, 2, 6, orders),
            Some(3),
            "orders 4 and 6"
        );
        assert_eq!(
            ring.start_of_last(7, 2, 5, orders),
            Some(1),
            "orders 2 and 4"
        );
        assert_eq!(
            ring.start_of_last(7, 4, 6, orders),
            None,
            "only three orders"
        );
        assert_eq!(ring.start_of_last(7, 6, 6, |_| true), Some(0));
        assert_eq!(ring.start_of_last(8, 1, 6, orders), None, "another stream");
    }

    #[test]
    fn the_ring_covers_what_it_holds_and_nothing_else() {
        let ring = Ring::new(3);
        ring.start(7, 10);
        assert!(ring.after(7, 9, 10).is_none(), "before the gateway started");
        for seq in 11..=15 {
            ring.record(event(EventType::OrderReceived, seq, "o"));
        }
        assert!(ring.after(7, 11, 15).is_none(), "12 was evicted");
        assert_eq!(seqs(ring.after(7, 12, 15)), Some(vec![13, 14, 15]));
        assert_eq!(
            seqs(ring.after(7, 12, 14)),
            Some(vec![13, 14]),
            "up to the watermark"
        );
        assert!(ring.after(8, 12, 15).is_none(), "another stream");
    }

    #[test]
    fn a_resume_across_a_source_gap_learns_of_it() {
        let ring = Ring::new(100);
        ring.start(7, 0);
        ring.record(event(EventType::OrderReceived, 1, "o"));
        ring.record_gap(2);
        ring.record(event(EventType::OrderReceived, 3, "o"));
        assert!(ring.after(7, 1, 3).expect("covers").gap);
        assert!(!ring.after(7, 2, 3).expect("covers").gap);
    }
}
