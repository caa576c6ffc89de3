//! What a dashboard gets the moment it opens: recent events before the live feed
//! (`?backfill=`, `?since=`), today's totals (`/summary`), the latest state of every entity
//! (`/snapshot`), and heartbeats that say whether the gateway can be trusted (`degraded`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::*;
use rakuda_schema::EventType;
use rakuda_testkit::redis_client::publish_all;
use serde_json::Value;

/// Publishes `count` orders and waits until the stream holds them; their sequences.
async fn publish_orders(stack: &Stack, count: usize, tag: &str) -> Vec<u64> {
    let jetstream = stack.jetstream().await;
    let before = stream_last_seq(&jetstream).await;
    let mut redis = stack.redis_connection().await;
    publish_all(
        &mut redis,
        &burst(EventType::OrderReceived, count, count, tag),
    )
    .await;
    let last = before + count as u64;
    wait_for_stream_seq(&jetstream, last).await;
    ((before + 1)..=last).collect()
}

/// Waits until the gateway has sent every event up to `seq` (its resume watermark), so that a
/// new connection's history reaches that far.
async fn wait_for_watermark(gateway: &RunningGateway, seq: u64) {
    rakuda_testkit::wait::eventually("the gateway's watermark", || async {
        (gateway.metric("gateway_stream_last_sequence").await >= seq as f64).then_some(())
    })
    .await;
}

/// The sequences of the events a new connection receives before its first heartbeat.
async fn history_of(client: &mut SseClient) -> Vec<u64> {
    let mut seqs = Vec::new();
    loop {
        let record = client.next().await.expect("the stream goes on");
        match record.event.as_deref() {
            Some("heartbeat") => return seqs,
            Some("reset") => panic!("unexpected reset: {}", record.data),
            Some(_) => seqs.extend(record.seqs()),
            None => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_can_ask_for_recent_events_first() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.resume.backfill_max_events = 25;
    let gateway = start_gateway(config).await;
    let published = publish_orders(&stack, 40, "bf").await;
    wait_for_watermark(&gateway, published[39]).await;
    let events = format!("{}/api/realtime/events", gateway.url);

    // From the ring (the gateway saw them go by).
    let mut last_ten = SseClient::connect(&format!("{events}?backfill=10")).await;
    assert_eq!(history_of(&mut last_ten).await, published[30..].to_vec());
    // Capped by BACKFILL_MAX_EVENTS.
    let mut capped = SseClient::connect(&format!("{events}?backfill=1000")).await;
    assert_eq!(history_of(&mut capped).await, published[15..].to_vec());
    let mut recent = SseClient::connect(&format!("{events}?since=1h")).await;
    assert_eq!(history_of(&mut recent).await, published[15..].to_vec());
    // A cursor wins: a reconnect resumes, it does not backfill.
    let cursor = format!("{}-{}", stack_epoch(&gateway).await, published[37]);
    let mut resumed =
        SseClient::connect(&format!("{events}?backfill=10&lastEventId={cursor}")).await;
    assert_eq!(history_of(&mut resumed).await, published[38..].to_vec());
    // Without history: live only.
    let mut live = SseClient::connect(&events).await;
    assert_eq!(history_of(&mut live).await, Vec::<u64>::new());

    // The same over WebSocket.
    let mut ws = ws_connect(&gateway, "?backfill=3", &[("X-API-Key", API_KEY)])
        .await
        .expect("ws");
    let mut got = Vec::new();
    while got.len() < 3 {
        let message = ws_next(&mut ws).await.expect("a message");
        got.extend(seqs_of(&message));
    }
    assert_eq!(got, published[37..].to_vec());

    for bad in ["?backfill=5&since=1h", "?since=soon", "?backfill=-1"] {
        let refused = SseClient::connect(&format!("{events}{bad}")).await;
        assert_eq!(refused.status, 400, "{bad}");
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_comes_from_jetstream_when_the_gateway_started_later() {
    let stack = Stack::start().await;
    let published = publish_orders(&stack, 12, "late").await;
    // This gateway's ring, warmed at start with what the stream held before it, is shorter
    // than the backfill.
    let mut config = stack.gateway_config();
    config.resume.replay_ring_capacity = 2;
    let gateway = start_gateway(config).await;
    wait_for_watermark(&gateway, published[11]).await;
    let mut client =
        SseClient::connect(&format!("{}/api/realtime/events?backfill=5", gateway.url)).await;
    assert_eq!(history_of(&mut client).await, published[7..].to_vec());
    gateway
        .wait_for_metric("gateway_replays_total{source=\"stream\"}", 1.0)
        .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_counts_client_events_not_canary_probes() {
    let stack = Stack::start().await;
    let running = start_gateway(stack.gateway_config()).await;
    let orders = publish_orders(&stack, 6, "cn").await;
    // Then a quiet while: only canary probes (every gateway sends one every few seconds).
    let mut redis = stack.redis_connection().await;
    let probes: Vec<_> = (0..40)
        .map(|n| {
            (
                redis_channel(EventType::Canary),
                event_json(EventType::Canary, &format!("probe-{n}")),
            )
        })
        .collect();
    publish_all(&mut redis, &probes).await;
    let jetstream = stack.jetstream().await;
    wait_for_stream_seq(&jetstream, orders[5] + 40).await;

    // From the ring of a gateway that saw them go by.
    wait_for_watermark(&running, orders[5] + 40).await;
    let mut client =
        SseClient::connect(&format!("{}/api/realtime/events?backfill=4", running.url)).await;
    assert_eq!(history_of(&mut client).await, orders[2..].to_vec());
    // From JetStream, for a gateway started after them (its ring, warmed at start, is shorter
    // than the backfill): the stream is counted, not read.
    let mut late_config = stack.gateway_config();
    late_config.resume.replay_ring_capacity = 2;
    let late = start_gateway(late_config).await;
    wait_for_watermark(&late, orders[5] + 40).await;
    let mut client =
        SseClient::connect(&format!("{}/api/realtime/events?backfill=4", late.url)).await;
    assert_eq!(history_of(&mut client).await, orders[2..].to_vec());
    late.wait_for_metric("gateway_replays_total{source=\"stream\"}", 1.0)
        .await;
    late.stop().await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_counts_todays_events_per_type_without_reading_them() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.history.summary_timezone = "Asia/Tokyo".into();
    config.history.summary_cache_ttl = Duration::from_millis(300);
    let gateway = start_gateway(config).await;
    let mut redis = stack.redis_connection().await;
    let mut messages = burst(EventType::OrderReceived, 7, 7, "s");
    messages.extend(burst(EventType::InventoryChange, 5, 2, "s"));
    messages.extend(burst(EventType::PriceChange, 3, 3, "s"));
    publish_all(&mut redis, &messages).await;
    let jetstream = stack.jetstream().await;
    wait_for_stream_seq(&jetstream, BASE + 15).await;

    let (status, summary) = get_json(&gateway, "/api/realtime/summary").await;
    assert_eq!(status, 200, "{summary}");
    let expected = BTreeMap::from([
        ("INVENTORY_CHANGE", 5),
        ("LISTING_UPDATE", 0),
        ("ORDER_RECEIVED", 7),
        ("PRICE_CHANGE", 3),
    ]);
    for window in ["today", "lastHour"] {
        let counts: BTreeMap<&str, u64> = summary[window]
            .as_object()
            .expect("counts")
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_u64().expect("count")))
            .collect();
        assert_eq!(counts, expected, "{window}: {summary}");
    }
    assert_eq!(summary["throughSeq"], BASE + 15);
    assert_eq!(
        summary["exact"], true,
        "nothing was published while it counted"
    );
    assert_eq!(
        summary["todayComplete"], true,
        "the stream holds all of today"
    );
    assert_eq!(summary["firstHeldSeq"], 1, "{summary}");
    assert_eq!(summary["timezone"], "Asia/Tokyo");
    // Tokyo's midnight is 15:00 UTC.
    assert!(
        summary["todaySince"]
            .as_str()
            .is_some_and(|since| since.ends_with("T15:00:00Z")),
        "{summary}"
    );

    // Cached for SUMMARY_CACHE_TTL, then counted again.
    let (_, again) = get_json(&gateway, "/api/realtime/summary").await;
    assert_eq!(again["computedAt"], summary["computedAt"]);
    publish_all(&mut redis, &burst(EventType::OrderReceived, 2, 2, "s2")).await;
    wait_for_stream_seq(&jetstream, BASE + 17).await;
    rakuda_testkit::wait::eventually("the summary counts the new orders", || async {
        let (_, fresh) = get_json(&gateway, "/api/realtime/summary").await;
        (fresh["today"]["ORDER_RECEIVED"] == 9).then_some(())
    })
    .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_pages_through_the_latest_event_of_every_entity() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let mut redis = stack.redis_connection().await;
    // Three rounds for five products: only the last round is the current state.
    let mut messages = Vec::new();
    for round in 0..3 {
        for product in 0..5 {
            let mut data = serde_json::Map::new();
            data.insert("round".into(), Value::from(round));
            data.insert("isAvailable".into(), Value::from(product % 2 == 0));
            let event = rakuda_schema::RealTimeEvent::now(
                EventType::InventoryChange,
                format!("prod_{product}"),
                rakuda_schema::Action::Updated,
            )
            .with_data(data);
            messages.push((
                redis_channel(EventType::InventoryChange),
                serde_json::to_string(&event).expect("json"),
            ));
        }
    }
    messages.extend(burst(EventType::OrderReceived, 4, 4, "snap"));
    publish_all(&mut redis, &messages).await;
    let jetstream = stack.jetstream().await;
    wait_for_stream_seq(&jetstream, BASE + 19).await;

    let mut seen = BTreeMap::new();
    let mut after = 0;
    let mut pages = 0;
    rakuda_testkit::wait::eventually("all five products in the latest stream", || async {
        let (_, page) = get_json(
            &gateway,
            "/api/realtime/snapshot?channels=inventory&limit=100",
        )
        .await;
        (page["events"].as_array().map(Vec::len) == Some(5)).then_some(())
    })
    .await;
    loop {
        let (status, page) = get_json(
            &gateway,
            &format!("/api/realtime/snapshot?channels=inventory&limit=2&after={after}"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for event in page["events"].as_array().expect("events") {
            assert_eq!(event["type"], "INVENTORY_CHANGE");
            assert_eq!(event["payload"]["data"]["round"], 2, "the latest: {event}");
            let seq = event["seq"].as_u64().expect("seq");
            assert!(
                seq > BASE + 10 && seq <= BASE + 15,
                "its sequence in the event stream: {event}"
            );
            let id = event["payload"]["id"].as_str().expect("id").to_owned();
            assert!(seen.insert(id, seq).is_none(), "each entity once");
        }
        match page["next"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
        assert!(pages < 10, "paging ends");
    }
    assert_eq!(seen.len(), 5);
    assert!(pages >= 3, "limit=2 pages: {pages}");

    // Every channel with a latest state at once (orders have none), and an unknown channel
    // is refused.
    let (_, all) = get_json(&gateway, "/api/realtime/snapshot?limit=100").await;
    let types: BTreeSet<&str> = all["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["type"].as_str())
        .collect();
    assert_eq!(types, BTreeSet::from(["INVENTORY_CHANGE"]));
    let (status, _) = get_json(
        &gateway,
        "/api/realtime/snapshot?limit=0&channels=warehouse",
    )
    .await;
    assert_eq!(status, 400);

    // The page the gateway writes by hand (it streams) is the schema's SnapshotPage byte for
    // byte, and the summary its Summary: what the TypeScript types are generated from.
    for path in [
        "/api/realtime/snapshot?channels=inventory&limit=2",
        "/api/realtime/snapshot?limit=100",
    ] {
        let written = get_text(&gateway, path).await;
        let page: rakuda_schema::SnapshotPage = serde_json::from_str(&written).expect(&written);
        assert!(!page.events.is_empty(), "{written}");
        assert_eq!(serde_json::to_string(&page).expect("json"), written);
    }
    let written = get_text(&gateway, "/api/realtime/summary").await;
    let summary: rakuda_schema::Summary = serde_json::from_str(&written).expect(&written);
    assert_eq!(serde_json::to_string(&summary).expect("json"), written);
    gateway.stop().await;
}

/// The body of a GET that answers 200, as written.
async fn get_text(gateway: &RunningGateway, path: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", gateway.url))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    response.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_say_when_the_gateway_is_degraded() {
    let mut stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.fleet.canary_interval = Duration::from_millis(200);
    config.fleet.canary_degraded_after = Duration::from_millis(1500);
    config.streams.sse_heartbeat_interval = 300;
    let gateway = start_gateway(config).await;
    let mut client = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    heartbeat_saying(&mut client, false).await;
    stack.stop_bridge().await;
    heartbeat_saying(&mut client, true).await;
    stack.start_bridge().await;
    heartbeat_saying(&mut client, false).await;
    gateway.stop().await;
}

/// Reads until a heartbeat says `degraded: want`.
async fn heartbeat_saying(client: &mut SseClient, want: bool) {
    loop {
        let record = client.next().await.expect("the stream goes on");
        if record.event.as_deref() == Some("heartbeat") && record.json()["degraded"] == want {
            return;
        }
    }
}

async fn stack_epoch(gateway: &RunningGateway) -> String {
    let mut client = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    loop {
        let record = client.next().await.expect("a heartbeat");
        if record.event.as_deref() == Some("heartbeat") {
            let id = record.id.expect("a heartbeat carries the cursor");
            return id.split_once('-').expect("epoch-seq").0.to_owned();
        }
    }
}

fn seqs_of(message: &Value) -> Vec<u64> {
    let data = &message["data"];
    match data.get("events").and_then(Value::as_array) {
        Some(events) => events.iter().filter_map(|e| e["seq"].as_u64()).collect(),
        None => data["seq"].as_u64().into_iter().collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_says_when_the_stream_no_longer_holds_all_of_today() {
    // A stream that keeps 10 messages: 30 orders today, of which it still holds the last 10.
    let stack = Stack::start_with(|bridge| bridge.stream_max_messages = 10).await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, &burst(EventType::OrderReceived, 30, 30, "trim")).await;
    let jetstream = stack.jetstream().await;
    wait_for_stream_seq(&jetstream, BASE + 30).await;

    let (status, summary) = get_json(&gateway, "/api/realtime/summary").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["today"]["ORDER_RECEIVED"], 10, "{summary}");
    assert_eq!(summary["throughSeq"], BASE + 30);
    // The count is what the stream holds, and the answer says so.
    assert_eq!(summary["exact"], false, "{summary}");
    assert_eq!(summary["todayComplete"], false, "{summary}");
    assert_eq!(summary["lastHourComplete"], false, "{summary}");
    assert_eq!(summary["firstHeldSeq"], BASE + 21, "{summary}");
    let first_held = summary["firstHeldAt"].as_str().expect("firstHeldAt");
    let since = summary["todaySince"].as_str().expect("todaySince");
    let (first_held, since): (jiff::Timestamp, jiff::Timestamp) = (
        first_held.parse().expect("an RFC 3339 instant"),
        since.parse().expect("an RFC 3339 instant"),
    );
    assert!(
        first_held > since,
        "the count starts after midnight: {summary}"
    );
    gateway.stop().await;
}

/// One INVENTORY_CHANGE of `id` saying whether it is available, as a worker sends it.
fn stock_event(id: &str, available: bool) -> (String, String) {
    let mut data = serde_json::Map::new();
    data.insert("isAvailable".into(), Value::from(available));
    let event = rakuda_schema::RealTimeEvent::now(
        EventType::InventoryChange,
        id,
        rakuda_schema::Action::Updated,
    )
    .with_data(data);
    (
        redis_channel(EventType::InventoryChange),
        serde_json::to_string(&event).expect("json"),
    )
}

/// The inventory snapshot's first page once it lists `id` (the latest-state stream is filled
/// by JetStream a moment after the event stream).
async fn snapshot_listing(gateway: &RunningGateway, id: &str) -> Value {
    eventually(&format!("{id} in the snapshot"), || async {
        let (status, page) = get_json(
            gateway,
            "/api/realtime/snapshot?channels=inventory&limit=1000",
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let listed = page["events"]
            .as_array()?
            .iter()
            .any(|event| event["payload"]["id"] == id);
        listed.then_some(page)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_never_push_a_product_out_of_the_snapshot_and_a_full_one_says_so() {
    const CAP: u64 = 20;
    let stack = Stack::start_with(|bridge| bridge.latest_max_entities = CAP).await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let mut redis = stack.redis_connection().await;

    // A product runs out of stock, then a flood of orders (each its own id), then one more
    // product: once that one is in the snapshot, JetStream has copied everything before it.
    let mut messages = vec![stock_event("p_out", false)];
    messages.extend(burst(
        EventType::OrderReceived,
        3 * CAP as usize,
        3 * CAP as usize,
        "flood",
    ));
    messages.push(stock_event("p_after", true));
    publish_all(&mut redis, &messages).await;
    let page = snapshot_listing(&gateway, "p_after").await;
    let out = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|event| event["payload"]["id"] == "p_out");
    assert!(
        out.is_some_and(|event| event["payload"]["data"]["isAvailable"] == false),
        "the product out of stock is still in the snapshot: {page}"
    );
    assert_eq!(page["next"], Value::Null);
    assert_eq!(page["partial"], false, "nothing was dropped: {page}");

    // Orders have no latest state: asked for by name, a named refusal; by default, left out.
    let (status, refused) = get_json(&gateway, "/api/realtime/snapshot?channels=orders").await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"], "no_latest_state", "{refused}");
    let (status, refused) =
        get_json(&gateway, "/api/realtime/snapshot?channels=inventory,orders").await;
    assert_eq!(
        (status, &refused["error"]),
        (400, &Value::from("no_latest_state"))
    );
    let (status, all) = get_json(&gateway, "/api/realtime/snapshot?limit=1000").await;
    assert_eq!(status, 200, "{all}");
    assert!(
        all["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|event| event["type"] != "ORDER_RECEIVED"),
        "{all}"
    );

    // More products than LATEST_MAX_ENTITIES: the oldest are dropped, and the answer says so.
    let products: Vec<_> = (0..CAP + 5)
        .map(|n| stock_event(&format!("p_{n}"), true))
        .collect();
    publish_all(&mut redis, &products).await;
    snapshot_listing(&gateway, &format!("p_{}", CAP + 4)).await;
    // The stream's count is read as the page starts: a page may begin just before JetStream
    // copied the last products, so the next ones say it.
    eventually("a snapshot page that says partial", || async {
        let (_, page) = get_json(&gateway, "/api/realtime/snapshot?channels=inventory").await;
        (page["partial"] == true).then_some(())
    })
    .await;
    assert!(
        gateway.metric("gateway_snapshot_partial_total").await >= 1.0,
        "partial pages are counted"
    );
    gateway.stop().await;
}
