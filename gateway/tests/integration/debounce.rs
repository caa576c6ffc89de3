//! Debounce on the wire: the first event of a type at once, the rest of the window as one
//! batch; latest-per-id for state-like types, every order kept; window 0 passes all singly;
//! types never wait for each other.

use std::time::Instant;

use crate::support::*;
use rakuda_schema::EventType;

/// Long enough that a pipelined burst lands inside one window even on a loaded machine.
const WINDOW_MS: u64 = 3000;

async fn setup(window_ms: u64) -> (Stack, RunningGateway, SseClient) {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.sse_debounce_window = window_ms;
    config.streams.sse_heartbeat_interval = 600_000;
    let gateway = start_gateway(config).await;
    let mut client = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    let _retry = client.next().await.expect("retry record");
    (stack, gateway, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_event_does_not_wait_for_the_window() {
    let (stack, gateway, mut client) = setup(WINDOW_MS).await;
    let mut redis = stack.redis_connection().await;
    let started = Instant::now();
    publish_event(&mut redis, EventType::InventoryChange, "p1").await;
    let record = client.next_event().await.expect("event");
    assert!(!record.is_batch());
    assert!(
        started.elapsed().as_millis() < u128::from(WINDOW_MS) / 2,
        "an isolated event must not be held for the {WINDOW_MS} ms window (took {:?})",
        started.elapsed()
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_in_one_window_are_the_leading_event_plus_one_batch_of_999() {
    let (stack, gateway, mut client) = setup(WINDOW_MS).await;
    let mut redis = stack.redis_connection().await;
    publish_all(
        &mut redis,
        &burst(EventType::InventoryChange, 1000, 1000, "p"),
    )
    .await;

    let leading = client.next_event().await.expect("leading event");
    assert!(!leading.is_batch());
    assert_eq!(leading.seqs(), vec![BASE + 1]);
    let batch = client.next_event().await.expect("batch");
    assert!(batch.is_batch());
    let json = batch.json();
    assert_eq!(json["type"], "INVENTORY_CHANGE");
    assert_eq!(json["count"], 999);
    assert_eq!(batch.seqs(), (BASE + 2..=BASE + 1000).collect::<Vec<_>>());
    assert_eq!(
        batch.id_seq(),
        Some(BASE + 1000),
        "the cursor covers the whole batch"
    );
    gateway
        .wait_for_metric(
            "gateway_events_coalesced_total{type=\"INVENTORY_CHANGE\"}",
            999.0,
        )
        .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_over_ten_products_fold_to_the_latest_of_each() {
    let (stack, gateway, mut client) = setup(WINDOW_MS).await;
    let mut redis = stack.redis_connection().await;
    let events = burst(EventType::PriceChange, 1000, 10, "prod");
    publish_all(&mut redis, &events).await;

    let _leading = client.next_event().await.expect("leading event");
    let batch = client.next_event().await.expect("batch");
    let json = batch.json();
    assert_eq!(json["count"], 999);
    let listed = json["events"].as_array().expect("events");
    assert_eq!(listed.len(), 10, "one event per product id");
    // The latest of each id: events 991..=1000.
    assert_eq!(batch.seqs(), (BASE + 991..=BASE + 1000).collect::<Vec<_>>());
    for event in listed {
        let seq = event["seq"].as_u64().expect("seq") - BASE;
        let sent: serde_json::Value =
            serde_json::from_str(&events[seq as usize - 1].1).expect("json");
        assert_eq!(event["payload"], sent["payload"]);
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_in_a_window_is_kept() {
    let (stack, gateway, mut client) = setup(WINDOW_MS).await;
    let mut redis = stack.redis_connection().await;
    publish_all(
        &mut redis,
        &burst(EventType::OrderReceived, 300, 1, "same_order_id"),
    )
    .await;
    let records = client
        .events_covering(&(BASE + 1..=BASE + 300).collect::<Vec<_>>())
        .await;
    assert_eq!(records.len(), 2, "leading event and one batch");
    assert_eq!(records[1].json()["count"], 299);
    assert_eq!(records[1].seqs().len(), 299);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_zero_passes_every_event_through_singly() {
    let (stack, gateway, mut client) = setup(0).await;
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, &burst(EventType::ListingUpdate, 200, 5, "l")).await;
    let expected: Vec<u64> = (BASE + 1..=BASE + 200).collect();
    let records = client.events_covering(&expected).await;
    assert_eq!(records.len(), 200);
    assert!(records.iter().all(|r| !r.is_batch()));
    let seqs: Vec<u64> = records.iter().flat_map(|r| r.seqs()).collect();
    assert_eq!(seqs, expected, "in order");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_do_not_wait_for_each_other_and_the_cursor_stays_honest() {
    let (stack, gateway, mut client) = setup(WINDOW_MS).await;
    let mut redis = stack.redis_connection().await;
    // Two inventory events: the second is held for the window.
    publish_all(&mut redis, &burst(EventType::InventoryChange, 2, 2, "p")).await;
    let leading = client.next_event().await.expect("leading inventory event");
    assert_eq!(leading.seqs(), vec![BASE + 1]);
    let jetstream = stack.jetstream().await;
    wait_for_stream_seq(&jetstream, BASE + 2).await;

    let started = Instant::now();
    publish_event(&mut redis, EventType::OrderReceived, "o1").await;
    let order = client.next_event().await.expect("order");
    assert_eq!(order.event.as_deref(), Some("ORDER_RECEIVED"));
    assert!(
        started.elapsed().as_millis() < u128::from(WINDOW_MS) / 2,
        "the order did not wait for inventory"
    );
    // Inventory event 2 is still held, so the order's cursor must not claim it.
    assert_eq!(order.seqs(), vec![BASE + 3]);
    assert_eq!(order.id_seq(), Some(BASE + 1));

    let batch = client.next_event().await.expect("inventory batch");
    assert!(batch.is_batch());
    assert_eq!(batch.seqs(), vec![BASE + 2]);
    assert_eq!(
        batch.id_seq(),
        Some(BASE + 3),
        "once flushed, the cursor covers everything"
    );
    gateway.stop().await;
}
