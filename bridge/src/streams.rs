//! The JetStream streams the bridge writes to, created or updated idempotently at start-up so
//! that any number of bridges can start at once.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use rakuda_schema::channel::{
    latest_stream_name, DLQ_STREAM_SUBJECTS, ENTITY_SUBJECTS, STREAM_SUBJECTS,
};

/// What the streams are made from: names and limits, taken from the settings by
/// [`crate::Config::streams`].
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// `STREAM_NAME`; the latest-state stream is named after it.
    pub name: String,
    /// `DLQ_STREAM_NAME`.
    pub dlq_name: String,
    pub max_age: Duration,
    pub max_messages: u64,
    /// `max_message_size` of the event and latest-state streams: an event at `EVENT_MAX_BYTES`
    /// plus the bridge's headers.
    pub max_message_bytes: usize,
    pub replicas: usize,
    pub duplicate_window: Duration,
    pub latest_max_entities: u64,
}

/// How long the DLQ keeps rejected messages, and how many.
const DLQ_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);
const DLQ_MAX_MESSAGES: i64 = 100_000;

/// The event stream: the backbone every gateway reads, its sequence the global event id.
pub fn event_stream(settings: &StreamSettings) -> stream::Config {
    stream::Config {
        name: settings.name.clone(),
        description: Some("RAKUDA real-time events mirrored from Redis by rakuda-bridge".into()),
        subjects: vec![STREAM_SUBJECTS.into()],
        max_age: settings.max_age,
        // Bounded by `STREAM_MAX_MESSAGES` (validated to fit an i64).
        max_messages: i64::try_from(settings.max_messages).unwrap_or(i64::MAX),
        // From EVENT_MAX_BYTES, so the validator and the stream agree on what fits.
        max_message_size: i32::try_from(settings.max_message_bytes).unwrap_or(i32::MAX),
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        retention: stream::RetentionPolicy::Limits,
        ..Default::default()
    }
}

/// The stream that keeps rejected messages for inspection.
pub fn dlq_stream(settings: &StreamSettings) -> stream::Config {
    stream::Config {
        name: settings.dlq_name.clone(),
        description: Some(
            "Messages rakuda-bridge rejected, with a Rakuda-Reject-Reason header".into(),
        ),
        subjects: vec![DLQ_STREAM_SUBJECTS.into()],
        max_age: DLQ_MAX_AGE,
        max_messages: DLQ_MAX_MESSAGES,
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
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
pub fn latest_stream(settings: &StreamSettings) -> stream::Config {
    stream::Config {
        name: latest_stream_name(&settings.name),
        description: Some("The latest RAKUDA real-time event of every entity".into()),
        sources: Some(vec![stream::Source {
            name: settings.name.clone(),
            filter_subject: Some(ENTITY_SUBJECTS.into()),
            ..Default::default()
        }]),
        max_messages_per_subject: 1,
        max_messages: i64::try_from(settings.latest_max_entities).unwrap_or(i64::MAX),
        max_message_size: i32::try_from(settings.max_message_bytes).unwrap_or(i32::MAX),
        num_replicas: settings.replicas,
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
    settings: &StreamSettings,
) -> Result<stream::Info, jetstream::context::CreateStreamError> {
    let info = jetstream
        .create_or_update_stream(event_stream(settings))
        .await?;
    jetstream
        .create_or_update_stream(dlq_stream(settings))
        .await?;
    let latest = jetstream
        .create_or_update_stream(latest_stream(settings))
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
