//! What `GET /api/realtime/status` answers: one gateway instance at a glance (for operators and
//! backends; it needs the API key or an admin token).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The answer of `GET /api/realtime/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// `REALTIME_ENABLED`.
    pub enabled: bool,
    /// The instance's name (`GATEWAY_INSTANCE_ID`), as in its heartbeats.
    pub instance: String,
    /// The gateway's version.
    pub version: String,
    #[ts(type = "number")]
    pub uptime_seconds: u64,
    /// Shutting down: new streams are refused (503 `draining`), open ones are being closed.
    pub draining: bool,
    /// `degraded` while the canary has not come back for `CANARY_DEGRADED_AFTER`.
    pub status: Health,
    pub canary: CanaryStatus,
    /// Streams open now, by transport.
    pub connections: ConnectionsNow,
    pub nats: NatsStatus,
    pub settings: StatusSettings,
}

/// Whether events flow: the `status` of `/status` and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Ok,
    /// The canary has not come back for `CANARY_DEGRADED_AFTER`: events may not be flowing.
    Degraded,
}

impl Health {
    pub fn of(degraded: bool) -> Health {
        if degraded {
            Health::Degraded
        } else {
            Health::Ok
        }
    }
}

/// The end-to-end canary: an event the gateway publishes on Redis and reads back from NATS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// `false` when `CANARY_INTERVAL` is 0.
    pub enabled: bool,
    /// Whether one came back since the gateway started.
    pub seen: bool,
    /// Seconds since the last one came back (since the start, when none did).
    pub age_seconds: f64,
    /// `CANARY_DEGRADED_AFTER`, in seconds.
    pub degraded_after_seconds: f64,
}

/// Streams open now, by transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ConnectionsNow {
    #[ts(type = "number")]
    pub sse: u64,
    #[ts(type = "number")]
    pub ws: u64,
}

/// The gateway's NATS connection and the event stream it reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct NatsStatus {
    pub connected: bool,
    pub stream: StreamStatus,
}

/// The event stream as this gateway reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    /// `STREAM_NAME`.
    pub name: String,
    /// The stream's epoch: the first part of a resume cursor.
    #[ts(type = "number")]
    pub epoch: u64,
    /// The newest sequence the gateway has read.
    #[ts(type = "number")]
    pub last_sequence: u64,
    /// Whether the gateway has started reading the stream (until then `lastSequence` means
    /// nothing).
    pub reading: bool,
}

/// The settings that shape what clients receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct StatusSettings {
    #[ts(type = "number")]
    pub debounce_window_ms: u64,
    #[ts(type = "number")]
    pub debounce_max_batch_events: u64,
    #[ts(type = "number")]
    pub heartbeat_interval_ms: u64,
    #[ts(type = "number")]
    pub retry_ms: u64,
    #[ts(type = "number")]
    pub client_queue_capacity: u64,
    #[ts(type = "number")]
    pub replay_ring_capacity: u64,
    #[ts(type = "number")]
    pub token_ttl_seconds: u64,
}
