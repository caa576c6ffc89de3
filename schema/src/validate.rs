//! Checks a message from a Redis channel against the contract.
//!
//! The checks run in a fixed order (size, UTF-8, JSON, then field by field) so that every
//! message gets one specific [`RejectReason`] and a message that tells a worker's author what
//! to fix. Unknown fields are allowed (inside `data` and at the top level), so workers can add
//! information without breaking the bridge.

use std::fmt;

use serde_json::{Map, Value};

use crate::channel::Channel;
use crate::event::{Action, EventType, Payload, RealTimeEvent, Timestamp};

/// The default size limit of one event: 64 KiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024;

/// Why a message was rejected. The string form is the `Rakuda-Reject-Reason` header and the
/// `reason` label of `bridge_events_rejected_total`, so the set is closed and small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The message is larger than the configured limit.
    TooLarge,
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// The text is not JSON, or not a JSON object.
    InvalidJson,
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
}

impl RejectReason {
    pub const ALL: [RejectReason; 10] = [
        RejectReason::TooLarge,
        RejectReason::InvalidUtf8,
        RejectReason::InvalidJson,
        RejectReason::UnknownChannel,
        RejectReason::MissingField,
        RejectReason::InvalidField,
        RejectReason::UnknownType,
        RejectReason::UnknownAction,
        RejectReason::TypeChannelMismatch,
        RejectReason::BadTimestamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::UnknownChannel => "unknown_channel",
            RejectReason::MissingField => "missing_field",
            RejectReason::InvalidField => "invalid_field",
            RejectReason::UnknownType => "unknown_type",
            RejectReason::UnknownAction => "unknown_action",
            RejectReason::TypeChannelMismatch => "type_channel_mismatch",
            RejectReason::BadTimestamp => "bad_timestamp",
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
    fn new(reason: RejectReason, message: impl Into<String>) -> Reject {
        Reject {
            reason,
            message: message.into(),
        }
    }
}

/// Validates messages with a size limit.
#[derive(Debug, Clone, Copy)]
pub struct Validator {
    max_bytes: usize,
}

impl Default for Validator {
    fn default() -> Self {
        Validator::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl Validator {
    pub fn new(max_bytes: usize) -> Validator {
        Validator { max_bytes }
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Checks `bytes` received on the channel named `channel` (`"inventory"`, without prefix).
    pub fn validate(
        &self,
        channel: &str,
        bytes: &[u8],
    ) -> Result<(&'static Channel, RealTimeEvent), Reject> {
        if bytes.len() > self.max_bytes {
            return Err(Reject::new(
                RejectReason::TooLarge,
                format!(
                    "message is {} bytes, over the limit of {} bytes",
                    bytes.len(),
                    self.max_bytes
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|error| {
            Reject::new(
                RejectReason::InvalidUtf8,
                format!("message is not UTF-8: {error}"),
            )
        })?;
        let Some(channel) = Channel::by_name(channel) else {
            return Err(Reject::new(
                RejectReason::UnknownChannel,
                format!(
                    "channel `{channel}` is not one of {}",
                    crate::CHANNELS.map(|c| c.name).join(", ")
                ),
            ));
        };
        let value: Value = serde_json::from_str(text).map_err(|error| {
            Reject::new(
                RejectReason::InvalidJson,
                format!("message is not JSON: {error}"),
            )
        })?;
        let Value::Object(mut root) = value else {
            return Err(Reject::new(
                RejectReason::InvalidJson,
                "message must be a JSON object",
            ));
        };

        let type_name = take_string(&mut root, "type")?;
        let event_type = EventType::from_wire(&type_name).ok_or_else(|| {
            Reject::new(
                RejectReason::UnknownType,
                format!(
                    "type `{type_name}` is not one of {}",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ),
            )
        })?;
        if event_type != channel.event_type {
            return Err(Reject::new(
                RejectReason::TypeChannelMismatch,
                format!(
                    "type {event_type} belongs on channel `{}`, not `{}`",
                    Channel::of(event_type).name,
                    channel.name
                ),
            ));
        }

        let mut payload = match root.remove("payload") {
            None | Some(Value::Null) => return Err(missing("payload")),
            Some(Value::Object(payload)) => payload,
            Some(_) => return Err(wrong_type("payload", "an object")),
        };
        let id = take_string(&mut payload, "payload.id")?;
        if id.is_empty() {
            return Err(Reject::new(
                RejectReason::InvalidField,
                "field `payload.id` must not be empty",
            ));
        }
        let action_name = take_string(&mut payload, "payload.action")?;
        let action = Action::from_wire(&action_name).ok_or_else(|| {
            Reject::new(
                RejectReason::UnknownAction,
                format!("action `{action_name}` is not one of created, updated, deleted"),
            )
        })?;
        let data = match payload.remove("data") {
            None | Some(Value::Null) => None,
            Some(Value::Object(data)) => Some(data),
            Some(_) => return Err(wrong_type("payload.data", "an object")),
        };

        let timestamp_text = take_string(&mut root, "timestamp")?;
        let timestamp = Timestamp::parse(&timestamp_text).map_err(|error| {
            Reject::new(
                RejectReason::BadTimestamp,
                format!("timestamp `{timestamp_text}` is not RFC 3339: {error}"),
            )
        })?;

        Ok((
            channel,
            RealTimeEvent {
                event_type,
                payload: Payload { id, action, data },
                timestamp,
            },
        ))
    }
}

/// Validates with the default size limit ([`DEFAULT_MAX_EVENT_BYTES`]).
pub fn validate(channel: &str, bytes: &[u8]) -> Result<(&'static Channel, RealTimeEvent), Reject> {
    Validator::default().validate(channel, bytes)
}

/// Removes a string field; `path` is the dotted name used in messages.
fn take_string(object: &mut Map<String, Value>, path: &str) -> Result<String, Reject> {
    let key = path.rsplit('.').next().unwrap_or(path);
    match object.remove(key) {
        None | Some(Value::Null) => Err(missing(path)),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(wrong_type(path, "a string")),
    }
}

fn missing(path: &str) -> Reject {
    Reject::new(
        RejectReason::MissingField,
        format!("required field `{path}` is missing"),
    )
}

fn wrong_type(path: &str, expected: &str) -> Reject {
    Reject::new(
        RejectReason::InvalidField,
        format!("field `{path}` must be {expected}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{"type":"INVENTORY_CHANGE","payload":{"id":"prod_123","action":"updated","data":{"isAvailable":false,"extra":{"nested":[1,2]}}},"timestamp":"2026-11-22T10:00:00.000Z"}"#;

    fn reason(channel: &str, bytes: &[u8]) -> RejectReason {
        match validate(channel, bytes) {
            Ok(_) => panic!("expected a reject for {}", String::from_utf8_lossy(bytes)),
            Err(reject) => reject.reason,
        }
    }

    #[test]
    fn accepts_a_valid_event_with_extra_fields() {
        let (channel, event) = validate("inventory", VALID.as_bytes()).expect("valid");
        assert_eq!(channel.name, "inventory");
        assert_eq!(event.event_type, EventType::InventoryChange);
        assert_eq!(event.payload.id, "prod_123");
        assert_eq!(event.payload.action, Action::Updated);
        let data = event.payload.data.expect("data");
        assert_eq!(data.get("isAvailable"), Some(&Value::Bool(false)));
        // Re-serializing gives the same bytes: nothing is reformatted.
        assert_eq!(
            serde_json::to_string(&RealTimeEvent {
                event_type: event.event_type,
                payload: Payload {
                    id: event.payload.id,
                    action: event.payload.action,
                    data: Some(data)
                },
                timestamp: event.timestamp
            })
            .expect("serialize"),
            VALID
        );
    }

    #[test]
    fn data_is_optional_and_may_be_null() {
        let bare = r#"{"type":"ORDER_RECEIVED","payload":{"id":"ord_1","action":"created"},"timestamp":"2026-11-22T10:00:00Z"}"#;
        assert!(validate("orders", bare.as_bytes()).is_ok());
        let null = r#"{"type":"ORDER_RECEIVED","payload":{"id":"ord_1","action":"created","data":null},"timestamp":"2026-11-22T10:00:00Z"}"#;
        assert!(validate("orders", null.as_bytes()).is_ok());
    }

    #[test]
    fn every_reason_is_reachable() {
        let big = format!(
            r#"{{"type":"INVENTORY_CHANGE","payload":{{"id":"p","action":"updated","data":{{"pad":"{}"}}}},"timestamp":"2026-11-22T10:00:00Z"}}"#,
            "x".repeat(DEFAULT_MAX_EVENT_BYTES)
        );
        let cases: Vec<(&str, Vec<u8>, RejectReason)> = vec![
            ("inventory", big.into_bytes(), RejectReason::TooLarge),
            ("inventory", vec![b'{', 0xff, 0xfe, b'}'], RejectReason::InvalidUtf8),
            ("inventory", b"{not json".to_vec(), RejectReason::InvalidJson),
            ("inventory", b"[1,2,3]".to_vec(), RejectReason::InvalidJson),
            ("warehouse", VALID.as_bytes().to_vec(), RejectReason::UnknownChannel),
            (
                "inventory",
                br#"{"payload":{"id":"p","action":"updated"},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
                RejectReason::MissingField,
            ),
            (
                "inventory",
                br#"{"type":"INVENTORY_CHANGE","timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
                RejectReason::MissingField,
            ),
            (
                "inventory",
                br#"{"type":"INVENTORY_CHANGE","payload":{"action":"updated"},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
                RejectReason::MissingField,
            ),
            (
                "inventory",
                br#"{"type":"INVENTORY_CHANGE","payload":{"id":"p","action":"updated"}}"#.to_vec(),
                RejectReason::MissingField,
            ),
            (
                "inventory",
                br#"{"type":"INVENTORY_CHANGE","payload":{"id":42,"action":"updated"},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
                RejectReason::InvalidField,
            ),
            (
                "inventory",
                br#"{"type":"INVENTORY_CHANGE","payload":{"id":"","action":"updated"},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
                RejectReason::InvalidField,
            ),
            (
                "inventory",
                br#"{"type":"INVENTORY_CHANGE","payload":{"id":"p","action":"updated","data":[1]},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
                RejectReason::InvalidField,
            ),
            (
                "inventory",
                br#"{"type":"STOCK_GONE","payload":{"id":"p","action":"updated"},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
                RejectReason::UnknownType,
            ),
            (
                "inventory",
                br#"{"type":"INVENTORY_CHANGE","payload":{"id":"p","action":"archived"},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
                RejectReason::UnknownAction,
            ),
            (
                "orders",
                VALID.as_bytes().to_vec(),
                RejectReason::TypeChannelMismatch,
            ),
            (
                "inventory",
                br#"{"type":"INVENTORY_CHANGE","payload":{"id":"p","action":"updated"},"timestamp":"yesterday"}"#.to_vec(),
                RejectReason::BadTimestamp,
            ),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (channel, bytes, expected) in cases {
            assert_eq!(reason(channel, &bytes), expected, "case {expected}");
            seen.insert(expected);
        }
        assert_eq!(
            seen.len(),
            RejectReason::ALL.len(),
            "every reason needs a case"
        );
    }

    #[test]
    fn messages_name_the_problem() {
        let reject = validate(
            "inventory",
            br#"{"type":"INVENTORY_CHANGE","payload":{"action":"updated"},"timestamp":"2026-11-22T10:00:00Z"}"#,
        )
        .expect_err("missing id");
        assert_eq!(reject.message, "required field `payload.id` is missing");
        let reject = validate("orders", VALID.as_bytes()).expect_err("mismatch");
        assert_eq!(
            reject.message,
            "type INVENTORY_CHANGE belongs on channel `inventory`, not `orders`"
        );
    }

    #[test]
    fn size_limit_is_a_setting() {
        let validator = Validator::new(16);
        let reject = validator
            .validate("inventory", VALID.as_bytes())
            .expect_err("too large");
        assert_eq!(reject.reason, RejectReason::TooLarge);
        assert!(Validator::new(VALID.len())
            .validate("inventory", VALID.as_bytes())
            .is_ok());
    }
}
