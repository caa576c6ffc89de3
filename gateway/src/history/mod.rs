//! What a dashboard needs the moment it opens, besides the live feed: today's totals
//! ([`summary`]) and the latest state of every entity ([`snapshot`]). Both are read from
//! JetStream, which already holds the history; recent events come with the stream itself
//! (`?backfill=`, in [`crate::resume`]). What an answer may hold is bounded by [`budget`];
//! a snapshot's consumer is deleted by [`consumer`] however the answer ends.

pub mod budget;
pub mod consumer;
pub mod dlq;
pub mod snapshot;
pub mod summary;

/// How long JetStream may take to answer one step of a summary or a snapshot page (reading
/// the stream's state, making a consumer, fetching a batch) before the request fails.
pub const HISTORY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot find the stream: {0}")]
    Stream(#[from] async_nats::jetstream::context::GetStreamError),
    #[error("cannot create a consumer: {0}")]
    Consumer(#[from] async_nats::jetstream::stream::ConsumerError),
    #[error("cannot read the consumer: {0}")]
    Read(String),
    #[error("JetStream did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the client took nothing of the answer for {0:?} (CLIENT_STALL_TIMEOUT)")]
    Stalled(std::time::Duration),
    #[error("the answer took longer than {0:?}")]
    TooLong(std::time::Duration),
}
