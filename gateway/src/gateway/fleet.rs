//! The fleet's parts from their settings: this instance's name, cluster stats, the canary.

use std::sync::Arc;

use rakuda_schema::{Channel, EventType};
use rakuda_service::redis::RedisSettingError;

use crate::config::FleetConfig;
use crate::fleet::canary::CanaryTask;
use crate::fleet::cluster::Cluster;

use super::shared::Shared;

/// `GATEWAY_INSTANCE_ID`, or `gw-<random>`.
pub(super) fn instance_name(fleet: &FleetConfig) -> Arc<str> {
    fleet
        .gateway_instance_id
        .clone()
        .unwrap_or_else(|| format!("gw-{:06x}", rand::random::<u32>() & 0xff_ffff))
        .into()
}

/// Answers the other instances' stats requests over `nats`, and asks them in turn for
/// `/stats?scope=cluster`.
pub(super) fn cluster(
    fleet: &FleetConfig,
    nats: async_nats::Client,
    shared: &Shared,
) -> Arc<Cluster> {
    Arc::new(Cluster::new(
        nats,
        shared.instance.clone(),
        shared.metrics.clone(),
        fleet.cluster_stats_timeout,
    ))
}

/// Publishes this instance's canary on Redis, for the bridge to carry back through NATS.
pub(super) fn canary_task(
    fleet: &FleetConfig,
    shared: &Shared,
) -> Result<CanaryTask, RedisSettingError> {
    let redis =
        rakuda_service::redis::client(fleet.redis_url.expose(), fleet.redis_tls_ca.as_deref())?;
    Ok(CanaryTask {
        redis,
        channel: Channel::of(EventType::Canary).redis_channel(&fleet.redis_channel_prefix),
        instance: shared.instance.clone(),
        canary: shared.canary.clone(),
        metrics: shared.metrics.fleet.clone(),
    })
}
