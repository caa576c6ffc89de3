//! The canary: proof that events flow end to end, not merely that processes are up.
//!
//! Every gateway publishes a small `CANARY` event on Redis (`<prefix>canary`) every
//! `CANARY_INTERVAL`; the bridge forwards it like any other event and every gateway reads it off
//! the stream, but never sends it to clients. A gateway that sees its own canary come back
//! knows the whole path works: Redis, bridge, NATS, stream, its own consumer. When none came
//! back for `CANARY_DEGRADED_AFTER`, `/status` and `/readyz` say `degraded`, and
//! `gateway_degraded` is 1 (the `RealtimeCanaryStale` alert).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rakuda_schema::{Action, EventType, RealTimeEvent};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::metrics::FleetMetrics;

/// How often the age gauge and the degraded state are refreshed.
const REFRESH: Duration = Duration::from_secs(1);
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct Canary {
    interval: Duration,
    degraded_after: Duration,
    started: Instant,
    /// Milliseconds after `started` when our canary last came back; `u64::MAX`: never.
    last_seen_ms: AtomicU64,
}

impl Canary {
    /// `interval` zero turns the canary off (never degraded).
    pub(crate) fn new(interval: Duration, degraded_after: Duration) -> Canary {
        Canary {
            interval,
            degraded_after,
            started: Instant::now(),
            last_seen_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// `CANARY_DEGRADED_AFTER`.
    pub(crate) fn degraded_after(&self) -> Duration {
        self.degraded_after
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.interval.is_zero()
    }

    /// Our canary came back now.
    pub(crate) fn observe(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_seen_ms.store(ms, Ordering::Release);
    }

    /// Since our canary last came back; since start when it never did.
    pub(crate) fn age(&self) -> Duration {
        let now = self.started.elapsed();
        match self.last_seen_ms.load(Ordering::Acquire) {
            u64::MAX => now,
            ms => now.saturating_sub(Duration::from_millis(ms)),
        }
    }

    pub(crate) fn seen(&self) -> bool {
        self.last_seen_ms.load(Ordering::Acquire) != u64::MAX
    }

    pub(crate) fn degraded(&self) -> bool {
        self.enabled() && self.age() > self.degraded_after
    }
}

/// This instance's canary event.
pub(crate) fn canary_event(instance: &str) -> RealTimeEvent {
    let data = match json!({ "instance": instance }) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    RealTimeEvent::now(EventType::Canary, instance, Action::Updated).with_data(data)
}

/// What the canary task needs.
pub(crate) struct CanaryTask {
    pub redis: redis::Client,
    /// `<prefix>canary`
    pub channel: String,
    pub instance: Arc<str>,
    pub canary: Arc<Canary>,
    pub metrics: Arc<FleetMetrics>,
}

/// Why a canary could not be published.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("redis did not answer within {REDIS_TIMEOUT:?}")]
    Timeout,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot serialize the canary: {0}")]
    Json(#[from] serde_json::Error),
}

impl CanaryTask {
    /// Publishes the canary every interval and keeps the gauges and the degraded state current,
    /// until `stop`.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut connection: Option<redis::aio::MultiplexedConnection> = None;
        let mut refresh = tokio::time::interval(REFRESH);
        let mut next_send = tokio::time::Instant::now();
        let mut was_degraded = false;
        let mut warned = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = refresh.tick() => {}
            }
            if self.canary.enabled() && tokio::time::Instant::now() >= next_send {
                next_send += self.canary.interval;
                match self.send(&mut connection).await {
                    Ok(()) => warned = false,
                    Err(error) => {
                        connection = None;
                        if !warned {
                            tracing::warn!(%error, "cannot publish the canary to redis");
                            warned = true;
                        }
                    }
                }
            }
            self.metrics.canary_age.set(self.canary.age().as_secs_f64());
            let degraded = self.canary.degraded();
            self.metrics.degraded.set(if degraded { 1.0 } else { 0.0 });
            if degraded != was_degraded {
                if degraded {
                    tracing::warn!(age = ?self.canary.age(), "degraded: no canary came back; events are not flowing end to end");
                } else {
                    tracing::info!("canary is back: events flow end to end again");
                }
                was_degraded = degraded;
            }
        }
    }

    async fn send(
        &self,
        connection: &mut Option<redis::aio::MultiplexedConnection>,
    ) -> Result<(), SendError> {
        let redis = match connection {
            Some(redis) => redis,
            None => {
                let fresh = tokio::time::timeout(
                    REDIS_TIMEOUT,
                    self.redis.get_multiplexed_async_connection(),
                )
                .await
                .map_err(|_| SendError::Timeout)??;
                connection.insert(fresh)
            }
        };
        let payload = serde_json::to_string(&canary_event(&self.instance))?;
        let mut command = redis::cmd("PUBLISH");
        command.arg(&self.channel).arg(payload);
        tokio::time::timeout(REDIS_TIMEOUT, command.query_async::<i64>(redis))
            .await
            .map_err(|_| SendError::Timeout)??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_after_the_set_time_without_a_canary() {
        let canary = Canary::new(Duration::from_secs(5), Duration::from_millis(30));
        assert!(!canary.degraded());
        std::thread::sleep(Duration::from_millis(40));
        assert!(canary.degraded(), "never seen for longer than the limit");
        canary.observe();
        assert!(!canary.degraded());
        assert!(canary.seen());
        let off = Canary::new(Duration::ZERO, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!off.degraded(), "an off canary never degrades");
    }

    #[test]
    fn the_canary_event_passes_the_bridge_validation() {
        let json = serde_json::to_vec(&canary_event("gw-1")).expect("json");
        let event = rakuda_schema::validate("canary", &json).expect("valid");
        assert!(event.channel.internal);
        assert_eq!(event.id, "gw-1");
    }
}
