//! The bridges' account of who was subscribed when: a gap marker in the stream whenever no
//! bridge was, exactly once, and never while another bridge covered.

mod support;

use std::time::Duration;

use async_nats::jetstream;
use rakuda_schema::{EventType, GapReason, SourceGap};
use support::*;

/// Gaps are found within a few beacons: quickly, in tests.
const BEACON: Duration = Duration::from_millis(100);

fn config(backbone: &Backbone) -> rakuda_bridge::Config {
    let mut config = backbone.config();
    config.bridge_beacon_interval = BEACON;
    config
}

/// The gap markers in the event stream, in order.
async fn markers(jetstream: &jetstream::Context) -> Vec<SourceGap> {
    if jetstream.get_stream("RAKUDA_REALTIME").await.is_err() {
        return Vec::new();
    }
    read_whole_stream(jetstream, "RAKUDA_REALTIME")
        .await
        .iter()
        .filter(|message| is_control(message))
        .map(|message| serde_json::from_slice(&message.payload).expect("a SourceGap"))
        .collect()
}

async fn wait_for_markers(jetstream: &jetstream::Context, n: usize) -> Vec<SourceGap> {
    eventually(&format!("{n} gap markers"), || async {
        let found = markers(jetstream).await;
        (found.len() == n).then_some(found)
    })
    .await
}

async fn wait_covering(bridge: &RunningBridge) {
    eventually("the bridge stores what it reads", || async {
        (bridge.metric("bridge_stored_through_beacon").await > 0.0).then_some(())
    })
    .await;
}

/// Nothing is left for the bridges' registry to decide, and every marker due is in the stream.
async fn wait_until_decided(backbone: &Backbone) {
    let redis = backbone.redis().await;
    rakuda_testkit::redis_client::wait_coverage_decided(&redis, "rakuda:realtime:bridges").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_bridge_marks_a_start_and_a_second_one_does_not() {
    let backbone = Backbone::start();
    let first = start_bridge(config(&backbone)).await;
    let jetstream = backbone.jetstream().await;
    let found = wait_for_markers(&jetstream, 1).await;
    assert_eq!(found[0].reason, GapReason::Start);
    first
        .wait_for_metric("bridge_source_gaps_total{reason=\"start\"}", 1.0)
        .await;

    let second = start_bridge(config(&backbone)).await;
    wait_covering(&second).await;
    wait_until_decided(&backbone).await;
    assert_eq!(
        markers(&jetstream).await.len(),
        1,
        "a second bridge adds none"
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_bridge_restarted_marks_one_gap_once_it_is_back() {
    let backbone = Backbone::start();
    let bridge = start_bridge(config(&backbone)).await;
    let jetstream = backbone.jetstream().await;
    wait_for_markers(&jetstream, 1).await;
    wait_covering(&bridge).await;
    bridge.stop().await;
    // Nobody is subscribed: no marker yet, since the gap has not ended (and no bridge runs that
    // could write one: the stopped one has returned).
    assert_eq!(markers(&jetstream).await.len(), 1);

    let mut redis = backbone.redis().await;
    publish(
        &mut redis,
        "rakuda:realtime:orders",
        event_json(EventType::OrderReceived, "lost"),
    )
    .await;
    let bridge = start_bridge(config(&backbone)).await;
    let found = wait_for_markers(&jetstream, 2).await;
    assert_eq!(found[1].reason, GapReason::Departed);
    wait_until_decided(&backbone).await;
    assert_eq!(markers(&jetstream).await.len(), 2, "marked once");
    bridge
        .wait_for_metric("bridge_source_gaps_total{reason=\"departed\"}", 1.0)
        .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_stopping_while_another_stays_leaves_no_gap() {
    let backbone = Backbone::start();
    let staying = start_bridge(config(&backbone)).await;
    let jetstream = backbone.jetstream().await;
    wait_for_markers(&jetstream, 1).await;
    let leaving = start_bridge(config(&backbone)).await;
    wait_covering(&staying).await;
    wait_covering(&leaving).await;
    leaving.stop().await;
    let back = start_bridge(config(&backbone)).await;
    wait_covering(&back).await;
    wait_until_decided(&backbone).await;
    assert_eq!(markers(&jetstream).await.len(), 1, "only the first start");
    staying.stop().await;
    back.stop().await;
}

/// A 4 MB message passes the subscriber's output buffer limit: Redis closes the bridge's
/// subscription, the bridge counts it, resubscribes, and (being alone) marks the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cutting_the_subscription_is_counted_and_marked() {
    let backbone = Backbone {
        redis: rakuda_testkit::RedisServer::start_with(&[
            "--client-output-buffer-limit",
            "pubsub 1mb 256kb 1",
        ])
        .expect("redis"),
        nats: rakuda_testkit::NatsServer::start().expect("nats"),
    };
    let bridge = start_bridge(config(&backbone)).await;
    let jetstream = backbone.jetstream().await;
    wait_for_markers(&jetstream, 1).await;
    wait_covering(&bridge).await;

    let mut redis = backbone.redis().await;
    publish(&mut redis, "rakuda:realtime:orders", vec![b'x'; 4 << 20]).await;
    bridge
        .wait_for_metric(
            "bridge_subscriptions_ended_total{reason=\"connection_closed\"}",
            1.0,
        )
        .await;
    let found = wait_for_markers(&jetstream, 2).await;
    assert_eq!(found[1].reason, GapReason::Departed);
    bridge.stop().await;
}

/// NATS frozen, the publish queue fills and a message is dropped: that is a gap too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_dropped_on_a_full_queue_is_marked() {
    let backbone = Backbone::start();
    let mut config = config(&backbone);
    config.bridge_queue_capacity = 4;
    config.bridge_max_in_flight = 1;
    let bridge = start_bridge(config).await;
    let jetstream = backbone.jetstream().await;
    wait_for_markers(&jetstream, 1).await;
    wait_covering(&bridge).await;

    backbone.nats.freeze().expect("SIGSTOP nats");
    let mut redis = backbone.redis().await;
    // One in flight, four queued, the rest wait 2 s each for room and are dropped.
    for i in 0..7 {
        let json = event_json(EventType::OrderReceived, &format!("o{i}"));
        publish(&mut redis, "rakuda:realtime:orders", &json).await;
    }
    eventually("a message dropped on the full queue", || async {
        (bridge
            .metric("bridge_subscriptions_ended_total{reason=\"queue_full\"}")
            .await
            >= 1.0)
            .then_some(())
    })
    .await;
    backbone.nats.thaw().expect("SIGCONT nats");
    let found = wait_for_markers(&jetstream, 2).await;
    assert_eq!(found[1].reason, GapReason::Departed);
    assert!(bridge.metric("bridge_events_dropped_total").await >= 1.0);
    bridge.stop().await;
}

/// Redis restarted from an older RDB file keeps the registry's chain with its beacon counter
/// rewound: the numbers the bridge read after the snapshot come round again, and its ended
/// subscription must not pass for covered by a new one that reads them. It is a gap, said as
/// such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_from_an_older_snapshot_is_marked() {
    let mut backbone = Backbone::start();
    let bridge = start_bridge(config(&backbone)).await;
    let jetstream = backbone.jetstream().await;
    wait_for_markers(&jetstream, 1).await;
    wait_covering(&bridge).await;

    let snapshot = backbone.redis.snapshot().expect("SAVE a snapshot");
    let saved = bridge.metric("bridge_stored_through_beacon").await;
    // Well past the snapshot, so the rewound counter numbers beacons the bridge already read.
    let before = eventually("the bridge stores past the snapshot", || async {
        let stored = bridge.metric("bridge_stored_through_beacon").await;
        (stored >= saved + 20.0).then_some(stored)
    })
    .await;
    let mut redis = backbone.redis().await;
    publish(
        &mut redis,
        "rakuda:realtime:orders",
        event_json(EventType::OrderReceived, "after the snapshot"),
    )
    .await;
    backbone
        .redis
        .restart_from(&snapshot)
        .expect("restart redis from the snapshot");

    let found = wait_for_markers(&jetstream, 2).await;
    assert_eq!(
        found[1].reason,
        GapReason::RedisRestarted,
        "the bridge had stored through beacon {before} before the restart"
    );
    bridge
        .wait_for_metric("bridge_source_gaps_total{reason=\"redis_restarted\"}", 1.0)
        .await;
    wait_until_decided(&backbone).await;
    assert_eq!(markers(&jetstream).await.len(), 2, "marked once");
    bridge.stop().await;
}
