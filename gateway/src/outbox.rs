//! What every client connection does the same way, whatever the transport: start from a
//! subscription and a resume plan, take queued live frames in batches (one write for several),
//! keep those the client wants, and know which cursor a heartbeat may claim.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use rakuda_schema::{Heartbeat, Timestamp};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::Sleep;

use crate::app::App;
use crate::auth::Principal;
use crate::channels::ChannelSet;
use crate::coalesce::Folded;
use crate::cursor::{Cursor, MalformedCursor};
use crate::error::ApiError;
use crate::frame::{sse_folded, ws_folded, FrameKind, OutFrame};
use crate::hub::Subscription;
use crate::limits::Permit;
use crate::metrics::Transport;
use crate::replay_budget::Reservation;
use crate::resume::Plan;

/// Most queued frames handed over for one write.
const MAX_FRAMES_PER_WRITE: usize = 64;

/// A connection's turn to close once the gateway drains: the drain notice (a control frame
/// from the hub, or the gateway already draining when the connection subscribed) starts the
/// wait, and the close comes at a random moment within `GATEWAY_DRAIN_WINDOW`, so the clients
/// of a restarting instance reconnect elsewhere spread out, not all in the same second.
///
/// Until the notice there is no timer and nothing to register: polling [`DrainTurn::arrived`]
/// costs a branch, where watching the shared shutdown token cost every connection a lock on
/// every loop turn (2.7% of the gateway's CPU at `light-1k`, perf). Cancel-safe.
pub struct DrainTurn {
    window: Duration,
    close: Option<Pin<Box<Sleep>>>,
}

impl DrainTurn {
    pub fn new(app: &App) -> DrainTurn {
        let mut turn = DrainTurn {
            window: app.config.gateway_drain_window,
            close: None,
        };
        // Checked after the connection subscribed: a notice sent before that never reaches it.
        if app.draining() {
            turn.start();
        }
        turn
    }

    /// Picks this connection's moment to close (once).
    pub fn start(&mut self) {
        if self.close.is_some() {
            return;
        }
        let offset = if self.window.is_zero() {
            Duration::ZERO
        } else {
            self.window.mul_f64(rand::random::<f64>())
        };
        self.close = Some(Box::pin(tokio::time::sleep(offset)));
    }

    /// Resolves when this connection should close; never before [`DrainTurn::start`].
    pub async fn arrived(&mut self) {
        match self.close.as_mut() {
            Some(close) => close.as_mut().await,
            None => std::future::pending().await,
        }
    }
}

/// The query both transports take: `channels=inventory,orders`, `lastEventId=<cursor>`.
#[derive(Debug, serde::Deserialize)]
pub struct ConnectQuery {
    channels: Option<String>,
    #[serde(rename = "lastEventId")]
    last_event_id: Option<String>,
}

/// A connection the gateway agreed to serve.
pub struct Admission {
    pub channels: ChannelSet,
    /// The resume cursor presented, if any (parsed; a malformed one gets `reset`).
    pub cursor: Option<Result<Cursor, MalformedCursor>>,
    pub permit: Permit,
}

/// Checks a new connection: its query, its channels against its credential, the limits.
/// `header_cursor` is SSE's `Last-Event-ID`, which wins over the query.
pub fn admit(
    app: &App,
    principal: &Principal,
    query: Result<axum::extract::Query<ConnectQuery>, axum::extract::rejection::QueryRejection>,
    header_cursor: Option<&str>,
) -> Result<Admission, ApiError> {
    let axum::extract::Query(query) = query.map_err(|rejection| {
        app.reject(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_request",
            format!("bad query string: {rejection}"),
        )
    })?;
    let channels = crate::sse::requested_channels(app, principal, query.channels.as_deref())?;
    let permit = app.admit(principal.subject())?;
    let cursor = header_cursor
        .map(str::to_owned)
        .or(query.last_event_id)
        .filter(|text| !text.is_empty())
        .map(|text| text.parse::<Cursor>());
    Ok(Admission {
        channels,
        cursor,
        permit,
    })
}

/// What a connection sends before the live feed.
pub enum Start {
    Nothing,
    /// `reset` with this reason and the cursor to continue from.
    Reset(&'static str, Cursor),
    /// Missed events, coalesced.
    Replay(Replay),
}

/// Missed events, coalesced, serialized one frame at a time in the form the connection speaks
/// (never both), while their bytes are reserved in the replay budget; only the last frame
/// announces the cursor, so a client cut off mid-replay keeps its old one.
pub struct Replay {
    frames: Vec<Folded>,
    cursor: Cursor,
    _reservation: Reservation,
}

impl Replay {
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The cursor the frame at `index` announces, if it does.
    fn id(&self, index: usize) -> Option<Cursor> {
        (index + 1 == self.frames.len()).then_some(self.cursor)
    }

    /// The frames as SSE records, each made when it is asked for.
    pub fn sse_records(&self) -> impl Iterator<Item = Bytes> + '_ {
        (0..self.frames.len()).map(|index| sse_folded(&self.frames[index], self.id(index)))
    }

    /// The frames as WebSocket messages, each made when it is asked for.
    pub fn ws_messages(&self) -> impl Iterator<Item = Utf8Bytes> + '_ {
        (0..self.frames.len()).map(|index| ws_folded(&self.frames[index], self.id(index)))
    }
}

/// The next thing for the client.
pub enum Next {
    /// Frames to write together are in [`Outbox::batch`] (possibly none, when all were filtered
    /// out or were control frames). Then, in this order: a heartbeat if `heartbeat` (see
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

pub struct Outbox {
    app: Arc<App>,
    transport: Transport,
    frames: broadcast::Receiver<Arc<OutFrame>>,
    /// Frames taken from the hub, then those the client wants: kept and reused, so handing
    /// frames to a connection allocates nothing per event.
    queued: Vec<Arc<OutFrame>>,
    batch: Vec<Arc<OutFrame>>,
    /// Records delivery latency (one connection in `LATENCY_SAMPLE_EVERY`).
    samples_latency: bool,
    /// What the client receives; a WebSocket client may change it.
    pub channels: ChannelSet,
    /// Live frames at or below this were already sent (by a replay or another instance).
    skip_through: u64,
    /// Every frame at or below this cursor was written or is not for this client: what a
    /// heartbeat may claim. Its epoch is the stream this connection follows.
    sent_through: Cursor,
}

impl Outbox {
    pub fn new(
        app: Arc<App>,
        transport: Transport,
        subscription: Subscription,
        plan: Plan,
        channels: ChannelSet,
    ) -> (Outbox, Start) {
        let skip_through = plan.skip_through(&subscription);
        let epoch = subscription.epoch;
        let present = Cursor {
            epoch,
            seq: subscription.watermark,
        };
        let start = match plan {
            Plan::Reset(reason) => Start::Reset(reason, present),
            Plan::Replay {
                frames,
                reservation,
                ..
            } if !frames.is_empty() => Start::Replay(Replay {
                frames,
                cursor: present,
                _reservation: reservation,
            }),
            _ => Start::Nothing,
        };
        let samples_latency = app.samples_latency();
        let outbox = Outbox {
            app,
            transport,
            frames: subscription.frames,
            queued: Vec::new(),
            batch: Vec::new(),
            samples_latency,
            channels,
            skip_through,
            sent_through: Cursor {
                epoch,
                seq: skip_through,
            },
        };
        (outbox, start)
    }

    /// The frames of the last [`Next::Frames`], to write together.
    pub fn batch(&self) -> &[Arc<OutFrame>] {
        &self.batch
    }

    /// Waits for live frames; cancel-safe (nothing is lost if the wait is abandoned).
    pub async fn next(&mut self) -> Next {
        self.batch.clear();
        let first = match self.frames.recv().await {
            Ok(frame) => frame,
            Err(RecvError::Lagged(missed)) => {
                tracing::info!(
                    missed,
                    transport = self.transport.as_str(),
                    "client fell a whole queue behind; resetting it"
                );
                self.app.metrics.client_reset("lagged");
                return Next::Lagged;
            }
            Err(RecvError::Closed) => return Next::Closed,
        };
        let mut queued = std::mem::take(&mut self.queued);
        queued.push(first);
        let mut lagged = false;
        let mut heartbeat = false;
        let mut drain = false;
        while queued.len() < MAX_FRAMES_PER_WRITE {
            match self.frames.try_recv() {
                Ok(frame) => queued.push(frame),
                Err(TryRecvError::Lagged(_)) => {
                    lagged = true;
                    break;
                }
                Err(_) => break,
            }
        }
        // Only the connections that sample latency need the clock.
        let now = self.samples_latency.then(time::OffsetDateTime::now_utc);
        for frame in queued.drain(..) {
            match frame.kind {
                FrameKind::Tick => {
                    // Everything published before the tick came before it in this queue and
                    // was just taken, so its cursor is safe to claim.
                    self.claim(frame.cursor);
                    heartbeat = true;
                    continue;
                }
                FrameKind::Drain => {
                    drain = true;
                    continue;
                }
                FrameKind::Reset if frame.cursor.epoch != self.sent_through.epoch => {
                    // The stream was recreated and its sequences start again: follow it from
                    // the reset's cursor (the reset is written below, which moves
                    // `sent_through` to it), or the old epoch's positions would hide new events.
                    self.skip_through = frame.cursor.seq;
                }
                FrameKind::Single | FrameKind::Batch | FrameKind::Reset => {}
            }
            let wanted = match frame.channel {
                // Resets go to everyone.
                None => true,
                Some(channel) => {
                    frame.max_seq > self.skip_through && self.channels.contains(channel)
                }
            };
            if !wanted {
                continue;
            }
            self.sent_through = frame.cursor;
            if let Some(now) = now.filter(|_| frame.kind != FrameKind::Reset) {
                self.app
                    .metrics
                    .event_latency
                    .record((now - frame.newest).as_seconds_f64().max(0.0));
            }
            self.batch.push(frame);
        }
        self.queued = queued;
        self.app
            .metrics
            .frames_sent(self.transport, self.batch.len() as u64);
        if lagged {
            self.app.metrics.client_reset("lagged");
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
    pub fn heartbeat(&self) -> (Cursor, Heartbeat) {
        let beat = Heartbeat {
            instance: self.app.instance.clone(),
            seq: self.sent_through.seq,
            time: Timestamp::now(),
        };
        (self.sent_through, beat)
    }

    /// Counts replay frames as sent.
    pub fn count_sent(&self, frames: usize) {
        self.app.metrics.frames_sent(self.transport, frames as u64);
    }
}
