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
