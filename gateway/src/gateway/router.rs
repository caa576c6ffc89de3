//! The routes, and what `/status` reads.

use std::sync::Arc;
use std::time::Instant;

use axum::{middleware, Router};

use crate::config::Config;
use crate::edge::auth::{self, Auth};
use crate::edge::routes::{self, Minting};
use crate::fleet::cluster::Cluster;
use crate::history::routes::dlq::dlq_routes;
use crate::history::routes::{history_routes, History};
use crate::status::{self, ShownSettings, StatusSources};
use crate::transport::{self, Streams};

use super::shared::Shared;

/// What the routes serve.
pub(super) struct RouteParts {
    pub streams: Arc<Streams>,
    pub status: Arc<StatusSources>,
    pub minting: Arc<Minting>,
    pub auth: Arc<Auth>,
    pub history: Arc<History>,
}

/// Every route: the streams and the edge's own under one auth layer, the public ones, the
/// dashboard, CORS.
pub(super) fn router(config: &Config, parts: RouteParts, shared: &Shared) -> Router {
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
    let refusals = shared.refusals.clone();
    let router = routes::with_fallback(router, config.gateway_dashboard_dir.as_ref(), refusals);
    match routes::cors(&config.auth.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// What `/status`, `/stats`, `/readyz` and `/metrics` read.
pub(super) fn status(config: &Config, shared: &Shared, cluster: Arc<Cluster>) -> StatusSources {
    StatusSources {
        instance: shared.instance.clone(),
        started: Instant::now(),
        metrics: shared.metrics.clone(),
        hub: shared.hub.clone(),
        reading: shared.reading.clone(),
        nats_connected: shared.connected.clone(),
        canary: shared.canary.clone(),
        drain: shared.drain.clone(),
        cluster,
        refusals: shared.refusals.clone(),
        settings: shown_settings(config),
    }
}

/// The settings `/status` shows.
fn shown_settings(config: &Config) -> ShownSettings {
    let streams = &config.streams;
    ShownSettings {
        enabled: config.realtime_enabled,
        stream_name: config.nats.stream_name.clone(),
        debounce_window_ms: streams.sse_debounce_window,
        debounce_max_batch_events: streams.debounce_max_batch_events,
        heartbeat_interval_ms: streams.sse_heartbeat_interval,
        retry_ms: streams.sse_retry,
        client_queue_capacity: streams.client_queue_capacity,
        replay_ring_capacity: config.resume.replay_ring_capacity,
        token_ttl_seconds: config.auth.token_ttl.as_secs(),
        readyz_fail_when_degraded: config.fleet.readyz_fail_when_degraded,
    }
}
