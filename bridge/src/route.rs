//! Decides where one Redis message goes: its event subject when valid, the DLQ when not.

use async_nats::HeaderMap;
use bytes::Bytes;
use rakuda_schema::channel::{DLQ_SUBJECT, REJECT_REASON_HEADER, SOURCE_CHANNEL_HEADER};
use rakuda_schema::{Channel, EventType, Reject, Validator};
use sha2::{Digest, Sha256};

/// Header JetStream deduplicates on (within the stream's duplicate window).
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
/// The DLQ's other headers, defined with the page the gateway reads them into.
pub use rakuda_schema::dlq::{ORIGINAL_SIZE_HEADER, REJECT_MESSAGE_HEADER};

/// A message ready to publish to JetStream.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
    pub verdict: Verdict,
    /// The Redis channel it arrived on, for the DLQ and for logs.
    pub redis_channel: String,
}

/// Whether the message is a valid event or a reject, for metrics and logs.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// A valid event of this channel (`"inventory"`).
    Event {
        channel: &'static str,
    },
    Rejected(Reject),
}

/// Routes a message received on `redis_channel` (with the configured `prefix`).
pub fn route(validator: &Validator, prefix: &str, redis_channel: &str, payload: Bytes) -> Outgoing {
    let msg_id = content_hash(redis_channel, &payload);
    let channel_name = redis_channel.strip_prefix(prefix).unwrap_or(redis_channel);
    let checked = validator
        .validate(channel_name, &payload)
        .map(|event| (event.channel, event.channel.event_subject(&event.id)));
    finish(validator, checked, &msg_id, redis_channel, payload)
}

/// Where an event posted over HTTP whose `type` cannot be read is said to come from (the DLQ's
/// source channel header).
pub const POSTED_UNKNOWN_SOURCE: &str = "http";

/// Routes an event posted over HTTP: it is checked on the channel its `type` belongs on, as if
/// published on that Redis channel (an event whose type cannot be read is checked against the
/// first channel, so it gets the same specific reason: missing field, unknown type, ...).
/// `idempotency_key` becomes the `Nats-Msg-Id`; without one, the Redis path's content hash,
/// so the same bytes sent both ways are stored once.
pub fn route_posted(
    validator: &Validator,
    prefix: &str,
    payload: Bytes,
    idempotency_key: Option<&str>,
) -> Outgoing {
    let channel = posted_channel(&payload);
    let source = channel.map_or_else(
        || POSTED_UNKNOWN_SOURCE.to_owned(),
        |channel| channel.redis_channel(prefix),
    );
    let msg_id = idempotency_key.map_or_else(|| content_hash(&source, &payload), str::to_owned);
    let on = channel.unwrap_or(&rakuda_schema::CHANNELS[0]);
    let checked = validator
        .validate_on(on, &payload)
        .map(|event| (event.channel, event.channel.event_subject(&event.id)));
    finish(validator, checked, &msg_id, &source, payload)
}

/// The channel of the event's `type`, when it has a known one.
fn posted_channel(payload: &[u8]) -> Option<&'static Channel> {
    #[derive(serde::Deserialize)]
    struct TypeOnly<'a> {
        #[serde(rename = "type", borrow)]
        event_type: Option<std::borrow::Cow<'a, str>>,
    }
    let read: TypeOnly = serde_json::from_slice(payload).ok()?;
    EventType::from_wire(&read.event_type?).map(Channel::of)
}

fn finish(
    validator: &Validator,
    checked: Result<(&'static Channel, String), Reject>,
    msg_id: &str,
    redis_channel: &str,
    payload: Bytes,
) -> Outgoing {
    let (channel, subject) = match checked {
        Ok(routed) => routed,
        Err(reject) => {
            return to_dlq(
                msg_id,
                redis_channel,
                payload,
                reject,
                validator.max_bytes(),
            )
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(MSG_ID_HEADER, msg_id);
    Outgoing {
        subject,
        headers,
        // Forwarded byte for byte: what the worker wrote is what the stream stores.
        payload,
        verdict: Verdict::Event {
            channel: channel.name,
        },
        redis_channel: redis_channel.to_owned(),
    }
}

/// The same message for the DLQ, rejected with `reject` (JetStream refused to store it).
pub fn reroute_to_dlq(outgoing: Outgoing, reject: Reject, max_bytes: usize) -> Outgoing {
    let msg_id = outgoing
        .headers
        .get(MSG_ID_HEADER)
        .map(|id| id.as_str().to_owned())
        .unwrap_or_else(|| content_hash(&outgoing.redis_channel, &outgoing.payload));
    to_dlq(
        &msg_id,
        &outgoing.redis_channel,
        outgoing.payload,
        reject,
        max_bytes,
    )
}

fn to_dlq(
    msg_id: &str,
    redis_channel: &str,
    payload: Bytes,
    reject: Reject,
    max_bytes: usize,
) -> Outgoing {
    let mut headers = HeaderMap::new();
    headers.insert(MSG_ID_HEADER, msg_id);
    headers.insert(REJECT_REASON_HEADER, reject.reason.as_str());
    headers.insert(REJECT_MESSAGE_HEADER, header_safe(&reject.message).as_str());
    headers.insert(SOURCE_CHANNEL_HEADER, header_safe(redis_channel).as_str());
    let payload = if payload.len() > max_bytes {
        // Keep the head for inspection; the whole message could exceed NATS max_payload.
        headers.insert(ORIGINAL_SIZE_HEADER, payload.len().to_string().as_str());
        payload.slice(..max_bytes)
    } else {
        payload
    };
    Outgoing {
        subject: DLQ_SUBJECT.to_owned(),
        headers,
        payload,
        verdict: Verdict::Rejected(reject),
        redis_channel: redis_channel.to_owned(),
    }
}

/// The id JetStream deduplicates on: a hash of channel and bytes, so two bridges that read the
/// same Redis message publish the same id and the stream stores it once.
pub fn content_hash(redis_channel: &str, payload: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(redis_channel.as_bytes());
    hasher.update([0u8]);
    hasher.update(payload);
    // 128 bits are plenty inside a two-minute duplicate window.
    hex::encode(&hasher.finalize()[..16])
}

/// Header values cannot hold line breaks or other control characters.
fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(512)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "rakuda:realtime:";

    #[test]
    fn valid_events_keep_their_bytes_and_get_a_stable_id() {
        let bytes = Bytes::from_static(
            br#"{"type":"ORDER_RECEIVED","payload":{"id":"o1","action":"created"},"timestamp":"2026-11-22T10:00:00Z"}"#,
        );
        let out = route(
            &Validator::default(),
            PREFIX,
            "rakuda:realtime:orders",
            bytes.clone(),
        );
        // Orders have no latest state: all of them share one subject (see `Channel::keeps_latest`).
        assert_eq!(out.subject, "rakuda.realtime.orders.~all");
        assert_eq!(out.payload, bytes);
        let again = route(
            &Validator::default(),
            PREFIX,
            "rakuda:realtime:orders",
            bytes.clone(),
        );
        assert_eq!(
            out.headers.get(MSG_ID_HEADER),
            again.headers.get(MSG_ID_HEADER)
        );
        assert_ne!(
            content_hash("rakuda:realtime:orders", &bytes),
            content_hash("rakuda:realtime:inventory", &bytes)
        );
    }

    #[test]
    fn rejects_go_to_the_dlq_with_their_reason() {
        let out = route(
            &Validator::default(),
            PREFIX,
            "rakuda:realtime:orders",
            Bytes::from_static(b"not json\r\n"),
        );
        assert_eq!(out.subject, DLQ_SUBJECT);
        assert_eq!(
            out.headers.get(REJECT_REASON_HEADER).map(|v| v.as_str()),
            Some("invalid_json")
        );
        assert!(matches!(out.verdict, Verdict::Rejected(_)));
    }

    #[test]
    fn oversized_rejects_are_truncated_for_the_dlq() {
        let out = route(
            &Validator::new(8),
            PREFIX,
            "rakuda:realtime:orders",
            Bytes::from(vec![b'x'; 100]),
        );
        assert_eq!(out.payload.len(), 8);
        assert_eq!(
            out.headers.get(ORIGINAL_SIZE_HEADER).map(|v| v.as_str()),
            Some("100")
        );
    }
}
