//! What a publish request holds: one event (a JSON object) or a batch (a JSON array of
//! `{"event": {...}, "idempotencyKey": "..."}`), and what is answered for each event.
//!
//! The whole body is read and its shape checked before anything is published, so a malformed
//! request (400) or one over the limits (413) stores nothing.

use bytes::Bytes;
use rakuda_schema::RejectReason;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// One event to publish: its JSON text exactly as sent, and the producer's key, if any.
#[derive(Debug)]
pub struct Posted {
    pub event: Bytes,
    pub idempotency_key: Option<String>,
}

/// A request's events, and whether they came as one event or as a batch.
#[derive(Debug)]
pub struct Parsed {
    pub batch: bool,
    pub events: Vec<Posted>,
}

/// Why a body cannot be published at all (nothing of it is stored).
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("{0}")]
    Malformed(String),
    #[error("the batch holds {count} events; at most {max} are taken in one request (PUBLISH_MAX_BATCH)")]
    TooManyItems { count: usize, max: usize },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item<'a> {
    #[serde(borrow)]
    event: &'a RawValue,
    #[serde(rename = "idempotencyKey", default)]
    idempotency_key: Option<String>,
}

/// Reads a body; `header_key` is the request's `Idempotency-Key`, for a single event only.
pub fn parse(
    body: &Bytes,
    header_key: Option<&str>,
    max_batch: usize,
) -> Result<Parsed, BodyError> {
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    match first {
        Some(b'{') => {
            let event: &RawValue = serde_json::from_slice(body)
                .map_err(|error| BodyError::Malformed(format!("the body is not JSON: {error}")))?;
            let idempotency_key = header_key.map(checked_key).transpose()?;
            Ok(Parsed {
                batch: false,
                events: vec![Posted {
                    event: sub_bytes(body, event.get()),
                    idempotency_key,
                }],
            })
        }
        Some(b'[') => {
            if header_key.is_some() {
                return Err(BodyError::Malformed(
                    "a batch takes an idempotencyKey per item, not the Idempotency-Key header"
                        .into(),
                ));
            }
            let items: Vec<Item> = serde_json::from_slice(body).map_err(|error| {
                BodyError::Malformed(format!(
                    "a batch is a JSON array of {{\"event\": {{...}}, \"idempotencyKey\": \"...\"}}: {error}"
                ))
            })?;
            if items.is_empty() {
                return Err(BodyError::Malformed("the batch is empty".into()));
            }
            if items.len() > max_batch {
                return Err(BodyError::TooManyItems {
                    count: items.len(),
                    max: max_batch,
                });
            }
            let events = items
                .into_iter()
                .map(|item| {
                    Ok(Posted {
                        event: sub_bytes(body, item.event.get()),
                        idempotency_key: item
                            .idempotency_key
                            .as_deref()
                            .map(checked_key)
                            .transpose()?,
                    })
                })
                .collect::<Result<Vec<_>, BodyError>>()?;
            Ok(Parsed {
                batch: true,
                events,
            })
        }
        _ => Err(BodyError::Malformed(
            "the body must be one event (a JSON object) or a batch (a JSON array)".into(),
        )),
    }
}

/// An idempotency key: 1 to 128 visible ASCII characters (it becomes a NATS header value).
fn checked_key(key: &str) -> Result<String, BodyError> {
    let valid = (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&key.len())
        && key.bytes().all(|byte| byte.is_ascii_graphic());
    if valid {
        Ok(key.to_owned())
    } else {
        Err(BodyError::Malformed(format!(
            "an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
        )))
    }
}

/// `part` (borrowed from `body`) as a slice of it, without copying.
fn sub_bytes(body: &Bytes, part: &str) -> Bytes {
    let start = (part.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    match body.get(start..start.saturating_add(part.len())) {
        Some(slice) if slice.as_ptr() == part.as_ptr() => body.slice(start..start + part.len()),
        _ => Bytes::copy_from_slice(part.as_bytes()),
    }
}

/// What became of one event.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// In the stream at `seq`; `duplicate`: it was already there (same idempotency key or
    /// bytes within STREAM_DUPLICATE_WINDOW), and `seq` is the stored copy's.
    Stored { seq: u64, duplicate: bool },
    /// Not stored, for `reason` (the DLQ's names); a copy is on the DLQ.
    Rejected {
        reason: RejectReason,
        message: String,
    },
    /// JetStream did not acknowledge in time: it may or may not be stored. Publishing it again
    /// with the same idempotency key within the duplicate window is safe.
    Unacknowledged { message: String },
}

/// The answer to a batch.
#[derive(Debug, Serialize)]
pub struct BatchAnswer {
    pub stored: usize,
    pub rejected: usize,
    pub unacknowledged: usize,
    pub results: Vec<Outcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_their_bytes_and_shapes_are_checked() {
        let body = Bytes::from_static(b" {\"type\": \"X\" , \"a\":1.50} ");
        let parsed = parse(&body, Some("k-1"), 10).expect("single");
        assert!(!parsed.batch);
        assert_eq!(
            parsed.events[0].event.as_ref(),
            b"{\"type\": \"X\" , \"a\":1.50}"
        );
        assert_eq!(parsed.events[0].idempotency_key.as_deref(), Some("k-1"));

        let body = Bytes::from_static(
            b"[{\"event\":{\"b\": 2.0},\"idempotencyKey\":\"k\"},{\"event\":{}}]",
        );
        let parsed = parse(&body, None, 10).expect("batch");
        assert!(parsed.batch);
        assert_eq!(parsed.events[0].event.as_ref(), b"{\"b\": 2.0}");
        assert_eq!(parsed.events[1].idempotency_key, None);

        assert!(matches!(
            parse(&body, None, 1),
            Err(BodyError::TooManyItems { count: 2, max: 1 })
        ));
        for bad in ["", "3", "{", "[]", "[{\"event\":{},\"extra\":1}]", "[{}]"] {
            let parsed = parse(&Bytes::from(bad), None, 10);
            assert!(
                matches!(parsed, Err(BodyError::Malformed(_))),
                "{bad}: {parsed:?}"
            );
        }
        assert!(parse(&Bytes::from_static(b"[{\"event\":{}}]"), Some("k"), 10).is_err());
        assert!(parse(&Bytes::from_static(b"{}"), Some("a key"), 10).is_err());
    }
}
