//! The pipeline's promise, where it is made: a cursor (on a frame or a heartbeat tick) never
//! claims an event that has not gone out in a frame before it or with it.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use rakuda_schema::{Channel, EventType};
use tokio::sync::broadcast;

use super::*;
use crate::fanout::hub::HubMessage;
use crate::ingest::Reading;
use crate::metrics::GatewayMetrics;

const TYPES: [EventType; 4] = [
    EventType::InventoryChange,
    EventType::OrderReceived,
    EventType::PriceChange,
    EventType::ListingUpdate,
];

struct Harness {
    pipeline: Pipeline,
    hub: Arc<Hub>,
    messages: broadcast::Receiver<HubMessage>,
    start: Instant,
    /// Client events read so far, and the ones frames have carried (listed or folded).
    events: BTreeSet<u64>,
    sent: BTreeSet<u64>,
    next_seq: u64,
}

impl Harness {
    fn new(window_ms: u64, max_batch_events: usize) -> Harness {
        let metrics = GatewayMetrics::new();
        let hub = Arc::new(Hub::new(1 << 16));
        let messages = hub.tap().messages;
        let out = PipelineOutputs {
            hub: hub.clone(),
            ring: Arc::new(Ring::new(1_000)),
            latest: Arc::new(crate::history::latest::Latest::new(metrics.history.clone())),
            metrics: metrics.ingest.clone(),
            reading: Reading::default(),
            canary: Arc::new(Canary::new(Duration::ZERO, Duration::from_secs(1))),
            instance: "test".into(),
        };
        let mut pipeline = Pipeline::new(
            out,
            PipelineSettings {
                debounce_window: Duration::from_millis(window_ms),
                max_batch_events,
                heartbeat_interval: Duration::from_secs(1),
            },
        );
        pipeline.start(7, 0);
        Harness {
            pipeline,
            hub,
            messages,
            start: Instant::now(),
            events: BTreeSet::new(),
            sent: BTreeSet::new(),
            next_seq: 1,
        }
    }

    /// A message read at `at_ms`: a client event, or (`valid` false) one no client sees.
    fn message(&mut self, at_ms: u64, event_type: EventType, id: &str, valid: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let channel = Channel::of(event_type);
        let payload = if valid {
            self.events.insert(seq);
            format!(
                r#"{{"type":"{event_type}","payload":{{"id":"{id}","action":"updated"}},"timestamp":"2026-11-22T10:00:00.000Z"}}"#
            )
        } else {
            "not an event".to_owned()
        };
        self.pipeline.on_message(
            seq,
            &channel.entity_subject(id),
            Bytes::from(payload),
            self.start + Duration::from_millis(at_ms),
        );
        seq
    }

    /// The debounce deadline passed at `at_ms`.
    fn flush(&mut self, at_ms: u64) {
        self.pipeline
            .flush_due(self.start + Duration::from_millis(at_ms));
    }

    /// Takes what the hub sent, checking every cursor against what frames carried so far;
    /// returns the frames' cursors and listed sequences.
    fn check(&mut self) -> Vec<(u64, Vec<u64>)> {
        // A heartbeat now claims whatever the hub would let it.
        self.hub.tick(false);
        let mut frames = Vec::new();
        while let Ok(message) = self.messages.try_recv() {
            let cursor = match message {
                HubMessage::Frame(frame) => {
                    let carried = match &frame.folded {
                        Some(Folded::Single(event)) => vec![event.seq],
                        Some(Folded::Batch(batch)) => batch.seqs.clone(),
                        None => Vec::new(),
                    };
                    self.sent.extend(carried.iter().copied());
                    frames.push((frame.cursor.seq, carried));
                    frame.cursor.seq
                }
                HubMessage::Tick { cursor, .. } => cursor.seq,
                HubMessage::Drain => continue,
            };
            let claimed_unsent: Vec<u64> = self
                .events
                .range(..=cursor)
                .filter(|seq| !self.sent.contains(seq))
                .copied()
                .collect();
            assert!(
                claimed_unsent.is_empty(),
                "cursor {cursor} claims events never sent: {claimed_unsent:?}"
            );
        }
        frames
    }
}

/// Order 1 goes out at once and opens a window; order 2 is held; order 3 is read exactly as
/// the window ends. The batch flushed then holds order 2 only, so its cursor is 2: a client
/// that resumed from 3 would never get order 3 (the kill that lost `storm_40` for 493 clients).
#[tokio::test(start_paused = true)]
async fn a_batch_flushed_by_the_next_message_does_not_claim_it() {
    let mut harness = Harness::new(500, 1_000);
    harness.message(0, EventType::OrderReceived, "o1", true);
    harness.message(100, EventType::OrderReceived, "o2", true);
    assert_eq!(harness.check(), vec![(1, vec![1])]);
    harness.message(500, EventType::OrderReceived, "o3", true);
    assert_eq!(
        harness.check(),
        vec![(2, vec![2])],
        "order 3 is held, not claimed"
    );
    harness.flush(1_000);
    assert_eq!(harness.check(), vec![(3, vec![3])]);
}

/// One step of a generated run.
#[derive(Debug, Clone)]
enum Step {
    /// A message `after_ms` after the previous step: a type, an entity, valid or not.
    Message {
        after_ms: u64,
        type_index: usize,
        id: u8,
        valid: bool,
    },
    /// The pipeline's debounce timer fires `after_ms` after the previous step.
    Flush { after_ms: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u64..400, 0usize..4, 0u8..6, prop::bool::weighted(0.9)).prop_map(
            |(after_ms, type_index, id, valid)| Step::Message { after_ms, type_index, id, valid }
        ),
        1 => (0u64..800).prop_map(|after_ms| Step::Flush { after_ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the timing, types, entities, invalid messages and caps: every cursor the hub
    /// carries (on a frame or a heartbeat tick) covers only events that frames up to it carried,
    /// and at the end every client event went out.
    #[test]
    fn no_cursor_claims_an_event_not_yet_sent(
        window_ms in prop_oneof![Just(0u64), 1u64..600],
        max_batch_events in 1usize..8,
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let mut harness = Harness::new(window_ms, max_batch_events);
            let mut at_ms = 0;
            for step in steps {
                match step {
                    Step::Message { after_ms, type_index, id, valid } => {
                        at_ms += after_ms;
                        harness.message(at_ms, TYPES[type_index], &format!("e{id}"), valid);
                    }
                    Step::Flush { after_ms } => {
                        at_ms += after_ms;
                        harness.flush(at_ms);
                    }
                }
                harness.check();
            }
            harness.flush(at_ms + 10 * window_ms + 1);
            harness.check();
            let unsent: Vec<u64> = harness.events.difference(&harness.sent).copied().collect();
            assert!(unsent.is_empty(), "never sent: {unsent:?}");
        });
    }
}

/// The pipeline as the gateway runs it: its own task, fed through the channel the feed writes
/// to, its debounce deadlines and heartbeat ticks on tokio's clock. Under a paused clock every
/// timer fires at exactly its instant once nothing else can run, so the instant a hub message
/// arrives at is the instant the pipeline sent it.
struct Running {
    feed: mpsc::Sender<FeedItem>,
    hub: Arc<Hub>,
    messages: broadcast::Receiver<HubMessage>,
    /// The clock when the pipeline started (its heartbeat interval counts from here).
    start: Instant,
    next_seq: u64,
    _stop: tokio_util::sync::DropGuard,
}

/// What the hub sent, and when (ms after [`Running::start`]).
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    /// A frame: the sequences it lists and the cursor it carries.
    Frame {
        at_ms: u64,
        seqs: Vec<u64>,
        cursor: u64,
    },
    Tick {
        at_ms: u64,
        cursor: u64,
    },
}

impl Running {
    async fn start(window_ms: u64, heartbeat_ms: u64) -> Running {
        let metrics = GatewayMetrics::new();
        let hub = Arc::new(Hub::new(1 << 10));
        let messages = hub.tap().messages;
        let out = PipelineOutputs {
            hub: hub.clone(),
            ring: Arc::new(Ring::new(1_000)),
            latest: Arc::new(crate::history::latest::Latest::new(metrics.history.clone())),
            metrics: metrics.ingest.clone(),
            reading: Reading::default(),
            canary: Arc::new(Canary::new(Duration::ZERO, Duration::from_secs(1))),
            instance: "test".into(),
        };
        let pipeline = Pipeline::new(
            out,
            PipelineSettings {
                debounce_window: Duration::from_millis(window_ms),
                max_batch_events: 1_000,
                heartbeat_interval: Duration::from_millis(heartbeat_ms),
            },
        );
        let (feed, items) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let start = Instant::now();
        tokio::spawn(pipeline.run(items, shutdown.clone()));
        feed.send(FeedItem::Start {
            epoch: 7,
            last_seq: 0,
        })
        .await
        .expect("the pipeline runs");
        Running {
            feed,
            hub,
            messages,
            start,
            next_seq: 1,
            _stop: shutdown.drop_guard(),
        }
    }

    /// Moves the paused clock to `at_ms`; whatever falls due before then runs first, at its
    /// own instant.
    async fn clock_at(&self, at_ms: u64) {
        tokio::time::sleep_until(self.start + Duration::from_millis(at_ms)).await;
    }

    /// Feeds the next stream message at `at_ms`: a client event of `event_type`, or (`valid`
    /// false) a message no client sees. Returns its sequence.
    async fn message(&mut self, at_ms: u64, event_type: EventType, valid: bool) -> u64 {
        self.clock_at(at_ms).await;
        let seq = self.next_seq;
        self.next_seq += 1;
        let payload = if valid {
            format!(
                r#"{{"type":"{event_type}","payload":{{"id":"e{seq}","action":"updated"}},"timestamp":"2026-11-22T10:00:00.000Z"}}"#
            )
        } else {
            "not an event".to_owned()
        };
        self.feed
            .send(FeedItem::Message {
                seq,
                subject: Channel::of(event_type).entity_subject(&format!("e{seq}")),
                payload: Bytes::from(payload),
            })
            .await
            .expect("the pipeline runs");
        seq
    }

    /// The next message the hub sends, and the clock's reading when it came: the instant the
    /// pipeline sent it, when nothing was waiting unread.
    async fn next(&mut self) -> Sent {
        let message = self.messages.recv().await.expect("the hub is open");
        let at_ms = u64::try_from((Instant::now() - self.start).as_millis()).unwrap_or(u64::MAX);
        match message {
            HubMessage::Frame(frame) => Sent::Frame {
                at_ms,
                seqs: match &frame.folded {
                    Some(Folded::Single(event)) => vec![event.seq],
                    Some(Folded::Batch(batch)) => batch.seqs.clone(),
                    None => Vec::new(),
                },
                cursor: frame.cursor.seq,
            },
            HubMessage::Tick { cursor, .. } => Sent::Tick {
                at_ms,
                cursor: cursor.seq,
            },
            HubMessage::Drain => panic!("nothing drains the hub here"),
        }
    }
}

/// Deadlines: an event held in a window goes out when the window ends, with no later message
/// to push it; each type's window ends on its own; a window that held events opens the next
/// one at once, and one that held nothing closes, so the next event goes out at once.
#[tokio::test(start_paused = true)]
async fn held_events_go_out_at_their_windows_end_without_a_message_to_push_them() {
    // Heartbeats far apart, so every message below is a frame.
    let mut pipeline = Running::start(500, 60_000).await;
    let order = EventType::OrderReceived;
    let price = EventType::PriceChange;

    // 1 opens the orders' window (0-500), 3 the prices' (200-700).
    pipeline.message(0, order, true).await;
    let sent = |at_ms, seqs: &[u64], cursor| Sent::Frame {
        at_ms,
        seqs: seqs.to_vec(),
        cursor,
    };
    assert_eq!(pipeline.next().await, sent(0, &[1], 1));
    pipeline.message(100, order, true).await;
    pipeline.message(200, price, true).await;
    assert_eq!(pipeline.next().await, sent(200, &[3], 1), "2 is held");
    pipeline.message(300, price, true).await;
    // The orders' window ends first; its batch may now claim 3, which went out.
    assert_eq!(pipeline.next().await, sent(500, &[2], 3));
    assert_eq!(pipeline.next().await, sent(700, &[4], 4));

    // The orders' window that held 2 opened the next one (500-1000): 5 waits for its end.
    pipeline.message(800, order, true).await;
    assert_eq!(pipeline.next().await, sent(1_000, &[5], 5));
    // That window (1000-1500) holds nothing and closes: 6, after it, goes out at once.
    pipeline.message(1_600, order, true).await;
    assert_eq!(pipeline.next().await, sent(1_600, &[6], 6));
    assert_eq!(pipeline.hub.watermark(), 6);
}

/// Ticks: a heartbeat tick goes through the hub every interval from the start (not at once),
/// whether or not events flow, each carrying the cursor of what went out before it.
#[tokio::test(start_paused = true)]
async fn heartbeat_ticks_come_every_interval_from_the_start_in_order_with_the_frames() {
    let mut pipeline = Running::start(0, 1_000).await;
    let order = EventType::OrderReceived;
    assert_eq!(
        pipeline.next().await,
        Sent::Tick {
            at_ms: 1_000,
            cursor: 0
        }
    );
    // Debounce is off: each event goes out on its own, at once.
    for (at_ms, seq) in [(1_200, 1), (1_500, 2)] {
        pipeline.message(at_ms, order, true).await;
        assert_eq!(
            pipeline.next().await,
            Sent::Frame {
                at_ms,
                seqs: vec![seq],
                cursor: seq
            }
        );
    }
    for at_ms in [2_000, 3_000, 4_000] {
        assert_eq!(pipeline.next().await, Sent::Tick { at_ms, cursor: 2 });
    }
}

/// The watermark: messages no client sees (invalid ones here) move it with no frame; an event
/// held back holds it below itself, whatever is read after it, and ticks claim no more; once
/// the held event goes out the watermark covers everything read.
#[tokio::test(start_paused = true)]
async fn the_watermark_stops_below_a_held_event_and_catches_up_when_it_goes_out() {
    let mut pipeline = Running::start(500, 100).await;
    let order = EventType::OrderReceived;

    pipeline.message(50, order, false).await;
    assert_eq!(
        pipeline.next().await,
        Sent::Tick {
            at_ms: 100,
            cursor: 1
        }
    );
    assert_eq!(pipeline.hub.watermark(), 1);

    pipeline.message(150, order, true).await;
    assert_eq!(
        pipeline.next().await,
        Sent::Frame {
            at_ms: 150,
            seqs: vec![2],
            cursor: 2
        }
    );
    // 3 is held until 650; 4 (invalid) and 5 (another type, sent at once) are read after it.
    pipeline.message(160, order, true).await;
    pipeline.message(170, order, false).await;
    pipeline.message(180, EventType::PriceChange, true).await;
    assert_eq!(
        pipeline.next().await,
        Sent::Frame {
            at_ms: 180,
            seqs: vec![5],
            cursor: 2
        },
        "5 went out, but 3 is held: the cursor stays at 2"
    );
    for at_ms in (200..=600).step_by(100) {
        assert_eq!(pipeline.next().await, Sent::Tick { at_ms, cursor: 2 });
        assert_eq!(pipeline.hub.watermark(), 2);
    }
    assert_eq!(
        pipeline.next().await,
        Sent::Frame {
            at_ms: 650,
            seqs: vec![3],
            cursor: 5
        },
        "with 3 out, everything read is covered"
    );
    assert_eq!(
        pipeline.next().await,
        Sent::Tick {
            at_ms: 700,
            cursor: 5
        }
    );
    assert_eq!(pipeline.hub.watermark(), 5);
}
