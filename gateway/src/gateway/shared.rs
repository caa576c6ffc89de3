//! The handles several components hold, made once before them.

use std::sync::Arc;

use async_nats::jetstream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::edge::Refusals;
use crate::fanout::Hub;
use crate::fleet::canary::Canary;
use crate::fleet::drain::DrainSignal;
use crate::history::latest::Latest;
use crate::ingest::Reading;
use crate::metrics::GatewayMetrics;
use crate::resume::ring::Ring;

/// Who this instance is, what it counts, how it refuses, where it reads, and the state the
/// pipeline keeps current for the streams and answers. Each component clones what it keeps.
pub(super) struct Shared {
    pub instance: Arc<str>,
    pub metrics: Arc<GatewayMetrics>,
    pub refusals: Refusals,
    pub jetstream: jetstream::Context,
    /// Whether NATS is connected (the sender stays with the gateway, which watches NATS).
    pub connected: watch::Receiver<bool>,
    /// Cancelled on SIGTERM: open streams close within the drain window.
    pub drain: DrainSignal,
    pub hub: Arc<Hub>,
    pub ring: Arc<Ring>,
    pub latest: Arc<Latest>,
    pub reading: Reading,
    pub canary: Arc<Canary>,
}

impl Shared {
    /// `shutdown` is the drain signal; `connected` follows the NATS connection of `nats`.
    pub(super) fn new(
        config: &Config,
        instance: Arc<str>,
        nats: &async_nats::Client,
        connected: watch::Receiver<bool>,
        shutdown: &CancellationToken,
    ) -> Shared {
        let metrics = Arc::new(GatewayMetrics::new());
        let fleet = &config.fleet;
        Shared {
            instance,
            refusals: Refusals::new(metrics.edge.clone()),
            jetstream: jetstream::context::ContextBuilder::new()
                .timeout(rakuda_service::nats::REQUEST_TIMEOUT)
                .build(nats.clone()),
            connected,
            drain: DrainSignal::new(shutdown.clone(), fleet.gateway_drain_window),
            hub: Arc::new(Hub::new(config.streams.client_queue_capacity)),
            ring: Arc::new(Ring::new(config.resume.replay_ring_capacity)),
            latest: Arc::new(Latest::new(metrics.history.clone())),
            reading: Reading::default(),
            canary: Arc::new(Canary::new(
                fleet.canary_interval,
                fleet.canary_degraded_after,
            )),
            metrics,
        }
    }
}
