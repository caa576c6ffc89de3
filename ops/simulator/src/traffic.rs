//! A RAKUDA day in fast-forward: the background hum of stock checks, price syncs and listing
//! updates, order bursts when a campaign lands, and now and then a batch job that touches
//! thousands of products at once (what debounce is for).

use std::time::Duration;

use rakuda_schema::{Action, Channel, EventType, RealTimeEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("cannot publish to redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// How the day goes.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// Background events per second (inventory, pricing, listings).
    pub rate: f64,
    /// Seconds between order bursts.
    pub order_burst_every: Duration,
    /// Seconds between batch jobs.
    pub batch_every: Duration,
    /// Products one batch job touches.
    pub batch_size: usize,
    /// Stop after this long (`None`: until Ctrl-C).
    pub duration: Option<Duration>,
    pub seed: u64,
}

/// Size of the simulated catalogue.
const PRODUCTS: u32 = 500;
const MARKETPLACES: [&str; 3] = ["ebay", "amazon", "shopify"];

/// Publishes until `duration` (or forever); logs each burst and batch to stderr.
pub async fn run(
    redis: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    traffic: &Traffic,
) -> Result<u64, TrafficError> {
    let mut rng = StdRng::seed_from_u64(traffic.seed);
    let started = tokio::time::Instant::now();
    let mut published = 0u64;
    let mut order_number = 10_000u64;
    let mut next_burst = started + traffic.order_burst_every / 3;
    let mut next_batch = started + traffic.batch_every / 2;
    let tick = Duration::from_secs_f64(1.0 / traffic.rate.max(0.1));
    let mut interval = tokio::time::interval(tick);
    loop {
        interval.tick().await;
        let now = tokio::time::Instant::now();
        if traffic.duration.is_some_and(|limit| now - started >= limit) {
            return Ok(published);
        }
        let event = background_event(&mut rng);
        published += send(redis, prefix, &[event]).await?;

        if now >= next_burst {
            let size = rng.random_range(3..=8);
            let orders: Vec<RealTimeEvent> = (0..size)
                .map(|_| {
                    order_number += 1;
                    order(&mut rng, order_number)
                })
                .collect();
            published += send(redis, prefix, &orders).await?;
            eprintln!("rakuda-sim: order burst: {size} orders");
            next_burst = now + traffic.order_burst_every;
        }
        if now >= next_batch {
            let events: Vec<RealTimeEvent> = (0..traffic.batch_size)
                .map(|i| stock_check(&mut rng, (i as u32) % PRODUCTS))
                .collect();
            published += send(redis, prefix, &events).await?;
            eprintln!(
                "rakuda-sim: batch job: {} inventory changes",
                traffic.batch_size
            );
            next_batch = now + traffic.batch_every;
        }
    }
}

async fn send(
    redis: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    events: &[RealTimeEvent],
) -> Result<u64, TrafficError> {
    let mut pipe = redis::pipe();
    for event in events {
        // Our own well-formed types always serialize.
        let json = serde_json::to_string(event).unwrap_or_default();
        pipe.cmd("PUBLISH")
            .arg(Channel::of(event.event_type).redis_channel(prefix))
            .arg(json)
            .ignore();
    }
    let () = pipe.query_async(redis).await?;
    Ok(events.len() as u64)
}

fn product(n: u32) -> String {
    format!("prod_{n:04}")
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn background_event(rng: &mut StdRng) -> RealTimeEvent {
    let id = rng.random_range(0..PRODUCTS);
    match rng.random_range(0..10) {
        0..=4 => stock_check(rng, id),
        5..=7 => {
            let old: f64 = rng.random_range(20.0..400.0);
            let new = (old * rng.random_range(0.9..1.1) * 100.0).round() / 100.0;
            RealTimeEvent::now(EventType::PriceChange, product(id), Action::Updated).with_data(
                object(json!({
                    "oldPrice": (old * 100.0).round() / 100.0,
                    "newPrice": new,
                    "currency": "USD",
                    "reason": if rng.random_bool(0.5) { "competitor" } else { "price-sync" },
                })),
            )
        }
        _ => {
            let status = ["ACTIVE", "PAUSED", "ENDED", "PENDING_REVIEW"][rng.random_range(0..4)];
            let action = if status == "ENDED" {
                Action::Deleted
            } else {
                Action::Updated
            };
            RealTimeEvent::now(EventType::ListingUpdate, format!("lst_{id:04}"), action).with_data(
                object(json!({
                    "status": status,
                    "marketplace": MARKETPLACES[rng.random_range(0..MARKETPLACES.len())],
                    "productId": product(id),
                })),
            )
        }
    }
}

fn stock_check(rng: &mut StdRng, id: u32) -> RealTimeEvent {
    let stock = if rng.random_bool(0.2) {
        0
    } else {
        rng.random_range(1..50)
    };
    RealTimeEvent::now(EventType::InventoryChange, product(id), Action::Updated).with_data(object(
        json!({
            "isAvailable": stock > 0,
            "stock": stock,
            "source": "inventory-checker",
        }),
    ))
}

fn order(rng: &mut StdRng, number: u64) -> RealTimeEvent {
    RealTimeEvent::now(
        EventType::OrderReceived,
        format!("ord_{number}"),
        Action::Created,
    )
    .with_data(object(json!({
        "marketplace": MARKETPLACES[rng.random_range(0..MARKETPLACES.len())],
        "productId": product(rng.random_range(0..PRODUCTS)),
        "quantity": rng.random_range(1..4),
        "total": (rng.random_range(15.0..600.0_f64) * 100.0).round() / 100.0,
        "currency": "USD",
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_event_passes_the_bridge_validation() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut events: Vec<RealTimeEvent> = (0..500).map(|_| background_event(&mut rng)).collect();
        events.push(order(&mut rng, 1));
        for event in events {
            let channel = Channel::of(event.event_type);
            let json = serde_json::to_vec(&event).expect("json");
            assert!(
                rakuda_schema::validate(channel.name, &json).is_ok(),
                "{}",
                String::from_utf8_lossy(&json)
            );
        }
    }
}
