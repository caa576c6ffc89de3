//! Resume after a reconnect, on another instance: every missed event arrives, coalesced, and
//! nothing from before the cursor; cursors that cannot be honoured get `event: reset`.

use crate::support::*;
use rakuda_schema::EventType;

/// Connects with `Last-Event-ID: cursor` and skips the `retry:` record.
async fn resume(gateway: &RunningGateway, cursor: &str) -> SseClient {
    let mut client = SseClient::connect_with(
        &format!("{}/api/realtime/events", gateway.url),
        &[("X-API-Key", API_KEY), ("Last-Event-ID", cursor)],
    )
    .await;
    assert_eq!(client.status, 200);
    let retry = client.next().await.expect("retry record");
    assert!(retry.retry.is_some());
    client
}

async fn wait_for_watermark(gateway: &RunningGateway, seq: u64) {
    eventually(&format!("gateway watermark at {seq}"), || async {
        let (_, status) = get_json(gateway, "/api/realtime/status").await;
        (status["nats"]["stream"]["lastSequence"].as_u64() == Some(seq)).then_some(())
    })
    .await
}

/// Deletes the stream and publishes one event, which makes the bridge recreate it.
async fn recreate_stream(stack: &Stack, redis: &mut redis::aio::MultiplexedConnection) {
    let jetstream = stack.jetstream().await;
    jetstream
        .delete_stream("RAKUDA_REALTIME")
        .await
        .expect("delete the stream");
    // The bridge recreates the stream when its next publish fails.
    publish_all(redis, &burst(EventType::OrderReceived, 1, 1, "new")).await;
}

async fn epoch(gateway: &RunningGateway) -> u64 {
    let (_, status) = get_json(gateway, "/api/realtime/status").await;
    status["nats"]["stream"]["epoch"].as_u64().expect("epoch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_replays_every_missed_event_coalesced() {
    let stack = Stack::start().await;
    let first = start_gateway(stack.gateway_config()).await;
    let second = start_gateway(stack.gateway_config()).await;
    let mut redis = stack.redis_connection().await;

    let mut client = SseClient::connect(&format!("{}/api/realtime/events", first.url)).await;
    publish_all(
        &mut redis,
        &burst(EventType::OrderReceived, 10, 10, "before"),
    )
    .await;
    let seen = client
        .events_covering(&(BASE + 1..=BASE + 10).collect::<Vec<_>>())
        .await;
    let cursor = seen
        .iter()
        .rev()
        .find_map(|r| r.id.clone())
        .expect("a cursor");
    assert!(cursor.ends_with(&format!("-{}", BASE + 10)), "{cursor}");
    drop(client);

    // Missed while disconnected: 30 orders, 20 inventory changes over 5 products.
    publish_all(
        &mut redis,
        &burst(EventType::OrderReceived, 30, 30, "missed"),
    )
    .await;
    publish_all(
        &mut redis,
        &burst(EventType::InventoryChange, 20, 5, "prod"),
    )
    .await;
    wait_for_watermark(&second, BASE + 60).await;

    let mut resumed = resume(&second, &cursor).await;
    let orders = resumed.next_event().await.expect("replayed orders");
    let inventory = resumed.next_event().await.expect("replayed inventory");
    assert_eq!(orders.event.as_deref(), Some("ORDER_RECEIVED"));
    assert_eq!(orders.json()["count"], 30);
    assert_eq!(
        orders.seqs(),
        (BASE + 11..=BASE + 40).collect::<Vec<_>>(),
        "every missed order, none from before"
    );
    assert_eq!(inventory.event.as_deref(), Some("INVENTORY_CHANGE"));
    assert_eq!(inventory.json()["count"], 20);
    assert_eq!(
        inventory.seqs(),
        (BASE + 56..=BASE + 60).collect::<Vec<_>>(),
        "the latest state of each product"
    );
    assert!(
        orders.id.is_none(),
        "only the last replay frame moves the cursor"
    );
    assert_eq!(inventory.id_seq(), Some(BASE + 60));

    // Then live, with no gap.
    publish_all(&mut redis, &burst(EventType::ListingUpdate, 1, 1, "live")).await;
    let live = resumed.next_event().await.expect("live event");
    assert_eq!(live.seqs(), vec![BASE + 61]);
    second
        .wait_for_metric("gateway_replays_total{source=\"ring\"}", 1.0)
        .await;
    first.stop().await;
    second.stop().await;
}

/// An instance started after events were stored reads them into its ring: the clients it takes
/// over in a rolling deploy resume from memory, not each from JetStream with a consumer of its
/// own. Without the warm-up this resume is served from the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_later_resumes_from_before_its_start_out_of_its_ring() {
    let stack = Stack::start().await;
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, &burst(EventType::OrderReceived, 40, 40, "o")).await;
    wait_for_stream_seq(&stack.jetstream().await, BASE + 40).await;
    let gateway = start_gateway(stack.gateway_config()).await;
    wait_for_watermark(&gateway, BASE + 40).await;
    gateway
        .wait_for_metric("gateway_replay_ring_warmed_events_total", 40.0)
        .await;
    let epoch = epoch(&gateway).await;

    let mut resumed = resume(&gateway, &format!("{epoch}-{}", BASE + 10)).await;
    let replay = resumed.next_event().await.expect("replay");
    assert_eq!(replay.seqs(), (BASE + 11..=BASE + 40).collect::<Vec<_>>());
    gateway
        .wait_for_metric("gateway_replays_total{source=\"ring\"}", 1.0)
        .await;
    assert_eq!(
        gateway
            .metric("gateway_replays_total{source=\"stream\"}")
            .await,
        0.0,
        "served from the ring, not the stream"
    );
    // Then live, with no gap.
    publish_all(&mut redis, &burst(EventType::ListingUpdate, 1, 1, "live")).await;
    let live = resumed.next_event().await.expect("live event");
    assert_eq!(live.seqs(), vec![BASE + 41]);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_ring_is_served_from_the_stream() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.resume.replay_ring_capacity = 5;
    let gateway = start_gateway(config).await;
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, &burst(EventType::OrderReceived, 40, 40, "o")).await;
    wait_for_watermark(&gateway, BASE + 40).await;
    let epoch = epoch(&gateway).await;

    let mut resumed = resume(&gateway, &format!("{epoch}-{}", BASE + 10)).await;
    let replay = resumed.next_event().await.expect("replay");
    assert_eq!(replay.seqs(), (BASE + 11..=BASE + 40).collect::<Vec<_>>());
    gateway
        .wait_for_metric("gateway_replays_total{source=\"stream\"}", 1.0)
        .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_that_cannot_be_honoured_get_reset() {
    let stack = Stack::start_with(|bridge| bridge.stream_max_messages = 20).await;
    let mut config = stack.gateway_config();
    // A ring that still held them would rightly serve even events the stream dropped.
    config.resume.replay_ring_capacity = 5;
    let gateway = start_gateway(config).await;
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, &burst(EventType::PriceChange, 50, 50, "p")).await;
    wait_for_watermark(&gateway, BASE + 50).await;
    let epoch = epoch(&gateway).await;

    for (cursor, reason) in [
        (format!("{epoch}-5"), "cursor_expired"),
        (format!("{}-45", epoch + 1), "stream_recreated"),
        (format!("{epoch}-999999"), "cursor_ahead_of_stream"),
        ("not-a-cursor".to_owned(), "invalid_cursor"),
    ] {
        let mut client = resume(&gateway, &cursor).await;
        let reset = client.next_event().await.expect("reset");
        assert_eq!(reset.event.as_deref(), Some("reset"), "{cursor}");
        assert_eq!(reset.json()["reason"], reason, "{cursor}");
        // The reset moves the client to the present.
        assert_eq!(reset.id, Some(format!("{epoch}-{}", BASE + 50)));
    }
    gateway
        .wait_for_metric("gateway_replays_total{source=\"reset\"}", 4.0)
        .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_and_recreated_stream_resets_clients_and_old_cursors() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let mut redis = stack.redis_connection().await;
    let mut client = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    publish_all(&mut redis, &burst(EventType::OrderReceived, 5, 5, "old")).await;
    let seen = client
        .events_covering(&(BASE + 1..=BASE + 5).collect::<Vec<_>>())
        .await;
    let old_cursor = seen.last().and_then(|r| r.id.clone()).expect("cursor");

    recreate_stream(&stack, &mut redis).await;

    let reset = client.next_event().await.expect("reset");
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(reset.json()["reason"], "stream_recreated");
    assert_ne!(reset.id.as_deref(), Some(old_cursor.as_str()));

    let mut late = resume(&gateway, &old_cursor).await;
    let reset = late.next_event().await.expect("reset");
    assert_eq!(reset.json()["reason"], "stream_recreated");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connected_across_a_recreated_stream_gets_the_new_streams_events() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, &burst(EventType::OrderReceived, 5, 5, "old")).await;
    wait_for_watermark(&gateway, BASE + 5).await;
    // Connected at the old stream's seq 6: its sequences restart at 1 in the new stream.
    let mut client = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;

    recreate_stream(&stack, &mut redis).await;
    let reset = client.next_event().await.expect("reset");
    assert_eq!(reset.json()["reason"], "stream_recreated");

    publish_all(&mut redis, &burst(EventType::OrderReceived, 3, 3, "after")).await;
    let seen = client.events_covering(&[2, 3, 4]).await;
    let epoch = epoch(&gateway).await;
    assert_eq!(
        seen.last().and_then(|record| record.id.clone()),
        Some(format!("{epoch}-4")),
        "the cursor follows the new stream"
    );
    gateway.stop().await;
}
