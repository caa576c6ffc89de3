//! WebSocket: the documented frames for every type, subscribe/unsubscribe, resume on another
//! instance, auth before the upgrade, error frames and the limits that close a connection,
//! and a client that stops answering pings.

use crate::support::*;
use rakuda_schema::EventType;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_arrives_as_the_documented_frame() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let mut socket = ws_connect(&gateway, "", &[("X-API-Key", API_KEY)])
        .await
        .expect("upgrade");
    let (_, status) = get_json(&gateway, "/api/realtime/status").await;
    let epoch = status["nats"]["stream"]["epoch"].as_u64().expect("epoch");

    let mut redis = stack.redis_connection().await;
    for (index, event_type) in EventType::CLIENT.into_iter().enumerate() {
        let json = event_json(event_type, &format!("w{index}"));
        publish(&mut redis, &redis_channel(event_type), &json).await;
        let frame = ws_next(&mut socket).await.expect("frame");
        let seq = BASE + index as u64 + 1;
        assert_eq!(frame["id"], format!("{epoch}-{seq}"));
        assert_eq!(frame["event"], event_type.as_str());
        assert_eq!(frame["data"]["type"], event_type.as_str());
        assert_eq!(frame["data"]["seq"], seq);
        let sent: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(frame["data"]["payload"], sent["payload"]);
    }
    gateway
        .wait_for_metric("gateway_connections{transport=\"ws\"}", 1.0)
        .await;
    drop(socket);
    gateway
        .wait_for_metric("gateway_connections{transport=\"ws\"}", 0.0)
        .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_and_unsubscribe_change_what_arrives() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.sse_debounce_window = 0;
    let gateway = start_gateway(config).await;
    let mut socket = ws_connect(&gateway, "?channels=orders", &[("X-API-Key", API_KEY)])
        .await
        .expect("upgrade");
    let mut redis = stack.redis_connection().await;
    let send = |event_type: EventType, id: &'static str| {
        let json = event_json(event_type, id);
        let channel = redis_channel(event_type);
        let mut redis = redis.clone();
        async move { publish(&mut redis, &channel, json).await }
    };

    send(EventType::InventoryChange, "p1").await;
    send(EventType::OrderReceived, "o1").await;
    assert_eq!(
        ws_next(&mut socket).await.expect("frame")["event"],
        "ORDER_RECEIVED"
    );

    ws_send(
        &mut socket,
        r#"{"op":"subscribe","channels":["inventory"]}"#,
    )
    .await;
    let reply = ws_next(&mut socket).await.expect("reply");
    assert_eq!(
        reply,
        json!({"event": "subscribed", "data": {"channels": ["inventory", "orders"]}})
    );
    send(EventType::InventoryChange, "p2").await;
    assert_eq!(
        ws_next(&mut socket).await.expect("frame")["event"],
        "INVENTORY_CHANGE"
    );

    ws_send(&mut socket, r#"{"op":"unsubscribe","channels":["orders"]}"#).await;
    assert_eq!(
        ws_next(&mut socket).await.expect("reply")["data"]["channels"],
        json!(["inventory"])
    );
    send(EventType::OrderReceived, "o2").await;
    send(EventType::InventoryChange, "p3").await;
    let next = ws_next(&mut socket).await.expect("frame");
    assert_eq!(
        next["event"], "INVENTORY_CHANGE",
        "the order after unsubscribe must not arrive"
    );
    assert_eq!(next["data"]["payload"]["id"], "p3");

    ws_send(&mut socket, r#"{"op":"ping"}"#).await;
    assert_eq!(ws_next(&mut socket).await.expect("pong")["event"], "pong");
    let _ = redis::cmd("PING").query_async::<String>(&mut redis).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_last_event_id_on_another_instance() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.sse_debounce_window = 0;
    let first = start_gateway(config.clone()).await;
    let second = start_gateway(config).await;
    let mut redis = stack.redis_connection().await;

    let mut socket = ws_connect(&first, "", &[("X-API-Key", API_KEY)])
        .await
        .expect("upgrade");
    publish_all(&mut redis, &burst(EventType::OrderReceived, 3, 3, "a")).await;
    let mut cursor = String::new();
    for _ in 0..3 {
        cursor = ws_next(&mut socket).await.expect("frame")["id"]
            .as_str()
            .expect("id")
            .to_owned();
    }
    drop(socket);
    publish_all(&mut redis, &burst(EventType::OrderReceived, 7, 7, "missed")).await;
    eventually("second instance at the tenth event", || async {
        let (_, status) = get_json(&second, "/api/realtime/status").await;
        (status["nats"]["stream"]["lastSequence"] == BASE + 10).then_some(())
    })
    .await;

    let mut resumed = ws_connect(
        &second,
        &format!("?lastEventId={cursor}"),
        &[("X-API-Key", API_KEY)],
    )
    .await
    .expect("upgrade");
    let replay = ws_next(&mut resumed).await.expect("replay");
    assert_eq!(replay["event"], "ORDER_RECEIVED");
    assert_eq!(replay["data"]["count"], 7);
    let seqs: Vec<u64> = replay["data"]["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, (BASE + 4..=BASE + 10).collect::<Vec<_>>());
    assert!(replay["id"]
        .as_str()
        .expect("id")
        .ends_with(&format!("-{}", BASE + 10)));
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_key_is_refused_before_the_upgrade() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    for headers in [vec![], vec![("X-API-Key", "wrong-key-123456")]] {
        match ws_connect(&gateway, "", &headers).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401);
                let body: serde_json::Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                        .expect("JSON body");
                assert!(
                    body["error"] == "missing_credentials" || body["error"] == "invalid_api_key"
                );
            }
            Ok(_) => panic!("upgraded without a valid key"),
            Err(other) => panic!("expected an HTTP refusal, got {other}"),
        }
    }
    // A token works where headers cannot be sent (the browser WebSocket API).
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/realtime/token", gateway.url))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["token"].as_str().expect("token");
    assert!(ws_connect(&gateway, &format!("?token={token}"), &[])
        .await
        .is_ok());
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_error_frames_then_a_policy_close() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.ws_max_bad_frames = 2;
    let gateway = start_gateway(config).await;
    let mut socket = ws_connect(&gateway, "", &[("X-API-Key", API_KEY)])
        .await
        .expect("upgrade");

    ws_send(&mut socket, "this is not json").await;
    let error = ws_next(&mut socket).await.expect("error frame");
    assert_eq!(error["event"], "error");
    assert_eq!(error["data"]["error"], "bad_frame");
    assert!(error["data"]["message"]
        .as_str()
        .expect("message")
        .contains("op"));

    ws_send(
        &mut socket,
        r#"{"op":"subscribe","channels":["warehouse"]}"#,
    )
    .await;
    let error = ws_next(&mut socket).await.expect("error frame");
    assert!(error["data"]["message"]
        .as_str()
        .expect("message")
        .contains("`warehouse`"));

    ws_send(&mut socket, r#"{"op":"dance"}"#).await;
    assert_eq!(
        ws_next(&mut socket).await.expect("error frame")["event"],
        "error"
    );
    assert_eq!(ws_close_code(&mut socket).await, Some(1008));
    gateway
        .wait_for_metric("gateway_ws_bad_frames_total", 3.0)
        .await;
    gateway
        .wait_for_metric("gateway_clients_reset_total{reason=\"bad_frames\"}", 1.0)
        .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_with_1009() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.ws_max_frame_bytes = 1024;
    let gateway = start_gateway(config).await;
    let mut socket = ws_connect(&gateway, "", &[("X-API-Key", API_KEY)])
        .await
        .expect("upgrade");
    ws_send(
        &mut socket,
        &format!(r#"{{"op":"ping","pad":"{}"}}"#, "x".repeat(4096)),
    )
    .await;
    assert_eq!(ws_close_code(&mut socket).await, Some(1009));
    gateway
        .wait_for_metric(
            "gateway_clients_reset_total{reason=\"frame_too_large\"}",
            1.0,
        )
        .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_is_closed() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.streams.sse_heartbeat_interval = 200;
    let gateway = start_gateway(config).await;
    // Never read: the client library answers pings only while it reads, so this one is silent.
    let socket = ws_connect(&gateway, "", &[("X-API-Key", API_KEY)])
        .await
        .expect("upgrade");
    gateway
        .wait_for_metric("gateway_clients_reset_total{reason=\"unresponsive\"}", 1.0)
        .await;
    gateway
        .wait_for_metric("gateway_connections{transport=\"ws\"}", 0.0)
        .await;
    drop(socket);

    // One that reads (and so answers pings) stays.
    let mut reading = ws_connect(&gateway, "", &[("X-API-Key", API_KEY)])
        .await
        .expect("upgrade");
    // Pings it received (and so answered), counted rather than guessed from the clock.
    let pinged = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = tokio::spawn({
        let pinged = pinged.clone();
        async move {
            use futures::StreamExt;
            use tokio_tungstenite::tungstenite::Message;
            while let Some(Ok(message)) = reading.next().await {
                if matches!(message, Message::Ping(_)) {
                    pinged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    });
    // A silent client is closed on the ping after one it left unanswered; five is well past.
    eventually("five pings answered", || async {
        (pinged.load(std::sync::atomic::Ordering::Relaxed) >= 5).then_some(())
    })
    .await;
    assert_eq!(
        gateway
            .metric("gateway_connections{transport=\"ws\"}")
            .await,
        1.0
    );
    assert_eq!(
        gateway
            .metric("gateway_clients_reset_total{reason=\"unresponsive\"}")
            .await,
        1.0
    );
    reader.abort();
    gateway.stop().await;
}
