//! The JetStream streams the bridge writes to, created or updated idempotently at start-up so
//! that any number of bridges can start at once.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use rakuda_schema::channel::{
    latest_stream_name, DLQ_STREAM_SUBJECTS, ENTITY_SUBJECTS, STREAM_SUBJECTS,
};

use crate::config::Config;

/// How long the DLQ keeps rejected messages, and how many.
const DLQ_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);
const DLQ_MAX_MESSAGES: i64 = 100_000;

/// The event stream: the backbone every gateway reads, its sequence the global event id.
pub fn event_stream(config: &Config) -> stream::Config {
    stream::Config {
        name: config.stream_name.clone(),
        description: Some("RAKUDA real-time events mirrored from Redis by rakuda-bridge".into()),
        subjects: vec![STREAM_SUBJECTS.into()],
        max_age: config.stream_max_age,
        // Bounded by `STREAM_MAX_MESSAGES` (validated to fit an i64).
        max_messages: i64::try_from(config.stream_max_messages).unwrap_or(i64::MAX),
        // From EVENT_MAX_BYTES, so the validator and the stream agree on what fits.
        max_message_size: i32::try_from(config.stream_max_message_bytes()).unwrap_or(i32::MAX),
        num_replicas: config.stream_replicas,
        duplicate_window: config.stream_duplicate_window,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        retention: stream::RetentionPolicy::Limits,
        ..Default::default()
    }
}

/// The stream that keeps rejected messages for inspection.
pub fn dlq_stream(config: &Config) -> stream::Config {
    stream::Config {
        name: config.dlq_stream_name.clone(),
        description: Some(
            "Messages rakuda-bridge rejected, with a Rakuda-Reject-Reason header".into(),
        ),
        subjects: vec![DLQ_STREAM_SUBJECTS.into()],
        max_age: DLQ_MAX_AGE,
        max_messages: DLQ_MAX_MESSAGES,
        num_replicas: config.stream_replicas,
        duplicate_window: config.stream_duplicate_window,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// The latest event of every entity: JetStream copies each event from the event stream (a
/// source, so the bridge publishes nothing twice) and keeps one message per subject. Subjects
/// are per entity on the channels that keep a latest state, and one per channel on the others
/// (orders: [`rakuda_schema::Channel::event_subject`]), so orders take one place, not one each.
/// No age limit: a product out of stock for a week is still out of stock.
/// `LATEST_MAX_ENTITIES` bounds it; past it the least recently changed entity goes, and
/// gateways answer the snapshot `partial`.
pub fn latest_stream(config: &Config) -> stream::Config {
    stream::Config {
        name: latest_stream_name(&config.stream_name),
        description: Some("The latest RAKUDA real-time event of every entity".into()),
        sources: Some(vec![stream::Source {
            name: config.stream_name.clone(),
            filter_subject: Some(ENTITY_SUBJECTS.into()),
            ..Default::default()
        }]),
        max_messages_per_subject: 1,
        max_messages: i64::try_from(config.latest_max_entities).unwrap_or(i64::MAX),
        max_message_size: i32::try_from(config.stream_max_message_bytes()).unwrap_or(i32::MAX),
        num_replicas: config.stream_replicas,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        retention: stream::RetentionPolicy::Limits,
        ..Default::default()
    }
}

/// Creates the three streams, or updates them to the configured limits.
///
/// Two bridges racing here is fine: `create_or_update_stream` updates an existing stream and
/// creating one with an identical config is a no-op on the server; anything else is retried by
/// the caller.
pub async fn ensure(
    jetstream: &jetstream::Context,
    config: &Config,
) -> Result<stream::Info, jetstream::context::CreateStreamError> {
    let info = jetstream
        .create_or_update_stream(event_stream(config))
        .await?;
    jetstream
        .create_or_update_stream(dlq_stream(config))
        .await?;
    let latest = jetstream
        .create_or_update_stream(latest_stream(config))
        .await?;
    if is_full(&latest) {
        tracing::warn!(
            stream = %latest.config.name,
            messages = latest.state.messages,
            "the latest-state stream is at LATEST_MAX_ENTITIES: the least recently changed \
             entities are dropped and snapshots answer partial. After an upgrade from a bridge \
             that stored each order on its own subject, purge those: \
             nats stream purge <STREAM_NAME>_LATEST --subject 'rakuda.realtime.orders.*'; \
             else raise LATEST_MAX_ENTITIES"
        );
    }
    Ok(info)
}

/// Whether a stream holds as many messages as it may: each new subject drops the oldest.
fn is_full(info: &stream::Info) -> bool {
    u64::try_from(info.config.max_messages).is_ok_and(|max| max > 0 && info.state.messages >= max)
}
