//! No message can stop the bridge: an event JetStream will not store goes to the DLQ with the
//! server's reason, and every event behind it is stored at once, once, in order.

mod support;

use std::time::Duration;

use rakuda_schema::channel::{DLQ_SUBJECT, REJECT_REASON_HEADER};
use rakuda_schema::{Action, EventType, RealTimeEvent};
use support::*;

const ORDERS: &str = "rakuda:realtime:orders";
/// Short, so the test can wait past it and see that nothing was stored a second time.
const DUPLICATE_WINDOW: Duration = Duration::from_millis(500);

/// An ORDER_RECEIVED of exactly `size` bytes.
fn order_of_size(id: &str, size: usize) -> String {
    let mut data = serde_json::Map::new();
    data.insert("pad".into(), "".into());
    let bare = serde_json::to_string(
        &RealTimeEvent::now(EventType::OrderReceived, id, Action::Created).with_data(data),
    )
    .expect("json");
    assert!(
        bare.len() <= size,
        "{id}: {} bytes before padding",
        bare.len()
    );
    bare.replacen(
        "\"pad\":\"\"",
        &format!("\"pad\":\"{}\"", "x".repeat(size - bare.len())),
        1,
    )
}

/// `count` small orders tagged `tag`.
fn normal_orders(tag: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| event_json(EventType::OrderReceived, &format!("{tag}_{i}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_at_the_size_limit_are_stored_and_one_byte_over_goes_to_the_dlq() {
    const LIMIT: usize = 4096;
    let backbone = Backbone::start();
    let mut config = backbone.config();
    config.event_max_bytes = LIMIT;
    config.stream_duplicate_window = DUPLICATE_WINDOW;
    let bridge = start_bridge(config).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;

    let mut stored = Vec::new();
    let mut oversized = String::new();
    for (name, size) in [("below", LIMIT - 1), ("at", LIMIT), ("over", LIMIT + 1)] {
        let big = order_of_size(name, size);
        assert_eq!(big.len(), size);
        publish(&mut redis, ORDERS, &big).await;
        if size <= LIMIT {
            stored.push(big);
        } else {
            oversized = big;
        }
        for normal in normal_orders(name, 5) {
            publish(&mut redis, ORDERS, &normal).await;
            stored.push(normal);
        }
    }

    let jetstream = backbone.jetstream().await;
    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", stored.len() as u64).await;
    wait_for_stream_len(&jetstream, "RAKUDA_DLQ", 1).await;
    let dlq = read_stream(&jetstream, "RAKUDA_DLQ").await;
    assert_eq!(
        dlq[0].headers.get(REJECT_REASON_HEADER).map(|v| v.as_str()),
        Some("too_large")
    );
    assert_eq!(dlq[0].payload.as_ref(), &oversized.as_bytes()[..LIMIT]);

    // Past the duplicate window, a retried publish would be stored again: nothing may be. The
    // wait is the test (a retry would land in it), not a way to let something finish.
    tokio::time::sleep(DUPLICATE_WINDOW * 4).await;
    let last = event_json(EventType::OrderReceived, "last");
    publish(&mut redis, ORDERS, &last).await;
    stored.push(last);
    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", stored.len() as u64).await;
    let events = read_stream(&jetstream, "RAKUDA_REALTIME").await;
    let payloads: Vec<&[u8]> = events.iter().map(|m| m.payload.as_ref()).collect();
    let expected: Vec<&[u8]> = stored.iter().map(|s| s.as_bytes()).collect();
    assert_eq!(payloads, expected, "every event once, in order");
    assert_eq!(bridge.metric("bridge_publish_retries_total").await, 0.0);
    bridge.stop().await;
}

/// The stream's limit was lowered behind the bridge's back (an operator, another version): a
/// valid event JetStream refuses goes to the DLQ as `stream_rejected` with the server's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_stream_refuses_goes_to_the_dlq_and_the_rest_flow_at_once() {
    let backbone = Backbone::start();
    let mut config = backbone.config();
    config.stream_duplicate_window = DUPLICATE_WINDOW;
    let bridge = start_bridge(config).await;
    let mut redis = backbone.redis().await;
    wait_for_subscribers(&mut redis, 1).await;
    let jetstream = backbone.jetstream().await;
    eventually("the bridge created the stream", || async {
        jetstream
            .get_stream("RAKUDA_REALTIME")
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let mut stream_config = jetstream
        .get_stream("RAKUDA_REALTIME")
        .await
        .expect("stream")
        .cached_info()
        .config
        .clone();
    stream_config.max_message_size = 1000;
    jetstream
        .update_stream(stream_config)
        .await
        .expect("lower the stream's max_message_size");

    let refused = order_of_size("refused", 2000);
    publish(&mut redis, ORDERS, &refused).await;
    let mut stored = normal_orders("behind", 20);
    for normal in &stored {
        publish(&mut redis, ORDERS, normal).await;
    }

    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", stored.len() as u64).await;
    wait_for_stream_len(&jetstream, "RAKUDA_DLQ", 1).await;
    let dlq = read_stream(&jetstream, "RAKUDA_DLQ").await;
    assert_eq!(dlq[0].subject.as_str(), DLQ_SUBJECT);
    assert_eq!(
        dlq[0].headers.get(REJECT_REASON_HEADER).map(|v| v.as_str()),
        Some("stream_rejected")
    );
    let message = dlq[0]
        .headers
        .get("Rakuda-Reject-Message")
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    assert!(
        message.contains("message size exceeds maximum allowed"),
        "{message}"
    );
    assert_eq!(dlq[0].payload.as_ref(), refused.as_bytes());
    bridge
        .wait_for_metric(
            "bridge_events_rejected_total{reason=\"stream_rejected\"}",
            1.0,
        )
        .await;

    // As above: a retried publish would be stored again past the duplicate window.
    tokio::time::sleep(DUPLICATE_WINDOW * 4).await;
    let last = event_json(EventType::OrderReceived, "last");
    publish(&mut redis, ORDERS, &last).await;
    stored.push(last);
    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", stored.len() as u64).await;
    let events = read_stream(&jetstream, "RAKUDA_REALTIME").await;
    let payloads: Vec<&[u8]> = events.iter().map(|m| m.payload.as_ref()).collect();
    let expected: Vec<&[u8]> = stored.iter().map(|s| s.as_bytes()).collect();
    assert_eq!(payloads, expected, "every event once, in order");
    assert_eq!(bridge.metric("bridge_publish_retries_total").await, 0.0);
    bridge.stop().await;
}
