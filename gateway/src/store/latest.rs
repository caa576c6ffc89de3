//! Reading a consumer whole into the latest state: the read loop of `history::fill`, which
//! fills the snapshot state from `<STREAM_NAME>_LATEST` (and the few events not copied there
//! yet from the event stream), in batches, yielding to the runtime as it goes.

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::StreamExt;
use rakuda_schema::{Channel, Validator};

use crate::event::StreamEvent;

/// Header JetStream sets on a sourced message: `<stream> <sequence> ...`.
const SOURCE_HEADER: &str = "Nats-Stream-Source";
/// Messages asked of JetStream at once.
const FILL_BATCH_MESSAGES: usize = 1_000;
/// Bytes asked of JetStream at once at least (more when one message may be larger).
const FILL_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Room for a message's subject and headers beside its payload, and for an event's JSON beside
/// its message.
pub(crate) const MESSAGE_ROOM: usize = 1024;
/// Messages parsed between two yields to the runtime.
const YIELD_EVERY: usize = 256;
/// How long JetStream may take to hand over the next message.
pub(crate) const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a read stopped short.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("cannot read the consumer: {0}")]
    Read(String),
    #[error("JetStream did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// Reads `consumer` to its end as it is when reached (`pending` is what is left after each
/// message, as the server counts it then), or through the message that stands for sequence
/// `through` of the event stream; `seq_of` says which one a message stands for. Each message is
/// handed to `add` with its subject, that sequence and its event (`None` when the live feed
/// would skip it as invalid: it only counts).
pub(crate) async fn read_into(
    consumer: &PullConsumer,
    largest: usize,
    (pending, through): (&mut u64, u64),
    mut add: impl FnMut(&str, u64, Option<&StreamEvent>),
    mut seq_of: impl FnMut(&jetstream::Message) -> Result<u64, ReadError>,
) -> Result<(), ReadError> {
    let read = |error: &dyn std::fmt::Display| ReadError::Read(error.to_string());
    if *pending == 0 {
        return Ok(());
    }
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(FILL_BATCH_MESSAGES)
        .max_bytes_per_batch(FILL_BATCH_BYTES.max(largest + MESSAGE_ROOM))
        .messages()
        .await
        .map_err(|error| read(&error))?;
    let validator = Validator::new(usize::MAX);
    let mut since_yield = 0usize;
    while *pending > 0 {
        let message = tokio::time::timeout(READ_TIMEOUT, messages.next())
            .await
            .map_err(|_| ReadError::Timeout(READ_TIMEOUT))?
            .ok_or_else(|| ReadError::Read("the consumer ended".into()))?
            .map_err(|error| read(&error))?;
        *pending = message.info().map_err(|error| read(&error))?.pending;
        let seq = seq_of(&message)?;
        if seq > through {
            break;
        }
        let subject = message.subject.as_str();
        // What the live feed skips as invalid, the fill skips too (it only counts).
        let event = Channel::by_subject(subject).and_then(|channel| {
            StreamEvent::parse(&validator, channel, seq, message.payload.clone()).ok()
        });
        add(subject, seq, event.as_ref());
        if seq == through {
            break;
        }
        since_yield += 1;
        if since_yield == YIELD_EVERY {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

/// The event's sequence in the event stream, from the header JetStream adds when it copies a
/// message into the latest-state stream; 0 when absent.
pub(crate) fn source_sequence(headers: Option<&async_nats::HeaderMap>) -> u64 {
    headers
        .and_then(|headers| headers.get(SOURCE_HEADER))
        .and_then(|value| value.as_str().split_whitespace().nth(1))
        .and_then(|seq| seq.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_sequence_is_read_from_the_header() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(SOURCE_HEADER, "RAKUDA_REALTIME 42 > >");
        assert_eq!(source_sequence(Some(&headers)), 42);
        assert_eq!(source_sequence(None), 0);
        let mut odd = async_nats::HeaderMap::new();
        odd.insert(SOURCE_HEADER, "garbage");
        assert_eq!(source_sequence(Some(&odd)), 0);
    }
}
