//! History answers cannot be turned into memory or into consumers: snapshot answers nobody
//! reads hold at most `HISTORY_BUDGET_BYTES` between them, the ones that do not fit are refused
//! by name (503 `history_budget`), every answer takes one of the credential's connection slots,
//! and a snapshot answer holds no consumer at all (it is answered from memory).

use crate::support::*;
use rakuda_schema::{Action, EventType, RealTimeEvent};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

const ENTITIES: usize = 600;
const EVENT_BYTES: usize = 16_000;
const BUDGET: usize = 1024 * 1024;
const WINDOW: usize = 256 * 1024;
/// Answers that fit in the budget at once.
const FIT: usize = BUDGET / WINDOW;
const SNAPSHOT: &str = "/api/realtime/snapshot?channels=inventory&limit=1000";

/// `ENTITIES` products, each padded to about `EVENT_BYTES`: a whole snapshot is about 10 MB,
/// far more than a socket's buffers hold.
fn padded_products() -> Vec<(String, String)> {
    let padding = "x".repeat(EVENT_BYTES);
    (0..ENTITIES)
        .map(|n| {
            let mut data = serde_json::Map::new();
            data.insert("pad".into(), Value::from(padding.clone()));
            let event =
                RealTimeEvent::now(EventType::InventoryChange, format!("p{n}"), Action::Updated)
                    .with_data(data);
            (
                redis_channel(EventType::InventoryChange),
                serde_json::to_string(&event).expect("json"),
            )
        })
        .collect()
}

/// A client that asks for a snapshot with a tiny receive buffer and then reads nothing.
async fn unread_snapshot(url: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let addr = url.trim_start_matches("http://").parse().expect("addr");
    let mut stream = bounded("connect", socket.connect(addr))
        .await
        .expect("connect");
    let request = format!("GET {SNAPSHOT} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {API_KEY}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request");
    stream
}

/// Consumers on the latest-state stream now.
async fn latest_consumers(jetstream: &async_nats::jetstream::Context) -> usize {
    let mut stream = jetstream
        .get_stream("RAKUDA_REALTIME_LATEST")
        .await
        .expect("the latest-state stream");
    stream
        .info()
        .await
        .expect("stream info")
        .state
        .consumer_count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_snapshots_stay_within_the_budget_the_rest_are_refused_and_hold_no_consumer() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.history.history_budget_bytes = BUDGET;
    config.history.history_request_max_bytes = WINDOW;
    let gateway = start_gateway(config).await;
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, &padded_products()).await;
    let jetstream = stack.jetstream().await;
    eventually("every product in the latest-state stream", || async {
        let mut stream = jetstream.get_stream("RAKUDA_REALTIME_LATEST").await.ok()?;
        let messages = stream.info().await.ok()?.state.messages;
        (messages >= ENTITIES as u64).then_some(())
    })
    .await;
    // The latest-state stream's own `start` gap marker, and the products.
    gateway
        .wait_for_metric("gateway_snapshot_entities", (ENTITIES + 1) as f64)
        .await;
    let baseline = latest_consumers(&jetstream).await;

    // As many unread answers as the budget holds: each reserves its window and keeps reading
    // only as far as its window allows.
    let mut unread = Vec::new();
    for held in 1..=FIT {
        unread.push(unread_snapshot(&gateway.url).await);
        gateway
            .wait_for_metric("gateway_history_bytes_reserved", (held * WINDOW) as f64)
            .await;
    }
    // More are refused by name, with Retry-After, until the others end.
    for _ in 0..3 {
        let response = reqwest::Client::new()
            .get(format!("{}{SNAPSHOT}", gateway.url))
            .header("X-API-Key", API_KEY)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status().as_u16(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], "history_budget", "{body}");
    }
    wait_for_rejections(&gateway, &[("history_budget", 3.0)]).await;
    // The summary shares the budget too.
    let (status, body) = get_json(&gateway, "/api/realtime/summary").await;
    assert_eq!(
        (status, &body["error"]),
        (503, &Value::from("history_budget"))
    );

    // What the unread answers hold, by the gateway's own count: within the budget.
    eventually("the unread answers hold what they read", || async {
        (gateway.metric("gateway_history_bytes_in_flight").await > 0.0).then_some(())
    })
    .await;
    let in_flight = gateway.metric("gateway_history_bytes_in_flight").await;
    let reserved = gateway.metric("gateway_history_bytes_reserved").await;
    eprintln!("{FIT} unread snapshot answers hold {in_flight} bytes, {reserved} reserved");
    assert!(
        in_flight <= BUDGET as f64 && reserved <= BUDGET as f64,
        "{in_flight} bytes held, {reserved} reserved, over the budget of {BUDGET}"
    );
    // Answered from memory: no consumer for any of them.
    assert_eq!(gateway.metric("gateway_history_consumers").await, 0.0);
    assert_eq!(latest_consumers(&jetstream).await, baseline);

    // The clients go away mid-answer: every byte given back.
    drop(unread);
    eventually("the budget given back", || async {
        let reserved = gateway.metric("gateway_history_bytes_reserved").await;
        let in_flight = gateway.metric("gateway_history_bytes_in_flight").await;
        let consumers = gateway.metric("gateway_history_consumers").await;
        (reserved == 0.0 && in_flight == 0.0 && consumers == 0.0).then_some(())
    })
    .await;
    assert_eq!(
        gateway
            .metric("gateway_history_consumer_delete_failures_total")
            .await,
        0.0
    );
    // And a client that reads gets the whole snapshot.
    let (status, page) = get_json(&gateway, SNAPSHOT).await;
    assert_eq!(status, 200);
    assert_eq!(page["events"].as_array().map(Vec::len), Some(ENTITIES));
    assert_eq!(page["next"], Value::Null);
    assert_eq!(latest_consumers(&jetstream).await, baseline);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_requests_count_against_the_credentials_connections() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.limits.max_connections_per_key = 1;
    let gateway = start_gateway(config).await;
    let (status, _) = get_json(&gateway, "/api/realtime/summary").await;
    assert_eq!(status, 200, "a slot while answering, given back after");
    let (status, _) = get_json(&gateway, "/api/realtime/snapshot").await;
    assert_eq!(status, 200);

    // A stream holds the key's only slot: history requests wait their turn like streams.
    let stream = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    assert_eq!(stream.status, 200);
    for path in ["/api/realtime/summary", "/api/realtime/snapshot"] {
        let (status, body) = get_json(&gateway, path).await;
        assert_eq!(status, 429, "{path}: {body}");
        assert_eq!(body["error"], "too_many_connections_for_key", "{path}");
    }
    drop(stream);
    eventually("the slot given back", || async {
        let (status, _) = get_json(&gateway, "/api/realtime/snapshot").await;
        (status == 200).then_some(())
    })
    .await;
    gateway.stop().await;
}
