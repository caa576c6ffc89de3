//! The SSE and WebSocket streams from their settings: admission, resume, frames.

use std::sync::Arc;

use crate::config::{AuthConfig, LimitsConfig, NatsConfig, ResumeConfig, StreamsConfig};
use crate::edge::connection_rate::ConnectionRate;
use crate::edge::limits::Connections;
use crate::edge::origin::AllowedOrigins;
use crate::resume::budget::ReplayBudget;
use crate::resume::{BackfillCounts, ResumeLimits, Resumer};
use crate::transport::{StreamSettings, Streams};

use super::ingest::stream_reader;
use super::shared::Shared;

/// Admits each stream (limits, rate, origin), resumes it, then sends it frames. `connections`
/// are the slots streams share with history answers; `auth` says which origins may connect.
pub(super) fn streams(
    streams: &StreamsConfig,
    limits: &LimitsConfig,
    auth: &AuthConfig,
    resumer: Resumer,
    connections: Arc<Connections>,
    shared: &Shared,
) -> Streams {
    Streams::new(
        resumer,
        connections,
        ConnectionRate::new(
            limits.connection_rate_limit,
            limits.connection_rate_burst,
            limits.connection_rate_retry_max,
        ),
        shared.drain.clone(),
        shared.refusals.clone(),
        shared.metrics.connections.clone(),
        shared.instance.clone(),
        StreamSettings {
            sse_retry_ms: streams.sse_retry,
            ws_max_frame_bytes: streams.ws_max_frame_bytes,
            ws_max_bad_frames: streams.ws_max_bad_frames,
        },
        AllowedOrigins::new(auth.cors_origins.clone()),
    )
}

/// What a reconnecting or new client gets before it goes live: from the ring, or replayed from
/// `STREAM_NAME` within the replay budget, in batches no longer than live ones (`streams`).
pub(super) fn resumer(
    resume: &ResumeConfig,
    streams: &StreamsConfig,
    nats: &NatsConfig,
    shared: &Shared,
) -> Resumer {
    let metrics = &shared.metrics;
    Resumer {
        hub: shared.hub.clone(),
        ring: shared.ring.clone(),
        stream: stream_reader(nats, shared),
        budget: ReplayBudget::new(
            resume.replay_budget_bytes,
            resume.replay_connection_max_bytes,
            metrics.connections.replay_bytes_in_flight.clone(),
        ),
        metrics: metrics.connections.clone(),
        limits: ResumeLimits {
            max_batch_events: streams.debounce_max_batch_events,
            max_events: resume.resume_max_events,
            backfill_max_events: resume.backfill_max_events,
            backfill_max_age: resume.backfill_max_age,
        },
        counts: BackfillCounts::new(&metrics.history),
    }
}
