//! `GET /api/realtime/dlq`: the rejected messages, newest first, and the last hour's counts
//! per reason, for administrators. The answer takes a connection slot and a share of
//! `HISTORY_BUDGET_BYTES` like the summary and the snapshot, before JetStream is asked.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use rakuda_schema::RequestRefusal;
use serde::Deserialize;

use super::{json_response, parsed, share, slot, unavailable, History};
use crate::edge::auth::{require_admin, Principal};
use crate::edge::error::ApiError;
use crate::history::dlq::DLQ_DEFAULT_LIMIT;

/// `/api/realtime/dlq`, administrators only; the caller puts it behind auth.
pub(crate) fn dlq_routes(history: Arc<History>) -> Router {
    let refusals = history.refusals.clone();
    Router::new()
        .route(crate::paths::DLQ, get(dlq))
        .with_state(history)
        .route_layer(axum::middleware::from_fn_with_state(
            refusals,
            require_admin,
        ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DlqQuery {
    /// Messages stored before this DLQ sequence (the previous page's `next`).
    before: Option<u64>,
    limit: Option<usize>,
    /// Sent along by clients that authenticate with an admin token.
    #[allow(dead_code)]
    token: Option<String>,
}

async fn dlq(
    State(history): State<Arc<History>>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<DlqQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let refusals = &history.refusals;
    let query = parsed(refusals, query, "before, limit: positive integers")?;
    if query.limit == Some(0) || query.before == Some(0) {
        return Err(refusals.refuse(
            StatusCode::BAD_REQUEST,
            RequestRefusal::BadRequest,
            "limit and before must be at least 1 (before: a DLQ sequence, the previous page's next)",
        ));
    }
    // Admission before work: the slot and the bytes are taken before JetStream is asked.
    let slot = slot(&history, &principal)?;
    let answer = share(&history, history.budget.snapshot())?;
    let page = history
        .rejected
        .page(
            query.before,
            query.limit.unwrap_or(DLQ_DEFAULT_LIMIT),
            &answer,
        )
        .await
        .map_err(|error| unavailable(refusals, "DLQ", &error))?;
    let json = serde_json::to_vec(&page).map_err(|error| {
        tracing::warn!(%error, "cannot serialize a DLQ page");
        refusals.refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            RequestRefusal::HistoryUnavailable,
            "cannot write the DLQ page just now; retry shortly",
        )
    })?;
    let body = answer.whole(bytes::BytesMut::from(&json[..]));
    // The share and the slot are given back when the body is dropped, once written.
    let body = futures::stream::once(async move {
        let _held = (answer, slot);
        Ok::<_, std::convert::Infallible>(body)
    });
    Ok(json_response(Body::from_stream(body)))
}
