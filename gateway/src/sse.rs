//! `GET /api/realtime/events`: the Server-Sent Events stream.
//!
//! Per connection: a jittered `retry:` first, then what resume decided, then live frames
//! (shared bytes, several queued frames in one write), a `heartbeat` event every interval, and
//! `reset` + close for a client that fell a whole queue behind. The stream ends itself on
//! shutdown, with a fresh jittered `retry:` so clients reconnect elsewhere, spread out.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use bytes::{Bytes, BytesMut};

use crate::app::App;
use crate::auth::Principal;
use crate::channels::ChannelSet;
use crate::cursor::{Cursor, MalformedCursor};
use crate::error::ApiError;
use crate::frame::{sse_heartbeat, sse_reset, sse_retry};
use crate::metrics::Transport;
use crate::outbox::{admit, Admission, ConnectQuery, DrainTurn, Next, Outbox, Start};
use crate::resume::{self, Plan};

pub async fn events(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    query: Result<Query<ConnectQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    // The header wins: a reconnecting EventSource sends it; the query is for the first connect.
    let header_cursor = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok());
    let Admission {
        channels,
        cursor,
        permit,
    } = admit(&app, &principal, query, header_cursor)?;

    let subscription = app
        .hub
        .subscribe(cursor.as_ref().and_then(|c| c.as_ref().ok()).map(|c| c.seq));
    let plan = resume::plan(&app, cursor.clone(), &subscription, channels).await;
    log_resume(&app, cursor.as_ref(), &plan);

    let body = Body::from_stream(connection(app, subscription, plan, channels, permit));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx: do not buffer this response, or events arrive in lumps.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    // When the stream ends (reset, shutdown) the client reconnects anyway: free the socket
    // rather than keep an idle keep-alive connection.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(response)
}

/// The channels the connection receives: what it asked for, within what its credential allows.
pub fn requested_channels(
    app: &App,
    principal: &Principal,
    requested: Option<&str>,
) -> Result<ChannelSet, ApiError> {
    let allowed = principal.allowed_channels();
    let Some(requested) = requested.filter(|list| !list.trim().is_empty()) else {
        return Ok(allowed);
    };
    let requested = ChannelSet::parse(requested).map_err(|error| {
        app.reject(
            StatusCode::BAD_REQUEST,
            "unknown_channel",
            error.to_string(),
        )
    })?;
    if !requested.is_subset_of(allowed) {
        return Err(app.reject(
            StatusCode::FORBIDDEN,
            "channel_not_allowed",
            format!(
                "this token allows only {}; request a token for the channels you need",
                allowed.names().join(", ")
            ),
        ));
    }
    Ok(requested)
}

fn log_resume(app: &App, cursor: Option<&Result<Cursor, MalformedCursor>>, plan: &Plan) {
    match plan {
        Plan::Reset(reason) => tracing::info!(
            instance = %app.instance,
            cursor = ?cursor.map(|c| c.as_ref().map(ToString::to_string).unwrap_or_else(|e| e.0.clone())),
            reason,
            "resume impossible; client will be reset"
        ),
        Plan::Replay {
            frames,
            source,
            reservation,
        } => tracing::debug!(
            frames = frames.len(),
            source = source.as_str(),
            bytes = reservation.bytes(),
            "resuming"
        ),
        Plan::Live | Plan::SkipThrough(_) => {}
    }
}

/// Counts the connection open while it lives.
struct ConnectionGuard {
    app: Arc<App>,
    transport: Transport,
}

impl ConnectionGuard {
    fn new(app: Arc<App>, transport: Transport) -> ConnectionGuard {
        app.metrics.connection_opened(transport);
        ConnectionGuard { app, transport }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.app.metrics.connection_closed(self.transport);
    }
}

/// A reconnect delay with up to 50% jitter, so a fleet restart does not stampede.
pub fn jittered_retry(base_ms: u64) -> u64 {
    base_ms + rand::random_range(0..=base_ms / 2)
}

fn connection(
    app: Arc<App>,
    subscription: crate::hub::Subscription,
    plan: Plan,
    channels: ChannelSet,
    permit: crate::limits::Permit,
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    async_stream::stream! {
        let _permit = permit;
        let _guard = ConnectionGuard::new(app.clone(), Transport::Sse);
        let (mut outbox, start) = Outbox::new(app.clone(), Transport::Sse, subscription, plan, channels);

        yield Ok(sse_retry(jittered_retry(app.config.sse_retry)));
        match start {
            Start::Nothing => {}
            Start::Reset(reason, cursor) => yield Ok(sse_reset(Some(cursor), reason)),
            Start::Replay(replay) => {
                // One record per write: only the record being written exists at a time, and
                // the replay's reservation is given back once the last one was taken.
                outbox.count_sent(replay.len());
                for record in replay.sse_records() {
                    yield Ok(record);
                }
            }
        }
        // A heartbeat at once: the client learns the instance and holds a cursor from the
        // first second, so a connection lost before any event still resumes without a gap.
        let (cursor, beat) = outbox.heartbeat();
        yield Ok(sse_heartbeat(Some(cursor), &beat));

        // Once draining, the connection keeps streaming until its turn to close. Heartbeats
        // come as ticks in the frame queue (see `Pipeline::run`).
        let mut drain = DrainTurn::new(&app);
        loop {
            tokio::select! {
                biased;
                _ = drain.arrived() => {
                    yield Ok(sse_retry(jittered_retry(app.config.sse_retry)));
                    break;
                }
                next = outbox.next() => match next {
                    Next::Frames { lagged, heartbeat, drain: draining } => {
                        let frames = outbox.batch();
                        if !frames.is_empty() {
                            yield Ok(join(frames.iter().map(|frame| &frame.sse)));
                        }
                        if heartbeat {
                            let (cursor, beat) = outbox.heartbeat();
                            yield Ok(sse_heartbeat(Some(cursor), &beat));
                        }
                        if draining {
                            drain.start();
                        }
                        if lagged {
                            yield Ok(sse_reset(None, "slow_client"));
                            break;
                        }
                    }
                    Next::Lagged => {
                        yield Ok(sse_reset(None, "slow_client"));
                        break;
                    }
                    Next::Closed => break,
                },
            }
        }
    }
}

/// The records as one chunk, for one write; a lone record is shared, not copied.
fn join<'a>(mut records: impl ExactSizeIterator<Item = &'a Bytes> + Clone) -> Bytes {
    if records.len() == 1 {
        if let Some(only) = records.next() {
            return only.clone();
        }
    }
    let mut out = BytesMut::with_capacity(records.clone().map(Bytes::len).sum());
    for record in records {
        out.extend_from_slice(record);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_the_base() {
        for _ in 0..1000 {
            let retry = jittered_retry(3000);
            assert!((3000..=4500).contains(&retry));
        }
    }
}
