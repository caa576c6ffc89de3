//! The WebSocket envelope: what a client sends ([`ClientOp`]) and what the server sends
//! ([`ServerMessage`], `{"id"?, "event", "data"}`), with the data of the server's messages that
//! are not events.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::event::{EventType, Timestamp};
use crate::frame::{Frame, Heartbeat, ResetNotice};

/// Every message the server sends on a WebSocket, one JSON text frame each:
/// `{"id"?, "event", "data"}`.
///
/// The gateway writes the stream's messages by hand (a frame's JSON is serialized once and
/// spliced into the envelope of every connection, SSE's too); a gateway test checks those bytes
/// against this type's serialization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(untagged)]
pub enum ServerMessage {
    /// What the stream carries. `id` is the resume cursor `<epoch>-<seq>`: of a replay, only
    /// the last frame carries it, and the `reset` that ends a slow client has none.
    Stream {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        id: Option<String>,
        #[serde(flatten)]
        message: StreamMessage,
    },
    /// The answer to a client op: it carries no cursor.
    Reply(ServerReply),
}

/// The `event` and `data` of a stream message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "event", content = "data", rename_all = "lowercase")]
pub enum StreamMessage {
    Heartbeat(Heartbeat),
    Reset(ResetNotice),
    /// An event or a batch: `event` is its type (never `CANARY`, which reaches no client).
    #[serde(untagged)]
    Frame {
        #[ts(type = "Exclude<EventType, \"CANARY\">")]
        event: EventType,
        data: Frame,
    },
}

/// The answers to client ops ([`ClientOp`]), and the `error` of a malformed one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "event", content = "data", rename_all = "lowercase")]
pub enum ServerReply {
    Subscribed(Subscribed),
    Pong(Pong),
    Error(WsErrorNotice),
}

impl ServerMessage {
    /// A stream message carrying the frame `data`, its `event` being the frame's type.
    pub fn frame(id: Option<String>, data: Frame) -> ServerMessage {
        ServerMessage::Stream {
            id,
            message: StreamMessage::Frame {
                event: data.event_type(),
                data,
            },
        }
    }
}

/// A frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ClientOp {
    /// Adds channels (within what the credential allows).
    Subscribe {
        #[ts(type = "Array<ChannelName>")]
        channels: Vec<String>,
    },
    /// Removes channels.
    Unsubscribe {
        #[ts(type = "Array<ChannelName>")]
        channels: Vec<String>,
    },
    /// Answered with a `pong` message.
    Ping,
}

/// `data` of a `subscribed` message: the channels the connection receives now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Subscribed {
    #[ts(type = "Array<ChannelName>")]
    pub channels: Vec<String>,
}

/// `data` of a `pong` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Pong {
    pub time: Timestamp,
}

/// What an `error` message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum WsErrorKind {
    /// A malformed client frame; after `WS_MAX_BAD_FRAMES` the connection closes (1008).
    BadFrame,
}

/// `data` of an `error` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct WsErrorNotice {
    pub error: WsErrorKind,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Payload, RealTimeEvent};
    use crate::frame::BatchFrame;
    use crate::{ResetReason, SequencedEvent};

    #[test]
    fn client_ops_read_as_documented() {
        let op: ClientOp =
            serde_json::from_str(r#"{"op":"subscribe","channels":["orders"]}"#).expect("op");
        assert_eq!(
            op,
            ClientOp::Subscribe {
                channels: vec!["orders".into()]
            }
        );
        assert_eq!(
            serde_json::from_str::<ClientOp>(r#"{"op":"ping"}"#).ok(),
            Some(ClientOp::Ping)
        );
        assert!(serde_json::from_str::<ClientOp>(r#"{"op":"dance"}"#).is_err());
        let error = WsErrorNotice {
            error: WsErrorKind::BadFrame,
            message: "x".into(),
        };
        assert_eq!(
            serde_json::to_string(&error).expect("json"),
            r#"{"error":"bad_frame","message":"x"}"#
        );
    }

    fn time() -> Timestamp {
        Timestamp::parse("2026-11-22T10:00:00.000Z").expect("valid")
    }

    /// The messages of docs/PROTOCOL.md ("WebSocket"), as serde writes and reads them.
    #[test]
    fn server_messages_are_the_documented_envelope() {
        let event = SequencedEvent::new(
            1041,
            RealTimeEvent {
                event_type: EventType::OrderReceived,
                payload: Payload {
                    id: "ord_9".into(),
                    action: Action::Created,
                    data: None,
                },
                timestamp: time(),
            },
        );
        let cursor = Some("1795366240958-1041".to_owned());
        let cases = [
            (
                ServerMessage::frame(cursor.clone(), Frame::Single(event.clone())),
                r#"{"id":"1795366240958-1041","event":"ORDER_RECEIVED","data":{"type":"ORDER_RECEIVED","seq":1041,"payload":{"id":"ord_9","action":"created"},"timestamp":"2026-11-22T10:00:00.000Z"}}"#,
            ),
            (
                ServerMessage::frame(
                    None,
                    Frame::Batch(BatchFrame {
                        event_type: EventType::OrderReceived,
                        batch: true,
                        count: 2,
                        events: vec![event],
                        truncated: true,
                    }),
                ),
                r#"{"event":"ORDER_RECEIVED","data":{"type":"ORDER_RECEIVED","batch":true,"count":2,"events":[{"type":"ORDER_RECEIVED","seq":1041,"payload":{"id":"ord_9","action":"created"},"timestamp":"2026-11-22T10:00:00.000Z"}],"truncated":true}}"#,
            ),
            (
                ServerMessage::Stream {
                    id: cursor.clone(),
                    message: StreamMessage::Heartbeat(Heartbeat {
                        instance: "gw-2".into(),
                        seq: 1041,
                        time: time(),
                        degraded: false,
                    }),
                },
                r#"{"id":"1795366240958-1041","event":"heartbeat","data":{"instance":"gw-2","seq":1041,"time":"2026-11-22T10:00:00.000Z","degraded":false}}"#,
            ),
            (
                ServerMessage::Stream {
                    id: None,
                    message: StreamMessage::Reset(ResetNotice {
                        reason: ResetReason::SlowClient,
                    }),
                },
                r#"{"event":"reset","data":{"reason":"slow_client"}}"#,
            ),
            (
                ServerMessage::Reply(ServerReply::Subscribed(Subscribed {
                    channels: vec!["inventory".into(), "orders".into()],
                })),
                r#"{"event":"subscribed","data":{"channels":["inventory","orders"]}}"#,
            ),
            (
                ServerMessage::Reply(ServerReply::Pong(Pong { time: time() })),
                r#"{"event":"pong","data":{"time":"2026-11-22T10:00:00.000Z"}}"#,
            ),
            (
                ServerMessage::Reply(ServerReply::Error(WsErrorNotice {
                    error: WsErrorKind::BadFrame,
                    message: "unknown channel".into(),
                })),
                r#"{"event":"error","data":{"error":"bad_frame","message":"unknown channel"}}"#,
            ),
        ];
        for (message, json) in cases {
            assert_eq!(serde_json::to_string(&message).expect("json"), json);
            let read: ServerMessage = serde_json::from_str(json).expect(json);
            assert_eq!(read, message, "{json}");
        }
        // Neither an event type nor a message name: no message.
        assert!(
            serde_json::from_str::<ServerMessage>(r#"{"event":"WAREHOUSE","data":{}}"#).is_err()
        );
        assert!(serde_json::from_str::<ServerMessage>(r#"{"event":"dance","data":{}}"#).is_err());
    }
}
