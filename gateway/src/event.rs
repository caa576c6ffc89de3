//! An event read from the stream, kept as the worker's bytes.
//!
//! The gateway never re-serializes what a worker wrote: a big integer, a long fraction or an
//! escape in `payload` reaches the browser exactly as published. It parses a message once, with
//! the same validator the bridge used, to learn the type, `payload.id` (for coalescing) and the
//! timestamp (for latency), and keeps where `payload` and `timestamp` sit in the message.

use std::ops::Range;

use bytes::{BufMut, Bytes};
use rakuda_schema::{Channel, EventType, Reject, Validator};
use time::OffsetDateTime;

/// A client event: its stream sequence and the worker's bytes.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub event_type: EventType,
    /// The stream sequence: the global event id.
    pub seq: u64,
    /// `payload.id`, unescaped: what debounce keeps the latest of.
    pub id: Box<str>,
    /// The stream message as stored (the worker's bytes), shared, not copied.
    message: Bytes,
    payload: Range<usize>,
    timestamp: Range<usize>,
    /// When the worker says it happened, for the latency histogram.
    pub published: OffsetDateTime,
}

impl StreamEvent {
    /// Reads a stream message of `channel`; the reject says why it is not an event.
    pub fn parse(
        validator: &Validator,
        channel: &'static Channel,
        seq: u64,
        message: Bytes,
    ) -> Result<StreamEvent, Reject> {
        let valid = validator.validate_on(channel, &message)?;
        let payload = span(&message, valid.payload.get());
        let timestamp = span(&message, valid.timestamp_json.get());
        Ok(StreamEvent {
            event_type: valid.event_type,
            seq,
            id: valid.id.as_ref().into(),
            published: valid.timestamp.instant(),
            payload,
            timestamp,
            message,
        })
    }

    /// The `payload` object as the worker wrote it.
    pub fn payload_json(&self) -> &[u8] {
        &self.message[self.payload.clone()]
    }

    /// The `timestamp` string as the worker wrote it, quotes included.
    pub fn timestamp_json(&self) -> &[u8] {
        &self.message[self.timestamp.clone()]
    }

    /// Bytes of the stream message this event holds on to.
    pub fn message_len(&self) -> usize {
        self.message.len()
    }

    /// `{"type":"…","seq":N,"payload":…,"timestamp":"…"}`: the schema's `SequencedEvent`, with
    /// the worker's bytes for `payload` and `timestamp`.
    pub fn write_json<B: BufMut>(&self, out: &mut B) {
        out.put_slice(b"{\"type\":\"");
        out.put_slice(self.event_type.as_str().as_bytes());
        out.put_slice(b"\",\"seq\":");
        out.put_slice(itoa::Buffer::new().format(self.seq).as_bytes());
        out.put_slice(b",\"payload\":");
        out.put_slice(self.payload_json());
        out.put_slice(b",\"timestamp\":");
        out.put_slice(self.timestamp_json());
        out.put_u8(b'}');
    }

    /// An upper bound of what [`StreamEvent::write_json`] writes.
    pub fn json_len(&self) -> usize {
        self.payload.len() + self.timestamp.len() + 80
    }

    /// Exactly what [`StreamEvent::write_json`] writes.
    pub fn json_exact_len(&self) -> usize {
        const FRAME: usize = r#"{"type":"","seq":,"payload":,"timestamp":}"#.len();
        FRAME
            + self.event_type.as_str().len()
            + itoa::Buffer::new().format(self.seq).len()
            + self.payload.len()
            + self.timestamp.len()
    }
}

/// Where `part` (a slice of `whole`, from the validator) sits in `whole`.
fn span(whole: &[u8], part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    start..start + part.len()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::BytesMut;
    use std::sync::Arc;

    /// A client event of `event_type` with sequence `seq` about entity `id`.
    pub(crate) fn event(event_type: EventType, seq: u64, id: &str) -> Arc<StreamEvent> {
        let json = format!(
            r#"{{"type":"{event_type}","payload":{{"id":"{id}","action":"updated"}},"timestamp":"2026-11-22T10:00:00.000Z"}}"#
        );
        Arc::new(
            StreamEvent::parse(
                &Validator::default(),
                Channel::of(event_type),
                seq,
                Bytes::from(json),
            )
            .expect("valid event"),
        )
    }

    #[test]
    fn the_frame_json_carries_the_workers_bytes_and_the_sequence() {
        let worker = r#"{"timestamp":"2026-11-22T10:00:00.000\u005a","payload":{"data":{"big":12345678901234567890123,"frac":0.12345678901234567890123},"action":"created","id":"o\u0031"},"type":"ORDER_RECEIVED"}"#;
        let event = StreamEvent::parse(
            &Validator::default(),
            Channel::of(EventType::OrderReceived),
            1041,
            Bytes::from_static(worker.as_bytes()),
        )
        .expect("valid");
        assert_eq!(&*event.id, "o1");
        let mut out = BytesMut::new();
        event.write_json(&mut out);
        assert_eq!(
            std::str::from_utf8(&out).expect("utf-8"),
            r#"{"type":"ORDER_RECEIVED","seq":1041,"payload":{"data":{"big":12345678901234567890123,"frac":0.12345678901234567890123},"action":"created","id":"o\u0031"},"timestamp":"2026-11-22T10:00:00.000\u005a"}"#
        );
        assert!(out.len() <= event.json_len());
        assert_eq!(out.len(), event.json_exact_len());
    }

    #[test]
    fn what_the_bridge_refuses_the_gateway_refuses() {
        let duplicate = r#"{"type":"ORDER_RECEIVED","type":"ORDER_RECEIVED","payload":{"id":"o","action":"created"},"timestamp":"2026-11-22T10:00:00Z"}"#;
        let reject = StreamEvent::parse(
            &Validator::default(),
            Channel::of(EventType::OrderReceived),
            1,
            Bytes::from_static(duplicate.as_bytes()),
        )
        .expect_err("duplicate key");
        assert_eq!(reject.reason, rakuda_schema::RejectReason::DuplicateKey);
    }
}
