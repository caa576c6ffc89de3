//! What every client connection does with the live feed, whatever its transport: take the
//! hub's queued messages in batches (one write for several frames), keep the frames the client
//! wants, and know which cursor a heartbeat may claim.

use std::sync::Arc;

use rakuda_schema::{ClientResetReason, Heartbeat, ResetReason, Timestamp};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::cursor::Cursor;
use super::frame::{FrameKind, OutFrame, Owed};
use super::hub::{HubMessage, Tap};
use crate::channels::ChannelSet;
use crate::metrics::{ConnectionMetrics, Transport};

/// Most queued messages handed over for one write.
const MAX_MESSAGES_PER_WRITE: usize = 64;

/// Where a connection reports what it delivered.
#[derive(Clone)]
pub(crate) struct Delivery {
    pub transport: Transport,
    pub metrics: Arc<ConnectionMetrics>,
    /// Records delivery latency (one connection in a few; see `transport::Streams`).
    pub samples_latency: bool,
    /// This instance's name, in heartbeats.
    pub instance: Arc<str>,
}

/// The next thing for the client.
pub(crate) enum Next {
    /// Frames to write together are in [`Outbox::batch`] (possibly none, when all were filtered
    /// out or were control messages). Then, in this order: a heartbeat if `heartbeat` (see
    /// [`Outbox::heartbeat`]); the drain wait started if `drain`; a reset if `lagged` (the
    /// client fell a whole queue behind right after them).
    Frames {
        lagged: bool,
        heartbeat: bool,
        drain: bool,
    },
    /// The client fell a whole queue behind.
    Lagged,
    /// The hub is gone.
    Closed,
}

pub(crate) struct Outbox {
    delivery: Delivery,
    messages: broadcast::Receiver<HubMessage>,
    /// Messages taken from the hub, then the frames the client wants: kept and reused, so
    /// handing frames to a connection allocates nothing per event.
    queued: Vec<HubMessage>,
    batch: Vec<Arc<OutFrame>>,
    /// What the client receives; a WebSocket client may change it.
    pub channels: ChannelSet,
    /// Live frames at or below this were already sent (by a replay or another instance).
    skip_through: u64,
    /// Every frame at or below this cursor was written or is not for this client: what a
    /// heartbeat may claim. Its epoch is the stream this connection follows.
    sent_through: Cursor,
    /// Whether the gateway is degraded, as of the last tick: told in every heartbeat.
    degraded: bool,
}

impl Outbox {
    /// A connection on `tap` (following its stream epoch) whose client has everything up to
    /// `skip_through`.
    pub(crate) fn new(
        tap: Tap,
        skip_through: u64,
        channels: ChannelSet,
        delivery: Delivery,
    ) -> Outbox {
        let Tap {
            messages,
            epoch,
            degraded,
            ..
        } = tap;
        Outbox {
            degraded,
            delivery,
            messages,
            queued: Vec::new(),
            batch: Vec::new(),
            channels,
            skip_through,
            sent_through: Cursor {
                epoch,
                seq: skip_through,
            },
        }
    }

    /// The frames of the last [`Next::Frames`], to write together.
    pub(crate) fn batch(&self) -> &[Arc<OutFrame>] {
        &self.batch
    }

    /// Waits for live messages; cancel-safe (nothing is lost if the wait is abandoned).
    pub(crate) async fn next(&mut self) -> Next {
        self.batch.clear();
        let first = match self.messages.recv().await {
            Ok(message) => message,
            Err(RecvError::Lagged(missed)) => {
                tracing::info!(
                    missed,
                    transport = self.delivery.transport.as_str(),
                    "client fell a whole queue behind; resetting it"
                );
                self.delivery
                    .metrics
                    .client_reset(ClientResetReason::Lagged);
                return Next::Lagged;
            }
            Err(RecvError::Closed) => return Next::Closed,
        };
        let mut queued = std::mem::take(&mut self.queued);
        queued.push(first);
        let mut lagged = false;
        let mut heartbeat = false;
        let mut drain = false;
        while queued.len() < MAX_MESSAGES_PER_WRITE {
            match self.messages.try_recv() {
                Ok(message) => queued.push(message),
                Err(TryRecvError::Lagged(_)) => {
                    lagged = true;
                    break;
                }
                Err(_) => break,
            }
        }
        // Only the connections that sample latency need the clock.
        let now = self
            .delivery
            .samples_latency
            .then(time::OffsetDateTime::now_utc);
        for message in queued.drain(..) {
            let frame = match message {
                HubMessage::Tick { cursor, degraded } => {
                    self.degraded = degraded;
                    // Everything published before the tick came before it in this queue and
                    // was just taken, so its cursor is safe to claim.
                    self.claim(cursor);
                    heartbeat = true;
                    continue;
                }
                HubMessage::Drain => {
                    drain = true;
                    continue;
                }
                HubMessage::Frame(frame) => frame,
            };
            let frame = match frame.kind {
                FrameKind::Reset => {
                    match frame.reset {
                        Some(ResetReason::StreamRecreated) => self
                            .delivery
                            .metrics
                            .client_reset(ClientResetReason::StreamRecreated),
                        Some(ResetReason::SourceGap) => self
                            .delivery
                            .metrics
                            .client_reset(ClientResetReason::SourceGap),
                        _ => {}
                    }
                    if frame.cursor.epoch != self.sent_through.epoch {
                        // The stream was recreated and its sequences start again: follow it
                        // from the reset's cursor, or the old epoch's positions would hide new
                        // events.
                        self.skip_through = frame.cursor.seq;
                    }
                    // Resets go to everyone.
                    self.sent_through = frame.cursor;
                    frame
                }
                FrameKind::Single | FrameKind::Batch => {
                    if !frame
                        .channel
                        .is_some_and(|channel| self.channels.contains(channel))
                    {
                        continue;
                    }
                    // The client holds every event up to `skip_through` (replayed, or sent by
                    // the instance it came from), and everything the frame's cursor covers is
                    // in this queue before it: the later of the two is safe to claim.
                    let cursor = Cursor {
                        epoch: frame.cursor.epoch,
                        seq: frame.cursor.seq.max(self.skip_through),
                    };
                    let frame = match frame.above(self.skip_through, cursor) {
                        Owed::Nothing => continue,
                        Owed::Whole => frame,
                        Owed::Part(part) => Arc::new(part),
                    };
                    self.claim(cursor);
                    frame
                }
            };
            if let Some(now) = now.filter(|_| frame.kind != FrameKind::Reset) {
                self.delivery
                    .metrics
                    .event_latency
                    .record((now - frame.newest).as_seconds_f64().max(0.0));
            }
            self.batch.push(frame);
        }
        self.queued = queued;
        self.delivery
            .metrics
            .frames_sent(self.delivery.transport, self.batch.len() as u64);
        if lagged {
            self.delivery
                .metrics
                .client_reset(ClientResetReason::Lagged);
        }
        Next::Frames {
            lagged,
            heartbeat,
            drain,
        }
    }

    /// Moves the claimable cursor forward to `cursor` (never back, never to another epoch).
    fn claim(&mut self, cursor: Cursor) {
        if cursor.epoch == self.sent_through.epoch && cursor.seq > self.sent_through.seq {
            self.sent_through = cursor;
        }
    }

    /// The heartbeat to send now, and the cursor it may carry: what this connection has taken
    /// from its queue, never the hub's watermark read directly. The hub moves its watermark
    /// just before it sends the frame, so a heartbeat that read it could claim a frame not yet
    /// queued, and a client that dropped right after would resume past an event it never got.
    pub(crate) fn heartbeat(&self) -> (Cursor, Heartbeat) {
        let beat = Heartbeat {
            instance: self.delivery.instance.to_string(),
            seq: self.sent_through.seq,
            time: Timestamp::now(),
            degraded: self.degraded,
        };
        (self.sent_through, beat)
    }

    /// Counts replay frames as sent.
    pub(crate) fn count_sent(&self, frames: usize) {
        self.delivery
            .metrics
            .frames_sent(self.delivery.transport, frames as u64);
    }
}
