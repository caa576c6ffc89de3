//! What a gateway sends to clients.
//!
//! A single event carries its stream sequence `seq` (the global event id, the same on every
//! gateway). Debounce folds a burst of one type into a [`BatchFrame`]; either is a [`Frame`].
//! [`Heartbeat`] and [`ResetNotice`] are the `heartbeat` and `reset` events of the SSE stream.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::event::{EventType, Payload, RealTimeEvent, Timestamp};
use crate::vocabulary::ResetReason;

/// An event as delivered to a client: the worker's event plus its stream sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct SequencedEvent {
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The JetStream stream sequence: the global event id, used to resume and to drop
    /// duplicates after a reconnect.
    #[ts(type = "number")]
    pub seq: u64,
    pub payload: Payload,
    pub timestamp: Timestamp,
}

impl SequencedEvent {
    pub fn new(seq: u64, event: RealTimeEvent) -> SequencedEvent {
        SequencedEvent {
            event_type: event.event_type,
            seq,
            payload: event.payload,
            timestamp: event.timestamp,
        }
    }
}

/// Several events of one type that arrived inside one debounce window, sent as one frame.
///
/// `count` is the exact number of events the batch stands for; `events` may hold fewer: for
/// state-like types only the latest event per `payload.id`, and never more than the configured
/// cap (then `truncated` is `true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct BatchFrame {
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Always `true`: tells a batch apart from a single event.
    #[ts(type = "true")]
    pub batch: bool,
    pub count: u32,
    pub events: Vec<SequencedEvent>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>", optional)]
    pub truncated: bool,
}

/// The `heartbeat` event: proof of life, and the newest sequence this instance has seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Heartbeat {
    pub instance: String,
    #[ts(type = "number")]
    pub seq: u64,
    pub time: Timestamp,
    /// The gateway has not seen its canary come back for `CANARY_DEGRADED_AFTER`: events may
    /// not be flowing (the bridge, Redis or NATS is down), so the screen may be stale.
    #[serde(default)]
    pub degraded: bool,
}

/// The `reset` event: the client missed events it cannot get back and must refetch everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ResetNotice {
    pub reason: ResetReason,
}

/// Every frame a client can receive on the event stream: one event, or a batch of one type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(untagged)]
pub enum Frame {
    Single(SequencedEvent),
    Batch(BatchFrame),
}

impl Frame {
    /// The type of the event(s) inside: the `event` of its SSE record and WebSocket message.
    pub fn event_type(&self) -> EventType {
        match self {
            Frame::Single(event) => event.event_type,
            Frame::Batch(batch) => batch.event_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Action;

    fn event(id: &str) -> RealTimeEvent {
        RealTimeEvent {
            event_type: EventType::PriceChange,
            payload: Payload {
                id: id.into(),
                action: Action::Updated,
                data: None,
            },
            timestamp: Timestamp::parse("2026-11-22T10:00:00.000Z").expect("valid"),
        }
    }

    #[test]
    fn sequenced_event_puts_seq_after_type() {
        let json = serde_json::to_string(&SequencedEvent::new(1041, event("p1"))).expect("json");
        assert_eq!(
            json,
            r#"{"type":"PRICE_CHANGE","seq":1041,"payload":{"id":"p1","action":"updated"},"timestamp":"2026-11-22T10:00:00.000Z"}"#
        );
    }

    #[test]
    fn batch_frame_matches_the_design() {
        let batch = BatchFrame {
            event_type: EventType::PriceChange,
            batch: true,
            count: 37,
            events: vec![SequencedEvent::new(7, event("p1"))],
            truncated: false,
        };
        let json = serde_json::to_string(&batch).expect("json");
        assert!(json.starts_with(r#"{"type":"PRICE_CHANGE","batch":true,"count":37,"events":[{"#));
        assert!(!json.contains("truncated"));
        let truncated = BatchFrame {
            truncated: true,
            ..batch
        };
        assert!(serde_json::to_string(&truncated)
            .expect("json")
            .ends_with(r#""truncated":true}"#));
    }
}
