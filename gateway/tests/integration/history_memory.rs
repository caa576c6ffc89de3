//! History reads that do not grow with clients: the snapshot is answered from the state the
//! gateway keeps in memory, and that state is what `RAKUDA_REALTIME_LATEST` holds (read here
//! directly) after a burst over many entities, after a gateway restart and after the stream is
//! deleted and recreated. A herd of snapshot requests makes no JetStream consumer; a herd of
//! identical summaries, or of identical backfills, makes the consumers of one computation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::*;
use futures::StreamExt;
use rakuda_schema::{Action, Channel, EventType, RealTimeEvent};
use serde_json::Value;

const LATEST: &str = "RAKUDA_REALTIME_LATEST";

/// (type, id) → the event as a snapshot lists it.
type Snapshot = BTreeMap<(String, String), Value>;

/// What `RAKUDA_REALTIME_LATEST` holds, read whole with a consumer of the test's own: the
/// events of the channels with a latest state as a snapshot lists them (`seq` from the header
/// JetStream adds when it copies a message), and how many messages it holds in all.
async fn latest_stream(jetstream: &async_nats::jetstream::Context) -> (Snapshot, u64) {
    let mut stream = jetstream
        .get_stream(LATEST)
        .await
        .expect("the latest-state stream");
    let messages = stream.info().await.expect("stream info").state.messages;
    let mut held = Snapshot::new();
    if messages == 0 {
        return (held, 0);
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .expect("consumer");
    let mut read = consumer.messages().await.expect("messages");
    let mut pending = messages;
    while pending > 0 {
        let message = bounded("a message of the latest-state stream", read.next())
            .await
            .expect("more messages")
            .expect("a message");
        pending = message.info().expect("info").pending;
        let channel = Channel::by_subject(message.subject.as_str());
        if !channel.is_some_and(|channel| channel.keeps_latest()) {
            continue;
        }
        let Ok(event) = serde_json::from_slice::<Value>(&message.payload) else {
            continue;
        };
        if event.get("payload").is_none() {
            continue;
        }
        let seq: u64 = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get("Nats-Stream-Source"))
            .and_then(|value| value.as_str().split_whitespace().nth(1)?.parse().ok())
            .expect("a copied message says where it came from");
        let listed = serde_json::json!({
            "type": event["type"],
            "seq": seq,
            "payload": event["payload"],
            "timestamp": event["timestamp"],
        });
        let key = (
            event["type"].as_str().unwrap_or_default().to_owned(),
            event["payload"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        held.insert(key, listed);
    }
    // Read to the end as it was when the last message came; the count is read again so that
    // both describe the same moment when nothing moves.
    let messages = stream.info().await.expect("stream info").state.messages;
    (held, messages)
}

/// The gateway's whole snapshot, `limit` at a time, following `next`, and whether it is
/// settled: no page said `partial` and no entity came twice (one that changes while the pages
/// are read comes again, newer: the newer is kept).
async fn gateway_snapshot(gateway: &RunningGateway, limit: usize) -> (Snapshot, bool) {
    let mut listed = Snapshot::new();
    let mut after = 0u64;
    let mut settled = true;
    for _ in 0..10_000 {
        let (status, page) = get_json(
            gateway,
            &format!("/api/realtime/snapshot?limit={limit}&after={after}"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        settled &= page["partial"] == false;
        let events = page["events"].as_array().expect("events");
        assert!(events.len() <= limit, "a page holds at most `limit`");
        for event in events {
            let key = (
                event["type"].as_str().expect("type").to_owned(),
                event["payload"]["id"].as_str().expect("id").to_owned(),
            );
            if let Some(earlier) = listed.insert(key.clone(), event.clone()) {
                settled = false;
                assert!(
                    earlier["seq"].as_u64() < event["seq"].as_u64(),
                    "an entity comes again only newer: {earlier} then {event}"
                );
            }
        }
        match page["next"].as_u64() {
            Some(next) => {
                assert!(next > after, "pages move forward");
                after = next;
            }
            None => return (listed, settled),
        }
    }
    panic!("paging did not end");
}

/// Waits until the gateway's snapshot equals what the latest-state stream holds (JetStream
/// copies into it a moment after the event stream, and the gateway reads a moment after that:
/// both settle once nothing is published).
async fn snapshot_equals_the_latest_stream(
    gateway: &RunningGateway,
    jetstream: &async_nats::jetstream::Context,
    limit: usize,
) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let (held, messages) = latest_stream(jetstream).await;
        let (listed, settled) = gateway_snapshot(gateway, limit).await;
        let entities = gateway.metric("gateway_snapshot_entities").await as u64;
        if listed == held && entities == messages && settled {
            return listed.len();
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = held
                .iter()
                .filter(|(k, v)| listed.get(*k) != Some(*v))
                .take(5)
                .collect();
            let extra: Vec<_> = listed
                .iter()
                .filter(|(k, v)| held.get(*k) != Some(*v))
                .take(5)
                .collect();
            panic!(
                "the gateway's snapshot ({} events, {entities} entities, settled {settled}) is not \
                 what {LATEST} holds ({} events, {messages} messages):\n in the stream, not so in \
                 the gateway: {missing:?}\n in the gateway, not so in the stream: {extra:?}",
                listed.len(),
                held.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `rounds` events for each of `entities` entities of inventory, pricing and listings (each
/// round a new state), and a few orders between them.
fn burst_over_entities(entities: usize, rounds: usize, tag: &str) -> Vec<(String, String)> {
    let mut messages = Vec::new();
    for round in 0..rounds {
        for entity in 0..entities {
            for event_type in [
                EventType::InventoryChange,
                EventType::PriceChange,
                EventType::ListingUpdate,
            ] {
                let mut data = serde_json::Map::new();
                data.insert("round".into(), Value::from(round));
                data.insert("tag".into(), Value::from(tag));
                let event = RealTimeEvent::now(event_type, format!("e{entity}"), Action::Updated)
                    .with_data(data);
                messages.push((
                    redis_channel(event_type),
                    serde_json::to_string(&event).expect("json"),
                ));
            }
            if entity % 50 == 0 {
                messages.extend(burst(
                    EventType::OrderReceived,
                    1,
                    1,
                    &format!("{tag}{round}{entity}"),
                ));
            }
        }
    }
    messages
}

async fn publish_and_store(stack: &Stack, messages: &[(String, String)]) {
    let jetstream = stack.jetstream().await;
    let before = stream_last_seq(&jetstream).await;
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, messages).await;
    wait_for_stream_seq(&jetstream, before + messages.len() as u64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_in_memory_is_the_latest_stream_after_a_burst_over_many_entities() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let jetstream = stack.jetstream().await;
    // 3 channels × 300 entities × 4 rounds, published as fast as Redis takes them.
    publish_and_store(&stack, &burst_over_entities(300, 4, "burst")).await;
    // A message on an entity's subject that is not an event (published straight to NATS):
    // the latest-state stream keeps it and so hides the entity's earlier event; so does the
    // gateway.
    let before = stream_last_seq(&jetstream).await;
    jetstream
        .publish("rakuda.realtime.inventory.e7", "not an event".into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    wait_for_stream_seq(&jetstream, before + 1).await;
    let listed = snapshot_equals_the_latest_stream(&gateway, &jetstream, 137).await;
    assert_eq!(listed, 3 * 300 - 1, "every entity once but the hidden one");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_fills_the_snapshot_from_the_latest_stream() {
    let stack = Stack::start().await;
    let jetstream = stack.jetstream().await;
    publish_and_store(&stack, &burst_over_entities(100, 2, "first")).await;
    let gateway = start_gateway(stack.gateway_config()).await;
    snapshot_equals_the_latest_stream(&gateway, &jetstream, 1000).await;
    gateway.stop().await;
    // While no gateway runs: new entities and new states.
    publish_and_store(&stack, &burst_over_entities(150, 1, "while-down")).await;
    let restarted = start_gateway(stack.gateway_config()).await;
    let listed = snapshot_equals_the_latest_stream(&restarted, &jetstream, 250).await;
    assert_eq!(listed, 3 * 150);
    assert_eq!(restarted.metric("gateway_history_consumers").await, 0.0);
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_stream_is_recreated_the_snapshot_is_the_latest_stream_again() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let jetstream = stack.jetstream().await;
    publish_and_store(&stack, &burst_over_entities(60, 2, "old")).await;
    snapshot_equals_the_latest_stream(&gateway, &jetstream, 1000).await;
    let fills = gateway.metric("gateway_snapshot_fills_total").await;

    // The stream is deleted; the bridge recreates it on its next publish (an order: orders
    // have no latest state, so whether JetStream copies it changes no snapshot).
    jetstream
        .delete_stream("RAKUDA_REALTIME")
        .await
        .expect("delete the stream");
    let mut redis = stack.redis_connection().await;
    publish_all(
        &mut redis,
        &burst(EventType::OrderReceived, 1, 1, "recreate"),
    )
    .await;
    // The gateway reads the new stream and fills its state again from the latest-state
    // stream.
    rakuda_testkit::wait::eventually("the state filled again", || async {
        (gateway.metric("gateway_snapshot_fills_total").await > fills).then_some(())
    })
    .await;
    // JetStream copies into the latest-state stream from the recreated one only after a while
    // (NATS 2.9): orders are published until one is copied, then the comparison burst.
    let deadline = Instant::now() + WAIT;
    for probe in 0.. {
        let tag = format!("probe{probe}");
        publish_and_store(&stack, &burst(EventType::OrderReceived, 1, 1, &tag)).await;
        if latest_copied_order(&jetstream)
            .await
            .is_some_and(|id| id.starts_with("probe"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the latest-state stream never copied the recreated stream"
        );
    }
    // Some entities change in the new stream, some are new; the others keep what the old one
    // left in the latest-state stream.
    publish_and_store(&stack, &burst_over_entities(90, 1, "new")).await;
    let listed = snapshot_equals_the_latest_stream(&gateway, &jetstream, 77).await;
    assert_eq!(listed, 3 * 90);
    gateway.stop().await;
}

/// The id of the order the latest-state stream holds last, if any.
async fn latest_copied_order(jetstream: &async_nats::jetstream::Context) -> Option<String> {
    let stream = jetstream.get_stream(LATEST).await.ok()?;
    let copied = stream
        .get_last_raw_message_by_subject("rakuda.realtime.orders.~all")
        .await
        .ok()?;
    let order: Value = serde_json::from_slice(&copied.payload).ok()?;
    order["payload"]["id"].as_str().map(str::to_owned)
}

/// Counts the JetStream API requests that create consumers, per stream, as NATS routes them.
struct ConsumerCreates {
    client: async_nats::Client,
    requests: async_nats::Subscriber,
    marks: u64,
    counted: BTreeMap<String, usize>,
}

impl ConsumerCreates {
    async fn watch(stack: &Stack) -> ConsumerCreates {
        let client = bounded("nats connect", async_nats::connect(stack.nats.url()))
            .await
            .expect("connect to nats");
        let requests = client.subscribe("$JS.API.>").await.expect("subscribe");
        client.flush().await.expect("flush");
        ConsumerCreates {
            client,
            requests,
            marks: 0,
            counted: BTreeMap::new(),
        }
    }

    /// Every create NATS took before now, by stream. JetStream API requests reach other
    /// subscribers in the order JetStream takes them, not the order they were sent: a request
    /// of this test's own, taken after them, comes after them.
    async fn counted(&mut self) -> &BTreeMap<String, usize> {
        self.marks += 1;
        let mark = format!("test.mark.{}", self.marks);
        self.client
            .publish_with_reply(
                "$JS.API.STREAM.INFO.RAKUDA_REALTIME",
                mark.clone(),
                "".into(),
            )
            .await
            .expect("publish");
        loop {
            let request = bounded("the mark", self.requests.next())
                .await
                .expect("the subscription goes on");
            if request
                .reply
                .as_ref()
                .is_some_and(|reply| reply.as_str() == mark)
            {
                return &self.counted;
            }
            if std::env::var("DEBUG_CREATES").is_ok() {
                eprintln!(
                    "API {} {}",
                    request.subject,
                    String::from_utf8_lossy(&request.payload)
                );
            }
            let tokens: Vec<&str> = request.subject.as_str().split('.').collect();
            let stream = match tokens.as_slice() {
                ["$JS", "API", "CONSUMER", "CREATE", stream, ..] => *stream,
                ["$JS", "API", "CONSUMER", "DURABLE", "CREATE", stream, ..] => *stream,
                _ => continue,
            };
            *self.counted.entry(stream.to_owned()).or_default() += 1;
        }
    }

    async fn on(&mut self, stream: &str) -> usize {
        self.counted().await.get(stream).copied().unwrap_or(0)
    }
}

/// Settings for a herd from one address: every request fits.
fn herd_config(stack: &Stack) -> rakuda_gateway::Config {
    let mut config = stack.gateway_config();
    config.limits.max_unauthenticated_connections = 4_096;
    config.limits.max_unauthenticated_per_address = 4_096;
    config.history.history_request_max_bytes = 64 * 1024;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_of_snapshot_requests_makes_no_consumer() {
    const HERD: usize = 250;
    let stack = Stack::start().await;
    publish_and_store(&stack, &burst_over_entities(40, 1, "herd")).await;
    let gateway = start_gateway(herd_config(&stack)).await;
    rakuda_testkit::wait::eventually("every entity in the snapshot", || async {
        let (_, page) = get_json(&gateway, "/api/realtime/snapshot?limit=1000").await;
        (page["events"].as_array().map(Vec::len) == Some(3 * 40)).then_some(())
    })
    .await;
    let mut creates = ConsumerCreates::watch(&stack).await;

    let answers = get_all(&gateway, "/api/realtime/snapshot?limit=1000", HERD).await;
    for (status, page) in &answers {
        assert_eq!(*status, 200, "{page}");
        assert_eq!(page["events"].as_array().map(Vec::len), Some(3 * 40));
        assert_eq!(page, &answers[0].1, "one state for all");
    }
    assert_eq!(creates.on(LATEST).await, 0, "no consumer for any page");
    assert_eq!(gateway.metric("gateway_history_consumers").await, 0.0);
    assert!(
        gateway
            .metric("gateway_history_cache_total{route=\"snapshot\",result=\"hit\"}")
            .await
            >= HERD as f64
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_of_identical_summaries_runs_one_computation() {
    const HERD: usize = 1_000;
    let stack = Stack::start().await;
    publish_and_store(&stack, &burst_over_entities(10, 1, "sum")).await;
    let mut config = herd_config(&stack);
    // Long enough that the whole herd falls within one computation and its cache.
    config.history.summary_cache_ttl = Duration::from_secs(120);
    let gateway = start_gateway(config).await;
    let mut creates = ConsumerCreates::watch(&stack).await;

    let answers = get_all(&gateway, "/api/realtime/summary", HERD).await;
    for (status, summary) in &answers {
        assert_eq!(*status, 200, "{summary}");
        assert_eq!(
            summary["computedAt"], answers[0].1["computedAt"],
            "one computation"
        );
    }
    let metric = |result: &'static str| {
        let gateway = &gateway;
        async move {
            gateway
                .metric(&format!(
                    "gateway_history_cache_total{{route=\"summary\",result=\"{result}\"}}"
                ))
                .await
        }
    };
    assert_eq!(metric("miss").await, 1.0);
    assert_eq!(
        metric("joined").await + metric("hit").await,
        (HERD - 1) as f64
    );
    // One computation: 8 counting consumers per attempt, at most three attempts.
    let made = creates.on("RAKUDA_REALTIME").await;
    assert!(
        (8..=24).contains(&made),
        "{made} consumers for {HERD} summaries"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_of_identical_backfills_counts_once() {
    const HERD: usize = 100;
    let stack = Stack::start().await;
    // Orders far behind the ring of a gateway started after them: counted in JetStream. The
    // ring, warmed at start, holds fewer than the backfill asks for.
    publish_and_store(&stack, &burst(EventType::OrderReceived, 300, 300, "bf")).await;
    let mut config = herd_config(&stack);
    config.resume.replay_ring_capacity = 10;
    let gateway = start_gateway(config).await;
    let jetstream = stack.jetstream().await;
    let last = stream_last_seq(&jetstream).await;
    rakuda_testkit::wait::eventually("the gateway's watermark", || async {
        (gateway.metric("gateway_stream_last_sequence").await >= last as f64).then_some(())
    })
    .await;
    let mut creates = ConsumerCreates::watch(&stack).await;

    let url = format!(
        "{}/api/realtime/events?channels=orders&backfill=20",
        gateway.url
    );
    let histories = futures::future::join_all((0..HERD).map(|_| {
        let url = url.clone();
        async move {
            let mut client = SseClient::connect(&url).await;
            assert_eq!(client.status, 200);
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
    }))
    .await;
    let expected: Vec<u64> = (last - 19..=last).collect();
    for history in &histories {
        assert_eq!(history, &expected);
    }
    // Each connection reads its own events (one consumer each); the counting is done once
    // (a few consumers), not once per connection (at least two more each).
    let made = creates.on("RAKUDA_REALTIME").await;
    assert!(made <= HERD + 30, "{made} consumers for {HERD} backfills");
    let metric = |result: &'static str| {
        let gateway = &gateway;
        async move {
            gateway
                .metric(&format!(
                    "gateway_history_cache_total{{route=\"backfill\",result=\"{result}\"}}"
                ))
                .await
        }
    };
    assert_eq!(metric("miss").await, 1.0, "one count for the herd");
    assert_eq!(
        metric("joined").await + metric("hit").await,
        (HERD - 1) as f64
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_the_state_is_filled_snapshots_are_refused_by_name_with_a_retry_after() {
    let mut stack = Stack::start().await;
    let jetstream = stack.jetstream().await;
    // The latest-state stream is gone: the gateway cannot fill its state.
    jetstream
        .delete_stream(LATEST)
        .await
        .expect("delete the latest-state stream");
    let gateway = start_gateway(stack.gateway_config()).await;
    let response = reqwest::Client::new()
        .get(format!("{}/api/realtime/snapshot", gateway.url))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 503);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=5).contains(&retry_after), "Retry-After: {retry_after}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "snapshot_loading", "{body}");
    wait_for_rejections(&gateway, &[("snapshot_loading", 1.0)]).await;
    assert!(gateway.metric("gateway_snapshot_fill_failures_total").await >= 1.0);
    // Summaries do not depend on it.
    let (status, _) = get_json(&gateway, "/api/realtime/summary").await;
    assert_eq!(status, 200);

    // The bridge creates the stream again when it starts: the gateway fills, and answers.
    stack.stop_bridge().await;
    stack.start_bridge().await;
    gateway
        .wait_for_metric("gateway_snapshot_fills_total", 1.0)
        .await;
    let (status, page) = get_json(&gateway, "/api/realtime/snapshot").await;
    assert_eq!(status, 200, "{page}");
    gateway.stop().await;
}

/// `count` identical GETs of `path` at once, each with the API key: every status and JSON body.
async fn get_all(gateway: &RunningGateway, path: &str, count: usize) -> Vec<(u16, Value)> {
    let client = reqwest::Client::new();
    futures::future::join_all((0..count).map(|_| {
        let request = client
            .get(format!("{}{path}", gateway.url))
            .header("X-API-Key", API_KEY);
        async move {
            let response = request.send().await.expect("GET");
            (
                response.status().as_u16(),
                response.json::<Value>().await.expect("json"),
            )
        }
    }))
    .await
}
