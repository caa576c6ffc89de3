//! `GET /api/realtime/ws`: the same events as SSE, as WebSocket text frames
//! `{"id":"<cursor>","event":"<TYPE>","data":{...}}`, with the same auth, resume cursor
//! (`?lastEventId=`), debounce output and bounded queue.
//!
//! Client → server: `{"op":"subscribe","channels":[...]}`, `{"op":"unsubscribe","channels":[...]}`,
//! `{"op":"ping"}`. A malformed frame gets an `error` frame naming the problem; more than
//! `WS_MAX_BAD_FRAMES` of them close the connection with 1008 (policy violation), and a frame
//! over `WS_MAX_FRAME_BYTES` with 1009 (too big). The server pings every heartbeat interval
//! and closes a client that has not answered the previous ping.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use rakuda_schema::Timestamp;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::auth::Principal;
use crate::channels::ChannelSet;
use crate::error::ApiError;
use crate::frame::{reset_json, ws_message, OutFrame};
use crate::hub::Subscription;
use crate::limits::Permit;
use crate::metrics::Transport;
use crate::outbox::{admit, Admission, ConnectQuery, DrainTurn, Next, Outbox, Start};
use crate::resume::{self, Plan};

/// Close codes (RFC 6455 and the IANA registry).
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_SERVICE_RESTART: u16 = 1012;
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// Small buffers: tungstenite's defaults (128 KiB read) would cost more per idle connection
/// than everything else the connection holds. Clients only send small JSON ops; a rare larger
/// frame (up to WS_MAX_FRAME_BYTES) just takes a few reads.
const READ_BUFFER_BYTES: usize = 1024;
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

pub async fn upgrade(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|rejection| {
        app.reject(
            StatusCode::BAD_REQUEST,
            "not_websocket",
            format!("this endpoint speaks WebSocket: {rejection}"),
        )
    })?;
    let Admission {
        channels,
        cursor,
        permit,
    } = admit(&app, &principal, query, None)?;
    let max_frame = app.config.ws_max_frame_bytes;
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_frame_size(max_frame)
        .max_message_size(max_frame)
        .on_upgrade(move |socket| async move {
            let subscription = app
                .hub
                .subscribe(cursor.as_ref().and_then(|c| c.as_ref().ok()).map(|c| c.seq));
            // Boxed: planning a resume (possibly a JetStream read) is a big future, and held
            // inline it would size every session's task for its whole life (6 KiB, massif).
            let plan = Box::pin(resume::plan(&app, cursor, &subscription, channels)).await;
            Session {
                app,
                allowed: principal.allowed_channels(),
                channels,
                bad_frames: 0,
                _permit: permit,
            }
            .run(socket, subscription, plan)
            .await;
        }))
}

/// A client op.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum ClientOp {
    Subscribe { channels: Vec<String> },
    Unsubscribe { channels: Vec<String> },
    Ping,
}

struct Session {
    app: Arc<App>,
    /// What the credential allows; `channels` stays within it.
    allowed: ChannelSet,
    channels: ChannelSet,
    bad_frames: usize,
    _permit: Permit,
}

/// How a session ended, for the close frame and the metrics.
enum End {
    ClientGone,
    Close(u16, &'static str),
    /// The client stopped answering: drop the connection without a handshake.
    Unresponsive,
}

type Sink = SplitSink<WebSocket, Message>;

impl Session {
    async fn run(mut self, socket: WebSocket, subscription: Subscription, plan: Plan) {
        self.app.metrics.connection_opened(Transport::Ws);
        let (mut sink, mut incoming) = socket.split();
        let end = self
            .serve(&mut sink, &mut incoming, subscription, plan)
            .await;
        match end {
            End::Close(code, reason) => {
                let frame = CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(reason),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                let _ = sink.close().await;
            }
            End::Unresponsive => self.app.metrics.client_reset("unresponsive"),
            End::ClientGone => {}
        }
        self.app.metrics.connection_closed(Transport::Ws);
    }

    async fn serve(
        &mut self,
        sink: &mut Sink,
        incoming: &mut futures::stream::SplitStream<WebSocket>,
        subscription: Subscription,
        plan: Plan,
    ) -> End {
        let app = self.app.clone();
        let (mut outbox, start) = Outbox::new(
            app.clone(),
            Transport::Ws,
            subscription,
            plan,
            self.channels,
        );
        let started = match start {
            Start::Nothing => Ok(()),
            Start::Reset(reason, cursor) => {
                feed(sink, ws_message(Some(cursor), "reset", &reset_json(reason))).await
            }
            Start::Replay(replay) => {
                // Fed one at a time: the sink takes the next only once the last is on its way,
                // so only the message being written exists; the reservation goes with `replay`.
                outbox.count_sent(replay.len());
                let mut fed = Ok(());
                for message in replay.ws_messages() {
                    fed = feed(sink, message).await;
                    if fed.is_err() {
                        break;
                    }
                }
                fed
            }
        };
        // Then a heartbeat at once: the client holds a cursor from the first second.
        let (cursor, beat) = outbox.heartbeat();
        let heartbeat = ws_message(
            Some(cursor),
            "heartbeat",
            &serde_json::to_vec(&beat).unwrap_or_default(),
        );
        if started.is_err() || send_all(sink, vec![heartbeat]).await.is_err() {
            return End::ClientGone;
        }

        // Heartbeats (and pings) come as ticks in the frame queue (see `Pipeline::run`).
        let mut awaiting_pong = false;
        let mut drain = DrainTurn::new(&app);
        loop {
            tokio::select! {
                biased;
                _ = drain.arrived() => {
                    return End::Close(CLOSE_SERVICE_RESTART, "service restart: reconnect");
                }
                message = incoming.next() => match message {
                    None | Some(Ok(Message::Close(_))) => return End::ClientGone,
                    Some(Err(error)) => return self.read_failed(&error),
                    Some(Ok(Message::Pong(_))) => awaiting_pong = false,
                    // Pings are answered by the WebSocket layer itself.
                    Some(Ok(Message::Ping(_))) => {}
                    Some(Ok(Message::Binary(_))) => {
                        if let Some(end) = self.bad_frame(sink, "binary frames are not supported; send JSON text").await {
                            return end;
                        }
                    }
                    Some(Ok(Message::Text(text))) => {
                        if let Some(end) = self.client_op(sink, text.as_str()).await {
                            return end;
                        }
                        outbox.channels = self.channels;
                    }
                },
                next = outbox.next() => match next {
                    Next::Frames { lagged, heartbeat, drain: draining } => {
                        let frames = outbox.batch();
                        if !frames.is_empty() && send_frames(sink, frames).await.is_err() {
                            return End::ClientGone;
                        }
                        if heartbeat {
                            if awaiting_pong {
                                tracing::info!("websocket client did not answer a ping within a heartbeat interval; closing");
                                return End::Unresponsive;
                            }
                            let (cursor, beat) = outbox.heartbeat();
                            let data = serde_json::to_vec(&beat).unwrap_or_default();
                            let sent = send_all(sink, vec![ws_message(Some(cursor), "heartbeat", &data)]).await;
                            if sent.is_err() || sink.send(Message::Ping(Default::default())).await.is_err() {
                                return End::ClientGone;
                            }
                            awaiting_pong = true;
                        }
                        if draining {
                            drain.start();
                        }
                        if lagged {
                            return self.lagged(sink).await;
                        }
                    }
                    Next::Lagged => return self.lagged(sink).await,
                    Next::Closed => return End::Close(CLOSE_SERVICE_RESTART, "service restart: reconnect"),
                },
            }
        }
    }

    /// The read side failed: a frame over the limit, or a broken connection.
    fn read_failed(&self, error: &axum::Error) -> End {
        let text = error.to_string();
        if text.contains("too long") || text.contains("too big") || text.contains("Space limit") {
            self.app.metrics.client_reset("frame_too_large");
            return End::Close(CLOSE_TOO_BIG, "frame too large (WS_MAX_FRAME_BYTES)");
        }
        End::ClientGone
    }

    async fn lagged(&self, sink: &mut Sink) -> End {
        let _ = send_all(
            sink,
            vec![ws_message(None, "reset", &reset_json("slow_client"))],
        )
        .await;
        End::Close(CLOSE_TRY_AGAIN_LATER, "fell behind: reconnect and refetch")
    }

    /// Handles one client op; `Some` ends the session.
    async fn client_op(&mut self, sink: &mut Sink, text: &str) -> Option<End> {
        let op = match serde_json::from_str::<ClientOp>(text) {
            Ok(op) => op,
            Err(error) => {
                let message = format!(
                    "expected {{\"op\":\"subscribe\"|\"unsubscribe\",\"channels\":[...]}} or {{\"op\":\"ping\"}}: {error}"
                );
                return self.bad_frame(sink, &message).await;
            }
        };
        let reply = match op {
            ClientOp::Ping => ws_message(
                None,
                "pong",
                json!({ "time": Timestamp::now() }).to_string().as_bytes(),
            ),
            ClientOp::Subscribe { channels } | ClientOp::Unsubscribe { channels }
                if channels.is_empty() =>
            {
                return self
                    .bad_frame(sink, "`channels` must list at least one channel")
                    .await;
            }
            ClientOp::Subscribe { channels } => {
                let set = match ChannelSet::from_names(channels.iter().map(String::as_str)) {
                    Ok(set) => set,
                    Err(error) => return self.bad_frame(sink, &error.to_string()).await,
                };
                if !set.is_subset_of(self.allowed) {
                    return self
                        .bad_frame(
                            sink,
                            &format!(
                                "this credential allows only {}",
                                self.allowed.names().join(", ")
                            ),
                        )
                        .await;
                }
                self.channels = self.channels.union(set);
                self.subscribed_reply()
            }
            ClientOp::Unsubscribe { channels } => {
                let set = match ChannelSet::from_names(channels.iter().map(String::as_str)) {
                    Ok(set) => set,
                    Err(error) => return self.bad_frame(sink, &error.to_string()).await,
                };
                self.channels = self.channels.minus(set);
                self.subscribed_reply()
            }
        };
        send_all(sink, vec![reply])
            .await
            .err()
            .map(|_| End::ClientGone)
    }

    fn subscribed_reply(&self) -> Utf8Bytes {
        ws_message(
            None,
            "subscribed",
            json!({ "channels": self.channels.names() })
                .to_string()
                .as_bytes(),
        )
    }

    /// Answers a malformed frame with an error frame; past the limit, ends with 1008.
    async fn bad_frame(&mut self, sink: &mut Sink, message: &str) -> Option<End> {
        self.bad_frames += 1;
        self.app.metrics.ws_bad_frames.increment(1);
        let error = json!({ "error": "bad_frame", "message": message }).to_string();
        if send_all(sink, vec![ws_message(None, "error", error.as_bytes())])
            .await
            .is_err()
        {
            return Some(End::ClientGone);
        }
        if self.bad_frames > self.app.config.ws_max_bad_frames {
            self.app.metrics.client_reset("bad_frames");
            return Some(End::Close(
                CLOSE_POLICY_VIOLATION,
                "too many malformed frames",
            ));
        }
        None
    }
}

/// Queues one message (waiting while the socket is full).
async fn feed(sink: &mut Sink, message: Utf8Bytes) -> Result<(), axum::Error> {
    sink.feed(Message::Text(message)).await
}

/// Queues every message, then flushes once: one write for several frames.
async fn send_all(sink: &mut Sink, messages: Vec<Utf8Bytes>) -> Result<(), axum::Error> {
    for message in messages {
        sink.feed(Message::Text(message)).await?;
    }
    sink.flush().await
}

/// Live frames, the same way: their shared bytes queued, then one flush.
async fn send_frames(sink: &mut Sink, frames: &[Arc<OutFrame>]) -> Result<(), axum::Error> {
    for frame in frames {
        sink.feed(Message::Text(frame.ws.clone())).await?;
    }
    sink.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ops_parse() {
        let op: ClientOp =
            serde_json::from_str(r#"{"op":"subscribe","channels":["orders"]}"#).expect("op");
        assert!(matches!(op, ClientOp::Subscribe { channels } if channels == ["orders"]));
        assert!(matches!(
            serde_json::from_str::<ClientOp>(r#"{"op":"ping"}"#),
            Ok(ClientOp::Ping)
        ));
        assert!(serde_json::from_str::<ClientOp>(r#"{"op":"dance"}"#).is_err());
    }
}
