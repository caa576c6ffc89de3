//! The event a worker publishes: `{ type, payload { id, action, data? }, timestamp }`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use ts_rs::TS;

/// What happened. Each type travels on exactly one channel (see [`crate::CHANNELS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// Out of stock, stock or price change detected by the inventory checker.
    InventoryChange,
    /// A new order arrived (webhook).
    OrderReceived,
    /// A price update or a competitor's price change.
    PriceChange,
    /// A listing changed state.
    ListingUpdate,
    /// The gateways' own probe; flows through the whole path, never reaches clients.
    Canary,
}

impl EventType {
    /// Every event type, in the order of the channel table.
    pub const ALL: [EventType; 5] = [
        EventType::InventoryChange,
        EventType::OrderReceived,
        EventType::PriceChange,
        EventType::ListingUpdate,
        EventType::Canary,
    ];

    /// The types clients receive (everything but the internal canary).
    pub const CLIENT: [EventType; 4] = [
        EventType::InventoryChange,
        EventType::OrderReceived,
        EventType::PriceChange,
        EventType::ListingUpdate,
    ];

    /// The wire name (`"INVENTORY_CHANGE"`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::InventoryChange => "INVENTORY_CHANGE",
            EventType::OrderReceived => "ORDER_RECEIVED",
            EventType::PriceChange => "PRICE_CHANGE",
            EventType::ListingUpdate => "LISTING_UPDATE",
            EventType::Canary => "CANARY",
        }
    }

    /// The event type with this wire name, if there is one.
    pub fn from_wire(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to the entity named by `payload.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Deleted,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Created, Action::Updated, Action::Deleted];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
        }
    }

    pub fn from_wire(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// The entity an event is about, and what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Payload {
    /// The entity's id (`prod_123`, `ord_9`, ...); debounce keeps the latest event per id.
    pub id: String,
    pub action: Action,
    /// Free-form details; any fields are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "Record<string, unknown>")]
    pub data: Option<Map<String, Value>>,
}

/// An RFC 3339 time (`2026-11-22T10:00:00.000Z`), kept exactly as the worker wrote it so that re-serializing an event does
/// not change its bytes, with the parsed instant alongside for latency measurements.
#[derive(Debug, Clone, PartialEq, Eq, TS)]
#[ts(type = "string")]
pub struct Timestamp {
    text: String,
    at: OffsetDateTime,
}

impl Timestamp {
    /// Parses an RFC 3339 time (`2026-11-22T10:00:00.000Z`).
    pub fn parse(text: &str) -> Result<Timestamp, time::error::Parse> {
        let at = OffsetDateTime::parse(text, &Rfc3339)?;
        Ok(Timestamp {
            text: text.to_owned(),
            at,
        })
    }

    /// The time `at`, written as RFC 3339 with millisecond precision, as the workers do.
    pub fn from_instant(at: OffsetDateTime) -> Timestamp {
        let at = at.to_offset(time::UtcOffset::UTC);
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond()
        );
        Timestamp { text, at }
    }

    /// Now, in UTC.
    pub fn now() -> Timestamp {
        Timestamp::from_instant(OffsetDateTime::now_utc())
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn instant(&self) -> OffsetDateTime {
        self.at
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The event workers publish on `rakuda:realtime:<channel>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct RealTimeEvent {
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub payload: Payload,
    pub timestamp: Timestamp,
}

impl RealTimeEvent {
    /// An event stamped with the current time.
    pub fn now(event_type: EventType, id: impl Into<String>, action: Action) -> RealTimeEvent {
        RealTimeEvent {
            event_type,
            payload: Payload {
                id: id.into(),
                action,
                data: None,
            },
            timestamp: Timestamp::now(),
        }
    }

    /// The same event with `data` set.
    pub fn with_data(mut self, data: Map<String, Value>) -> RealTimeEvent {
        self.payload.data = Some(data);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_wire(t.as_str()), Some(t));
            let json = serde_json::to_string(&t).expect("serialize");
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        for a in Action::ALL {
            assert_eq!(Action::from_wire(a.as_str()), Some(a));
        }
    }

    #[test]
    fn timestamp_keeps_the_text_it_was_given() {
        let ts = Timestamp::parse("2026-11-22T10:00:00.000Z").expect("valid");
        assert_eq!(ts.as_str(), "2026-11-22T10:00:00.000Z");
        assert_eq!(
            serde_json::to_string(&ts).expect("serialize"),
            "\"2026-11-22T10:00:00.000Z\""
        );
        let offset = Timestamp::parse("2026-11-22T19:00:00+09:00").expect("valid");
        assert_eq!(offset.instant(), ts.instant());
        assert!(Timestamp::parse("2026-11-22 10:00").is_err());
    }

    #[test]
    fn from_instant_writes_milliseconds_in_utc() {
        let ts = Timestamp::parse("2026-11-22T19:00:00.123456+09:00").expect("valid");
        let again = Timestamp::from_instant(ts.instant());
        assert_eq!(again.as_str(), "2026-11-22T10:00:00.123Z");
        assert!(Timestamp::parse(again.as_str()).is_ok());
    }

    #[test]
    fn event_serializes_in_the_documented_shape() {
        let mut data = Map::new();
        data.insert("isAvailable".into(), Value::Bool(false));
        let event = RealTimeEvent {
            event_type: EventType::InventoryChange,
            payload: Payload {
                id: "prod_123".into(),
                action: Action::Updated,
                data: Some(data),
            },
            timestamp: Timestamp::parse("2026-11-22T10:00:00.000Z").expect("valid"),
        };
        assert_eq!(
            serde_json::to_string(&event).expect("serialize"),
            r#"{"type":"INVENTORY_CHANGE","payload":{"id":"prod_123","action":"updated","data":{"isAvailable":false}},"timestamp":"2026-11-22T10:00:00.000Z"}"#
        );
    }
}
