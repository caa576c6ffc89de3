//! Checks a message from a Redis channel against the contract.
//!
//! The checks run in a fixed order (size, UTF-8, channel, JSON, unique keys, then field by
//! field) so that every message gets one specific [`RejectReason`] and a message that tells a
//! worker's author what to fix. Unknown fields are allowed (inside `data` and at the top level),
//! so workers can add information without breaking the bridge.
//!
//! A valid message comes back as a [`ValidEvent`] that borrows the worker's bytes: the payload
//! and the timestamp are raw JSON text, so whoever forwards them (the bridge to JetStream, a
//! gateway to browsers) passes on exactly what the worker wrote, numbers and escapes included.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::channel::Channel;
use crate::event::{Action, EventType, Payload, RealTimeEvent, Timestamp};
use crate::json::{check_unique_keys, object_members, JsonError};
use crate::reject::{Reject, RejectReason};

/// The default size limit of one event: 64 KiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024;

/// A message that passed every check, borrowing the bytes it was read from.
#[derive(Debug, Clone)]
pub struct ValidEvent<'a> {
    pub channel: &'static Channel,
    pub event_type: EventType,
    /// `payload.id`, unescaped.
    pub id: Cow<'a, str>,
    pub action: Action,
    /// The `payload` object exactly as the worker wrote it.
    pub payload: &'a RawValue,
    /// The `timestamp` string exactly as written, quotes included.
    pub timestamp_json: &'a RawValue,
    /// The timestamp, parsed.
    pub timestamp: Timestamp,
}

impl ValidEvent<'_> {
    /// The event as owned, typed values (for tools and tests; the hot paths keep the bytes).
    pub fn to_event(&self) -> RealTimeEvent {
        // Validation checked `id`, `action` and `data`; only unknown fields are ignored here.
        let payload = serde_json::from_str::<Payload>(self.payload.get()).unwrap_or(Payload {
            id: self.id.clone().into_owned(),
            action: self.action,
            data: None,
        });
        RealTimeEvent {
            event_type: self.event_type,
            payload,
            timestamp: self.timestamp.clone(),
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
    pub fn validate<'a>(&self, channel: &str, bytes: &'a [u8]) -> Result<ValidEvent<'a>, Reject> {
        let text = self.text(bytes)?;
        let Some(channel) = Channel::by_name(channel) else {
            return Err(Reject::new(
                RejectReason::UnknownChannel,
                format!(
                    "channel `{channel}` is not one of {}",
                    crate::CHANNELS.map(|c| c.name).join(", ")
                ),
            ));
        };
        check_event(channel, text)
    }

    /// Checks `bytes` known to belong to `channel` (a gateway reading a stream subject).
    pub fn validate_on<'a>(
        &self,
        channel: &'static Channel,
        bytes: &'a [u8],
    ) -> Result<ValidEvent<'a>, Reject> {
        check_event(channel, self.text(bytes)?)
    }

    fn text<'a>(&self, bytes: &'a [u8]) -> Result<&'a str, Reject> {
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
        std::str::from_utf8(bytes).map_err(|error| {
            Reject::new(
                RejectReason::InvalidUtf8,
                format!("message is not UTF-8: {error}"),
            )
        })
    }
}

/// Validates with the default size limit ([`DEFAULT_MAX_EVENT_BYTES`]).
pub fn validate<'a>(channel: &str, bytes: &'a [u8]) -> Result<ValidEvent<'a>, Reject> {
    Validator::default().validate(channel, bytes)
}

fn check_event<'a>(channel: &'static Channel, text: &'a str) -> Result<ValidEvent<'a>, Reject> {
    check_unique_keys(text).map_err(|error| match error {
        JsonError::Syntax(error) => Reject::new(
            RejectReason::InvalidJson,
            format!("message is not JSON: {error}"),
        ),
        JsonError::DuplicateKey(error) => Reject::new(RejectReason::DuplicateKey, error),
    })?;
    if !text.trim_start().starts_with('{') {
        return Err(Reject::new(
            RejectReason::InvalidJson,
            "message must be a JSON object",
        ));
    }
    let root = Object::read(text)?;

    let type_name = root.string("type", "type")?;
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

    let payload = match root.get("payload") {
        None => return Err(missing("payload")),
        Some(raw) => match kind(raw) {
            Kind::Null => return Err(missing("payload")),
            Kind::Object => raw,
            Kind::Other => return Err(wrong_type("payload", "an object")),
        },
    };
    let fields = Object::read(payload.get())?;
    let id = fields.string("id", "payload.id")?;
    if id.is_empty() {
        return Err(Reject::new(
            RejectReason::InvalidField,
            "field `payload.id` must not be empty",
        ));
    }
    let action_name = fields.string("action", "payload.action")?;
    let action = Action::from_wire(&action_name).ok_or_else(|| {
        Reject::new(
            RejectReason::UnknownAction,
            format!("action `{action_name}` is not one of created, updated, deleted"),
        )
    })?;
    if let Some(data) = fields.get("data") {
        if kind(data) == Kind::Other {
            return Err(wrong_type("payload.data", "an object"));
        }
    }

    let timestamp_json = match root.get("timestamp") {
        Some(raw) if kind(raw) != Kind::Null => raw,
        _ => return Err(missing("timestamp")),
    };
    let timestamp_text = root.string("timestamp", "timestamp")?;
    let timestamp = Timestamp::parse(&timestamp_text).map_err(|error| {
        Reject::new(
            RejectReason::BadTimestamp,
            format!("timestamp `{timestamp_text}` is not RFC 3339: {error}"),
        )
    })?;

    Ok(ValidEvent {
        channel,
        event_type,
        id,
        action,
        payload,
        timestamp_json,
        timestamp,
    })
}

/// An object's members, raw.
struct Object<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Object<'a> {
    fn read(text: &'a str) -> Result<Object<'a>, Reject> {
        object_members(text)
            .map(|members| Object { members })
            .map_err(|error| {
                Reject::new(
                    RejectReason::InvalidJson,
                    format!("message is not JSON: {error}"),
                )
            })
    }

    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| *value)
    }

    /// A string member; `path` is the dotted name used in messages.
    fn string(&self, key: &str, path: &str) -> Result<Cow<'a, str>, Reject> {
        let Some(raw) = self.get(key) else {
            return Err(missing(path));
        };
        match kind(raw) {
            Kind::Null => Err(missing(path)),
            _ => serde_json::from_str::<Cow<'a, str>>(raw.get())
                .map_err(|_| wrong_type(path, "a string")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Object,
    Other,
}

fn kind(raw: &RawValue) -> Kind {
    match raw.get().as_bytes().first() {
        Some(b'n') => Kind::Null,
        Some(b'{') => Kind::Object,
        _ => Kind::Other,
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
        let event = validate("inventory", VALID.as_bytes()).expect("valid");
        assert_eq!(event.channel.name, "inventory");
        assert_eq!(event.event_type, EventType::InventoryChange);
        assert_eq!(event.id, "prod_123");
        assert_eq!(event.action, Action::Updated);
        let typed = event.to_event();
        let data = typed.payload.data.clone().expect("data");
        assert_eq!(
            data.get("isAvailable"),
            Some(&serde_json::Value::Bool(false))
        );
        // Re-serializing gives the same bytes: nothing is reformatted.
        assert_eq!(serde_json::to_string(&typed).expect("serialize"), VALID);
    }

    #[test]
    fn the_payload_and_timestamp_are_the_workers_bytes() {
        let text = r#"{"timestamp":"2026-11-22T10:00:00.000\u005a","payload":{"data":{"big":12345678901234567890123,"frac":0.1000000000000000055511151231257827,"s":"\u00e9\n"},"action":"created","id":"o\u0031"},"type":"ORDER_RECEIVED","extra":[1]}"#;
        let event = validate("orders", text.as_bytes()).expect("valid");
        assert_eq!(event.id, "o1", "the id is unescaped for grouping");
        assert_eq!(
            event.payload.get(),
            r#"{"data":{"big":12345678901234567890123,"frac":0.1000000000000000055511151231257827,"s":"\u00e9\n"},"action":"created","id":"o\u0031"}"#
        );
        assert_eq!(
            event.timestamp_json.get(),
            r#""2026-11-22T10:00:00.000\u005a""#
        );
        assert_eq!(event.timestamp.as_str(), "2026-11-22T10:00:00.000Z");
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for text in [
            r#"{"type":"ORDER_RECEIVED","type":"ORDER_RECEIVED","payload":{"id":"o","action":"created"},"timestamp":"2026-11-22T10:00:00Z"}"#,
            r#"{"type":"ORDER_RECEIVED","payload":{"id":"o","id":"p","action":"created"},"timestamp":"2026-11-22T10:00:00Z"}"#,
            r#"{"type":"ORDER_RECEIVED","payload":{"id":"o","action":"created","data":{"a":{"b":1,"b":2}}},"timestamp":"2026-11-22T10:00:00Z"}"#,
        ] {
            let reject = validate("orders", text.as_bytes()).expect_err("duplicate key");
            assert_eq!(reject.reason, RejectReason::DuplicateKey, "{text}");
            assert!(
                reject.message.starts_with("duplicate key `"),
                "{}",
                reject.message
            );
        }
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
            (
                "inventory",
                br#"{"type":"INVENTORY_CHANGE","type":"INVENTORY_CHANGE"}"#.to_vec(),
                RejectReason::DuplicateKey,
            ),
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
        // `stream_rejected` is JetStream's verdict, given by the bridge's publisher.
        assert_eq!(
            seen.len(),
            RejectReason::ALL.len() - 1,
            "every reason the validator gives needs a case"
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
