//! The history answers from their settings: `/summary`, `/snapshot`, `/dlq`, and the filler
//! that keeps the snapshot state.

use std::sync::Arc;

use crate::config::{ConfigError, HistoryConfig, LimitsConfig, NatsConfig};
use crate::edge::limits::Connections;
use crate::history::budget::AnswerBudget;
use crate::history::dlq::Rejected;
use crate::history::fill::Filler;
use crate::history::routes::History;
use crate::history::snapshot::Snapshots;
use crate::history::summary::Summaries;

use super::shared::Shared;

/// The summary and DLQ readers, on JetStream, and the snapshot, from the snapshot state.
/// `connections` are the slots history answers share with streams; `limits` gives the stall
/// timeout of a snapshot's socket.
pub(super) fn history(
    history: &HistoryConfig,
    nats: &NatsConfig,
    limits: &LimitsConfig,
    connections: Arc<Connections>,
    shared: &Shared,
) -> Result<History, ConfigError> {
    let metrics = &shared.metrics.history;
    let summaries = Summaries::new(
        shared.jetstream.clone(),
        nats.stream_name.clone(),
        &history.summary_timezone,
        history.summary_cache_ttl,
        metrics,
    )
    .map_err(|_| ConfigError::Timezone(history.summary_timezone.clone()))?;
    Ok(History {
        summaries,
        rejected: Rejected {
            jetstream: shared.jetstream.clone(),
            stream_name: nats.dlq_stream_name.clone(),
            metrics: metrics.clone(),
        },
        snapshots: Snapshots {
            latest: shared.latest.clone(),
            max_limit: history.snapshot_max_limit,
            metrics: metrics.clone(),
            stall_timeout: limits.client_stall_timeout,
        },
        refusals: shared.refusals.clone(),
        connections,
        budget: AnswerBudget::new(
            history.history_budget_bytes,
            history.history_request_max_bytes,
            metrics.bytes_reserved.clone(),
            metrics.bytes_in_flight.clone(),
        ),
    })
}

/// Keeps the snapshot state: reads `<STREAM_NAME>_LATEST`, then the events not copied there yet.
pub(super) fn filler(nats: &NatsConfig, shared: &Shared) -> Filler {
    Filler {
        latest: shared.latest.clone(),
        jetstream: shared.jetstream.clone(),
        stream_name: rakuda_schema::channel::latest_stream_name(&nats.stream_name),
        event_stream: nats.stream_name.clone(),
        metrics: shared.metrics.history.clone(),
    }
}
