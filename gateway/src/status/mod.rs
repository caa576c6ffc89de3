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
mod tests {
    use super::*;
    use crate::metrics::Transport;
    use axum::routing::get;
    use axum::Router;
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt;

    struct NoCluster;

    impl ClusterSource for NoCluster {
        fn gather(&self) -> BoxFuture<'_, ClusterStats> {
            Box::pin(async {
                ClusterStats {
                    scope: "cluster",
                    instances: Vec::new(),
                    totals: StatsSnapshot::default(),
                    missing: vec!["gw-b".into()],
                    timeout_ms: 1,
                }
            })
        }
    }

    fn sources(drain: &CancellationToken) -> Arc<StatusSources> {
        let metrics = Arc::new(GatewayMetrics::new());
        let (_, nats_connected) = watch::channel(true);
        let reading = Reading::default();
        reading.mark();
        Arc::new(StatusSources {
            instance: "gw-a".into(),
            started: Instant::now(),
            refusals: Refusals::new(metrics.edge.clone()),
            metrics,
            hub: Arc::new(Hub::new(4)),
            reading,
            nats_connected,
            canary: Arc::new(Canary::new(Duration::ZERO, Duration::from_secs(1))),
            drain: DrainSignal::new(drain.clone(), Duration::ZERO),
            cluster: Arc::new(NoCluster),
            settings: ShownSettings {
                enabled: true,
                stream_name: "S".into(),
                debounce_window_ms: 0,
                debounce_max_batch_events: 1,
                heartbeat_interval_ms: 1000,
                retry_ms: 1000,
                client_queue_capacity: 4,
                replay_ring_capacity: 4,
                token_ttl_seconds: 60,
                readyz_fail_when_degraded: false,
            },
        })
    }

    async fn get_json(sources: &Arc<StatusSources>, uri: &str) -> (u16, serde_json::Value) {
        let app = Router::new()
            .route("/stats", get(stats_handler))
            .route("/status", get(status_handler))
            .route("/readyz", get(readyz))
            .with_state(sources.clone());
        let request = axum::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("response");
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    #[tokio::test]
    async fn stats_are_the_typed_snapshot_and_scopes_are_checked() {
        let drain = CancellationToken::new();
        let sources = sources(&drain);
        sources.metrics.connections.opened(Transport::Sse);
        let (status, stats) = get_json(&sources, "/stats").await;
        assert_eq!(status, 200);
        assert_eq!(stats["instance"], "gw-a");
        assert_eq!(stats["connections"]["current"]["sse"], 1);
        let (status, cluster) = get_json(&sources, "/stats?scope=cluster").await;
        assert_eq!(
            (status, cluster["missing"][0].clone()),
            (200, "gw-b".into())
        );
        let (status, error) = get_json(&sources, "/stats?scope=galaxy").await;
        assert_eq!(
            (status, error["error"].clone()),
            (400, "bad_request".into())
        );
    }

    /// Every key of `value`, depth first in the order written, as `outer.inner` paths.
    fn key_paths(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        if let Some(object) = value.as_object() {
            for (key, inner) in object {
                let path = format!("{prefix}{key}");
                out.push(path.clone());
                key_paths(inner, &format!("{path}."), out);
            }
        }
    }

    #[tokio::test]
    async fn status_has_the_keys_it_always_had_in_their_order() {
        let drain = CancellationToken::new();
        let sources = sources(&drain);
        sources.metrics.connections.opened(Transport::Ws);
        let (status, body) = get_json(&sources, "/status").await;
        assert_eq!(status, 200);
        let mut paths = Vec::new();
        key_paths(&body, "", &mut paths);
        assert_eq!(
            paths,
            [
                "enabled",
                "instance",
                "version",
                "uptimeSeconds",
                "draining",
                "status",
                "canary",
                "canary.enabled",
                "canary.seen",
                "canary.ageSeconds",
                "canary.degradedAfterSeconds",
                "connections",
                "connections.sse",
                "connections.ws",
                "nats",
                "nats.connected",
                "nats.stream",
                "nats.stream.name",
                "nats.stream.epoch",
                "nats.stream.lastSequence",
                "nats.stream.reading",
                "settings",
                "settings.debounceWindowMs",
                "settings.debounceMaxBatchEvents",
                "settings.heartbeatIntervalMs",
                "settings.retryMs",
                "settings.clientQueueCapacity",
                "settings.replayRingCapacity",
                "settings.tokenTtlSeconds",
            ]
        );
        assert_eq!(
            (
                &body["instance"],
                &body["status"],
                &body["connections"]["ws"],
                &body["nats"]["stream"]["name"],
                &body["settings"]["clientQueueCapacity"],
            ),
            (
                &"gw-a".into(),
                &"ok".into(),
                &1.into(),
                &"S".into(),
                &4.into()
            )
        );
        let typed: GatewayStatus = serde_json::from_value(body).expect("the schema's type");
        assert_eq!(typed.canary.degraded_after_seconds, 1.0);
    }

    #[tokio::test]
    async fn readyz_turns_503_when_draining() {
        let drain = CancellationToken::new();
        let sources = sources(&drain);
        assert_eq!(get_json(&sources, "/readyz").await.0, 200);
        drain.cancel();
        let (status, body) = get_json(&sources, "/readyz").await;
        assert_eq!((status, body["draining"].clone()), (503, true.into()));
    }
}
