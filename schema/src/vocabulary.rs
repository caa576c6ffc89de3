//! The gateway's closed vocabularies: why a request was refused, why a client is reset, where a
//! resume came from, how a WebSocket is closed. Each is an enum matched exhaustively wherever it
//! is used, so a new variant cannot be left out of a metric or a client silently; `iter()`
//! (strum) lists every variant, and the TypeScript unions of `web/` are generated from them.

use serde::{Deserialize, Serialize};
use strum::{EnumCount, EnumIter, IntoStaticStr};
use ts_rs::TS;

/// Why a request was refused: the `error` field of the JSON body, and the `reason` label of
/// `gateway_requests_rejected_total`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    TS,
    EnumIter,
    EnumCount,
    IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RequestRefusal {
    /// Neither an `X-API-Key` header nor a `?token=`.
    MissingCredentials,
    /// The key matches no configured key.
    InvalidApiKey,
    /// A malformed, altered or foreign token.
    InvalidToken,
    /// Past `expiresAt`: fetch a new one.
    TokenExpired,
    /// `?channels=` outside what the token allows.
    ChannelNotAllowed,
    /// A token cannot mint tokens.
    ApiKeyRequired,
    /// `?channels=` names no client channel.
    UnknownChannel,
    /// A query, body or request head that cannot be read; also an unknown path (404).
    BadRequest,
    /// `REALTIME_ENABLED=false`.
    RealtimeDisabled,
    /// The gateway is shutting down.
    Draining,
    /// `MAX_CONNECTIONS` reached.
    TooManyConnections,
    /// `MAX_CONNECTIONS_PER_KEY` reached.
    TooManyConnectionsForKey,
    /// Over `MAX_URI_BYTES`.
    UriTooLong,
    /// Over `MAX_HEADER_BYTES`.
    HeadersTooLarge,
    /// `/api/realtime/ws` without a WebSocket upgrade.
    NotWebsocket,
    /// `MAX_UNAUTHENTICATED_CONNECTIONS` sockets are already waiting to authenticate.
    TooManyUnauthenticated,
    /// The client's address (an IPv6 /64) opened more than `MAX_UNAUTHENTICATED_PER_ADDRESS`
    /// sockets that sent no request yet: its oldest such socket is closed with this.
    TooManyUnauthenticatedForAddress,
    /// The request (head or body) did not arrive within `REQUEST_READ_TIMEOUT`.
    RequestTimeout,
    /// Over `AUTH_FAILURES_PER_MINUTE` failed attempts from this address: wait `Retry-After`.
    TooManyAuthFailures,
    /// `/status` and `/stats` need the API key or an admin-scoped token.
    AdminRequired,
    /// A WebSocket from a browser origin not in `CORS_ORIGINS`.
    OriginNotAllowed,
    /// The summary or snapshot could not be read from JetStream just now.
    HistoryUnavailable,
    /// `/snapshot?channels=` names a channel that keeps no latest state (orders: each order is
    /// its own event); use `?backfill=` or the summary for them.
    NoLatestState,
    /// The summary and snapshot answers in flight hold `HISTORY_BUDGET_BYTES`: retry after
    /// `Retry-After`, or on another instance.
    HistoryBudget,
    /// The gateway admitted `CONNECTION_RATE_LIMIT` new streams this second (SSE or
    /// WebSocket): retry after `Retry-After` (whole seconds, drawn at random up to
    /// `CONNECTION_RATE_RETRY_MAX`, so refused clients come back spread), with the cursor.
    ConnectionRate,
    /// The gateway is still reading `<STREAM_NAME>_LATEST` into the snapshot state it answers
    /// from (at start, or that read keeps failing): retry after `Retry-After`, or on another
    /// instance.
    SnapshotLoading,
    /// The gateway has not started reading the stream yet (it just started): a resume could not
    /// be told from a cursor of a recreated stream. Retry after `Retry-After`, or on another
    /// instance (nginx passes a 503 on to the next gateway).
    Starting,
}

/// Why a client gets `event: reset` (the `reason` of [`crate::ResetNotice`]): it missed
/// events it cannot get back and must refetch everything.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    TS,
    EnumIter,
    EnumCount,
    IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ResetReason {
    /// The resume cursor is not `<epoch>-<seq>`.
    InvalidCursor,
    /// The stream was deleted and recreated (or the cursor is from another epoch).
    StreamRecreated,
    /// The cursor is older than the stream keeps and not in the ring.
    CursorExpired,
    /// The cursor is beyond the stream's last sequence.
    CursorAheadOfStream,
    /// More than `RESUME_MAX_EVENTS` missed.
    TooFarBehind,
    /// JetStream did not answer the replay in time.
    ReplayFailed,
    /// The replay would hold more memory than the replay budget allows.
    ReplayBudget,
    /// No bridge was subscribed to Redis for a while: events may be lost at the source.
    SourceGap,
    /// The client fell a whole queue behind; the connection is closed.
    SlowClient,
}

/// Why the gateway reset or closed a live client: the `reason` label of
/// `gateway_clients_reset_total`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    TS,
    EnumIter,
    EnumCount,
    IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ClientResetReason {
    /// It fell a whole queue behind (`reset` `slow_client`).
    Lagged,
    /// The stream was recreated (`reset` `stream_recreated`).
    StreamRecreated,
    /// A source gap (`reset` `source_gap`).
    SourceGap,
    /// A WebSocket client that did not answer a ping.
    Unresponsive,
    /// A WebSocket client that sent too many malformed frames (close 1008).
    BadFrames,
    /// A WebSocket client that sent a frame over the limit (close 1009).
    FrameTooLarge,
    /// The token the stream was opened with expired (SSE ends, WebSocket closes with 4001).
    TokenExpired,
}

/// Where a resume's missed events came from: the `source` label of `gateway_replays_total`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    TS,
    EnumIter,
    EnumCount,
    IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ReplaySource {
    /// The instance's ring of recent events.
    Ring,
    /// JetStream, by sequence.
    Stream,
    /// Nothing could be replayed: the client got `reset`.
    Reset,
}

/// How the gateway closes a WebSocket (RFC 6455 and the IANA registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, EnumCount, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum CloseCode {
    /// 1008: too many malformed frames.
    PolicyViolation,
    /// 1009: a frame or message over `WS_MAX_FRAME_BYTES`.
    TooBig,
    /// 1012: the gateway is restarting (draining): reconnect.
    ServiceRestart,
    /// 1013: the client fell behind: reconnect and refetch.
    TryAgainLater,
    /// 4001: the token expired: reconnect with a fresh one (and the cursor).
    TokenExpired,
}

impl CloseCode {
    /// The number on the wire.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::PolicyViolation => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::ServiceRestart => 1012,
            CloseCode::TryAgainLater => 1013,
            CloseCode::TokenExpired => 4001,
        }
    }
}

macro_rules! wire_names {
    ($($kind:ty),*) => {$(
        impl $kind {
            /// The wire (and label) name, `snake_case`.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }

        impl std::fmt::Display for $kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

wire_names!(
    RequestRefusal,
    ResetReason,
    ClientResetReason,
    ReplaySource,
    CloseCode
);

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn wire_names_are_the_serde_names() {
        for refusal in RequestRefusal::iter() {
            assert_eq!(
                serde_json::to_string(&refusal).expect("json"),
                format!("\"{}\"", refusal.as_str())
            );
        }
        for reason in ResetReason::iter() {
            assert_eq!(
                serde_json::to_string(&reason).expect("json"),
                format!("\"{}\"", reason.as_str())
            );
        }
        for reason in ClientResetReason::iter() {
            assert_eq!(
                serde_json::to_string(&reason).expect("json"),
                format!("\"{}\"", reason.as_str())
            );
        }
        for source in ReplaySource::iter() {
            assert_eq!(
                serde_json::to_string(&source).expect("json"),
                format!("\"{}\"", source.as_str())
            );
        }
        assert_eq!(
            RequestRefusal::TooManyConnectionsForKey.as_str(),
            "too_many_connections_for_key"
        );
        assert_eq!(ClientResetReason::FrameTooLarge.as_str(), "frame_too_large");
        assert_eq!(CloseCode::TryAgainLater.code(), 1013);
    }
}
