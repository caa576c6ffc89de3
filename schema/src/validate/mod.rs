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
use crate::reject::{quote, Reject, RejectReason};

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
                    "channel `{}` is not one of {}",
                    quote(channel),
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
                "type `{}` is not one of {}",
                quote(&type_name),
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
            format!(
                "action `{}` is not one of created, updated, deleted",
                quote(&action_name)
            ),
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
            format!(
                "timestamp `{}` is not RFC 3339: {error}",
                quote(&timestamp_text)
            ),
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
mod tests;
