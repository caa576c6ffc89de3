//! Why a message did not become an event: the closed set of reasons on the DLQ.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// How many characters of a worker's value a reject message quotes: enough to recognise the
/// value, while the message stays a few hundred bytes however large the value is (messages are
/// logged and sent as a DLQ header).
pub(crate) const QUOTE_CHARS: usize = 64;

/// `text` cut to [`QUOTE_CHARS`] characters, with `…` marking a cut.
pub(crate) fn quote(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(QUOTE_CHARS) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

/// Why a message was rejected. The string form is the `Rakuda-Reject-Reason` header, the
/// `reason` of a DLQ entry and of a refused HTTP publish, and the `reason` label of
/// `bridge_events_rejected_total`, so the set is closed and small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The message is larger than the configured limit.
    TooLarge,
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// The text is not JSON, or not a JSON object.
    InvalidJson,
    /// An object names the same key twice (readers disagree on which value counts).
    DuplicateKey,
    /// The Redis channel is not one of the table's channels.
    UnknownChannel,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type or an empty value.
    InvalidField,
    /// `type` is not one of the known event types.
    UnknownType,
    /// `payload.action` is not `created`, `updated` or `deleted`.
    UnknownAction,
    /// The event's type belongs on another channel.
    TypeChannelMismatch,
    /// `timestamp` is not an RFC 3339 time.
    BadTimestamp,
    /// Valid, but JetStream refused to store it for good (a 4xx API error, e.g. over the
    /// stream's `max_message_size`); the server's words are in `Rakuda-Reject-Message`.
    StreamRejected,
}

impl RejectReason {
    pub const ALL: [RejectReason; 12] = [
        RejectReason::TooLarge,
        RejectReason::InvalidUtf8,
        RejectReason::InvalidJson,
        RejectReason::DuplicateKey,
        RejectReason::UnknownChannel,
        RejectReason::MissingField,
        RejectReason::InvalidField,
        RejectReason::UnknownType,
        RejectReason::UnknownAction,
        RejectReason::TypeChannelMismatch,
        RejectReason::BadTimestamp,
        RejectReason::StreamRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::DuplicateKey => "duplicate_key",
            RejectReason::UnknownChannel => "unknown_channel",
            RejectReason::MissingField => "missing_field",
            RejectReason::InvalidField => "invalid_field",
            RejectReason::UnknownType => "unknown_type",
            RejectReason::UnknownAction => "unknown_action",
            RejectReason::TypeChannelMismatch => "type_channel_mismatch",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::StreamRejected => "stream_rejected",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected message: the reason (a closed set) and a message for a human.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Reject {
    pub reason: RejectReason,
    pub message: String,
}

impl Reject {
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Reject {
        Reject {
            reason,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_the_serde_names() {
        for reason in RejectReason::ALL {
            assert_eq!(
                serde_json::to_string(&reason).expect("json"),
                format!("\"{}\"", reason.as_str())
            );
        }
    }

    #[test]
    fn quotes_are_cut_at_a_character_boundary() {
        assert_eq!(quote("short"), "short");
        let exact = "é".repeat(QUOTE_CHARS);
        assert_eq!(quote(&exact), exact.as_str());
        let long = "é".repeat(QUOTE_CHARS + 1);
        assert_eq!(quote(&long), format!("{exact}…"));
    }
}
