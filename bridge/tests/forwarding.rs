//! Events published on Redis reach the stream: every type, in order, byte for byte; invalid
//! messages reach the DLQ with their reason; two bridges store each event once; a 10,000-event
//! burst gets through whole.

mod support;

use std::time::Instant;

use rakuda_schema::channel::{DLQ_SUBJECT, REJECT_REASON_HEADER};
use rakuda_schema::{EventType, RejectReason};
use support::*;

const TYPES: [EventType; 4] = EventType::CLIENT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_type_arrives_on_its_subject_byte_identical_and_in_order() {
    let backbone = Backbone::start();
    let bridge = start_bridge(backbone.config()).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;

    let mut sent = Vec::new();
    for round in 0..5 {
        for event_type in TYPES {
            let json = event_json(event_type, &format!("id_{round}_{event_type}"));
            publish(&mut redis, &redis_channel(event_type), &json).await;
            sent.push((event_type, format!("id_{round}_{event_type}"), json));
        }
    }

    let jetstream = backbone.jetstream().await;
    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", sent.len() as u64).await;
    let stored = read_stream(&jetstream, "RAKUDA_REALTIME").await;
    assert_eq!(stored.len(), sent.len());
    for ((event_type, id, json), message) in sent.iter().zip(&stored) {
        // One subject per entity of a state-like channel, one for all orders: the
        // latest-state stream keeps one message per subject.
        let subject = rakuda_schema::Channel::of(*event_type).event_subject(id);
        assert_eq!(message.subject.as_str(), subject);
        assert_eq!(
            message.payload.as_ref(),
            json.as_bytes(),
            "bytes must be identical"
        );
        assert!(message.headers.get("Nats-Msg-Id").is_some());
    }
    for channel in ["inventory", "orders", "pricing", "listings"] {
        bridge
            .wait_for_metric(
                &format!("bridge_events_forwarded_total{{channel=\"{channel}\"}}"),
                5.0,
            )
            .await;
    }
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reject_reason_lands_on_the_dlq_and_valid_events_still_pass() {
    let backbone = Backbone::start();
    let mut config = backbone.config();
    config.event_max_bytes = 4096;
    let bridge = start_bridge(config).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;

    let inventory = "rakuda:realtime:inventory";
    let ts = "2026-11-22T10:00:00.000Z";
    let cases: Vec<(RejectReason, &str, Vec<u8>)> = vec![
        (RejectReason::TooLarge, inventory, vec![b'x'; 5000]),
        (RejectReason::InvalidUtf8, inventory, vec![b'{', 0xc3, 0x28, b'}']),
        (RejectReason::InvalidJson, inventory, b"{\"type\":".to_vec()),
        (
            RejectReason::DuplicateKey,
            inventory,
            format!(r#"{{"type":"INVENTORY_CHANGE","type":"INVENTORY_CHANGE","payload":{{"id":"p","action":"updated"}},"timestamp":"{ts}"}}"#).into_bytes(),
        ),
        (
            RejectReason::UnknownChannel,
            "rakuda:realtime:warehouse",
            event_json(EventType::InventoryChange, "p").into_bytes(),
        ),
        (
            RejectReason::MissingField,
            inventory,
            format!(r#"{{"type":"INVENTORY_CHANGE","timestamp":"{ts}"}}"#).into_bytes(),
        ),
        (
            RejectReason::InvalidField,
            inventory,
            format!(r#"{{"type":"INVENTORY_CHANGE","payload":{{"id":7,"action":"updated"}},"timestamp":"{ts}"}}"#).into_bytes(),
        ),
        (
            RejectReason::UnknownType,
            inventory,
            format!(r#"{{"type":"STOCK_GONE","payload":{{"id":"p","action":"updated"}},"timestamp":"{ts}"}}"#).into_bytes(),
        ),
        (
            RejectReason::UnknownAction,
            inventory,
            format!(r#"{{"type":"INVENTORY_CHANGE","payload":{{"id":"p","action":"archived"}},"timestamp":"{ts}"}}"#).into_bytes(),
        ),
        (
            RejectReason::TypeChannelMismatch,
            "rakuda:realtime:orders",
            event_json(EventType::InventoryChange, "p").into_bytes(),
        ),
        (
            RejectReason::BadTimestamp,
            inventory,
            br#"{"type":"INVENTORY_CHANGE","payload":{"id":"p","action":"updated"},"timestamp":"last tuesday"}"#.to_vec(),
        ),
    ];
    // `stream_rejected` is JetStream's verdict on a valid event: tests/poison.rs.
    assert_eq!(
        cases.len(),
        RejectReason::ALL.len() - 1,
        "one case per validator reason"
    );

    let mut valid = Vec::new();
    for (index, (_, channel, bytes)) in cases.iter().enumerate() {
        publish(&mut redis, channel, bytes).await;
        // A valid event right behind each bad one must still get through.
        let json = event_json(EventType::OrderReceived, &format!("after_{index}"));
        publish(&mut redis, "rakuda:realtime:orders", &json).await;
        valid.push(json);
    }

    let jetstream = backbone.jetstream().await;
    wait_for_stream_len(&jetstream, "RAKUDA_DLQ", cases.len() as u64).await;
    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", valid.len() as u64).await;

    let dlq = read_stream(&jetstream, "RAKUDA_DLQ").await;
    for ((reason, channel, bytes), message) in cases.iter().zip(&dlq) {
        assert_eq!(message.subject.as_str(), DLQ_SUBJECT);
        assert_eq!(
            message
                .headers
                .get(REJECT_REASON_HEADER)
                .map(|v| v.as_str()),
            Some(reason.as_str())
        );
        assert_eq!(
            message
                .headers
                .get("Rakuda-Source-Channel")
                .map(|v| v.as_str()),
            Some(*channel)
        );
        if *reason == RejectReason::TooLarge {
            assert_eq!(
                message.payload.len(),
                4096,
                "oversized payload is truncated to the limit"
            );
        } else {
            assert_eq!(message.payload.as_ref(), bytes.as_slice());
        }
        bridge
            .wait_for_metric(
                &format!("bridge_events_rejected_total{{reason=\"{reason}\"}}"),
                1.0,
            )
            .await;
    }
    let events = read_stream(&jetstream, "RAKUDA_REALTIME").await;
    let payloads: Vec<&[u8]> = events.iter().map(|m| m.payload.as_ref()).collect();
    let expected: Vec<&[u8]> = valid.iter().map(|s| s.as_bytes()).collect();
    assert_eq!(payloads, expected);
    bridge
        .wait_for_metric("bridge_events_received_total", 2.0 * cases.len() as f64)
        .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_store_each_event_exactly_once() {
    let backbone = Backbone::start();
    // Started together: creating the stream concurrently must not fail either of them.
    let first = start_bridge(backbone.config()).await;
    let second = start_bridge(backbone.config()).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 2).await;

    let mut sent = Vec::new();
    for i in 0..200 {
        let event_type = TYPES[i % TYPES.len()];
        let json = event_json(event_type, &format!("ha_{i}"));
        publish(&mut redis, &redis_channel(event_type), &json).await;
        sent.push(json);
    }

    // Both bridges handled all 200; between them one stored each and the other was deduplicated.
    eventually("both bridges acked every event", || async {
        let handled = |text: String| {
            let forwarded: f64 = ["inventory", "orders", "pricing", "listings"]
                .iter()
                .filter_map(|c| {
                    sample_value(
                        &text,
                        &format!("bridge_events_forwarded_total{{channel=\"{c}\"}}"),
                    )
                })
                .sum();
            forwarded + sample_value(&text, "bridge_events_deduplicated_total").unwrap_or(0.0)
        };
        let total = handled(first.metrics().await) + handled(second.metrics().await);
        (total == 400.0).then_some(())
    })
    .await;

    let jetstream = backbone.jetstream().await;
    let stored = read_stream(&jetstream, "RAKUDA_REALTIME").await;
    let mut payloads: Vec<String> = stored
        .iter()
        .map(|m| String::from_utf8(m.payload.to_vec()).expect("utf-8"))
        .collect();
    assert_eq!(payloads.len(), 200, "each event stored exactly once");
    payloads.sort();
    sent.sort();
    assert_eq!(payloads, sent);
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_thousand_events_reaches_the_stream_whole() {
    const BURST: usize = 10_000;
    let backbone = Backbone::start();
    let bridge = start_bridge(backbone.config()).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;
    let jetstream = backbone.jetstream().await;
    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", 0).await;

    let events: Vec<(String, String)> = (0..BURST)
        .map(|i| {
            let event_type = TYPES[i % TYPES.len()];
            (
                redis_channel(event_type),
                event_json(event_type, &format!("burst_{i}")),
            )
        })
        .collect();

    let started = Instant::now();
    // As fast as Redis takes them: pipelined, no round trip per event.
    rakuda_testkit::redis_client::publish_all(&mut redis, &events).await;
    let published = started.elapsed();
    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", BURST as u64).await;
    let stored = started.elapsed();
    eprintln!(
        "burst: {BURST} events published in {published:?}, all stored after {stored:?} ({:.0} events/s end to end)",
        BURST as f64 / stored.as_secs_f64()
    );

    let messages = read_stream(&jetstream, "RAKUDA_REALTIME").await;
    assert_eq!(messages.len(), BURST);
    for ((_, json), message) in events.iter().zip(&messages) {
        assert_eq!(
            message.payload.as_ref(),
            json.as_bytes(),
            "order and bytes preserved"
        );
    }
    assert_eq!(bridge.metric("bridge_events_dropped_total").await, 0.0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_stream_keeps_the_last_event_of_every_entity() {
    let backbone = Backbone::start();
    let bridge = start_bridge(backbone.config()).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;
    let channel = redis_channel(EventType::InventoryChange);
    let mut last = std::collections::HashMap::new();
    for round in 0..3 {
        for id in ["p1", "p2", "odd id.with dots"] {
            let mut event = rakuda_schema::RealTimeEvent::now(
                EventType::InventoryChange,
                id,
                rakuda_schema::Action::Updated,
            );
            let mut data = serde_json::Map::new();
            data.insert("round".into(), serde_json::Value::from(round));
            event.payload.data = Some(data);
            let json = serde_json::to_string(&event).expect("json");
            publish(&mut redis, &channel, &json).await;
            last.insert(id, json);
        }
    }
    // Orders keep no latest state: however many, they take one place in the latest stream.
    let orders = redis_channel(EventType::OrderReceived);
    for n in 0..20 {
        publish(
            &mut redis,
            &orders,
            &event_json(EventType::OrderReceived, &format!("o{n}")),
        )
        .await;
    }
    let order_subject = rakuda_schema::Channel::of(EventType::OrderReceived).event_subject("o0");
    let jetstream = backbone.jetstream().await;
    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", 29).await;
    // JetStream copies each event into the latest stream, keeping one per subject. Besides
    // the three entities it holds the last order and the bridge's start-up source gap marker.
    let latest = eventually(
        "three entities and the last order in the latest stream",
        || async {
            let stored = read_whole_stream(&jetstream, "RAKUDA_REALTIME_LATEST").await;
            let (orders, stored): (Vec<_>, Vec<_>) = stored
                .into_iter()
                .partition(|message| message.subject.as_str() == order_subject);
            let (entities, other): (Vec<_>, Vec<_>) = stored.into_iter().partition(|message| {
                message.subject.as_str() != rakuda_schema::channel::SOURCE_GAP_SUBJECT
            });
            let last_order = orders.first().is_some_and(|order| {
                std::str::from_utf8(&order.payload).is_ok_and(|b| b.contains("\"o19\""))
            });
            (entities.len() == 3 && other.len() <= 1 && orders.len() == 1 && last_order)
                .then_some(entities)
        },
    )
    .await;
    for message in &latest {
        let body = std::str::from_utf8(&message.payload).expect("utf-8");
        assert!(
            body.contains("\"round\":2"),
            "the last event, not an older one: {body}"
        );
        assert!(
            last.values().any(|json| json == body),
            "byte for byte: {body}"
        );
    }
    bridge.stop().await;
}
