//! The bridge's small HTTP surface: `/metrics`, `/healthz` (alive), `/readyz` (subscribed to
//! Redis and connected to NATS).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::BridgeMetrics;

pub fn router(metrics: Arc<BridgeMetrics>) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(metrics)
}

/// Serves until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<BridgeMetrics>,
    shutdown: CancellationToken,
) {
    let result = axum::serve(listener, router(metrics))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "metrics server failed");
    }
}

async fn render_metrics(State(metrics): State<Arc<BridgeMetrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(metrics): State<Arc<BridgeMetrics>>) -> impl IntoResponse {
    let redis = metrics.redis_connected();
    let nats = metrics.nats_connected();
    let status = if redis && nats {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let state = |up: bool| if up { "connected" } else { "disconnected" };
    (
        status,
        Json(json!({
            "ready": redis && nats,
            "redis": state(redis),
            "nats": state(nats),
        })),
    )
}
