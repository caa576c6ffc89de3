//! What one subscriber saw, kept so a test or a scenario can check exactly-once delivery and
//! compute latencies and reconnect spreads afterwards.

use std::collections::HashSet;
use std::time::Instant;

use crate::marker::Delivered;

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
    pub seqs: HashSet<u64>,
    /// `lg_n` of every distinct delivery that carried one.
    pub marks: HashSet<u64>,
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
    /// Connection attempts the server refused or that failed before streaming.
    pub failed_connects: u64,
    pub last_error: Option<String>,
    /// Frames that could not be read (not JSON, wrong shape).
    pub bad_frames: u64,
    /// The last resume cursor received, sent on the next connect.
    pub cursor: Option<String>,
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

    pub(crate) fn connected(&mut self) {
        self.sessions.push(Session {
            connected_at: Instant::now(),
            instance: None,
            ended_at: None,
            end: None,
        });
    }

    pub(crate) fn saw_instance(&mut self, instance: &str) {
        if let Some(session) = self.sessions.last_mut() {
            if session.instance.is_none() {
                session.instance = Some(instance.to_owned());
            }
        }
    }

    pub(crate) fn ended(&mut self, why: String) {
        if let Some(session) = self.sessions.last_mut() {
            if session.ended_at.is_none() {
                session.ended_at = Some(Instant::now());
                session.end = Some(why);
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
}
