//! The state every handler shares.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream;
use axum::http::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::auth::ApiKeys;
use crate::canary::Canary;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::limits::Connections;
use crate::metrics::GatewayMetrics;
use crate::replay_budget::ReplayBudget;
use crate::token::TokenSigner;

pub struct App {
    pub config: Config,
    /// This instance's name in status, heartbeats and logs.
    pub instance: String,
    pub hub: Arc<Hub>,
    pub metrics: Arc<GatewayMetrics>,
    pub jetstream: jetstream::Context,
    pub nats: async_nats::Client,
    pub keys: ApiKeys,
    pub tokens: TokenSigner,
    pub connections: Arc<Connections>,
    pub replay_budget: Arc<ReplayBudget>,
    pub canary: Canary,
    pub cluster: Cluster,
    pub started: Instant,
    /// Cancelled on SIGTERM: streams end themselves and `/readyz` turns 503.
    pub shutdown: CancellationToken,
    /// Set once the feed has read the stream's position, so the watermark means something.
    feed_started: AtomicBool,
    /// Connections opened so far: picks which ones record delivery latency.
    connection_serial: AtomicU64,
}

/// One connection in this many records its deliveries in `gateway_event_latency_seconds`. The
/// Prometheus recorder keeps every observation until the next scrape or upkeep (every 5 s), so
/// recording all of them held 60 MB at 500k deliveries/s between scrapes; a fixed share of
/// connections measures the same distribution.
pub const LATENCY_SAMPLE_EVERY: u64 = 16;

impl App {
    /// Whether the connection being opened records its delivery latency (the first one does,
    /// then one in [`LATENCY_SAMPLE_EVERY`]).
    pub fn samples_latency(&self) -> bool {
        self.connection_serial.fetch_add(1, Ordering::Relaxed) % LATENCY_SAMPLE_EVERY == 0
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        instance: String,
        hub: Arc<Hub>,
        metrics: Arc<GatewayMetrics>,
        jetstream: jetstream::Context,
        nats: async_nats::Client,
        shutdown: CancellationToken,
    ) -> App {
        let tokens = match &config.token_secret {
            Some(secret) => TokenSigner::new(secret.as_bytes(), config.token_ttl),
            None => TokenSigner::derived_from_keys(&config.api_key, config.token_ttl),
        };
        App {
            keys: ApiKeys::new(&config.api_key),
            tokens,
            connections: Connections::new(config.max_connections, config.max_connections_per_key),
            replay_budget: ReplayBudget::new(
                config.replay_budget_bytes,
                config.replay_connection_max_bytes,
                metrics.replay_bytes_in_flight.clone(),
            ),
            canary: Canary::new(config.canary_interval, config.canary_degraded_after),
            cluster: Cluster::default(),
            config,
            instance,
            hub,
            metrics,
            jetstream,
            nats,
            started: Instant::now(),
            shutdown,
            feed_started: AtomicBool::new(false),
            connection_serial: AtomicU64::new(0),
        }
    }

    /// A refusal: counted by reason and returned as a JSON error.
    pub fn reject(
        &self,
        status: StatusCode,
        reason: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        self.metrics.request_rejected(reason);
        ApiError {
            status,
            reason,
            message: message.into(),
        }
    }

    pub fn mark_feed_started(&self) {
        self.feed_started.store(true, Ordering::Release);
    }

    pub fn feed_started(&self) -> bool {
        self.feed_started.load(Ordering::Acquire)
    }

    pub fn nats_connected(&self) -> bool {
        self.nats.connection_state() == async_nats::connection::State::Connected
    }

    pub fn draining(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}
