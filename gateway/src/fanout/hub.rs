//! Fan-out: every message goes to every connection through one bounded broadcast ring, so a
//! slow connection falls behind on its own (and is reset when it laps the ring) while the
//! producer never waits.
//!
//! Two kinds of message travel it: wire frames, serialized once and shared by every connection,
//! and control messages that are not for the wire (a heartbeat tick, the drain notice). Both are
//! sent by the one task that publishes frames, in order, which is what makes a tick's cursor
//! safe to claim (see [`HubMessage::Tick`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rakuda_schema::ResetReason;
use tokio::sync::broadcast;

use super::cursor::Cursor;
use super::frame::OutFrame;

/// What the hub sends every connection.
#[derive(Debug, Clone)]
pub enum HubMessage {
    /// A frame for the wire.
    Frame(Arc<OutFrame>),
    /// Time for every connection's heartbeat. Every frame at or below the cursor was published
    /// before this tick, so a connection that reached it has written (or filtered out)
    /// everything the cursor covers, and its heartbeat may claim it.
    Tick {
        cursor: Cursor,
        /// Whether the gateway is degraded (no canary back in time), for the heartbeats.
        degraded: bool,
    },
    /// The gateway is draining: each connection picks its moment to close.
    Drain,
}

pub struct Hub {
    messages: broadcast::Sender<HubMessage>,
    epoch: AtomicU64,
    watermark: AtomicU64,
    /// As of the last tick.
    degraded: AtomicBool,
}

/// A new connection's place in the fan-out.
pub struct Tap {
    pub messages: broadcast::Receiver<HubMessage>,
    pub epoch: u64,
    /// Every event at or below it was published before the tap.
    pub watermark: u64,
    /// Whether the gateway was degraded as of the last tick.
    pub degraded: bool,
}

impl Hub {
    /// `queue_capacity` messages a connection may fall behind.
    pub fn new(queue_capacity: usize) -> Hub {
        let (messages, _) = broadcast::channel(queue_capacity.max(1));
        Hub {
            messages,
            epoch: AtomicU64::new(0),
            watermark: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
        }
    }

    /// (Re)starts on a stream: its epoch and the last sequence that existed before it was read.
    pub fn start(&self, epoch: u64, last_seq: u64) {
        self.epoch.store(epoch, Ordering::Release);
        self.watermark.store(last_seq, Ordering::Release);
    }

    /// Sends a frame to every connection and moves the watermark to its cursor.
    ///
    /// No lock, by ordering: the watermark moves first, then the frame is sent, while
    /// [`Hub::tap`] creates its receiver first, then reads the watermark. Whatever the
    /// interleaving, a new tap either reads a watermark that covers the frame (its events are
    /// replayed or were already sent, and the live copy is skipped as at or below the
    /// watermark) or its receiver gets the frame. `send` wakes every waiting connection (0.23 ms
    /// for 1,000 on the benchmark machine); under a lock, a connection arriving meanwhile would
    /// block its worker thread for that long.
    pub fn publish(&self, frame: OutFrame) {
        self.watermark.store(frame.cursor.seq, Ordering::Release);
        // No receivers is fine: nobody is connected.
        let _ = self.messages.send(HubMessage::Frame(Arc::new(frame)));
    }

    /// Time for every connection's heartbeat. Only the task that publishes frames may call it
    /// (see [`HubMessage::Tick`]).
    pub fn tick(&self, degraded: bool) {
        self.degraded.store(degraded, Ordering::Release);
        let _ = self.messages.send(HubMessage::Tick {
            cursor: self.cursor(),
            degraded,
        });
    }

    /// Tells every connection that the gateway is draining.
    pub fn drain(&self) {
        let _ = self.messages.send(HubMessage::Drain);
    }

    /// Tells every connection to refetch everything.
    pub fn reset_all(&self, reason: ResetReason) {
        self.publish(OutFrame::reset(reason, self.cursor()));
    }

    /// Moves the watermark without a frame (events no client sees, e.g. the canary).
    pub fn advance(&self, watermark: u64) {
        self.watermark.store(watermark, Ordering::Release);
    }

    /// A receiver for what is published from now on, and where the stream stood.
    pub fn tap(&self) -> Tap {
        // The receiver before the watermark: the order `publish` relies on.
        let messages = self.messages.subscribe();
        Tap {
            messages,
            epoch: self.epoch(),
            watermark: self.watermark(),
            degraded: self.degraded.load(Ordering::Acquire),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn watermark(&self) -> u64 {
        self.watermark.load(Ordering::Acquire)
    }

    pub fn cursor(&self) -> Cursor {
        Cursor {
            epoch: self.epoch(),
            seq: self.watermark(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::event;
    use crate::fanout::coalesce::Folded;
    use rakuda_schema::EventType;

    fn frame(seq: u64) -> OutFrame {
        OutFrame::encode(
            &Folded::Single(event(EventType::OrderReceived, seq, "o")),
            Cursor { epoch: 7, seq },
        )
    }

    fn frame_seq(message: &HubMessage) -> Option<u64> {
        match message {
            HubMessage::Frame(frame) => Some(frame.max_seq),
            HubMessage::Tick { .. } | HubMessage::Drain => None,
        }
    }

    #[test]
    fn a_tap_gets_the_frames_published_after_it() {
        let hub = Hub::new(16);
        hub.start(7, 10);
        hub.publish(frame(11));
        let mut tap = hub.tap();
        assert_eq!((tap.epoch, tap.watermark), (7, 11));
        hub.publish(frame(12));
        hub.tick(false);
        let first = tap.messages.try_recv().expect("frame");
        assert_eq!(frame_seq(&first), Some(12));
        assert!(matches!(
            tap.messages.try_recv(),
            Ok(HubMessage::Tick {
                cursor: Cursor { epoch: 7, seq: 12 },
                degraded: false
            })
        ));
        assert!(tap.messages.try_recv().is_err());
    }

    /// Taps taken while frames are being published on another thread: the frame just above a
    /// tap's watermark (and the next ones) must reach its receiver, or a client would miss it.
    /// Below the watermark a frame is replayed or was already sent, so the receiver may skip it.
    #[test]
    fn a_tap_taken_during_publishing_misses_nothing_above_its_watermark() {
        /// Taps to check; the publisher goes on until they are (on a loaded machine, the
        /// checking thread may get little time, so the count, not a frame total, ends the run).
        const TAPS: u64 = 200;
        /// A bound on the run should the checker never get its taps in.
        const MAX_FRAMES: u64 = 50_000_000;
        /// Frames after its watermark each tap checks before the next one is taken.
        const CHECKED: u64 = 3;
        let hub = Arc::new(Hub::new(65_536));
        hub.start(7, 0);
        let enough = Arc::new(AtomicBool::new(false));
        let publisher = {
            let (hub, enough) = (hub.clone(), enough.clone());
            std::thread::spawn(move || {
                for seq in 1..=MAX_FRAMES {
                    if enough.load(Ordering::Relaxed) {
                        break;
                    }
                    hub.publish(frame(seq));
                }
            })
        };
        let mut checked = 0;
        'tapping: while !publisher.is_finished() && checked < TAPS {
            let mut tap = hub.tap();
            let watermark = tap.watermark;
            let mut expected = watermark + 1;
            while expected <= watermark + CHECKED {
                match tap.messages.try_recv().map(|message| frame_seq(&message)) {
                    Ok(Some(seq)) if seq <= watermark => continue,
                    Ok(Some(seq)) => {
                        assert_eq!(
                            seq, expected,
                            "a tap with watermark {watermark} missed frame {expected}"
                        );
                        expected += 1;
                    }
                    Ok(None) => continue,
                    Err(broadcast::error::TryRecvError::Empty) if publisher.is_finished() => {
                        break 'tapping
                    }
                    Err(broadcast::error::TryRecvError::Empty) => std::hint::spin_loop(),
                    // This thread was descheduled while the publisher lapped the ring: a lag the
                    // gateway answers with `reset`; nothing to check on this tap.
                    Err(broadcast::error::TryRecvError::Lagged(_)) => continue 'tapping,
                    Err(error) => panic!("tap with watermark {watermark}: {error}"),
                }
            }
            checked += 1;
        }
        enough.store(true, Ordering::Relaxed);
        publisher.join().expect("publisher");
        assert_eq!(checked, TAPS, "only {checked} taps were checked");
    }

    #[test]
    fn a_receiver_that_laps_the_ring_learns_it_lagged() {
        let hub = Hub::new(4);
        hub.start(7, 0);
        let mut tap = hub.tap();
        for seq in 1..=10 {
            hub.publish(frame(seq));
        }
        assert!(matches!(
            tap.messages.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(6))
        ));
    }
}
