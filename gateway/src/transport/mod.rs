//! The transports: how frames reach a client once its request is in (the request itself comes
//! through [`crate::server`]).
//!
//! - [`admission`] — what both transports check before streaming: query, channels, limits.
//! - [`sse`] — `GET /api/realtime/events`.
//! - [`ws`] — `GET /api/realtime/ws` and its client ops.

pub(crate) mod admission;
pub(crate) mod sse;
pub(crate) mod ws;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::edge::auth::Principal;
use crate::edge::connection_rate::ConnectionRate;
use crate::edge::limits::Connections;
use crate::edge::origin::AllowedOrigins;
use crate::edge::Refusals;
use crate::fanout::outbox::Delivery;
use crate::fleet::drain::DrainSignal;
use crate::metrics::{ConnectionMetrics, Transport};
use crate::resume::Resumer;

/// One connection in this many records its deliveries in `gateway_event_latency_seconds`. The
/// Prometheus recorder keeps every observation until the next scrape or upkeep (every 5 s), so
/// recording all of them held 60 MB at 500k deliveries/s between scrapes; a fixed share of
/// connections measures the same distribution.
pub(crate) const LATENCY_SAMPLE_EVERY: u64 = 16;

/// How the transports behave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamSettings {
    /// `SSE_RETRY` in milliseconds (each client gets up to 50% more).
    pub sse_retry_ms: u64,
    /// `WS_MAX_FRAME_BYTES`.
    pub ws_max_frame_bytes: usize,
    /// `WS_MAX_BAD_FRAMES`.
    pub ws_max_bad_frames: usize,
}

/// What every streaming connection shares, whatever its transport.
pub(crate) struct Streams {
    pub resumer: Resumer,
    pub connections: Arc<Connections>,
    /// `CONNECTION_RATE_LIMIT`: new streams admitted per second.
    pub connection_rate: ConnectionRate,
    pub drain: DrainSignal,
    pub refusals: Refusals,
    pub metrics: Arc<ConnectionMetrics>,
    /// This instance's name, in heartbeats.
    pub instance: Arc<str>,
    pub settings: StreamSettings,
    /// Browser origins a WebSocket may come from.
    pub origins: AllowedOrigins,
    /// Connections opened so far: picks which ones record delivery latency.
    opened: AtomicU64,
}

impl Streams {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        resumer: Resumer,
        connections: Arc<Connections>,
        connection_rate: ConnectionRate,
        drain: DrainSignal,
        refusals: Refusals,
        metrics: Arc<ConnectionMetrics>,
        instance: Arc<str>,
        settings: StreamSettings,
        origins: AllowedOrigins,
    ) -> Streams {
        Streams {
            resumer,
            connections,
            connection_rate,
            drain,
            refusals,
            metrics,
            instance,
            settings,
            origins,
            opened: AtomicU64::new(0),
        }
    }

    /// How a new connection of `transport` reports what it delivered; the first connection
    /// samples latency, then one in [`LATENCY_SAMPLE_EVERY`].
    pub(crate) fn delivery(&self, transport: Transport) -> Delivery {
        Delivery {
            transport,
            metrics: self.metrics.clone(),
            samples_latency: self.opened.fetch_add(1, Ordering::Relaxed) % LATENCY_SAMPLE_EVERY
                == 0,
            instance: self.instance.clone(),
        }
    }
}

/// `/api/realtime/events` and `/api/realtime/ws`; the caller puts them behind auth.
pub(crate) fn routes(streams: Arc<Streams>) -> Router {
    Router::new()
        .route(crate::paths::EVENTS, get(sse::events))
        .route(crate::paths::WS, get(ws::upgrade))
        .with_state(streams)
}

/// When a stream opened by `principal` must end: its token's expiry (an API key does not
/// expire). Past it the stream ends (SSE) or closes with 4001 (WebSocket), and the client
/// reconnects with a fresh token and its cursor, so a token is never good for longer than its
/// lifetime.
pub(crate) fn expiry(principal: &Principal) -> Option<tokio::time::Instant> {
    let expires_at = principal.expires_at()?;
    let left = expires_at - time::OffsetDateTime::now_utc();
    let left = std::time::Duration::try_from(left).unwrap_or_default();
    Some(tokio::time::Instant::now() + left)
}

/// Completes at `at`; never when there is no expiry.
pub(crate) async fn expired(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A reconnect delay with up to 50% jitter, so a fleet restart does not stampede.
pub(crate) fn jittered_retry(base_ms: u64) -> u64 {
    base_ms + rand::random_range(0..=base_ms / 2)
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
