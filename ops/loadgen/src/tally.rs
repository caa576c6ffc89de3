//! What one subscriber saw, kept so a test or a scenario can check exactly-once delivery and
//! compute latencies and reconnect spreads afterwards.

use std::collections::HashSet;
use std::time::Instant;

/// A set of sequence numbers that are nearly contiguous (stream seqs, event numbers): a bitmap
/// from the first value seen, with the rare value below it kept aside. A load run inserts
/// millions; a hash set per subscriber made the load generator, not the gateway, the limit.
#[derive(Debug, Default, Clone)]
pub struct DenseSet {
    base: Option<u64>,
    bits: Vec<u64>,
    below: HashSet<u64>,
    len: usize,
}

impl DenseSet {
    /// True if `value` was not in the set.
    pub fn insert(&mut self, value: u64) -> bool {
        let base = *self.base.get_or_insert(value - value % 64);
        if value < base {
            let added = self.below.insert(value);
            self.len += usize::from(added);
            return added;
        }
        let offset = value - base;
        let word = (offset / 64) as usize;
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let mask = 1u64 << (offset % 64);
        let added = self.bits[word] & mask == 0;
        self.bits[word] |= mask;
        self.len += usize::from(added);
        added
    }

    pub fn contains(&self, value: &u64) -> bool {
        let value = *value;
        match self.base {
            None => false,
            Some(base) if value < base => self.below.contains(&value),
            Some(base) => {
                let offset = value - base;
                self.bits
                    .get((offset / 64) as usize)
                    .is_some_and(|word| word & (1u64 << (offset % 64)) != 0)
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        *self = DenseSet::default();
    }
}

use crate::marker::{now_us, Delivered};

/// What a fleet run needs to know of one session besides [`Session`]: which gateway it was on,
/// whether it resumed with a cursor, and when it opened and became ready, on the wall clock
/// shared by every process of the run (microseconds since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    /// Index into the client's gateway list ([`crate::client::Target::urls`]).
    pub gateway: usize,
    /// Opened with a cursor (`Last-Event-ID` / `lastEventId`): a reconnect, not a first open.
    pub resumed: bool,
    pub opened_us: u64,
    /// When its first heartbeat arrived.
    pub ready_us: Option<u64>,
    /// When it ended (`None` while open).
    pub ended_us: Option<u64>,
}

/// The largest value seen of each event type, so a delivery that goes backwards within its
/// type is noticed. Types, not the whole stream: a resume's replay is coalesced per type (one
/// batch frame per type, PROTOCOL.md), so across types the order of a replay is not the
/// stream's; within a type it is.
#[derive(Debug, Default, Clone)]
pub struct OrderByType {
    last: Vec<(Box<str>, u64)>,
}

impl OrderByType {
    /// Records `seq` as delivered for `event_type`; false if a larger one came before it.
    pub fn in_order(&mut self, event_type: &str, seq: u64) -> bool {
        match self.last.iter_mut().find(|(name, _)| &**name == event_type) {
            Some((_, last)) if seq < *last => false,
            Some((_, last)) => {
                *last = seq;
                true
            }
            None => {
                self.last.push((event_type.into(), seq));
                true
            }
        }
    }
}

/// One connection from its successful open to its end.
#[derive(Debug, Clone)]
pub struct Session {
    pub connected_at: Instant,
    /// The gateway instance, from the first heartbeat.
    pub instance: Option<String>,
    pub ended_at: Option<Instant>,
    /// Why it ended: `closed by server`, a close code, an I/O error, `stopped`.
    pub end: Option<String>,
}

#[derive(Debug, Default)]
pub struct Tally {
    /// Every distinct `seq` delivered.
    pub seqs: DenseSet,
    /// `lg_n` of every distinct delivery that carried one.
    pub marks: DenseSet,
    /// Deliveries of a `seq` already seen (expected only across a reconnect) — dropped.
    pub duplicates: u64,
    /// Event frames (a batch counts once).
    pub frames: u64,
    /// Events the frames stand for (a batch's `count`, which may exceed what it lists).
    pub represented: u64,
    /// Publish-to-receive latency of each distinct delivery that carried `lg_sent_us`, in µs.
    pub latencies_us: Vec<u64>,
    pub sessions: Vec<Session>,
    /// `reset` reasons received.
    pub resets: Vec<String>,
    /// For each reset, how many distinct marked events had arrived before it: a reset that
    /// tells of lost events must come after the last event before the loss.
    pub resets_after_marks: Vec<usize>,
    /// When the last `reset` arrived (µs since the epoch, the clock events are published with):
    /// an event published before it that never arrived is a loss the client was told of.
    pub last_reset_us: Option<u64>,
    /// Connection attempts the server refused or that failed before streaming.
    pub failed_connects: u64,
    pub last_error: Option<String>,
    /// Frames that could not be read (not JSON, wrong shape).
    pub bad_frames: u64,
    /// The last resume cursor received, sent on the next connect.
    pub cursor: Option<String>,
    /// Per session in [`Tally::sessions`], at the same index.
    pub session_info: Vec<SessionInfo>,
    /// Distinct deliveries whose `seq` was below one already delivered of the same type.
    pub out_of_order: u64,
    pub order: OrderByType,
    /// The last SSE `retry:` the server sent (ms): the least wait before the next reconnect.
    pub retry_hint_ms: Option<u64>,
    /// Refusals (an HTTP error status before streaming), by status and the JSON `error` reason
    /// (`503 connection_rate`), each counted.
    pub refusals: Vec<(Box<str>, u64)>,
    /// Refetches (summary and snapshot, as a dashboard does after a `reset`) finished.
    pub refetches_done: u64,
    /// Refetches given up (not answered within their limit).
    pub refetches_failed: u64,
    /// Attempts passed on to the next gateway within the same attempt, as a load balancer
    /// does for a gateway it cannot reach or that answers 502 or 503.
    pub passed_on: u64,
    /// Reused for each frame's events, so reading a frame allocates nothing.
    pub(crate) scratch: Vec<Delivered>,
}

impl Tally {
    /// Records the events of one frame received at `now_us`.
    pub fn record_frame(&mut self, events: &[Delivered], represented: u64, now_us: u64) {
        self.frames += 1;
        self.represented += represented;
        for event in events {
            if !self.seqs.insert(event.seq) {
                self.duplicates += 1;
                continue;
            }
            if let Some(n) = event.n {
                self.marks.insert(n);
            }
            if let Some(sent) = event.sent_us {
                self.latencies_us.push(now_us.saturating_sub(sent));
            }
        }
    }

    /// As [`Tally::record_frame`], for a frame of `event_type`: also counts a delivery that
    /// goes backwards within its type ([`Tally::out_of_order`]).
    pub fn record_typed_frame(
        &mut self,
        event_type: &str,
        events: &[Delivered],
        represented: u64,
        now_us: u64,
    ) {
        for event in events {
            if !self.seqs.contains(&event.seq) && !self.order.in_order(event_type, event.seq) {
                self.out_of_order += 1;
            }
        }
        self.record_frame(events, represented, now_us);
    }

    #[cfg(test)]
    pub(crate) fn connected(&mut self) {
        self.connected_to(0, false);
    }

    /// A session opened on gateway `gateway` of the client's list, `resumed` with a cursor.
    pub(crate) fn connected_to(&mut self, gateway: usize, resumed: bool) {
        self.sessions.push(Session {
            connected_at: Instant::now(),
            instance: None,
            ended_at: None,
            end: None,
        });
        self.session_info.push(SessionInfo {
            gateway,
            resumed,
            opened_us: now_us(),
            ready_us: None,
            ended_us: None,
        });
    }

    pub(crate) fn saw_instance(&mut self, instance: &str) {
        if let Some(session) = self.sessions.last_mut() {
            if session.instance.is_none() {
                session.instance = Some(instance.to_owned());
                if let Some(info) = self.session_info.last_mut() {
                    info.ready_us = Some(now_us());
                }
            }
        }
    }

    /// Counts one refusal under `what` (`503 connection_rate`).
    pub(crate) fn refused(&mut self, what: &str) {
        match self.refusals.iter_mut().find(|(name, _)| &**name == what) {
            Some((_, count)) => *count += 1,
            None => self.refusals.push((what.into(), 1)),
        }
    }

    pub(crate) fn ended(&mut self, why: String) {
        if let Some(session) = self.sessions.last_mut() {
            if session.ended_at.is_none() {
                session.ended_at = Some(Instant::now());
                session.end = Some(why);
                if let Some(info) = self.session_info.last_mut() {
                    info.ended_us = Some(now_us());
                }
            }
        }
    }

    /// Starts a new measurement window: forgets the latencies and marks recorded so far (the
    /// seqs stay, so a late duplicate is still recognised).
    pub fn start_window(&mut self) {
        self.latencies_us.clear();
        self.marks.clear();
        self.frames = 0;
        self.represented = 0;
    }

    /// Is the latest session open?
    pub fn is_live(&self) -> bool {
        self.sessions
            .last()
            .is_some_and(|session| session.ended_at.is_none())
    }

    /// Is the latest session open, and did its first heartbeat arrive? The gateway subscribed
    /// the client to the live feed before sending that, so nothing published afterwards can be
    /// missed.
    pub fn is_ready(&self) -> bool {
        self.is_live() && self.instance().is_some()
    }

    /// The instance of the latest session, once its first heartbeat arrived.
    pub fn instance(&self) -> Option<&str> {
        self.sessions
            .last()
            .and_then(|session| session.instance.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dense_set_counts_each_value_once_wherever_it_falls() {
        let mut set = DenseSet::default();
        assert!(set.insert(1000));
        assert!(set.insert(1130));
        assert!(!set.insert(1000));
        // Below the first value seen.
        assert!(set.insert(3));
        assert!(!set.insert(3));
        assert_eq!(set.len(), 3);
        assert!(set.contains(&1130) && set.contains(&3) && !set.contains(&1001));
        assert!(!set.contains(&99_999));
        set.clear();
        assert!(set.is_empty() && !set.contains(&1000));
    }

    #[test]
    fn a_repeated_seq_is_counted_as_a_duplicate_and_dropped() {
        let mut tally = Tally::default();
        let event = |seq, n| Delivered {
            seq,
            n: Some(n),
            sent_us: Some(100),
        };
        tally.record_frame(&[event(1, 10), event(2, 11)], 2, 150);
        tally.record_frame(&[event(2, 11), event(3, 12)], 2, 170);
        assert_eq!(tally.seqs.len(), 3);
        assert_eq!(tally.duplicates, 1);
        assert_eq!(tally.marks.len(), 3);
        assert_eq!(tally.latencies_us, vec![50, 50, 70]);
        assert_eq!(tally.frames, 2);
    }

    #[test]
    fn a_delivery_that_goes_back_within_its_type_is_out_of_order_and_a_repeat_is_not() {
        let mut tally = Tally::default();
        let event = |seq| Delivered {
            seq,
            n: Some(seq),
            sent_us: None,
        };
        // A replay coalesced per type: orders 10 and 12, then inventory 11. In order.
        tally.record_typed_frame("ORDER_RECEIVED", &[event(10), event(12)], 2, 0);
        tally.record_typed_frame("INVENTORY_CHANGE", &[event(11)], 1, 0);
        assert_eq!(tally.out_of_order, 0);
        // A repeat is a duplicate, not a step back.
        tally.record_typed_frame("ORDER_RECEIVED", &[event(10)], 1, 0);
        assert_eq!((tally.duplicates, tally.out_of_order), (1, 0));
        // An order below the last order delivered is.
        tally.record_typed_frame("ORDER_RECEIVED", &[event(9)], 1, 0);
        assert_eq!(tally.out_of_order, 1);
        assert_eq!(tally.seqs.len(), 4);
    }

    #[test]
    fn sessions_know_their_gateway_and_when_they_became_ready() {
        let mut tally = Tally::default();
        tally.connected_to(2, false);
        tally.saw_instance("gw-2");
        tally.ended("closed by server".into());
        tally.connected_to(1, true);
        assert_eq!(tally.session_info.len(), 2);
        assert_eq!(tally.session_info[0].gateway, 2);
        assert!(tally.session_info[0].ready_us.is_some());
        assert!(tally.session_info[1].resumed && tally.session_info[1].ready_us.is_none());
        tally.refused("503 connection_rate");
        tally.refused("503 connection_rate");
        assert_eq!(tally.refusals, vec![("503 connection_rate".into(), 2)]);
    }
}
