//! The routes, and the edge parts built from settings: the token signer, the history readers,
//! the settings `/status` shows.

use std::sync::Arc;

use axum::{middleware, Router};

use crate::config::Config;
use crate::edge::auth::{self, Auth};
use crate::edge::routes::{self, Minting};
use crate::edge::token::TokenSigner;
use crate::edge::Refusals;
use crate::history::budget::AnswerBudget;
use crate::history::dlq::Rejected;
use crate::history::latest::Latest;
use crate::history::routes::dlq::dlq_routes;
use crate::history::routes::{history_routes, History};
use crate::history::snapshot::Snapshots;
use crate::history::summary::Summaries;
use crate::status::{self, ShownSettings, StatusSources};
use crate::transport::{self, Streams};

/// What the routes serve.
pub(super) struct RouteParts {
    pub streams: Arc<Streams>,
    pub status: Arc<StatusSources>,
    pub minting: Arc<Minting>,
    pub auth: Arc<Auth>,
    pub history: Arc<History>,
}

/// The summary and DLQ readers, on `jetstream`, and the snapshot, from `latest`.
pub(super) fn history(
    config: &Config,
    jetstream: async_nats::jetstream::Context,
    latest: Arc<Latest>,
    refusals: Refusals,
    metrics: &Arc<crate::metrics::HistoryMetrics>,
    connections: Arc<crate::edge::limits::Connections>,
) -> Result<History, crate::config::ConfigError> {
    let summaries = Summaries::new(
        jetstream.clone(),
        config.nats.stream_name.clone(),
        &config.history.summary_timezone,
        config.history.summary_cache_ttl,
        metrics,
    )
    .map_err(|_| crate::config::ConfigError::Timezone(config.history.summary_timezone.clone()))?;
    Ok(History {
        summaries,
        rejected: Rejected {
            jetstream,
            stream_name: config.nats.dlq_stream_name.clone(),
            metrics: metrics.clone(),
        },
        snapshots: Snapshots {
            latest,
            max_limit: config.history.snapshot_max_limit,
            metrics: metrics.clone(),
            stall_timeout: config.limits.client_stall_timeout,
        },
        refusals,
        connections,
        budget: AnswerBudget::new(
            config.history.history_budget_bytes,
            config.history.history_request_max_bytes,
            metrics.bytes_reserved.clone(),
            metrics.bytes_in_flight.clone(),
        ),
    })
}

/// Every route: the streams and the edge's own under one auth layer, the public ones, the
/// dashboard, CORS.
pub(super) fn router(config: &Config, parts: RouteParts, refusals: Refusals) -> Router {
    let RouteParts {
        streams,
        status,
        minting,
        auth,
        history,
    } = parts;
    let realtime = transport::routes(streams)
        .merge(status::admin_routes(status.clone()))
        .merge(routes::token_routes(minting))
        .merge(history_routes(history.clone()))
        .merge(dlq_routes(history))
        .route_layer(middleware::from_fn_with_state(auth, auth::require));
    let router = Router::new()
        .merge(realtime)
        .merge(status::public_routes(status));
    let router = routes::with_fallback(router, config.gateway_dashboard_dir.as_ref(), refusals);
    match routes::cors(&config.auth.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Signs with the first `TOKEN_SECRET`, accepts the others; in dev mode without one, a secret
/// of this process alone.
pub(super) fn token_signer(config: &Config) -> TokenSigner {
    let mut secrets = config
        .auth
        .token_secret
        .iter()
        .map(|s| s.expose().as_bytes());
    match secrets.next() {
        Some(signing) => TokenSigner::new(signing, config.auth.token_ttl).also_accepting(secrets),
        None => {
            tracing::warn!(
                "GATEWAY_DEV_MODE without TOKEN_SECRET: tokens work on this instance only"
            );
            TokenSigner::random(config.auth.token_ttl)
        }
    }
}

pub(super) fn shown_settings(config: &Config) -> ShownSettings {
    ShownSettings {
        enabled: config.realtime_enabled,
        stream_name: config.nats.stream_name.clone(),
        debounce_window_ms: config.streams.sse_debounce_window,
        debounce_max_batch_events: config.streams.debounce_max_batch_events,
        heartbeat_interval_ms: config.streams.sse_heartbeat_interval,
        retry_ms: config.streams.sse_retry,
        client_queue_capacity: config.streams.client_queue_capacity,
        replay_ring_capacity: config.resume.replay_ring_capacity,
        token_ttl_seconds: config.auth.token_ttl.as_secs(),
        readyz_fail_when_degraded: config.fleet.readyz_fail_when_degraded,
    }
}
