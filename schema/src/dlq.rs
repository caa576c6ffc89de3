//! What `GET /api/realtime/dlq` answers: the messages the bridge rejected, newest first, and
//! how many of each reason the last hour held. Read by the gateway from the DLQ stream, where
//! the bridge writes them with the headers named here and in [`crate::channel`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::event::Timestamp;

/// Header with the human-readable reject message (the validator's words).
pub const REJECT_MESSAGE_HEADER: &str = "Rakuda-Reject-Message";
/// Header with the original size of a message truncated for the DLQ.
pub const ORIGINAL_SIZE_HEADER: &str = "Rakuda-Original-Size";
/// Header naming who sent a rejected message, when the bridge knows it. Messages from Redis
/// carry none (Redis pub/sub does not say who published); a publisher that authenticates to
/// the bridge can be named here.
pub const PRODUCER_HEADER: &str = "Rakuda-Producer";

/// How many bytes of a rejected message a DLQ page shows.
pub const DLQ_HEAD_BYTES: usize = 256;

/// One rejected message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RejectedMessage {
    /// Its sequence in the DLQ stream (the `before` of the next page).
    #[ts(type = "number")]
    pub seq: u64,
    /// When the DLQ stored it.
    pub time: Timestamp,
    /// The Redis channel it arrived on, as the bridge recorded it.
    pub channel: String,
    /// A `RejectReason` (`invalid_json`, `unknown_type`, ...), as the bridge recorded it.
    pub reason: String,
    /// Why, in the validator's words.
    pub message: String,
    /// Its first [`DLQ_HEAD_BYTES`] bytes as text: bytes that are not UTF-8 are written `\xNN`.
    pub head: String,
    /// Whether `head` is only the beginning of what was sent.
    pub truncated: bool,
    /// Its size as sent, in bytes (the bridge keeps only the first `EVENT_MAX_BYTES` of a larger one).
    #[ts(type = "number")]
    pub size: u64,
    /// Who sent it, when known; `null` for everything that came through Redis.
    pub producer: Option<String>,
}

/// How many messages of each reason the DLQ stored in the last hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RejectCounts {
    /// The start of the window (an hour before the answer).
    pub since: Timestamp,
    /// Every message stored since then, counted by the server.
    #[ts(type = "number")]
    pub total: u64,
    /// Per reason, of the messages read (the newest `DLQ_COUNT_MAX_MESSAGES` at most).
    #[ts(type = "Record<string, number>")]
    pub by_reason: BTreeMap<String, u64>,
    /// `false` when there were more than the gateway reads: `byReason` adds up to less than
    /// `total` and counts the newest only.
    pub complete: bool,
}

/// A page of `GET /api/realtime/dlq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct DlqPage {
    /// Newest first.
    pub events: Vec<RejectedMessage>,
    /// Pass as `before` for the next (older) page; `null` at the oldest message held.
    #[ts(type = "number | null")]
    pub next: Option<u64>,
    /// The DLQ stream's last sequence when the page was read.
    #[ts(type = "number")]
    pub last_seq: u64,
    pub last_hour: RejectCounts,
}

/// `bytes` as text a person (and JSON) can read: UTF-8 as is, other bytes as `\xNN`. A
/// character cut by the cap at the end is dropped rather than shown as stray bytes.
pub fn escaped_head(bytes: &[u8], cut: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut chunks = bytes.utf8_chunks().peekable();
    while let Some(chunk) = chunks.next() {
        out.push_str(chunk.valid());
        let invalid = chunk.invalid();
        // The last chunk's invalid tail may be a character the cut split in two.
        let split_char = cut
            && chunks.peek().is_none()
            && !invalid.is_empty()
            && invalid.len() < 4
            && std::str::from_utf8(invalid)
                .err()
                .is_some_and(|e| e.error_len().is_none());
        if split_char {
            break;
        }
        for byte in invalid {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_escape_bytes_that_are_not_utf8_and_drop_a_split_character() {
        assert_eq!(escaped_head(b"not json", false), "not json");
        assert_eq!(escaped_head(b"a\xffb\xc3", false), "a\\xffb\\xc3");
        // "é" is c3 a9: cut after c3, the half character is dropped.
        assert_eq!(escaped_head("abé".as_bytes()[..3].as_ref(), true), "ab");
        assert_eq!(
            escaped_head("naïve {\"x\":1}".as_bytes(), false),
            "naïve {\"x\":1}"
        );
    }
}
