//! What an instance tells about itself: `/api/realtime/status`, `/api/realtime/stats`,
//! `/metrics`, `/healthz`, `/readyz`. `/stats` is the typed snapshot of the counters `/metrics`
//! renders; the cluster scope adds up every instance's snapshot.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use rakuda_schema::{
    CanaryStatus, ConnectionsNow, GatewayStatus, Health, NatsStatus, RequestRefusal,
    StatusSettings, StreamStatus,
};
use serde_json::json;
use tokio::sync::watch;

use crate::edge::auth::require_admin;
use crate::edge::error::{ApiError, Refusals};
use crate::fanout::Hub;
use crate::fleet::canary::Canary;
use crate::fleet::cluster::{Cluster, ClusterStats};
use crate::fleet::drain::DrainSignal;
use crate::ingest::Reading;
use crate::metrics::{GatewayMetrics, StatsSnapshot, Transport};
use crate::paths;

/// Where cluster-wide stats come from: NATS request/reply in a running gateway.
pub(crate) trait ClusterSource: Send + Sync {
    fn gather(&self) -> BoxFuture<'_, ClusterStats>;
}

impl ClusterSource for Cluster {
    fn gather(&self) -> BoxFuture<'_, ClusterStats> {
        Box::pin(Cluster::gather(self))
    }
}

/// The settings `/status` shows.
#[derive(Debug, Clone)]
pub(crate) struct ShownSettings {
    pub enabled: bool,
    pub stream_name: String,
    pub debounce_window_ms: u64,
    pub debounce_max_batch_events: usize,
    pub heartbeat_interval_ms: u64,
    pub retry_ms: u64,
    pub client_queue_capacity: usize,
    pub replay_ring_capacity: usize,
    pub token_ttl_seconds: u64,
    /// `READYZ_FAIL_WHEN_DEGRADED`.
    pub readyz_fail_when_degraded: bool,
}

/// What the status endpoints read.
pub(crate) struct StatusSources {
    pub instance: Arc<str>,
    pub started: Instant,
    pub metrics: Arc<GatewayMetrics>,
    pub hub: Arc<Hub>,
    pub reading: Reading,
    pub nats_connected: watch::Receiver<bool>,
    pub canary: Arc<Canary>,
    pub drain: DrainSignal,
    pub cluster: Arc<dyn ClusterSource>,
    pub refusals: Refusals,
    pub settings: ShownSettings,
}

impl StatusSources {
    fn nats_connected(&self) -> bool {
        *self.nats_connected.borrow()
    }
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct StatsQuery {
    scope: Option<String>,
}

/// `/api/realtime/status` and `/stats`, administrators only; the caller puts them behind auth.
pub(crate) fn admin_routes(status: Arc<StatusSources>) -> Router {
    let refusals = status.refusals.clone();
    Router::new()
        .route(paths::STATUS, get(status_handler))
        .route(paths::STATS, get(stats_handler))
        .with_state(status)
        .route_layer(axum::middleware::from_fn_with_state(
            refusals,
            require_admin,
        ))
}

/// `/metrics` (for the scraper), `/healthz`, `/readyz`: no credential.
pub(crate) fn public_routes(status: Arc<StatusSources>) -> Router {
    Router::new()
        .route(paths::METRICS, get(metrics_handler))
        .route(paths::HEALTHZ, get(healthz))
        .route(paths::READYZ, get(readyz))
        .with_state(status)
}

/// `GET /api/realtime/stats[?scope=cluster]`.
pub(crate) async fn stats_handler(
    State(sources): State<Arc<StatusSources>>,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let scope = query.ok().and_then(|q| q.0.scope);
    match scope.as_deref() {
        None | Some("instance") => Ok(Json(snapshot(&sources)).into_response()),
        Some("cluster") => Ok(Json(sources.cluster.gather().await).into_response()),
        Some(other) => Err(sources.refusals.refuse(
            StatusCode::BAD_REQUEST,
            RequestRefusal::BadRequest,
            format!(
                "scope `{}` is not `instance` or `cluster`",
                other
                    .escape_debug()
                    .to_string()
                    .chars()
                    .take(64)
                    .collect::<String>()
            ),
        )),
    }
}

fn snapshot(sources: &StatusSources) -> StatsSnapshot {
    sources.metrics.snapshot(&sources.instance)
}

pub(crate) async fn status_handler(State(sources): State<Arc<StatusSources>>) -> impl IntoResponse {
    Json(status(&sources))
}

/// What `/status` answers now.
fn status(sources: &StatusSources) -> GatewayStatus {
    let cursor = sources.hub.cursor();
    let connections = &sources.metrics.connections;
    let canary = &sources.canary;
    let settings = &sources.settings;
    GatewayStatus {
        enabled: settings.enabled,
        instance: sources.instance.to_string(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: sources.started.elapsed().as_secs(),
        draining: sources.drain.is_draining(),
        status: Health::of(canary.degraded()),
        canary: CanaryStatus {
            enabled: canary.enabled(),
            seen: canary.seen(),
            age_seconds: canary.age().as_secs_f64(),
            degraded_after_seconds: canary.degraded_after().as_secs_f64(),
        },
        connections: ConnectionsNow {
            sse: connections.current(Transport::Sse),
            ws: connections.current(Transport::Ws),
        },
        nats: NatsStatus {
            connected: sources.nats_connected(),
            stream: StreamStatus {
                name: settings.stream_name.clone(),
                epoch: cursor.epoch,
                last_sequence: cursor.seq,
                reading: sources.reading.is_reading(),
            },
        },
        settings: StatusSettings {
            debounce_window_ms: settings.debounce_window_ms,
            debounce_max_batch_events: settings.debounce_max_batch_events as u64,
            heartbeat_interval_ms: settings.heartbeat_interval_ms,
            retry_ms: settings.retry_ms,
            client_queue_capacity: settings.client_queue_capacity as u64,
            replay_ring_capacity: settings.replay_ring_capacity as u64,
            token_ttl_seconds: settings.token_ttl_seconds,
        },
    }
}

pub(crate) async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready when connected to NATS, reading the stream, and not draining (and, with
/// `READYZ_FAIL_WHEN_DEGRADED`, not degraded). The body always says whether the canary flows.
pub(crate) async fn readyz(State(sources): State<Arc<StatusSources>>) -> impl IntoResponse {
    let nats = sources.nats_connected();
    let reading = sources.reading.is_reading();
    let draining = sources.drain.is_draining();
    let degraded = sources.canary.degraded();
    let ready =
        nats && reading && !draining && !(degraded && sources.settings.readyz_fail_when_degraded);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "ready": ready,
            "status": if degraded { "degraded" } else { "ok" },
            "degraded": degraded,
            "nats": nats,
            "reading": reading,
            "draining": draining,
        })),
    )
}

pub(crate) async fn metrics_handler(
    State(sources): State<Arc<StatusSources>>,
) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        sources.metrics.render(),
    )
}

#[cfg(test)]
mod tests;
