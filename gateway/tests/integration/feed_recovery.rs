//! The feed recovers from every outage as quickly as from the first: after a NATS restart it
//! reads again as soon as the client reconnects, and its retry delay starts short again once it
//! reads the stream.

use std::time::{Duration, Instant};

use crate::support::*;
use rakuda_schema::EventType;

/// Long enough for several failed attempts, so a retry delay that is never reset grows to its
/// cap (5 s) by the third outage.
const OUTAGE: Duration = Duration::from_secs(3);
/// How long the stream stays away once the feed noticed: about four failed attempts, so a reset
/// delay is still at most 1.6 s when it comes back, while one never reset is at its 5 s cap.
const STREAM_OUTAGE: Duration = Duration::from_secs(1);

/// Reads until the event with payload id `id` arrives; skips everything else (resets included).
async fn until_event(client: &mut SseClient, id: &str) {
    loop {
        let record = client.next_event().await.expect("the stream stays open");
        if record.event.as_deref() != Some("reset") && record.json()["payload"]["id"] == id {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_third_nats_outage_is_recovered_from_as_quickly_as_the_first() {
    let mut stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.sse_debounce_window = 0;
    let gateway = start_gateway(config).await;
    let mut client = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    let mut redis = stack.redis_connection().await;

    let mut recoveries = Vec::new();
    for outage in 0..3 {
        stack.nats.stop();
        gateway.wait_for_metric("gateway_nats_connected", 0.0).await;
        // The outage itself, the thing under test: its length is what grows a retry delay.
        tokio::time::sleep(OUTAGE).await;
        stack.nats.restart().expect("restart nats");
        let back = Instant::now();
        // Published once NATS is back; the bridge stores it within about a second (its client
        // reconnects), so what differs between outages is how soon the gateway reads again.
        let id = format!("after_{outage}");
        publish_event(&mut redis, EventType::OrderReceived, &id).await;
        until_event(&mut client, &id).await;
        recoveries.push(back.elapsed());
    }
    // The restarted server had lost the ordered consumer, and the feed noticed only when its
    // stall check fired, seconds later, and later still as its retry delay grew.
    assert!(
        recoveries[2] <= recoveries[0] + Duration::from_millis(1500),
        "recoveries took {recoveries:?}"
    );
    gateway.stop().await;
}

/// The stream itself goes away three times (deleted; the bridge recreates it on its next
/// publish): each time the feed fails until it is back, and each recovery (the clients' `reset`
/// for the new stream) takes what the first took, because a successful read resets the retry
/// delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_third_stream_outage_is_recovered_from_as_quickly_as_the_first() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.sse_debounce_window = 0;
    let gateway = start_gateway(config).await;
    let mut client = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    let mut redis = stack.redis_connection().await;
    let jetstream = stack.jetstream().await;

    let mut recoveries = Vec::new();
    for outage in 0..3 {
        let failures = gateway.metric("gateway_feed_failures_total").await;
        jetstream
            .delete_stream("RAKUDA_REALTIME")
            .await
            .expect("delete the stream");
        eventually("the feed noticed the stream is gone", || async {
            (gateway.metric("gateway_feed_failures_total").await > failures).then_some(())
        })
        .await;
        // The outage itself, the thing under test (see STREAM_OUTAGE).
        tokio::time::sleep(STREAM_OUTAGE).await;
        let back = Instant::now();
        publish_event(
            &mut redis,
            EventType::OrderReceived,
            &format!("new_{outage}"),
        )
        .await;
        // Only a `source_gap` reset may come before it (both make the client refetch); once, on a
        // loaded machine, something else came first, so the assertion names what it was.
        loop {
            let record = client.next_event().await.expect("reset");
            let reason = record.json()["reason"].clone();
            if record.event.as_deref() == Some("reset") && reason == "stream_recreated" {
                break;
            }
            assert!(
                record.event.as_deref() == Some("reset") && reason == "source_gap",
                "before the stream_recreated reset, outage {outage}: {:?} {}",
                record.event,
                record.data
            );
        }
        recoveries.push(back.elapsed());
    }
    assert!(
        recoveries[2] <= recoveries[0] + Duration::from_millis(1500),
        "recoveries took {recoveries:?}"
    );
    gateway.stop().await;
}
