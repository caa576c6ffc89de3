//! `GET /api/realtime/events`: the Server-Sent Events stream.
//!
//! Per connection: a jittered `retry:` first, then what resume decided, then live frames
//! (shared bytes, several queued frames in one write), a `heartbeat` event every interval, and
//! `reset` + close for a client that fell a whole queue behind. The stream ends itself when its
//! turn in a drain comes, with a fresh jittered `retry:` so clients reconnect elsewhere, spread
//! out, and when the token it was opened with expires.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::Extension;
use bytes::{Bytes, BytesMut};
use rakuda_schema::{ClientResetReason, ResetReason};

use super::admission::{admit, Admission, ConnectQuery};
use super::{expired, expiry, jittered_retry, Streams};
use crate::channels::ChannelSet;
use crate::edge::auth::Principal;
use crate::edge::limits::Permit;
use crate::edge::ApiError;
use crate::fanout::frame::{sse_heartbeat, sse_reset, sse_retry};
use crate::fanout::outbox::{Next, Outbox};
use crate::metrics::Transport;
use crate::resume::replay::Start;
use crate::resume::Resumption;

pub(crate) async fn events(
    State(streams): State<Arc<Streams>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    query: Result<Query<ConnectQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    // The header wins: a reconnecting EventSource sends it; the query is for the first connect.
    let header_cursor = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok());
    let admission = admit(&streams, &principal, query, header_cursor)?;
    let reconnect = admission.reconnects();
    let Admission {
        channels,
        asked,
        permit,
    } = admission;
    let resumption = streams.resumer.resume(asked, channels).await;
    let expires = expiry(&principal);

    let opening = Opening {
        permit,
        expires,
        reconnect,
    };
    let body = Body::from_stream(connection(streams, resumption, channels, opening));
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

/// What a stream holds from its admission.
struct Opening {
    permit: Permit,
    expires: Option<tokio::time::Instant>,
    /// It came with a cursor.
    reconnect: bool,
}

/// Counts the connection open while it lives.
struct Opened(Arc<Streams>);

impl Opened {
    fn new(streams: Arc<Streams>, reconnect: bool) -> Opened {
        streams.metrics.opened(Transport::Sse);
        if reconnect {
            streams.metrics.reconnected(Transport::Sse);
        }
        Opened(streams)
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.0.metrics.closed(Transport::Sse);
    }
}

fn connection(
    streams: Arc<Streams>,
    resumption: Resumption,
    channels: ChannelSet,
    opening: Opening,
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    async_stream::stream! {
        let Opening { permit, expires, reconnect } = opening;
        let _permit = permit;
        let _opened = Opened::new(streams.clone(), reconnect);
        let Resumption { tap, start, skip_through } = resumption;
        let mut outbox = Outbox::new(
            tap,
            skip_through,
            channels,
            streams.delivery(Transport::Sse),
        );
        let retry_ms = streams.settings.sse_retry_ms;

        yield Ok(sse_retry(jittered_retry(retry_ms)));
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
        // come as ticks through the hub (see `ingest::pipeline`).
        let mut drain = streams.drain.turn();
        loop {
            tokio::select! {
                biased;
                _ = drain.arrived() => {
                    yield Ok(sse_retry(jittered_retry(retry_ms)));
                    break;
                }
                _ = expired(expires) => {
                    streams.metrics.client_reset(ClientResetReason::TokenExpired);
                    yield Ok(sse_retry(jittered_retry(retry_ms)));
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
                            yield Ok(sse_reset(None, ResetReason::SlowClient));
                            break;
                        }
                    }
                    Next::Lagged => {
                        yield Ok(sse_reset(None, ResetReason::SlowClient));
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
