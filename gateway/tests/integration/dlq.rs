//! `GET /api/realtime/dlq`: what the bridge rejected, as an operator sees it. Bad events are
//! published on Redis and go through the real bridge into the DLQ stream; the page lists them
//! newest first with their reason, channel and first bytes (escaped, capped), counts them per
//! reason, pages with `before`, and is for administrators only.

use crate::support::*;
use rakuda_schema::EventType;
use serde_json::Value;

/// Waits until the DLQ stream holds `count` messages.
async fn wait_for_dlq(stack: &Stack, count: u64) {
    let jetstream = stack.jetstream().await;
    eventually("the DLQ holds the rejected messages", || {
        let jetstream = jetstream.clone();
        async move {
            let mut stream = jetstream.get_stream("RAKUDA_DLQ").await.ok()?;
            let info = stream.info().await.ok()?;
            (info.state.messages >= count).then_some(())
        }
    })
    .await;
}

/// The DLQ stream's consumers now.
async fn dlq_consumers(stack: &Stack) -> usize {
    let jetstream = stack.jetstream().await;
    let mut stream = jetstream
        .get_stream("RAKUDA_DLQ")
        .await
        .expect("DLQ stream");
    stream.info().await.expect("DLQ info").state.consumer_count
}

async fn mint(gateway: &RunningGateway, scope: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/api/realtime/token", gateway.url))
        .header("X-API-Key", API_KEY)
        .header("content-type", "application/json")
        .body(format!("{{\"scope\":\"{scope}\"}}"))
        .send()
        .await
        .expect("POST /token");
    assert_eq!(response.status(), 200);
    let json: Value = response.json().await.expect("json");
    json["token"].as_str().expect("token").to_owned()
}

async fn get_anonymous(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn reasons(page: &Value) -> Vec<&str> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["reason"].as_str().expect("reason"))
        .collect()
}

fn seqs(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["seq"].as_u64().expect("seq"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dlq_page_lists_bad_events_newest_first_with_their_reason_and_counts() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let mut redis = stack.redis_connection().await;
    let orders = redis_channel(EventType::OrderReceived);
    let inventory = redis_channel(EventType::InventoryChange);
    let unknown_type = event_json(EventType::InventoryChange, "prod_1")
        .replace("INVENTORY_CHANGE", "INVENTORY_TELEPORTED");
    let oversize = format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000));
    publish(&mut redis, &orders, "not json").await;
    wait_for_dlq(&stack, 1).await;
    publish(&mut redis, &inventory, &unknown_type).await;
    wait_for_dlq(&stack, 2).await;
    publish(&mut redis, &orders, b"caf\xe9 \xff\x00<script>".as_slice()).await;
    wait_for_dlq(&stack, 3).await;
    publish(&mut redis, &inventory, &oversize).await;
    wait_for_dlq(&stack, 4).await;

    let (status, page) = get_json(&gateway, "/api/realtime/dlq").await;
    assert_eq!(status, 200, "{page}");
    // Newest first, each with its reason and the channel it came on.
    assert_eq!(
        reasons(&page),
        ["too_large", "invalid_utf8", "unknown_type", "invalid_json"]
    );
    let seqs_all = seqs(&page);
    assert!(
        seqs_all.windows(2).all(|pair| pair[0] > pair[1]),
        "{seqs_all:?}"
    );
    let events = page["events"].as_array().expect("events");
    let channels: Vec<&str> = events
        .iter()
        .map(|e| e["channel"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        channels,
        [&inventory, &orders, &inventory, &orders].map(String::as_str)
    );
    // What was sent, as text: whole when short, capped at 256 bytes, bytes that are not UTF-8
    // escaped (the JSON itself stays valid UTF-8), the size as sent.
    let not_json = &events[3];
    assert_eq!(not_json["head"], "not json");
    assert_eq!(
        (not_json["truncated"].clone(), not_json["size"].clone()),
        (false.into(), 8.into())
    );
    assert!(not_json["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(events[2]["head"], unknown_type.as_str());
    assert_eq!(events[1]["head"], "caf\\xe9 \\xff\u{0}<script>");
    let too_large = &events[0];
    assert_eq!(too_large["truncated"], true);
    assert_eq!(too_large["size"], oversize.len());
    assert_eq!(too_large["head"].as_str().map(str::len), Some(256));
    assert!(too_large["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    // Nothing says who published on Redis.
    assert!(events.iter().all(|e| e["producer"].is_null()));
    // Counted per reason over the last hour.
    let counts = &page["lastHour"];
    assert_eq!(counts["total"], 4);
    assert_eq!(counts["complete"], true);
    for reason in ["too_large", "invalid_utf8", "unknown_type", "invalid_json"] {
        assert_eq!(counts["byReason"][reason], 1, "{counts}");
    }
    assert_eq!(page["next"], Value::Null);

    // Paging: the two newest, then the two before them, then the end.
    let (_, first) = get_json(&gateway, "/api/realtime/dlq?limit=2").await;
    assert_eq!(seqs(&first), seqs_all[..2]);
    let next = first["next"].as_u64().expect("a next page");
    let (_, second) = get_json(
        &gateway,
        &format!("/api/realtime/dlq?limit=2&before={next}"),
    )
    .await;
    assert_eq!(seqs(&second), seqs_all[2..]);
    assert_eq!(second["next"], Value::Null);
    // A limit above the cap is capped, not refused.
    let (status, capped) = get_json(&gateway, "/api/realtime/dlq?limit=100000").await;
    assert_eq!((status, seqs(&capped)), (200, seqs_all.clone()));

    // Every consumer a page made is gone once it is answered.
    eventually("the DLQ's consumers deleted", || async {
        (dlq_consumers(&stack).await == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dlq_is_for_administrators_and_bad_queries_are_refused() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let url = format!("{}/api/realtime/dlq", gateway.url);

    let stream_token = mint(&gateway, "stream").await;
    let (status, body) = get_anonymous(&format!("{url}?token={stream_token}")).await;
    assert_eq!(
        (status, body["error"].clone()),
        (403, "admin_required".into())
    );
    let admin_token = mint(&gateway, "admin").await;
    let (status, body) = get_anonymous(&format!("{url}?token={admin_token}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], serde_json::json!([]));
    assert_eq!(body["lastHour"]["total"], 0);

    for query in [
        "limit=abc",
        "limit=0",
        "before=-1",
        "before=0",
        "channel=orders",
    ] {
        let (status, body) = get_json(&gateway, &format!("/api/realtime/dlq?{query}")).await;
        assert_eq!(
            (status, body["error"].clone()),
            (400, "bad_request".into()),
            "{query}: {body}"
        );
    }
    wait_for_rejections(&gateway, &[("admin_required", 1.0), ("bad_request", 5.0)]).await;
}
