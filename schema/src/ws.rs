//! The WebSocket envelope: what a client sends ([`ClientOp`]) and the data of the server's
//! messages that are not events. Every server message is `{"id"?, "event", "data"}`; the
//! TypeScript union of all of them is generated as `ServerMessage`.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::event::Timestamp;

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
}
