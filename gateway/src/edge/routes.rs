//! The edge's own routes: the token under `/api/realtime/`, the dashboard for every other path,
//! and CORS. The streaming routes are the transports', status and stats `crate::status`'s,
//! summary, snapshot and DLQ `crate::history::routes`'; `crate::gateway` puts them all together
//! behind one auth layer.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use rakuda_schema::RequestRefusal;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::auth::{Principal, API_KEY_HEADER};
use super::error::{ApiError, Refusals};
use super::token::{Scope, TokenSigner};
use crate::channels::ChannelSet;

/// What `POST /api/realtime/token` needs.
pub(crate) struct Minting {
    pub tokens: Arc<TokenSigner>,
    pub refusals: Refusals,
}

/// `/api/realtime/token`; the caller puts it behind auth.
pub(crate) fn token_routes(minting: Arc<Minting>) -> Router {
    Router::new()
        .route(crate::paths::TOKEN, post(token))
        .with_state(minting)
}

/// Every other path: the dashboard when `dashboard` is set, else a JSON 404.
pub(crate) fn with_fallback(
    router: Router,
    dashboard: Option<&PathBuf>,
    refusals: Refusals,
) -> Router {
    match dashboard {
        Some(dir) => super::dashboard::serve(router, dir, refusals),
        None => router.fallback(move || {
            let refusals = refusals.clone();
            async move { not_found(&refusals) }
        }),
    }
}

fn not_found(refusals: &Refusals) -> ApiError {
    refusals.refuse(
        StatusCode::NOT_FOUND,
        RequestRefusal::BadRequest,
        "no such endpoint; see /api/realtime/status",
    )
}

/// CORS for `CORS_ORIGINS`; none when the list is empty (same origin only).
pub(crate) fn cors(origins: &[String]) -> Option<CorsLayer> {
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
                axum::http::HeaderName::from_static(API_KEY_HEADER),
                axum::http::HeaderName::from_static("last-event-id"),
            ]),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    /// Channel names; all client channels when absent.
    channels: Option<Vec<String>>,
    /// `stream` (the default) or `admin` (also `/status` and `/stats`).
    #[serde(default)]
    scope: Scope,
}

/// `POST /api/realtime/token`: a short-lived token for `EventSource`. Needs the API key itself.
async fn token(
    State(minting): State<Arc<Minting>>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let refusals = &minting.refusals;
    let Principal::ApiKey { key_id } = principal else {
        return Err(refusals.refuse(
            StatusCode::FORBIDDEN,
            RequestRefusal::ApiKeyRequired,
            "tokens are minted with the X-API-Key header, not with another token",
        ));
    };
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        serde_json::from_slice::<TokenRequest>(&body).map_err(|error| {
            refusals.refuse(
                StatusCode::BAD_REQUEST,
                RequestRefusal::BadRequest,
                format!("body must be JSON like {{\"channels\":[\"orders\"],\"scope\":\"stream\"}}: {error}"),
            )
        })?
    };
    let channels = match request.channels {
        None => ChannelSet::all(),
        Some(names) => {
            ChannelSet::from_names(names.iter().map(String::as_str)).map_err(|error| {
                refusals.refuse(
                    StatusCode::BAD_REQUEST,
                    RequestRefusal::UnknownChannel,
                    error.to_string(),
                )
            })?
        }
    };
    let (token, expires_at) =
        minting
            .tokens
            .issue(&key_id, channels, request.scope, OffsetDateTime::now_utc());
    Ok(Json(json!({
        "token": token,
        "expiresAt": rakuda_schema::Timestamp::from_instant(expires_at).as_str(),
        "expiresInSeconds": minting.tokens.ttl().as_secs(),
        "channels": channels.names(),
        "scope": request.scope,
    })))
}
