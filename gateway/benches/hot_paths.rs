//! Micro-benchmarks of the gateway's hot paths (`cargo bench -p rakuda-gateway`): validating an
//! event, serializing a frame once for every connection, one debounce step, handing a frame
//! to 10,000 connection queues, and recording an event in the snapshot state. The end-to-end figures are `just bench`'s; these show where a
//! change moves the per-event and per-delivery costs.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rakuda_gateway::parts::{
    Cursor, Debouncer, Entries, Folded, GatewayMetrics, Hub, Latest, OutFrame, StreamEvent,
};
use rakuda_schema::{Action, Channel, EventType, RealTimeEvent, Validator};
use serde_json::{Map, Value};

/// A realistic event: an order with a few fields and some padding, about 350 bytes of JSON.
fn order(n: u64) -> RealTimeEvent {
    let mut data = Map::new();
    data.insert("marketplace".into(), Value::from("ebay"));
    data.insert("total".into(), Value::from(129.99));
    data.insert("currency".into(), Value::from("USD"));
    data.insert("sku".into(), Value::from(format!("SKU-{n:08}")));
    data.insert("note".into(), Value::from("x".repeat(160)));
    RealTimeEvent::now(
        EventType::OrderReceived,
        format!("ord_{n}"),
        Action::Created,
    )
    .with_data(data)
}

/// The order as the pipeline holds it, of `event_type` (only the type differs).
fn sequenced(n: u64, event_type: EventType) -> Arc<StreamEvent> {
    let mut event = order(n);
    event.event_type = event_type;
    let json = serde_json::to_vec(&event).expect("json");
    Arc::new(
        StreamEvent::parse(
            &Validator::default(),
            Channel::of(event_type),
            n,
            json.into(),
        )
        .expect("valid"),
    )
}

fn validate(c: &mut Criterion) {
    let validator = Validator::default();
    let json = serde_json::to_vec(&order(1)).expect("json");
    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("order_event", |b| {
        b.iter(|| validator.validate("orders", std::hint::black_box(&json)))
    });
    group.finish();
}

fn serialize_frame(c: &mut Criterion) {
    let cursor = Cursor {
        epoch: 1_795_366_240_958,
        seq: 1041,
    };
    let single = Folded::Single(sequenced(1041, EventType::OrderReceived));
    let mut group = c.benchmark_group("serialize_frame");
    group.bench_function("single_event_sse_and_ws", |b| {
        b.iter(|| OutFrame::encode(std::hint::black_box(&single), cursor))
    });
    group.finish();
}

fn debounce_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("debounce_step");
    // Sustained traffic of one type inside an open window: every push is held.
    group.bench_function("push_held_event", |b| {
        let now = tokio::time::Instant::now();
        b.iter_batched(
            || {
                let mut debouncer = Debouncer::new(Duration::from_millis(500), 1000);
                // Opens the window.
                let _ = debouncer.push(sequenced(0, EventType::InventoryChange), now);
                (debouncer, sequenced(1, EventType::InventoryChange))
            },
            |(mut debouncer, event)| {
                let _ = debouncer.push(event, now);
                debouncer
            },
            BatchSize::SmallInput,
        )
    });
    // Window end: 1,000 held events folded into one batch.
    group.bench_function("flush_1000_held_events", |b| {
        let now = tokio::time::Instant::now();
        b.iter_batched(
            || {
                let mut debouncer = Debouncer::new(Duration::from_millis(500), 1000);
                for n in 0..=1000 {
                    let _ = debouncer.push(sequenced(n, EventType::InventoryChange), now);
                }
                debouncer
            },
            |mut debouncer| debouncer.pop_due(now + Duration::from_secs(1)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    const CONNECTIONS: usize = 10_000;
    let hub = Hub::new(1024);
    hub.start(1, 0);
    let mut receivers: Vec<_> = (0..CONNECTIONS).map(|_| hub.tap().messages).collect();
    let cursor = Cursor { epoch: 1, seq: 1 };
    let frame = Folded::Single(sequenced(1, EventType::OrderReceived));
    let mut group = c.benchmark_group("fan_out");
    group.throughput(Throughput::Elements(CONNECTIONS as u64));
    // Publish one frame and let every connection queue take it: the per-delivery cost of the
    // hub without any socket.
    group.bench_function("one_frame_to_10k_queues", |b| {
        b.iter_batched(
            || OutFrame::encode(&frame, cursor),
            |out| {
                hub.publish(out);
                for receiver in &mut receivers {
                    let _ = std::hint::black_box(receiver.try_recv());
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// What the feed adds per event for snapshots: the event's JSON written into the entity's
/// buffer and its entry moved to its new position, in a state of 10,000 to 1,000,000 entities
/// (updates of known ones, as in steady state). Each event is as the pipeline has it, just
/// parsed (in cache), about an entity picked at random (its entry is not in cache).
fn latest_record(c: &mut Criterion) {
    const POOL: u64 = 1_024;
    let mut group = c.benchmark_group("latest");
    group.throughput(Throughput::Elements(1));
    for entities in [10_000u64, 100_000, 1_000_000] {
        let metrics = GatewayMetrics::new();
        let latest = Latest::new(metrics.history.clone());
        latest.start(1, 0);
        let subject = |n: u64| format!("rakuda.realtime.inventory.prod_{n}");
        for n in 0..entities {
            let event = sequenced(n + 1, EventType::InventoryChange);
            latest.record(&subject(n), event.seq, Some(&event));
        }
        // As after the fill: what the feed recorded is laid over it, nothing is journaled.
        let filled = latest.swap_in(1, Entries::new(None, 0));
        assert!(filled.is_ok(), "the fill is the current one");
        let pool: Vec<_> = (0..POOL)
            .map(|n| sequenced(entities + n, EventType::InventoryChange))
            .collect();
        let mut subject_of = String::new();
        let mut seq = entities;
        let mut entity = 0u64;
        group.bench_function(format!("record_update_of_{entities}_entities"), |b| {
            b.iter(|| {
                use std::fmt::Write;
                seq += 1;
                entity = (entity + 7_919) % entities;
                subject_of.clear();
                let _ = write!(subject_of, "rakuda.realtime.inventory.prod_{entity}");
                let event = &pool[(seq % POOL) as usize];
                latest.record(&subject_of, seq, Some(event));
            })
        });
    }
    group.finish();
}

criterion_group!(
    hot_paths,
    validate,
    serialize_frame,
    debounce_step,
    fan_out,
    latest_record
);
criterion_main!(hot_paths);
