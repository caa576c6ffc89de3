//! `GET /api/realtime/summary` and `GET /api/realtime/snapshot`: today's totals and the latest
//! state of every entity, for a dashboard that has just opened. Behind auth, within the
//! channels the credential allows.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use rakuda_schema::RequestRefusal;
use serde::Deserialize;

use super::auth::{requested_channels, Principal};
use super::error::{ApiError, Refusals};
use crate::channels::ChannelSet;
use crate::history::snapshot::Snapshots;
use crate::history::summary::Summaries;
use crate::history::HistoryError;

/// What the history routes need.
pub struct History {
    pub summaries: Summaries,
    pub snapshots: Snapshots,
    pub refusals: Refusals,
}

/// `/api/realtime/summary` and `/api/realtime/snapshot`; the caller puts them behind auth.
pub fn history_routes(history: Arc<History>) -> Router {
    Router::new()
        .route("/api/realtime/summary", get(summary))
        .route("/api/realtime/snapshot", get(snapshot))
        .with_state(history)
}

async fn summary(
    State(history): State<Arc<History>>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let summary = history
        .summaries
        .get()
        .await
        .map_err(|error| unavailable(&history.refusals, "summary", &error))?;
    // Only the types the credential may read.
    let allowed = principal.allowed_channels();
    let mut summary = (*summary).clone();
    let visible = |event_type: &&str| {
        allowed
            .iter()
            .any(|channel| channel.event_type.as_str() == *event_type)
    };
    summary.today.retain(|event_type, _| visible(event_type));
    summary
        .last_hour
        .retain(|event_type, _| visible(event_type));
    Ok(Json(summary).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotQuery {
    channels: Option<String>,
    limit: Option<usize>,
    after: Option<u64>,
    /// Sent along by clients that authenticate with a token.
    #[allow(dead_code)]
    token: Option<String>,
}

async fn snapshot(
    State(history): State<Arc<History>>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<SnapshotQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let refusals = &history.refusals;
    let Query(query) = query.map_err(|rejection| {
        refusals.refuse(
            StatusCode::BAD_REQUEST,
            RequestRefusal::BadRequest,
            format!("bad query string (channels, limit, after): {rejection}"),
        )
    })?;
    let channels = latest_state_channels(
        refusals,
        requested_channels(refusals, &principal, query.channels.as_deref())?,
        query
            .channels
            .as_deref()
            .is_some_and(|list| !list.trim().is_empty()),
    )?;
    let limit = query.limit.unwrap_or(history.snapshots.max_limit);
    let page = history
        .snapshots
        .page(channels, limit, query.after.unwrap_or(0))
        .await
        .map_err(|error| unavailable(refusals, "snapshot", &error))?;
    let mut response = Response::new(Body::from(page.json));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The channels a snapshot reads: of those asked for (or allowed), the ones that keep a latest
/// state. Named explicitly, a channel without one (orders) is refused rather than answered
/// empty, which would look like "no orders".
fn latest_state_channels(
    refusals: &Refusals,
    channels: ChannelSet,
    named: bool,
) -> Result<ChannelSet, ApiError> {
    let without = channels.minus(ChannelSet::keeping_latest());
    if named && !without.is_empty() {
        return Err(refusals.refuse(
            StatusCode::BAD_REQUEST,
            RequestRefusal::NoLatestState,
            format!(
                "{} keep no latest state (each event is its own): ask the snapshot for {} only, \
                 and use ?backfill= or the summary for the others",
                without.names().join(", "),
                ChannelSet::keeping_latest().names().join(", ")
            ),
        ));
    }
    Ok(channels.minus(without))
}

fn unavailable(refusals: &Refusals, what: &str, error: &HistoryError) -> ApiError {
    tracing::warn!(%error, "cannot serve the {what}");
    refusals.refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        RequestRefusal::HistoryUnavailable,
        format!("cannot read the {what} from JetStream just now ({error}); retry shortly"),
    )
}
