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
use rakuda_schema::{Heartbeat, Timestamp};
use serde::Deserialize;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::app::App;
use crate::auth::Principal;
use crate::channels::ChannelSet;
use crate::cursor::{Cursor, MalformedCursor};
use crate::error::ApiError;
use crate::frame::{sse_heartbeat, sse_reset, sse_retry, FrameKind, OutFrame};
use crate::metrics::Transport;
use crate::resume::{self, Plan};

/// Most queued frames joined into one write.
const MAX_FRAMES_PER_WRITE: usize = 64;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    channels: Option<String>,
    #[serde(rename = "lastEventId")]
    last_event_id: Option<String>,
}

pub async fn events(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        app.reject(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("bad query string: {rejection}"),
        )
    })?;
    let channels = requested_channels(&app, &principal, query.channels.as_deref())?;
    let permit = app.admit(principal.subject())?;
    // The header wins: a reconnecting EventSource sends it; the query is for the first connect.
    let cursor = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or(query.last_event_id)
        .filter(|text| !text.is_empty())
        .map(|text| text.parse::<Cursor>());

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
        Plan::Replay { frames, source } => {
            tracing::debug!(frames = frames.len(), source = source.as_str(), "resuming")
        }
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

/// When a connection closes once draining began: a random moment within the drain window, so
/// clients of a restarting instance reconnect elsewhere spread out, not all in the same second.
pub fn drain_deadline(app: &App) -> tokio::time::Instant {
    let window = app.config.gateway_drain_window;
    let offset = if window.is_zero() {
        std::time::Duration::ZERO
    } else {
        window.mul_f64(rand::random::<f64>())
    };
    tokio::time::Instant::now() + offset
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
        let skip_through = plan.skip_through(&subscription);
        let epoch = subscription.epoch;
        let mut frames = subscription.frames;
        // The cursor of the last thing this client was sent: what a heartbeat may claim.
        let mut sent_through = Cursor { epoch, seq: skip_through };

        yield Ok(sse_retry(jittered_retry(app.config.sse_retry)));
        match plan {
            Plan::Reset(reason) => {
                yield Ok(sse_reset(Some(Cursor { epoch, seq: subscription.watermark }), reason));
            }
            Plan::Replay { frames: replay, .. } if !replay.is_empty() => {
                let last = replay.len() - 1;
                let mut out = BytesMut::new();
                for (index, folded) in replay.iter().enumerate() {
                    // Only the last replay frame carries the cursor: a client cut off halfway
                    // through resumes from its old cursor and loses nothing.
                    let cursor = Cursor { epoch, seq: subscription.watermark };
                    let mut frame = OutFrame::encode(folded, cursor).sse;
                    if index != last {
                        frame = strip_id(frame);
                    }
                    out.extend_from_slice(&frame);
                }
                app.metrics.frames_sent(Transport::Sse, replay.len() as u64);
                yield Ok(out.freeze());
            }
            _ => {}
        }

        let heartbeat_every = app.config.heartbeat_interval();
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat_every, heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Once draining, the moment this connection closes; it keeps streaming until then.
        let mut close_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = app.shutdown.cancelled(), if close_at.is_none() => {
                    close_at = Some(drain_deadline(&app));
                }
                _ = sleep_until(close_at), if close_at.is_some() => {
                    yield Ok(sse_retry(jittered_retry(app.config.sse_retry)));
                    break;
                }
                received = frames.recv() => {
                    let first = match received {
                        Ok(frame) => frame,
                        Err(RecvError::Lagged(missed)) => {
                            app.metrics.client_reset("lagged");
                            tracing::info!(missed, "client fell a whole queue behind; resetting it");
                            yield Ok(sse_reset(None, "slow_client"));
                            break;
                        }
                        Err(RecvError::Closed) => break,
                    };
                    let mut batch = Vec::with_capacity(4);
                    batch.push(first);
                    let mut lagged = false;
                    while batch.len() < MAX_FRAMES_PER_WRITE {
                        match frames.try_recv() {
                            Ok(frame) => batch.push(frame),
                            Err(TryRecvError::Lagged(_)) => { lagged = true; break; }
                            Err(_) => break,
                        }
                    }
                    let mut out = BytesMut::new();
                    let mut written = 0u64;
                    let now = time::OffsetDateTime::now_utc();
                    for frame in &batch {
                        if !wanted(frame, channels, skip_through) {
                            continue;
                        }
                        out.extend_from_slice(&frame.sse);
                        written += 1;
                        sent_through = frame.cursor;
                        if frame.kind != FrameKind::Reset {
                            app.metrics.event_latency.record((now - frame.newest).as_seconds_f64().max(0.0));
                        }
                    }
                    if written > 0 {
                        app.metrics.frames_sent(Transport::Sse, written);
                        yield Ok(out.freeze());
                    }
                    if lagged {
                        app.metrics.client_reset("lagged");
                        yield Ok(sse_reset(None, "slow_client"));
                        break;
                    }
                }
                _ = heartbeat.tick() => {
                    // The hub's watermark is safe to claim only when nothing is queued for this
                    // client: queued frames below it have not been written yet.
                    let watermark = app.hub.cursor();
                    if frames.is_empty() && watermark.epoch == epoch && watermark.seq >= skip_through {
                        sent_through = watermark;
                    }
                    let beat = Heartbeat {
                        instance: app.instance.clone(),
                        seq: sent_through.seq,
                        time: Timestamp::now(),
                    };
                    yield Ok(sse_heartbeat(Some(sent_through), &beat));
                }
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one (for an optional `select!` branch).
pub async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Whether a live frame goes to this connection.
fn wanted(frame: &OutFrame, channels: ChannelSet, skip_through: u64) -> bool {
    match frame.channel {
        // Resets go to everyone.
        None => true,
        Some(channel) => frame.max_seq > skip_through && channels.contains(channel),
    }
}

/// The record without its `id:` line.
fn strip_id(frame: Bytes) -> Bytes {
    match frame.iter().position(|b| *b == b'\n') {
        Some(end) if frame.starts_with(b"id: ") => frame.slice(end + 1..),
        _ => frame,
    }
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

    #[test]
    fn strip_id_removes_only_the_id_line() {
        let frame = Bytes::from_static(b"id: 1-2\nevent: X\ndata: {}\n\n");
        assert_eq!(&strip_id(frame)[..], b"event: X\ndata: {}\n\n");
        let frame = Bytes::from_static(b"event: X\ndata: {}\n\n");
        assert_eq!(&strip_id(frame.clone())[..], &frame[..]);
    }
}
