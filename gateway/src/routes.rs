//! The HTTP surface.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{middleware, Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};

use crate::app::App;
use crate::auth::{self, Principal};
use crate::error::ApiError;
use crate::{limits, sse, stats, ws};

pub fn router(app: Arc<App>) -> Router {
    let realtime = Router::new()
        .route("/api/realtime/events", get(sse::events))
        .route("/api/realtime/ws", get(ws::upgrade))
        .route("/api/realtime/status", get(stats::status_handler))
        .route("/api/realtime/stats", get(stats::stats_handler))
        .route("/api/realtime/token", post(token))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth::require));
    let mut router = Router::new()
        .merge(realtime)
        .route("/metrics", get(stats::metrics_handler))
        .route("/healthz", get(stats::healthz))
        .route("/readyz", get(stats::readyz));
    router = match &app.config.gateway_dashboard_dir {
        // The dashboard owns every other path; its client-side routes fall back to index.html.
        Some(dir) => router
            .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))),
        None => router.fallback(not_found),
    };
    router = router.layer(middleware::from_fn_with_state(
        app.clone(),
        limits::request_size,
    ));
    if let Some(cors) = cors(&app.config.cors_origins) {
        router = router.layer(cors);
    }
    router.with_state(app)
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderName::from_static(auth::API_KEY_HEADER),
                axum::http::HeaderName::from_static("last-event-id"),
            ]),
    )
}

async fn not_found(State(app): State<Arc<App>>) -> ApiError {
    app.reject(
        StatusCode::NOT_FOUND,
        "bad_request",
        "no such endpoint; see /api/realtime/status",
    )
}

#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    /// Channel names; all client channels when absent.
    channels: Option<Vec<String>>,
}

/// `POST /api/realtime/token`: a short-lived token for `EventSource`. Needs the API key itself.
async fn token(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let Principal::ApiKey { key_id } = principal else {
        return Err(app.reject(
            StatusCode::FORBIDDEN,
            "api_key_required",
            "tokens are minted with the X-API-Key header, not with another token",
        ));
    };
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        serde_json::from_slice::<TokenRequest>(&body).map_err(|error| {
            app.reject(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("body must be JSON like {{\"channels\":[\"orders\"]}}: {error}"),
            )
        })?
    };
    let channels = match request.channels {
        None => crate::channels::ChannelSet::all(),
        Some(names) => crate::channels::ChannelSet::from_names(names.iter().map(String::as_str))
            .map_err(|error| {
                app.reject(
                    StatusCode::BAD_REQUEST,
                    "unknown_channel",
                    error.to_string(),
                )
            })?,
    };
    let (token, expires_at) = app
        .tokens
        .issue(&key_id, channels, OffsetDateTime::now_utc());
    Ok(Json(json!({
        "token": token,
        "expiresAt": rakuda_schema::Timestamp::from_instant(expires_at).as_str(),
        "expiresInSeconds": app.tokens.ttl().as_secs(),
        "channels": channels.names(),
    })))
}
