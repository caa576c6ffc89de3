//! Events published on Redis reach SSE clients: the right `event:`, `id:` and JSON for each
//! type; channel filters; heartbeats; the `retry:` hint; proxy-friendly headers.

use crate::support::*;
use rakuda_schema::EventType;

const TYPES: [EventType; 4] = EventType::CLIENT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_type_reaches_the_client_with_event_id_and_json() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let mut client = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    assert_eq!(client.status, 200);
    assert_eq!(client.headers["content-type"], "text/event-stream");
    assert_eq!(client.headers["cache-control"], "no-cache");
    assert_eq!(client.headers["x-accel-buffering"], "no");

    let retry = client.next().await.expect("retry record");
    let retry = retry.retry.expect("the first record is retry:");
    assert!(
        (3000..=4500).contains(&retry),
        "retry {retry} is the base plus up to 50%"
    );

    let (_, status) = get_json(&gateway, "/api/realtime/status").await;
    let epoch = status["nats"]["stream"]["epoch"].as_u64().expect("epoch");
    let mut redis = stack.redis_connection().await;
    for (index, event_type) in TYPES.into_iter().enumerate() {
        let json = event_json(event_type, &format!("id_{index}"));
        publish(&mut redis, &redis_channel(event_type), &json).await;
        let record = client.next_event().await.expect("event");
        assert_eq!(record.event.as_deref(), Some(event_type.as_str()));
        let seq = BASE + index as u64 + 1;
        assert_eq!(
            record.id.as_deref(),
            Some(format!("{epoch}-{seq}").as_str())
        );
        let data = record.json();
        assert_eq!(data["type"], event_type.as_str());
        assert_eq!(data["seq"], seq);
        let published: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(data["payload"], published["payload"]);
        assert_eq!(data["timestamp"], published["timestamp"]);
    }
    // A gateway's first connection samples delivery latency: one observation per event.
    gateway
        .wait_for_metric("gateway_event_latency_seconds_count", TYPES.len() as f64)
        .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_filter_delivers_only_the_chosen_channels() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let mut orders_only = SseClient::connect(&format!(
        "{}/api/realtime/events?channels=orders,listings",
        gateway.url
    ))
    .await;
    assert_eq!(orders_only.status, 200);
    let mut redis = stack.redis_connection().await;
    for (index, event_type) in TYPES.into_iter().enumerate() {
        publish(
            &mut redis,
            &redis_channel(event_type),
            event_json(event_type, &format!("f{index}")),
        )
        .await;
    }
    let first = orders_only.next_event().await.expect("event");
    let second = orders_only.next_event().await.expect("event");
    assert_eq!(first.event.as_deref(), Some("ORDER_RECEIVED"));
    assert_eq!(second.event.as_deref(), Some("LISTING_UPDATE"));

    let (status, body) = {
        let response = reqwest::Client::new()
            .get(format!(
                "{}/api/realtime/events?channels=orders,warehouse",
                gateway.url
            ))
            .header("X-API-Key", API_KEY)
            .send()
            .await
            .expect("GET");
        (
            response.status().as_u16(),
            response.json::<serde_json::Value>().await.expect("json"),
        )
    };
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unknown_channel");
    assert!(body["message"]
        .as_str()
        .expect("message")
        .contains("`warehouse`"));
    gateway
        .wait_for_metric(
            "gateway_requests_rejected_total{reason=\"unknown_channel\"}",
            1.0,
        )
        .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_arrive_at_the_set_interval() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.sse_heartbeat_interval = 200;
    config.fleet.gateway_instance_id = Some("gw-test".into());
    let gateway = start_gateway(config).await;
    let mut client = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    let mut redis = stack.redis_connection().await;
    publish_event(&mut redis, EventType::OrderReceived, "o1").await;

    let mut beats = Vec::new();
    while beats.len() < 3 {
        let record = client.next().await.expect("record");
        if record.event.as_deref() == Some("heartbeat") {
            beats.push(record);
        }
    }
    let last = beats.last().expect("beat").json();
    assert_eq!(last["instance"], "gw-test");
    assert_eq!(
        last["seq"],
        BASE + 1,
        "the heartbeat carries the last sequence sent"
    );
    assert!(last["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(beats
        .last()
        .expect("beat")
        .id
        .as_deref()
        .is_some_and(|id| id.ends_with(&format!("-{}", BASE + 1))));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_claims_the_events_the_client_filtered_out() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.sse_heartbeat_interval = 200;
    let gateway = start_gateway(config).await;
    let mut client = SseClient::connect(&format!(
        "{}/api/realtime/events?channels=orders",
        gateway.url
    ))
    .await;
    let mut redis = stack.redis_connection().await;
    publish_event(&mut redis, EventType::OrderReceived, "o1").await;
    let order = client.next_event().await.expect("the order");
    assert_eq!(order.seqs(), vec![BASE + 1]);
    publish_event(&mut redis, EventType::InventoryChange, "p1").await;
    publish_event(&mut redis, EventType::InventoryChange, "p2").await;
    // The client never sees events 2 and 3, but a resume from its cursor must not replay them:
    // the heartbeat after them claims them.
    let third = BASE + 3;
    let claimed = bounded("a heartbeat claiming the third event", async {
        loop {
            let record = client.next().await.expect("record");
            if record.event.as_deref() == Some("heartbeat") && record.json()["seq"] == third {
                return record;
            }
        }
    })
    .await;
    assert!(claimed
        .id
        .as_deref()
        .is_some_and(|id| id.ends_with(&format!("-{third}"))));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latency_probe_gets_every_probe_back() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.sse_debounce_window = 0;
    let gateway = start_gateway(config).await;
    let mut redis = stack.redis_connection().await;
    let probe = rakuda_simulator::probe::Probe {
        gateway: &gateway.url,
        api_key: API_KEY,
        count: 200,
        interval: std::time::Duration::from_millis(2),
        timeout: std::time::Duration::from_secs(10),
    };
    let latencies = probe
        .run(&mut redis, "rakuda:realtime:")
        .await
        .expect("probe");
    assert_eq!(latencies.samples.len(), 200);
    assert_eq!((latencies.lost, latencies.batched), (0, 0));
    eprintln!(
        "probe (debug build): publish -> receive p50 {} us, p99 {} us",
        latencies.quantile(0.5).unwrap_or(0),
        latencies.quantile(0.99).unwrap_or(0)
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_directory_is_served_at_the_root() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>RAKUDA ops</title>",
    )
    .expect("index");
    std::fs::create_dir(dir.path().join("assets")).expect("assets");
    std::fs::write(dir.path().join("assets/app.js"), "console.log('hi')").expect("js");
    let mut config = stack.gateway_config();
    config.gateway_dashboard_dir = Some(dir.path().to_owned());
    let gateway = start_gateway(config).await;

    let get = |path: &'static str| {
        let url = format!("{}{path}", gateway.url);
        async move {
            let response = reqwest::get(url).await.expect("GET");
            (
                response.status().as_u16(),
                response.text().await.expect("body"),
            )
        }
    };
    assert_eq!(
        get("/").await,
        (200, "<!doctype html><title>RAKUDA ops</title>".to_owned())
    );
    assert_eq!(
        get("/assets/app.js").await,
        (200, "console.log('hi')".to_owned())
    );
    // A client-side route reloads into the app.
    assert!(get("/orders/ord_42").await.1.contains("RAKUDA ops"));
    // The API is still the API.
    assert_eq!(get("/api/realtime/status").await.0, 401);
    gateway.stop().await;
}

/// What a worker wrote reaches the browser byte for byte: a big integer, a long fraction,
/// `\u` escapes and an unusual key order are not re-serialized; only `seq` is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_bytes_reach_sse_and_websocket_clients_unchanged() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.sse_debounce_window = 0;
    let gateway = start_gateway(config).await;
    let mut sse = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    let mut ws = ws_connect(&gateway, "", &[("X-API-Key", API_KEY)])
        .await
        .expect("websocket");
    gateway
        .wait_for_metric("gateway_connections{transport=\"ws\"}", 1.0)
        .await;

    let payload = r#"{"data":{"total":12345678901234567890123,"rate":0.1000000000000000055511151231257827,"note":"caf\u00e9 \ud83d\udc2a","z":1,"a":2},"action":"created","id":"ord_\u0031"}"#;
    let timestamp = r#""2026-11-22T19:00:00.000+09:00""#;
    let worker =
        format!(r#"{{"timestamp":{timestamp},"payload":{payload},"type":"ORDER_RECEIVED"}}"#);
    let mut redis = stack.redis_connection().await;
    publish(
        &mut redis,
        &redis_channel(EventType::OrderReceived),
        &worker,
    )
    .await;

    let seq = BASE + 1;
    let expected = format!(
        r#"{{"type":"ORDER_RECEIVED","seq":{seq},"payload":{payload},"timestamp":{timestamp}}}"#
    );
    let record = sse.next_event().await.expect("event");
    assert_eq!(record.data, expected);
    let frame = ws_next_text(&mut ws).await.expect("websocket frame");
    assert!(
        frame.ends_with(&format!(r#""event":"ORDER_RECEIVED","data":{expected}}}"#)),
        "{frame}"
    );
    gateway.stop().await;
}
