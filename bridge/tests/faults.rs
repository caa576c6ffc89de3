//! The bridge survives its servers dying: it reconnects by itself and forwards what comes next.

mod support;

use rakuda_schema::EventType;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_the_bridge_resubscribes() {
    let mut backbone = Backbone::start();
    let bridge = start_bridge(backbone.config()).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;
    bridge.wait_for_metric("bridge_redis_connected", 1.0).await;

    let before = event_json(EventType::OrderReceived, "before");
    publish(&mut redis, "rakuda:realtime:orders", &before).await;
    // Redis pub/sub keeps nothing: killed before the bridge has read the message off its socket,
    // the message is gone. Only kill once it arrived (a loaded machine is slow to read it).
    bridge
        .wait_for_metric("bridge_events_received_total", 1.0)
        .await;

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
    let bridge = start_bridge(backbone.config()).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_pings_keep_a_quiet_subscription_up() {
    let backbone = Backbone::start();
    let mut config = backbone.config();
    // Not shorter: a reply later than one interval counts as a dead connection, and a test
    // machine running the whole suite can stall a process for 100 ms.
    config.redis_keepalive = std::time::Duration::from_millis(250);
    let bridge = start_bridge(config).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;

    // Six keepalive rounds with no traffic (counted by Redis, not guessed from the clock): the
    // subscription must stay as it was.
    let pings = || {
        let mut redis = redis.clone();
        async move {
            let stats: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut redis)
                .await
                .ok()?;
            // `cmdstat_ping:calls=7,usec=...`
            let line = stats
                .lines()
                .find(|line| line.starts_with("cmdstat_ping:"))?;
            line.split_once("calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        }
    };
    let before = pings().await.unwrap_or(0);
    eventually("six keepalive pings", || async {
        (pings().await? >= before + 6).then_some(())
    })
    .await;
    assert_eq!(bridge.metric("bridge_redis_connected").await, 1.0);
    assert_eq!(bridge.metric("bridge_redis_reconnects_total").await, 0.0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_is_noticed_and_the_bridge_recovers_when_it_thaws() {
    let backbone = Backbone::start();
    let mut config = backbone.config();
    config.redis_keepalive = std::time::Duration::from_millis(200);
    let bridge = start_bridge(config).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;
    bridge.wait_for_metric("bridge_redis_connected", 1.0).await;

    // SIGSTOP: the socket stays open but nothing answers; only the keepalive can tell.
    backbone.redis.freeze().expect("SIGSTOP redis");
    bridge.wait_for_metric("bridge_redis_connected", 0.0).await;
    backbone.redis.thaw().expect("SIGCONT redis");
    bridge.wait_for_metric("bridge_redis_connected", 1.0).await;

    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;
    let json = event_json(EventType::InventoryChange, "after_thaw");
    publish(&mut redis, "rakuda:realtime:inventory", &json).await;
    let jetstream = backbone.jetstream().await;
    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", 1).await;
    bridge.stop().await;
}

/// NATS gone when the bridge is told to stop: every step of the drain that waits on NATS (the
/// in-flight acks, the final flush) gives up at its deadline, and the bridge exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_gone_at_shutdown_the_bridge_still_exits() {
    let mut backbone = Backbone::start();
    let mut config = backbone.config();
    config.bridge_drain_timeout = std::time::Duration::from_millis(500);
    let bridge = start_bridge(config).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;
    bridge.wait_for_metric("bridge_nats_connected", 1.0).await;
    let json = event_json(EventType::PriceChange, "stored");
    publish(&mut redis, "rakuda:realtime:pricing", &json).await;
    {
        let jetstream = backbone.jetstream().await;
        wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", 1).await;
    }

    backbone.nats.stop();
    bridge.wait_for_metric("bridge_nats_connected", 0.0).await;
    // Read from Redis but never acknowledged: the publisher is still retrying it at shutdown.
    let json = event_json(EventType::PriceChange, "unacknowledged");
    publish(&mut redis, "rakuda:realtime:pricing", &json).await;
    bridge
        .wait_for_metric("bridge_events_received_total", 2.0)
        .await;

    // `stop` waits at most the test kit's bound: a drain step without a deadline never ends.
    bridge.stop().await;
}
