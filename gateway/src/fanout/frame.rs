//! Frames as they go on the wire, serialized once per frame and shared by every connection, and
//! the encoders of both transports (an SSE record, a WebSocket text message).
//!
//! The WebSocket envelope is the schema's `ServerMessage`, written here by hand: a frame's JSON
//! is serialized once and spliced into every connection's message, SSE's and WebSocket's. A test
//! below fails if these bytes and serde's serialization of `ServerMessage` ever differ.

use axum::extract::ws::Utf8Bytes;
use bytes::{BufMut, Bytes, BytesMut};
use rakuda_schema::{Channel, Heartbeat, ResetNotice, ResetReason};
use time::OffsetDateTime;

use super::coalesce::Folded;
use super::cursor::Cursor;

/// One frame for every connection: the SSE record is built once and its bytes shared.
#[derive(Debug)]
pub struct OutFrame {
    /// The channel of the events inside; `None` for a reset, which every connection gets.
    pub channel: Option<&'static Channel>,
    pub kind: FrameKind,
    /// For a reset, why.
    pub reset: Option<ResetReason>,
    /// Lowest event sequence the frame stands for (listed or folded into a later one).
    pub min_seq: u64,
    /// Highest event sequence inside the frame.
    pub max_seq: u64,
    /// The resume cursor this frame carries.
    pub cursor: Cursor,
    /// When the newest event inside was published by its worker, for the latency histogram.
    pub newest: OffsetDateTime,
    /// `id: ...\nevent: ...\ndata: ...\n\n`
    pub sse: Bytes,
    /// `{"id":"...","event":"...","data":{...}}` for WebSocket text frames.
    pub ws: Utf8Bytes,
    /// A live frame's events, kept (shared, not copied) so that a connection whose client
    /// already holds some of them is sent only the rest (see [`OutFrame::above`]).
    pub folded: Option<Folded>,
}

/// What a live frame owes one connection (see [`OutFrame::above`]).
#[derive(Debug)]
pub enum Owed {
    /// The client has every event in it.
    Nothing,
    /// The frame as it is, shared with every connection.
    Whole,
    /// Only its events above the client's position, in a frame of its own.
    Part(OutFrame),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Single,
    Batch,
    /// `event: reset`: the client must refetch everything.
    Reset,
}

impl OutFrame {
    /// A live frame, in both forms (its connections speak either), announcing `cursor`.
    pub fn encode(folded: &Folded, cursor: Cursor) -> OutFrame {
        let event_type = folded.event_type();
        let kind = match folded {
            Folded::Single(_) => FrameKind::Single,
            Folded::Batch(_) => FrameKind::Batch,
        };
        let mut json = BytesMut::with_capacity(folded.json_len());
        folded.write_json(&mut json);
        OutFrame {
            channel: Some(Channel::of(event_type)),
            kind,
            reset: None,
            min_seq: folded.min_seq(),
            max_seq: folded.max_seq(),
            cursor,
            newest: folded.newest().unwrap_or_else(OffsetDateTime::now_utc),
            sse: sse_record(Some(cursor), event_type.as_str(), &json),
            ws: ws_message(Some(cursor), event_type.as_str(), &json),
            folded: None,
        }
    }

    /// A live frame that keeps its events, for [`OutFrame::above`].
    pub fn encode_live(folded: Folded, cursor: Cursor) -> OutFrame {
        let mut frame = OutFrame::encode(&folded, cursor);
        frame.folded = Some(folded);
        frame
    }

    /// What this frame owes a connection whose client holds every event up to `seq`, and
    /// may claim `cursor` once it has this frame.
    ///
    /// A client that resumed from another instance may hold the first events of a batch this
    /// instance was still debouncing: it gets only the rest, serialized for this connection
    /// alone. Sending the whole batch would repeat what it has; sending a cursor below the one
    /// it came with would make its next resume repeat events too.
    pub fn above(&self, seq: u64, cursor: Cursor) -> Owed {
        if self.max_seq <= seq {
            return Owed::Nothing;
        }
        if self.min_seq > seq && self.cursor.seq >= cursor.seq {
            return Owed::Whole;
        }
        let part = match &self.folded {
            Some(folded) if self.min_seq > seq => Some(folded.clone()),
            Some(Folded::Batch(batch)) => batch.above(seq),
            // Not a live frame (never the case for what the pipeline publishes): a repeat is
            // better than a loss.
            Some(Folded::Single(_)) | None => return Owed::Whole,
        };
        match part {
            Some(part) => Owed::Part(OutFrame::encode(&part, cursor)),
            None => Owed::Nothing,
        }
    }
}

impl OutFrame {
    /// A reset for every connection, carrying the cursor the client continues from.
    pub fn reset(reason: ResetReason, cursor: Cursor) -> OutFrame {
        OutFrame {
            channel: None,
            kind: FrameKind::Reset,
            reset: Some(reason),
            min_seq: cursor.seq,
            max_seq: cursor.seq,
            cursor,
            newest: OffsetDateTime::now_utc(),
            sse: sse_reset(Some(cursor), reason),
            ws: ws_reset(Some(cursor), reason),
            folded: None,
        }
    }
}

/// An SSE record. `data` must be one line (compact JSON is).
pub(crate) fn sse_record(id: Option<Cursor>, event: &str, data: &[u8]) -> Bytes {
    sse_record_with(id, event, data.len(), |out| out.put_slice(data))
}

/// An SSE record whose `data` is written by `write` (at most about `data_len` bytes), straight
/// into the record: a replay frame is serialized once, in the one form its connection needs.
pub(crate) fn sse_record_with(
    id: Option<Cursor>,
    event: &str,
    data_len: usize,
    write: impl FnOnce(&mut BytesMut),
) -> Bytes {
    let mut out = BytesMut::with_capacity(data_len + event.len() + 48);
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.to_string().as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"event: ");
    out.put_slice(event.as_bytes());
    out.put_slice(b"\ndata: ");
    write(&mut out);
    out.put_slice(b"\n\n");
    out.freeze()
}

/// A coalesced frame as an SSE record (replays: only the form the connection needs).
pub(crate) fn sse_folded(folded: &Folded, id: Option<Cursor>) -> Bytes {
    sse_record_with(id, folded.event_type().as_str(), folded.json_len(), |out| {
        folded.write_json(out)
    })
}

/// A coalesced frame as a WebSocket text message (replays).
pub(crate) fn ws_folded(folded: &Folded, id: Option<Cursor>) -> Utf8Bytes {
    ws_message_with(id, folded.event_type().as_str(), folded.json_len(), |out| {
        folded.write_json(out)
    })
}

/// What a coalesced frame costs while it is written: the message, plus the copy a WebSocket
/// keeps in its write buffer until the socket takes it.
pub(crate) fn folded_frame_bytes(folded: &Folded) -> usize {
    2 * folded.json_len() + 256
}

/// `retry: <ms>`: how long a browser waits before reconnecting.
pub(crate) fn sse_retry(millis: u64) -> Bytes {
    Bytes::from(format!("retry: {millis}\n\n"))
}

pub(crate) fn sse_heartbeat(id: Option<Cursor>, heartbeat: &Heartbeat) -> Bytes {
    let json = serde_json::to_vec(heartbeat).unwrap_or_else(|_| b"{}".to_vec());
    sse_record(id, "heartbeat", &json)
}

pub(crate) fn sse_reset(id: Option<Cursor>, reason: ResetReason) -> Bytes {
    sse_record(id, "reset", &reset_json(reason))
}

pub(crate) fn ws_reset(id: Option<Cursor>, reason: ResetReason) -> Utf8Bytes {
    ws_message(id, "reset", &reset_json(reason))
}

/// A heartbeat as a WebSocket message.
pub(crate) fn ws_heartbeat(id: Option<Cursor>, heartbeat: &Heartbeat) -> Utf8Bytes {
    let json = serde_json::to_vec(heartbeat).unwrap_or_else(|_| b"{}".to_vec());
    ws_message(id, "heartbeat", &json)
}

fn reset_json(reason: ResetReason) -> Vec<u8> {
    serde_json::to_vec(&ResetNotice { reason }).unwrap_or_else(|_| b"{}".to_vec())
}

/// A WebSocket text frame: `{"id":"<cursor>","event":"<name>","data":<json>}`; `data` is
/// spliced in as is, so a frame's JSON is serialized once for both transports.
pub(crate) fn ws_message(id: Option<Cursor>, event: &str, data: &[u8]) -> Utf8Bytes {
    ws_message_with(id, event, data.len(), |out| out.put_slice(data))
}

/// A WebSocket text frame whose `data` is written by `write`.
pub(crate) fn ws_message_with(
    id: Option<Cursor>,
    event: &str,
    data_len: usize,
    write: impl FnOnce(&mut BytesMut),
) -> Utf8Bytes {
    let mut out = BytesMut::with_capacity(data_len + event.len() + 48);
    out.put_u8(b'{');
    if let Some(id) = id {
        out.put_slice(b"\"id\":\"");
        out.put_slice(id.to_string().as_bytes());
        out.put_slice(b"\",");
    }
    out.put_slice(b"\"event\":\"");
    out.put_slice(event.as_bytes());
    out.put_slice(b"\",\"data\":");
    write(&mut out);
    out.put_u8(b'}');
    // Built from UTF-8 pieces only: event names are ASCII, data is a validated event's bytes or
    // serde_json output.
    Utf8Bytes::try_from(out.freeze()).unwrap_or_else(|_| Utf8Bytes::from_static("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::event;
    use rakuda_schema::EventType;

    #[test]
    fn a_single_event_is_one_sse_record_with_its_cursor() {
        let folded = Folded::Single(event(EventType::OrderReceived, 1041, "o1"));
        let frame = OutFrame::encode(
            &folded,
            Cursor {
                epoch: 1_732_270_000,
                seq: 1041,
            },
        );
        let text = std::str::from_utf8(&frame.sse).expect("utf-8");
        assert!(text.starts_with("id: 1732270000-1041\nevent: ORDER_RECEIVED\ndata: {\"type\":\"ORDER_RECEIVED\",\"seq\":1041,"));
        assert!(text.ends_with("}\n\n"));
        assert_eq!(text.matches('\n').count(), 4);
        assert_eq!(frame.max_seq, 1041);
    }

    #[test]
    fn ws_messages_carry_id_event_and_data() {
        let message = ws_message(
            Some(Cursor { epoch: 1, seq: 2 }),
            "ORDER_RECEIVED",
            b"{\"seq\":2}",
        );
        let json: serde_json::Value = serde_json::from_str(message.as_str()).expect("valid JSON");
        assert_eq!(
            json,
            serde_json::json!({"id": "1-2", "event": "ORDER_RECEIVED", "data": {"seq": 2}})
        );
        let bare = ws_message(None, "pong", b"{}");
        assert_eq!(bare.as_str(), "{\"event\":\"pong\",\"data\":{}}");
    }

    /// The hand-written envelope is, byte for byte, what serde writes for the schema's
    /// `ServerMessage`: for a single event, a batch (whole and truncated), a replayed frame
    /// without a cursor, a heartbeat, and resets with and without one.
    #[test]
    fn ws_messages_are_the_schemas_server_message() {
        use rakuda_schema::{
            Action, BatchFrame, Frame, Payload, RealTimeEvent, SequencedEvent, ServerMessage,
            StreamMessage, Timestamp,
        };

        use crate::fanout::coalesce::Pending;

        let cursor = Cursor {
            epoch: 1_795_366_240_958,
            seq: 1041,
        };
        let id = Some(cursor.to_string());
        // What `event` (the gateway's test events) holds, as the schema's type.
        let sequenced = |event_type: EventType, seq: u64, id: &str| {
            SequencedEvent::new(
                seq,
                RealTimeEvent {
                    event_type,
                    payload: Payload {
                        id: id.into(),
                        action: Action::Updated,
                        data: None,
                    },
                    timestamp: Timestamp::parse("2026-11-22T10:00:00.000Z").expect("valid"),
                },
            )
        };
        let serde = |message: ServerMessage| serde_json::to_string(&message).expect("json");

        let single = Folded::Single(event(EventType::OrderReceived, 1041, "o1"));
        assert_eq!(
            OutFrame::encode(&single, cursor).ws.as_str(),
            serde(ServerMessage::frame(
                id.clone(),
                Frame::Single(sequenced(EventType::OrderReceived, 1041, "o1"))
            ))
        );

        for cap in [3, 1] {
            let mut pending = Pending::new(EventType::PriceChange, cap);
            for (seq, entity) in [(1039, "p1"), (1040, "p2"), (1041, "p3")] {
                pending.push(event(EventType::PriceChange, seq, entity));
            }
            let batch = Folded::from_batch(pending.take_batch());
            let listed = [(1039, "p1"), (1040, "p2"), (1041, "p3")];
            let expected = Frame::Batch(BatchFrame {
                event_type: EventType::PriceChange,
                batch: true,
                count: 3,
                events: listed[3 - cap..]
                    .iter()
                    .map(|(seq, entity)| sequenced(EventType::PriceChange, *seq, entity))
                    .collect(),
                truncated: cap < 3,
            });
            assert_eq!(
                OutFrame::encode(&batch, cursor).ws.as_str(),
                serde(ServerMessage::frame(id.clone(), expected.clone())),
                "a batch of {cap} listed"
            );
            // A replay's frames before its last carry no cursor.
            assert_eq!(
                ws_folded(&batch, None).as_str(),
                serde(ServerMessage::frame(None, expected))
            );
        }

        let heartbeat = Heartbeat {
            instance: "gw-2".into(),
            seq: 1041,
            time: Timestamp::parse("2026-11-22T10:00:05.000Z").expect("valid"),
            degraded: true,
        };
        assert_eq!(
            ws_heartbeat(Some(cursor), &heartbeat).as_str(),
            serde(ServerMessage::Stream {
                id: id.clone(),
                message: StreamMessage::Heartbeat(heartbeat),
            })
        );

        for (id, reason) in [
            (Some(cursor), ResetReason::StreamRecreated),
            (None, ResetReason::SlowClient),
        ] {
            let reset = ServerMessage::Stream {
                id: id.map(|cursor| cursor.to_string()),
                message: StreamMessage::Reset(ResetNotice { reason }),
            };
            assert_eq!(ws_reset(id, reason).as_str(), serde(reset.clone()));
            if let Some(cursor) = id {
                assert_eq!(OutFrame::reset(reason, cursor).ws.as_str(), serde(reset));
            }
        }
    }

    #[test]
    fn reset_and_retry_records() {
        assert_eq!(&sse_retry(3712)[..], b"retry: 3712\n\n");
        assert_eq!(
            &sse_reset(None, ResetReason::SlowClient)[..],
            b"event: reset\ndata: {\"reason\":\"slow_client\"}\n\n"
        );
    }
}
