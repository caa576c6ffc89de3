//! `GET /api/realtime/ws`: the same events as SSE, as WebSocket text frames
//! `{"id":"<cursor>","event":"<TYPE>","data":{...}}`, with the same auth, resume cursor
//! (`?lastEventId=`), debounce output and bounded queue.
//!
//! Client → server: the schema's `ClientOp` (`subscribe`, `unsubscribe`, `ping`). A malformed
//! frame gets an `error` message naming the problem; more than `WS_MAX_BAD_FRAMES` of them close
//! the connection with 1008 (policy violation), and a frame over `WS_MAX_FRAME_BYTES` with 1009
//! (too big). The server pings every heartbeat interval and closes a client that has not
//! answered the previous ping.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use rakuda_schema::{
    ClientOp, ClientResetReason, CloseCode, Pong, RequestRefusal, ResetReason, ServerMessage,
    ServerReply, Subscribed, Timestamp, WsErrorKind, WsErrorNotice,
};

use super::admission::{admit, Admission, ConnectQuery};
use super::{expired, expiry, Streams};
use crate::channels::ChannelSet;
use crate::edge::auth::Principal;
use crate::edge::limits::Permit;
use crate::edge::ApiError;
use crate::fanout::frame::{ws_heartbeat, ws_reset, OutFrame};
use crate::fanout::outbox::{Next, Outbox};
use crate::metrics::Transport;
use crate::resume::replay::Start;
use crate::resume::Resumption;

/// Small buffers: tungstenite's defaults (128 KiB read) would cost more per idle connection
/// than everything else the connection holds. Clients only send small JSON ops; a rare larger
/// frame (up to WS_MAX_FRAME_BYTES) just takes a few reads.
const READ_BUFFER_BYTES: usize = 1024;
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

pub(crate) async fn upgrade(
    State(streams): State<Arc<Streams>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    if !streams.origins.allows(&headers) {
        return Err(streams.refusals.refuse(
            StatusCode::FORBIDDEN,
            RequestRefusal::OriginNotAllowed,
            "this page's origin is not in the gateway's CORS_ORIGINS",
        ));
    }
    let upgrade = upgrade.map_err(|rejection| {
        streams.refusals.refuse(
            StatusCode::BAD_REQUEST,
            RequestRefusal::NotWebsocket,
            format!("this endpoint speaks WebSocket: {rejection}"),
        )
    })?;
    let admission = admit(&streams, &principal, query, None)?;
    let reconnect = admission.reconnects();
    let Admission {
        channels,
        asked,
        permit,
    } = admission;
    let max_frame = streams.settings.ws_max_frame_bytes;
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_frame_size(max_frame)
        .max_message_size(max_frame)
        .on_upgrade(move |socket| async move {
            if reconnect {
                streams.metrics.reconnected(Transport::Ws);
            }
            // Boxed: planning a resume (possibly a JetStream read) is a big future, and held
            // inline it would size every session's task for its whole life (6 KiB, massif).
            let resumption = Box::pin(streams.resumer.resume(asked, channels)).await;
            Session {
                allowed: principal.allowed_channels(),
                expires: expiry(&principal),
                channels,
                bad_frames: 0,
                _permit: permit,
                streams,
            }
            .run(socket, resumption)
            .await;
        }))
}

struct Session {
    streams: Arc<Streams>,
    /// What the credential allows; `channels` stays within it.
    allowed: ChannelSet,
    /// When the token expires: the session closes with 4001.
    expires: Option<tokio::time::Instant>,
    channels: ChannelSet,
    bad_frames: usize,
    _permit: Permit,
}

/// How a session ended, for the close frame and the metrics.
enum End {
    ClientGone,
    Close(CloseCode, &'static str),
    /// The client stopped answering: drop the connection without a handshake.
    Unresponsive,
}

type Sink = SplitSink<WebSocket, Message>;

impl Session {
    async fn run(mut self, socket: WebSocket, resumption: Resumption) {
        let metrics = self.streams.metrics.clone();
        metrics.opened(Transport::Ws);
        let (mut sink, mut incoming) = socket.split();
        match self.serve(&mut sink, &mut incoming, resumption).await {
            End::Close(code, reason) => {
                let frame = CloseFrame {
                    code: code.code(),
                    reason: Utf8Bytes::from_static(reason),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                let _ = sink.close().await;
            }
            End::Unresponsive => metrics.client_reset(ClientResetReason::Unresponsive),
            End::ClientGone => {}
        }
        metrics.closed(Transport::Ws);
    }

    async fn serve(
        &mut self,
        sink: &mut Sink,
        incoming: &mut SplitStream<WebSocket>,
        resumption: Resumption,
    ) -> End {
        let streams = self.streams.clone();
        let Resumption {
            tap,
            start,
            skip_through,
        } = resumption;
        let mut outbox = Outbox::new(
            tap,
            skip_through,
            self.channels,
            streams.delivery(Transport::Ws),
        );
        let started = match start {
            Start::Nothing => Ok(()),
            Start::Reset(reason, cursor) => feed(sink, ws_reset(Some(cursor), reason)).await,
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
        if started.is_err()
            || send_all(sink, vec![ws_heartbeat(Some(cursor), &beat)])
                .await
                .is_err()
        {
            return End::ClientGone;
        }

        // Heartbeats (and pings) come as ticks through the hub (see `ingest::pipeline`).
        let mut awaiting_pong = false;
        let mut drain = streams.drain.turn();
        loop {
            tokio::select! {
                biased;
                _ = drain.arrived() => {
                    return End::Close(CloseCode::ServiceRestart, "service restart: reconnect");
                }
                _ = expired(self.expires) => {
                    streams.metrics.client_reset(ClientResetReason::TokenExpired);
                    return End::Close(CloseCode::TokenExpired, "token expired: reconnect with a new token");
                }
                message = incoming.next() => match message {
                    None | Some(Ok(Message::Close(_))) => return End::ClientGone,
                    Some(Err(error)) => return self.read_failed(error),
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
                            let sent = send_all(sink, vec![ws_heartbeat(Some(cursor), &beat)]).await;
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
                    Next::Closed => return End::Close(CloseCode::ServiceRestart, "service restart: reconnect"),
                },
            }
        }
    }

    /// The read side failed: a frame over the limit, or a broken connection.
    fn read_failed(&self, error: axum::Error) -> End {
        let too_big = error
            .into_inner()
            .downcast_ref::<tungstenite::Error>()
            .is_some_and(|error| matches!(error, tungstenite::Error::Capacity(_)));
        if too_big {
            self.streams
                .metrics
                .client_reset(ClientResetReason::FrameTooLarge);
            return End::Close(CloseCode::TooBig, "frame too large (WS_MAX_FRAME_BYTES)");
        }
        End::ClientGone
    }

    async fn lagged(&self, sink: &mut Sink) -> End {
        let _ = send_all(sink, vec![ws_reset(None, ResetReason::SlowClient)]).await;
        End::Close(
            CloseCode::TryAgainLater,
            "fell behind: reconnect and refetch",
        )
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
            ClientOp::Ping => reply_message(ServerReply::Pong(Pong {
                time: Timestamp::now(),
            })),
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
                    let message = format!(
                        "this credential allows only {}",
                        self.allowed.names().join(", ")
                    );
                    return self.bad_frame(sink, &message).await;
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
        let channels = self
            .channels
            .names()
            .into_iter()
            .map(String::from)
            .collect();
        reply_message(ServerReply::Subscribed(Subscribed { channels }))
    }

    /// Answers a malformed frame with an error message; past the limit, ends with 1008.
    async fn bad_frame(&mut self, sink: &mut Sink, message: &str) -> Option<End> {
        self.bad_frames += 1;
        let metrics = &self.streams.metrics;
        metrics.ws_bad_frames.increment(1);
        let notice = WsErrorNotice {
            error: WsErrorKind::BadFrame,
            message: message.to_owned(),
        };
        if send_all(sink, vec![reply_message(ServerReply::Error(notice))])
            .await
            .is_err()
        {
            return Some(End::ClientGone);
        }
        if self.bad_frames > self.streams.settings.ws_max_bad_frames {
            metrics.client_reset(ClientResetReason::BadFrames);
            return Some(End::Close(
                CloseCode::PolicyViolation,
                "too many malformed frames",
            ));
        }
        None
    }
}

/// The answer to a client op, as the schema's `ServerMessage` serializes it (a reply is rare:
/// no need for the frames' hand-written envelope).
fn reply_message(reply: ServerReply) -> Utf8Bytes {
    serde_json::to_string(&ServerMessage::Reply(reply))
        .map(Utf8Bytes::from)
        .unwrap_or_else(|_| Utf8Bytes::from_static("{}"))
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
