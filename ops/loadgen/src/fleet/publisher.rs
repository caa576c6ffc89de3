//! The load of a fleet run: one event every `1 / rate` s, each to every client, published on a
//! task of its own until stopped. The run can hold it back (while the bridge restarts, nothing
//! published could reach a client), and reads how many went out and when each did, for the
//! audit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rakuda_schema::EventType;
use redis::aio::MultiplexedConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::run::FleetError;
use crate::marker::now_us;
use crate::publish::LoadEvents;
use crate::unpoisoned;

/// The load, running.
pub(super) struct Publisher {
    gate: Arc<tokio::sync::Mutex<()>>,
    stop: CancellationToken,
    published: Arc<AtomicU64>,
    published_at: Arc<std::sync::Mutex<Vec<u64>>>,
    task: JoinHandle<Result<(u64, u64), FleetError>>,
}

/// What the load published, once stopped.
pub(super) struct Published {
    /// Events published, numbered from 0.
    pub(super) events: u64,
    /// Of them, those that reached no bridge (`PUBLISH` answered 0 receivers).
    pub(super) unheard: u64,
    /// When the first was published (µs since the epoch; `u64::MAX` if none was).
    pub(super) first_us: u64,
    /// When each was published (µs since the epoch), in order.
    pub(super) at_us: Vec<u64>,
}

impl Publisher {
    /// Starts publishing on `redis` at `rate` events per second.
    pub(super) fn start(redis: MultiplexedConnection, rate: f64) -> Publisher {
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        let stop = CancellationToken::new();
        let published_at = Arc::new(std::sync::Mutex::new(Vec::new()));
        let published = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(publish_load(
            redis,
            rate,
            gate.clone(),
            stop.clone(),
            published.clone(),
            published_at.clone(),
        ));
        Publisher {
            gate,
            stop,
            published,
            published_at,
            task,
        }
    }

    /// Holds the load back until the guard is dropped (an event due meanwhile goes out then).
    pub(super) async fn pause(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.gate.lock().await
    }

    /// How many events were published so far.
    pub(super) fn published(&self) -> u64 {
        self.published.load(Ordering::SeqCst)
    }

    /// Stops the load; what it published.
    pub(super) async fn stop(self) -> Result<Published, FleetError> {
        self.stop.cancel();
        let (events, unheard) = match self.task.await {
            Ok(result) => result?,
            Err(_) => {
                return Err(FleetError::Unexpected {
                    command: "publish".into(),
                    reply: "the publisher task panicked".into(),
                })
            }
        };
        let at_us = unpoisoned(&self.published_at).clone();
        Ok(Published {
            events,
            unheard,
            first_us: at_us.first().copied().unwrap_or(u64::MAX),
            at_us,
        })
    }
}

/// The load: one event every `1 / rate` s until `stop`, each to every client, numbered from 0
/// (`counter` says how many so far). `gate` pauses it while held (the bridge's restart).
/// Returns how many were published and how many reached no bridge.
async fn publish_load(
    mut redis: MultiplexedConnection,
    rate: f64,
    gate: Arc<tokio::sync::Mutex<()>>,
    stop: CancellationToken,
    counter: Arc<AtomicU64>,
    published_at: Arc<std::sync::Mutex<Vec<u64>>>,
) -> Result<(u64, u64), FleetError> {
    let events = LoadEvents {
        types: EventType::CLIENT.to_vec(),
        ..LoadEvents::default()
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut published, mut unheard) = (0u64, 0u64);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok((published, unheard)),
            _ = tick.tick() => {}
        }
        let _open = gate.lock().await;
        if stop.is_cancelled() {
            return Ok((published, unheard));
        }
        let (channel, json) = events.event(published)?;
        unpoisoned(&published_at).push(now_us());
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(json)
            .query_async(&mut redis)
            .await?;
        if receivers == 0 {
            unheard += 1;
        }
        published += 1;
        counter.store(published, Ordering::SeqCst);
    }
}
