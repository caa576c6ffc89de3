//! What a dashboard needs the moment it opens, besides the live feed: today's totals
//! ([`summary`]), counted by JetStream, and the latest state of every entity ([`snapshot`]),
//! answered from the state this gateway keeps in memory ([`latest`], filled by [`fill`] from
//! the latest-state stream and kept current by the feed). Recent events come with the stream
//! itself (`?backfill=`, in [`crate::resume`]). A computation that costs JetStream consumers
//! (a summary, a backfill's counts) runs once for every request that asks for it meanwhile
//! (`crate::store::flight`). What an answer may hold is bounded by [`budget`]; a consumer made
//! here is deleted by `crate::store::consumer` however its reading ends. [`routes`] serves it
//! all: `/summary`, `/snapshot` and `/dlq`.

pub(crate) mod budget;
pub(crate) mod dlq;
pub(crate) mod fill;
pub(crate) mod latest;
pub(crate) mod routes;
pub(crate) mod snapshot;
pub(crate) mod summary;

/// How long JetStream may take to answer one step of a summary or of a fill of the snapshot
/// state (reading the stream's state, making a consumer, fetching a batch) before it fails.
pub(crate) const HISTORY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why history could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HistoryError {
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

impl From<crate::store::latest::ReadError> for HistoryError {
    fn from(error: crate::store::latest::ReadError) -> HistoryError {
        match error {
            crate::store::latest::ReadError::Read(text) => HistoryError::Read(text),
            crate::store::latest::ReadError::Timeout(limit) => HistoryError::Timeout(limit),
        }
    }
}
