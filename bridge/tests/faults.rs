//! The bridge survives its servers dying: it reconnects by itself and forwards what comes next.

mod support;

use rakuda_schema::EventType;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_the_bridge_resubscribes() {
    let mut backbone = Backbone::start();
    let bridge = RunningBridge::start(backbone.config()).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;
    bridge.wait_for_metric("bridge_redis_connected", 1.0).await;

    let before = event_json(EventType::OrderReceived, "before");
    publish(&mut redis, "rakuda:realtime:orders", &before).await;

    backbone.redis.stop();
    bridge.wait_for_metric("bridge_redis_connected", 0.0).await;
    backbone.redis.restart().expect("restart redis");
    bridge.wait_for_metric("bridge_redis_connected", 1.0).await;
    bridge
        .wait_for_metric("bridge_redis_reconnects_total", 1.0)
        .await;

    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;
    let after = event_json(EventType::OrderReceived, "after");
    publish(&mut redis, "rakuda:realtime:orders", &after).await;

    let jetstream = backbone.jetstream().await;
    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", 2).await;
    let stored = read_stream(&jetstream, "RAKUDA_REALTIME").await;
    assert_eq!(stored[0].payload.as_ref(), before.as_bytes());
    assert_eq!(stored[1].payload.as_ref(), after.as_bytes());
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_restarted_nothing_crashes_and_events_flow_again() {
    let mut backbone = Backbone::start();
    let bridge = RunningBridge::start(backbone.config()).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;
    bridge.wait_for_metric("bridge_nats_connected", 1.0).await;

    let mut sent = Vec::new();
    for i in 0..20 {
        let json = event_json(EventType::PriceChange, &format!("before_{i}"));
        publish(&mut redis, "rakuda:realtime:pricing", &json).await;
        sent.push(json);
    }
    {
        let jetstream = backbone.jetstream().await;
        wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", 20).await;
    }

    backbone.nats.stop();
    bridge.wait_for_metric("bridge_nats_connected", 0.0).await;
    // Published while NATS is down: held in the bridge's queue and retried, not lost.
    for i in 0..20 {
        let json = event_json(EventType::PriceChange, &format!("during_{i}"));
        publish(&mut redis, "rakuda:realtime:pricing", &json).await;
        sent.push(json);
    }
    backbone
        .nats
        .restart()
        .expect("restart nats with its store");
    bridge.wait_for_metric("bridge_nats_connected", 1.0).await;
    for i in 0..20 {
        let json = event_json(EventType::PriceChange, &format!("after_{i}"));
        publish(&mut redis, "rakuda:realtime:pricing", &json).await;
        sent.push(json);
    }

    let jetstream = backbone.jetstream().await;
    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", sent.len() as u64).await;
    let stored = read_stream(&jetstream, "RAKUDA_REALTIME").await;
    let payloads: Vec<&[u8]> = stored.iter().map(|m| m.payload.as_ref()).collect();
    let expected: Vec<&[u8]> = sent.iter().map(|s| s.as_bytes()).collect();
    assert_eq!(payloads, expected, "nothing lost, duplicated or reordered");
    bridge.stop().await;
}
