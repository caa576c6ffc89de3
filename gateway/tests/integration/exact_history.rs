//! What a client is owed, exactly, when it comes back or opens with history: a resume inside a
//! batch another instance was still debouncing gets only what it lacks; a backfill restricted
//! to some channels gets the last N of those channels, however far behind the busy ones they
//! lie; a replay over large events is split into frames, and what it holds counts.

use crate::support::*;
use rakuda_schema::{Action, EventType};
use rakuda_testkit::redis_client::publish_all;
use serde_json::Value;

/// Publishes `events` and waits until the stream holds them; their sequences.
async fn publish_and_store(stack: &Stack, events: &[(String, String)]) -> Vec<u64> {
    let jetstream = stack.jetstream().await;
    let before = stream_last_seq(&jetstream).await;
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, events).await;
    let last = before + events.len() as u64;
    wait_for_stream_seq(&jetstream, last).await;
    ((before + 1)..=last).collect()
}

async fn wait_for_watermark(gateway: &RunningGateway, seq: u64) {
    eventually("the gateway's watermark", || async {
        (gateway.metric("gateway_stream_last_sequence").await >= seq as f64).then_some(())
    })
    .await;
}

/// The event records a new connection receives before its first heartbeat.
async fn history_records(client: &mut SseClient) -> Vec<SseEvent> {
    let mut records = Vec::new();
    loop {
        let record = client.next().await.expect("the stream goes on");
        match record.event.as_deref() {
            Some("heartbeat") => return records,
            Some("reset") => panic!("unexpected reset: {}", record.data),
            Some(_) => records.push(record),
            None => {}
        }
    }
}

/// A client resuming on `gateway` from just before `first`, once it has read the stream (a
/// heartbeat gives the stream's epoch).
async fn resume_before(gateway: &RunningGateway, first: u64) -> SseClient {
    let events = format!("{}/api/realtime/events", gateway.url);
    let mut client = SseClient::connect(&events).await;
    let epoch = loop {
        let record = client.next().await.expect("a heartbeat");
        if let Some(id) = record.id {
            break id.split_once('-').expect("epoch-seq").0.to_owned();
        }
    };
    SseClient::connect(&format!("{events}?lastEventId={epoch}-{}", first - 1)).await
}

fn seqs(records: &[SseEvent]) -> Vec<u64> {
    records.iter().flat_map(|record| record.seqs()).collect()
}

/// Gateway A sends every event at once; gateway B debounces for seconds. A client that read
/// the first orders from A and resumes on B while B still holds them in its window must get
/// only the later ones, counted exactly, and never a cursor below the one it came with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resuming_inside_a_batch_gets_only_the_events_above_its_cursor() {
    let stack = Stack::start().await;
    let mut eager = stack.gateway_config();
    eager.streams.sse_debounce_window = 0;
    let a = start_gateway(eager).await;
    let mut patient = stack.gateway_config();
    // Long enough that the resume below lands inside the window even on a loaded machine; if
    // it does not, the client gets the same events and the test still holds.
    patient.streams.sse_debounce_window = 8_000;
    let b = start_gateway(patient).await;

    let mut on_a =
        SseClient::connect(&format!("{}/api/realtime/events?channels=orders", a.url)).await;
    let first = publish_and_store(&stack, &burst(EventType::OrderReceived, 5, 5, "early")).await;
    let records = on_a.events_covering(&first).await;
    let cursor = records
        .last()
        .and_then(|record| record.id.clone())
        .expect("A's frames carry a cursor");
    let cursor_seq: u64 = cursor
        .split_once('-')
        .expect("epoch-seq")
        .1
        .parse()
        .expect("seq");
    assert_eq!(cursor_seq, first[4], "A's cursor covers what it sent");

    let mut on_b = SseClient::connect(&format!(
        "{}/api/realtime/events?channels=orders&lastEventId={cursor}",
        b.url
    ))
    .await;
    let later = publish_and_store(&stack, &burst(EventType::OrderReceived, 3, 3, "late")).await;
    let frame = on_b.next_event().await.expect("B's batch");
    assert_ne!(frame.event.as_deref(), Some("reset"), "{}", frame.data);
    assert_eq!(frame.seqs(), later, "only the events above the cursor");
    let count = frame.json().get("count").and_then(Value::as_u64);
    assert!(
        count == Some(3) || (later.len() == 1 && count.is_none()),
        "the batch counts the events above the cursor: {}",
        frame.data
    );
    assert!(
        frame.id_seq().expect("a cursor") >= later[2],
        "the cursor never goes back: {:?}",
        frame.id
    );
}

/// With a ring too small to hold the history, a client on one channel gets the last N events
/// of that channel, not the last N of the stream filtered down to a few.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_restricted_backfill_gets_the_last_n_of_its_channels() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.resume.replay_ring_capacity = 50;
    config.resume.backfill_max_events = 25;
    let gateway = start_gateway(config).await;
    // 300 events, every 10th an order.
    let mut events = Vec::new();
    let prices = burst(EventType::PriceChange, 270, 270, "p");
    let orders = burst(EventType::OrderReceived, 30, 30, "o");
    let (mut prices, mut orders) = (prices.into_iter(), orders.into_iter());
    for i in 0..300 {
        let next = if i % 10 == 9 {
            orders.next()
        } else {
            prices.next()
        };
        events.extend(next);
    }
    let published = publish_and_store(&stack, &events).await;
    wait_for_watermark(&gateway, published[299]).await;
    let order_seqs: Vec<u64> = published.iter().copied().skip(9).step_by(10).collect();
    assert_eq!(order_seqs.len(), 30);

    let url = format!("{}/api/realtime/events?channels=orders", gateway.url);
    let mut last_20 = SseClient::connect(&format!("{url}&backfill=20")).await;
    assert_eq!(seqs(&history_records(&mut last_20).await), order_seqs[10..]);
    let mut since = SseClient::connect(&format!("{url}&since=1h")).await;
    assert_eq!(
        seqs(&history_records(&mut since).await),
        order_seqs[5..],
        "?since= within BACKFILL_MAX_EVENTS of the channel"
    );
}

/// Once a quiet channel's events have all left the ring behind a busy channel, a backfill of
/// the quiet one still gets them from the stream (they were answered with nothing before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_channel_is_backfilled_from_far_behind_the_busy_ones() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.resume.replay_ring_capacity = 100;
    config.resume.resume_max_events = 500;
    config.resume.backfill_max_events = 1000;
    let gateway = start_gateway(config).await;
    let inventory =
        publish_and_store(&stack, &burst(EventType::InventoryChange, 120, 120, "inv")).await;
    let orders =
        publish_and_store(&stack, &burst(EventType::OrderReceived, 1_050, 1_050, "o")).await;
    wait_for_watermark(&gateway, orders[orders.len() - 1]).await;

    let url = format!("{}/api/realtime/events?channels=inventory", gateway.url);
    let mut all = SseClient::connect(&format!("{url}&backfill=1000")).await;
    assert_eq!(seqs(&history_records(&mut all).await), inventory);
    let mut five = SseClient::connect(&format!("{url}&backfill=5")).await;
    assert_eq!(seqs(&history_records(&mut five).await), inventory[115..]);
    let mut day = SseClient::connect(&format!("{url}&since=24h")).await;
    assert_eq!(seqs(&history_records(&mut day).await), inventory);
    assert!(
        gateway
            .metric("gateway_replays_total{source=\"stream\"}")
            .await
            >= 3.0,
        "served from the stream, not as an empty ring replay"
    );
}

/// A resume over 250 orders of 60 KB, all still in the ring, fits the default budget once it
/// is written as several frames; it was reset (`replay_budget`) as one 15 MB batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_replay_over_large_events_is_sent_in_bounded_frames() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let published = publish_and_store(&stack, &padded_orders(250, 60_000)).await;
    wait_for_watermark(&gateway, published[249]).await;
    let mut resumed = resume_before(&gateway, published[0]).await;
    let records = history_records(&mut resumed).await;
    assert_eq!(seqs(&records), published);
    assert!(records.len() > 1, "split into several frames");
    let largest = records.iter().map(|r| r.data.len()).max().unwrap_or(0);
    assert!(largest <= 200 * 1024, "largest frame {largest} bytes");
    assert_eq!(
        gateway
            .metric("gateway_replays_total{source=\"ring\"}")
            .await,
        1.0
    );
}

/// What a ring replay keeps alive counts against the per-connection bound, not only the frame
/// being written: four types of 400 KB each (1.6 MB held) do not fit in 1 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_replay_counts_every_event_it_holds() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.resume.replay_connection_max_bytes = 1024 * 1024;
    let gateway = start_gateway(config).await;
    let mut events = Vec::new();
    for (event_type, tag) in [
        (EventType::OrderReceived, "o"),
        (EventType::InventoryChange, "i"),
        (EventType::PriceChange, "p"),
        (EventType::ListingUpdate, "l"),
    ] {
        events.extend(padded_events(event_type, 20, 20_000, tag, Action::Updated));
    }
    let published = publish_and_store(&stack, &events).await;
    wait_for_watermark(&gateway, published[published.len() - 1]).await;
    let mut resumed = resume_before(&gateway, published[0]).await;
    let record = resumed.next_event().await.expect("a reset");
    assert_eq!(record.event.as_deref(), Some("reset"));
    assert_eq!(record.json()["reason"], "replay_budget");
    // Nothing stays reserved once the reset was written.
    gateway
        .wait_for_metric("gateway_replay_bytes_in_flight", 0.0)
        .await;
}
