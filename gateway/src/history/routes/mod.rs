//! `GET /api/realtime/summary` and `GET /api/realtime/snapshot`: today's totals and the latest
//! state of every entity, for a dashboard that has just opened. Behind auth, within the
//! channels the credential allows. The admission helpers here serve `/dlq` too ([`dlq`]).
//!
//! The snapshot is answered from the state the gateway keeps in memory; until it is first
//! filled a request waits up to [`FILL_WAIT`], then gets 503 `snapshot_loading` with a
//! `Retry-After` drawn between 1 and [`LOADING_RETRY_MAX`] seconds, so that the refused do not
//! come back as one wave.

pub(crate) mod dlq;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use futures::{StreamExt, TryStreamExt};
use rakuda_schema::RequestRefusal;
use serde::Deserialize;

use crate::channels::ChannelSet;
use crate::edge::auth::{requested_channels, Principal};
use crate::edge::error::{ApiError, Refusals};
use crate::edge::limits::{Connections, Permit};
use crate::history::budget::{Answer, AnswerBudget};
use crate::history::dlq::Rejected;
use crate::history::snapshot::{Snapshots, ANSWER_TIMEOUT, FILL_WAIT};
use crate::history::summary::Summaries;
use crate::history::HistoryError;
use crate::metrics::{CacheResult, CacheRoute};

/// What the history routes need.
pub(crate) struct History {
    pub summaries: Summaries,
    pub snapshots: Snapshots,
    /// The DLQ reader (`/api/realtime/dlq`, routed by [`dlq`]).
    pub rejected: Rejected,
    pub refusals: Refusals,
    /// The connection slots streams take too: an answer being written holds one.
    pub connections: Arc<Connections>,
    /// `HISTORY_BUDGET_BYTES`, shared by every answer.
    pub budget: AnswerBudget,
}

/// `/api/realtime/summary` and `/api/realtime/snapshot`; the caller puts them behind auth.
pub(crate) fn history_routes(history: Arc<History>) -> Router {
    Router::new()
        .route(crate::paths::SUMMARY, get(summary))
        .route(crate::paths::SNAPSHOT, get(snapshot))
        .with_state(history)
}

async fn summary(
    State(history): State<Arc<History>>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let slot = slot(&history, &principal)?;
    let summary = history
        .summaries
        .get()
        .await
        .map_err(|error| unavailable(&history.refusals, "summary", &error))?;
    // Only the types the credential may read.
    let allowed = principal.allowed_channels();
    let mut summary = (*summary).clone();
    let visible = |event_type: &String| {
        allowed
            .iter()
            .any(|channel| channel.event_type.as_str() == event_type)
    };
    summary.today.retain(|event_type, _| visible(event_type));
    summary
        .last_hour
        .retain(|event_type, _| visible(event_type));
    let json = serde_json::to_vec(&summary).map_err(|error| {
        tracing::warn!(%error, "cannot serialize the summary");
        history.refusals.refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            RequestRefusal::HistoryUnavailable,
            "cannot write the summary just now; retry shortly",
        )
    })?;
    let answer = share(&history, history.budget.admit(json.len()))?;
    let body = answer.whole(bytes::BytesMut::from(&json[..]));
    // The share and the slot are given back when the body is dropped, once written.
    let body = futures::stream::once(async move {
        let _held = (answer, slot);
        Ok::<_, std::convert::Infallible>(body)
    });
    Ok(json_response(Body::from_stream(body)))
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
    let query = parsed(refusals, query, "channels, limit, after")?;
    let channels = latest_state_channels(
        refusals,
        requested_channels(refusals, &principal, query.channels.as_deref())?,
        query
            .channels
            .as_deref()
            .is_some_and(|list| !list.trim().is_empty()),
    )?;
    let limit = query.limit.unwrap_or(history.snapshots.max_limit);
    // Admission before work: the slot is taken first, the bytes once there is state to read
    // (a request waiting for the first fill holds no share of the budget).
    let slot = slot(&history, &principal)?;
    let metrics = &history.snapshots.metrics;
    let Some(waited) = history.snapshots.latest.ready(FILL_WAIT).await else {
        return Err(loading(refusals));
    };
    let answer = share(&history, history.budget.snapshot())?;
    let result = if waited {
        CacheResult::Joined
    } else {
        CacheResult::Hit
    };
    metrics.cache(CacheRoute::Snapshot, result).increment(1);
    let opened = history
        .snapshots
        .open(channels, limit, query.after.unwrap_or(0));
    let cut = metrics.answers_cut.clone();
    let body = opened.into_body(answer, slot).inspect_err(move |error| {
        cut.increment(1);
        tracing::warn!(%error, "snapshot answer cut short; the client gets invalid JSON and retries");
    });
    let body = within_answer_timeout(body);
    Ok(json_response(Body::from_stream(body)))
}

/// Ends `body` with an error once it has taken [`ANSWER_TIMEOUT`], however steadily the
/// client reads.
fn within_answer_timeout(
    body: impl futures::Stream<Item = Result<bytes::Bytes, HistoryError>> + Send + 'static,
) -> impl futures::Stream<Item = Result<bytes::Bytes, HistoryError>> + Send + 'static {
    let deadline = tokio::time::sleep(ANSWER_TIMEOUT);
    futures::stream::unfold(
        (Box::pin(body), Box::pin(deadline), false),
        |(mut body, mut deadline, done)| async move {
            if done {
                return None;
            }
            tokio::select! {
                item = body.next() => item.map(|item| (item, (body, deadline, false))),
                () = &mut deadline => Some((
                    Err(HistoryError::TooLong(ANSWER_TIMEOUT)),
                    (body, deadline, true),
                )),
            }
        },
    )
}

pub(super) fn json_response(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// One of the credential's connection slots, for as long as the answer is written: history
/// requests count against `MAX_CONNECTIONS` and `MAX_CONNECTIONS_PER_KEY` like streams.
pub(super) fn slot(history: &History, principal: &Principal) -> Result<Permit, ApiError> {
    history
        .connections
        .acquire(principal.subject())
        .map_err(|refusal| history.refusals.connection_refused(refusal))
}

/// The answer's share of `HISTORY_BUDGET_BYTES`, or the named refusal.
pub(super) fn share(history: &History, answer: Option<Answer>) -> Result<Answer, ApiError> {
    answer.ok_or_else(|| {
        history
            .refusals
            .refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                RequestRefusal::HistoryBudget,
                "the summary, snapshot and DLQ answers in flight on this gateway hold \
                 HISTORY_BUDGET_BYTES; retry after Retry-After, or on another instance",
            )
            .retry_after(BUDGET_RETRY_AFTER)
    })
}

/// When a refused answer may try again: answers in flight end within seconds.
const BUDGET_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The longest `Retry-After` of a `snapshot_loading` refusal, in seconds: each is drawn between
/// 1 and this, so the refused spread their retries.
pub(crate) const LOADING_RETRY_MAX: u64 = 5;

/// 503 `snapshot_loading`: the state was not filled within [`FILL_WAIT`].
fn loading(refusals: &Refusals) -> ApiError {
    let wait = rand::random_range(1..=LOADING_RETRY_MAX);
    refusals
        .refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            RequestRefusal::SnapshotLoading,
            "this gateway is still reading the latest state of every entity from \
             <STREAM_NAME>_LATEST; retry after Retry-After, or on another instance",
        )
        .retry_after(Duration::from_secs(wait))
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

/// The query string of a history route, or 400 `bad_request` naming what it takes.
pub(super) fn parsed<T>(
    refusals: &Refusals,
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
    takes: &str,
) -> Result<T, ApiError> {
    query.map(|Query(query)| query).map_err(|rejection| {
        refusals.refuse(
            StatusCode::BAD_REQUEST,
            RequestRefusal::BadRequest,
            format!("bad query string ({takes}): {rejection}"),
        )
    })
}

pub(super) fn unavailable(refusals: &Refusals, what: &str, error: &HistoryError) -> ApiError {
    tracing::warn!(%error, "cannot serve the {what}");
    refusals.refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        RequestRefusal::HistoryUnavailable,
        format!("cannot read the {what} from JetStream just now ({error}); retry shortly"),
    )
}
