//! What both transports check before a client may stream: its query, its channels against its
//! credential, the drain, the connection limits and the connection rate. Every refusal is a
//! counted JSON error. SSE (served on the socket by the listener) and WebSocket (served by hyper
//! after the listener read the head) both come through the same router to [`admit`], so there is
//! one place for each check whichever path a stream takes.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::StatusCode;
use rakuda_schema::RequestRefusal;

use super::Streams;
use crate::channels::ChannelSet;
use crate::edge::auth::{requested_channels, Principal};
use crate::edge::limits::Permit;
use crate::edge::{ApiError, Refusals};
use crate::fanout::cursor::Cursor;
use crate::resume::{Asked, Backfill};

/// How soon a client refused while the gateway starts may come back: the feed reads where the
/// stream stands within a second of a start when NATS is up.
const STARTING_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The query both transports take: `channels=inventory,orders`, `lastEventId=<cursor>`, and on
/// a first connection `backfill=<events>` or `since=<duration>` for recent history.
#[derive(Debug, serde::Deserialize)]
pub struct ConnectQuery {
    channels: Option<String>,
    #[serde(rename = "lastEventId")]
    last_event_id: Option<String>,
    backfill: Option<u64>,
    since: Option<String>,
}

/// A connection the gateway agreed to serve.
pub(crate) struct Admission {
    pub channels: ChannelSet,
    /// Where it starts: after its cursor (a reconnect; wins over history), with history, or live.
    pub asked: Asked,
    pub permit: Permit,
}

impl Admission {
    /// Whether the client came back with a cursor (`gateway_reconnects_total`).
    pub(crate) fn reconnects(&self) -> bool {
        matches!(self.asked, Asked::Cursor(_))
    }
}

/// Checks a new connection. `header_cursor` is SSE's `Last-Event-ID`, which wins over the query.
pub(crate) fn admit(
    streams: &Streams,
    principal: &Principal,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    header_cursor: Option<&str>,
) -> Result<Admission, ApiError> {
    let refusals = &streams.refusals;
    let Query(query) = query.map_err(|rejection| {
        refusals.refuse(
            StatusCode::BAD_REQUEST,
            RequestRefusal::BadRequest,
            format!("bad query string: {rejection}"),
        )
    })?;
    let channels = requested_channels(refusals, principal, query.channels.as_deref())?;
    let backfill = backfill(refusals, query.backfill, query.since.as_deref())?;
    let permit = slot(streams, principal.subject())?;
    let cursor = header_cursor
        .map(str::to_owned)
        .or(query.last_event_id)
        .filter(|text| !text.is_empty())
        .map(|text| text.parse::<Cursor>());
    let asked = match (cursor, backfill) {
        (Some(cursor), _) => Asked::Cursor(cursor),
        (None, Some(backfill)) => Asked::Backfill(backfill),
        (None, None) => Asked::Live,
    };
    Ok(Admission {
        channels,
        asked,
        permit,
    })
}

/// `backfill=<events>` or `since=<duration>` (`15m`, `2h`), not both.
fn backfill(
    refusals: &Refusals,
    events: Option<u64>,
    since: Option<&str>,
) -> Result<Option<Backfill>, ApiError> {
    let bad = |message: String| {
        refusals.refuse(StatusCode::BAD_REQUEST, RequestRefusal::BadRequest, message)
    };
    match (events, since.filter(|text| !text.is_empty())) {
        (Some(_), Some(_)) => Err(bad(
            "ask for backfill=<events> or since=<duration>, not both".into(),
        )),
        (Some(events), None) => Ok(Some(Backfill::Events(events))),
        (None, Some(since)) => humantime::parse_duration(since)
            .map(|age| Some(Backfill::Since(age)))
            .map_err(|error| bad(format!("since must be a duration like 15m or 2h: {error}"))),
        (None, None) => Ok(None),
    }
}

/// A slot for a new client connection, or the JSON refusal (also while draining, and past
/// `CONNECTION_RATE_LIMIT`).
///
/// Where the rate is checked, and why there:
/// - After authentication (this runs behind the auth layer). Before it, anyone could spend the
///   gateway's admission budget: a request with no credential is refused 401 without counting
///   against `AUTH_FAILURES_PER_MINUTE` (only wrong guesses do), and the unauthenticated caps
///   bound how many sockets wait at once, not how many come and go a second. A keyless flood of
///   cheap 401s would then leave every real client refused `connection_rate`. Behind auth, only
///   a holder of a key or a token spends it, and a valid credential is also what it takes to
///   cost the gateway a resume; one key's concurrent streams are still capped by
///   `MAX_CONNECTIONS_PER_KEY`.
/// - After the query, the channels and the drain: a malformed request, or one that would be
///   refused anyway, takes no place in this second.
/// - After the connection slot: a key at `MAX_CONNECTIONS_PER_KEY` retrying in a loop, or a
///   full instance, does not spend the others' admissions; a stream refused here drops the slot
///   it took at once (the permit is dropped with the error), so it holds nothing.
/// - Before the resume, the backfill and the upgrade: what a reconnect storm costs is spent
///   only on admitted streams.
fn slot(streams: &Streams, key: &str) -> Result<Permit, ApiError> {
    let refusals = &streams.refusals;
    if streams.drain.is_draining() {
        return Err(refusals.refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            RequestRefusal::Draining,
            "this gateway is shutting down; reconnect to another instance",
        ));
    }
    // Until the feed has read where the stream stands, the hub knows no epoch: every cursor
    // would look like one of a recreated stream and be answered `reset`, so a client taken
    // over in a rolling deploy would refetch everything for nothing.
    if streams.resumer.hub.epoch() == 0 {
        return Err(refusals
            .refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                RequestRefusal::Starting,
                "this gateway has just started and is not reading the stream yet; reconnect \
                 after Retry-After seconds (or to another instance), with your cursor",
            )
            .retry_after(STARTING_RETRY_AFTER));
    }
    let permit = streams
        .connections
        .acquire(key)
        .map_err(|refusal| refusals.connection_refused(refusal))?;
    streams
        .connection_rate
        .admit()
        .map_err(|over| refusals.over_connection_rate(over))?;
    Ok(permit)
}
