//! `/stats` reports the very values `/metrics` exports; `/status` follows connections.

use crate::support::*;
use rakuda_schema::EventType;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_agree_with_metrics_and_status_tracks_connections() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.sse_debounce_window = 2000;
    config.fleet.gateway_instance_id = Some("gw-stats".into());
    let gateway = start_gateway(config).await;
    let url = format!("{}/api/realtime/events", gateway.url);

    let (_, status) = get_json(&gateway, "/api/realtime/status").await;
    assert_eq!(status["instance"], "gw-stats");
    assert_eq!(status["enabled"], true);
    assert_eq!(status["connections"]["sse"], 0);
    assert_eq!(status["settings"]["debounceWindowMs"], 2000);
    assert_eq!(status["nats"]["connected"], true);

    let mut first = SseClient::connect(&url).await;
    let mut second = SseClient::connect(&url).await;
    eventually("status shows 2 connections", || async {
        let (_, status) = get_json(&gateway, "/api/realtime/status").await;
        (status["connections"]["sse"] == 2).then_some(())
    })
    .await;

    // Traffic that moves every kind of counter: singles, a batch, a rejected request.
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, &burst(EventType::PriceChange, 20, 4, "p")).await;
    publish_all(&mut redis, &burst(EventType::OrderReceived, 1, 1, "o")).await;
    // The leading price, the order, then the batch with the latest price per product.
    first
        .events_covering(&[BASE + 1, BASE + 20, BASE + 21])
        .await;
    second
        .events_covering(&[BASE + 1, BASE + 20, BASE + 21])
        .await;
    let _ = reqwest::get(format!("{url}?channels=nope")).await;

    drop(first);
    eventually("status shows 1 connection", || async {
        let (_, status) = get_json(&gateway, "/api/realtime/status").await;
        (status["connections"]["sse"] == 1).then_some(())
    })
    .await;

    // Both read now, with nothing in flight: they must agree number for number.
    let (code, stats) = get_json(&gateway, "/api/realtime/stats").await;
    assert_eq!(code, 200);
    let metrics = gateway.metrics().await;
    let sample = |name: &str| sample_value(&metrics, name).unwrap_or(0.0);
    let pairs: Vec<(&Value, f64)> = vec![
        (
            &stats["eventsReceived"]["PRICE_CHANGE"],
            sample("gateway_events_received_total{type=\"PRICE_CHANGE\"}"),
        ),
        (
            &stats["eventsReceived"]["ORDER_RECEIVED"],
            sample("gateway_events_received_total{type=\"ORDER_RECEIVED\"}"),
        ),
        (
            &stats["eventsCoalesced"]["PRICE_CHANGE"],
            sample("gateway_events_coalesced_total{type=\"PRICE_CHANGE\"}"),
        ),
        (
            &stats["framesEmitted"]["single"],
            sample("gateway_frames_emitted_total{kind=\"single\"}"),
        ),
        (
            &stats["framesEmitted"]["batch"],
            sample("gateway_frames_emitted_total{kind=\"batch\"}"),
        ),
        (
            &stats["framesSent"]["sse"],
            sample("gateway_frames_sent_total{transport=\"sse\"}"),
        ),
        (
            &stats["connections"]["opened"]["sse"],
            sample("gateway_connections_opened_total{transport=\"sse\"}"),
        ),
        (
            &stats["connections"]["closed"]["sse"],
            sample("gateway_connections_closed_total{transport=\"sse\"}"),
        ),
        (
            &stats["connections"]["current"]["sse"],
            sample("gateway_connections{transport=\"sse\"}"),
        ),
        (
            &stats["clientsReset"]["lagged"],
            sample("gateway_clients_reset_total{reason=\"lagged\"}"),
        ),
        (
            &stats["replays"]["ring"],
            sample("gateway_replays_total{source=\"ring\"}"),
        ),
        (
            &stats["requestsRejected"]["unknown_channel"],
            sample("gateway_requests_rejected_total{reason=\"unknown_channel\"}"),
        ),
    ];
    for (stat, metric) in &pairs {
        assert_eq!(
            stat.as_f64(),
            Some(*metric),
            "stats {stat} vs metrics {metric}"
        );
    }
    // And the values are the real ones, not zeros agreeing with zeros.
    assert_eq!(stats["eventsReceived"]["PRICE_CHANGE"], 20);
    assert_eq!(stats["eventsCoalesced"]["PRICE_CHANGE"], 19);
    assert_eq!(stats["framesEmitted"]["single"], 2);
    assert_eq!(stats["framesEmitted"]["batch"], 1);
    assert_eq!(stats["framesSent"]["sse"], 6);
    assert_eq!(stats["connections"]["opened"]["sse"], 2);
    assert_eq!(stats["connections"]["closed"]["sse"], 1);
    assert_eq!(stats["connections"]["current"]["sse"], 1);
    assert_eq!(
        stats["requestsRejected"]["unknown_channel"], 0,
        "that request had no key"
    );
    assert_eq!(stats["requestsRejected"]["missing_credentials"], 1);
    gateway.stop().await;
}
