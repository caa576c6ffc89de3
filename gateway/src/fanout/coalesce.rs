//! Folding several events of one type into one batch frame (the schema's `BatchFrame`):
//! shared by live debounce and by resume, so a replay looks exactly like what a connected client
//! would have received. Events stay shared (`Arc`): a batch lists them, it does not copy them.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use indexmap::IndexMap;
use rakuda_schema::{Channel, Coalesce, EventType};

use crate::event::StreamEvent;

/// Events of one type waiting to be sent together.
#[derive(Debug)]
pub struct Pending {
    event_type: EventType,
    max_events: usize,
    /// Events the batch stands for, exact even when not all are listed.
    count: u32,
    truncated: bool,
    events: Held,
}

#[derive(Debug)]
enum Held {
    /// Latest event per `payload.id`, in the order of their latest update.
    LatestPerId(IndexMap<Box<str>, Arc<StreamEvent>>),
    /// Every event, oldest first.
    All(VecDeque<Arc<StreamEvent>>),
}

impl Pending {
    pub fn new(event_type: EventType, max_events: usize) -> Pending {
        let events = match Channel::of(event_type).coalesce {
            Coalesce::LatestPerId => Held::LatestPerId(IndexMap::new()),
            Coalesce::KeepAll => Held::All(VecDeque::new()),
        };
        Pending {
            event_type,
            max_events: max_events.max(1),
            count: 0,
            truncated: false,
            events,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Adds an event; past the cap the oldest listed event is dropped and the batch marked
    /// truncated (the screen needs the newest state most).
    pub fn push(&mut self, event: Arc<StreamEvent>) {
        self.count = self.count.saturating_add(1);
        match &mut self.events {
            Held::LatestPerId(by_id) => {
                // Re-inserting moves the id to the end: the map stays ordered by latest update.
                by_id.shift_remove(&event.id);
                by_id.insert(event.id.clone(), event);
                if by_id.len() > self.max_events {
                    by_id.shift_remove_index(0);
                    self.truncated = true;
                }
            }
            Held::All(all) => {
                all.push_back(event);
                if all.len() > self.max_events {
                    all.pop_front();
                    self.truncated = true;
                }
            }
        }
    }

    /// The lowest sequence still held, which bounds the resume cursor.
    pub fn lowest_seq(&self) -> Option<u64> {
        match &self.events {
            Held::LatestPerId(by_id) => by_id.values().map(|e| e.seq).min(),
            Held::All(all) => all.front().map(|e| e.seq),
        }
    }

    /// The events as a batch, leaving this empty.
    pub fn take_batch(&mut self) -> Batch {
        let events: Vec<Arc<StreamEvent>> = match &mut self.events {
            Held::LatestPerId(by_id) => by_id.drain(..).map(|(_, e)| e).collect(),
            Held::All(all) => all.drain(..).collect(),
        };
        let batch = Batch {
            event_type: self.event_type,
            count: self.count,
            events,
            truncated: self.truncated,
        };
        self.count = 0;
        self.truncated = false;
        batch
    }
}

/// Several events of one type sent as one frame: the schema's `BatchFrame`,
/// `{"type","batch":true,"count","events":[…],"truncated"?}`.
///
/// `count` is the exact number of events the batch stands for; `events` may hold fewer: for
/// state-like types only the latest event per `payload.id`, and never more than the configured
/// cap (then `truncated` is `true`).
#[derive(Debug, Clone)]
pub struct Batch {
    pub event_type: EventType,
    pub count: u32,
    pub events: Vec<Arc<StreamEvent>>,
    pub truncated: bool,
}

/// Coalesces a replay: events in sequence order, grouped by type in order of first appearance.
/// A type with one event gives that event alone; more give a batch.
pub fn coalesce_replay(
    events: impl IntoIterator<Item = Arc<StreamEvent>>,
    max_events: usize,
) -> Vec<Folded> {
    let mut by_type: IndexMap<EventType, Pending> = IndexMap::new();
    for event in events {
        by_type
            .entry(event.event_type)
            .or_insert_with(|| Pending::new(event.event_type, max_events))
            .push(event);
    }
    by_type
        .into_values()
        .map(|mut pending| Folded::from_batch(pending.take_batch()))
        .collect()
}

/// What coalescing produced: one event or a batch.
#[derive(Debug, Clone)]
pub enum Folded {
    Single(Arc<StreamEvent>),
    Batch(Batch),
}

impl Folded {
    /// A batch of one is sent as the event alone.
    pub fn from_batch(mut batch: Batch) -> Folded {
        if batch.count == 1 && batch.events.len() == 1 {
            if let Some(only) = batch.events.pop() {
                return Folded::Single(only);
            }
        }
        Folded::Batch(batch)
    }

    pub fn event_type(&self) -> EventType {
        match self {
            Folded::Single(event) => event.event_type,
            Folded::Batch(batch) => batch.event_type,
        }
    }

    /// Highest sequence inside (0 for an empty batch, which is never produced).
    pub fn max_seq(&self) -> u64 {
        match self {
            Folded::Single(event) => event.seq,
            Folded::Batch(batch) => batch.events.iter().map(|e| e.seq).max().unwrap_or(0),
        }
    }

    /// When the newest event inside was published by its worker.
    pub fn newest(&self) -> Option<time::OffsetDateTime> {
        match self {
            Folded::Single(event) => Some(event.published),
            Folded::Batch(batch) => batch.events.iter().map(|e| e.published).max(),
        }
    }

    /// An upper bound of the frame's JSON size, before writing it.
    pub fn json_len(&self) -> usize {
        match self {
            Folded::Single(event) => event.json_len(),
            Folded::Batch(batch) => {
                96 + batch
                    .events
                    .iter()
                    .map(|event| event.json_len() + 1)
                    .sum::<usize>()
            }
        }
    }

    /// The frame's `data`: a `SequencedEvent` or a `BatchFrame` of the schema, with the
    /// workers' bytes inside.
    pub fn write_json(&self, out: &mut BytesMut) {
        match self {
            Folded::Single(event) => event.write_json(out),
            Folded::Batch(batch) => {
                out.put_slice(b"{\"type\":\"");
                out.put_slice(batch.event_type.as_str().as_bytes());
                out.put_slice(b"\",\"batch\":true,\"count\":");
                out.put_slice(itoa::Buffer::new().format(batch.count).as_bytes());
                out.put_slice(b",\"events\":[");
                for (index, event) in batch.events.iter().enumerate() {
                    if index > 0 {
                        out.put_u8(b',');
                    }
                    event.write_json(out);
                }
                out.put_u8(b']');
                if batch.truncated {
                    out.put_slice(b",\"truncated\":true");
                }
                out.put_u8(b'}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::event;

    #[test]
    fn a_batch_frame_is_the_schemas_batch_frame() {
        let mut pending = Pending::new(EventType::PriceChange, 1);
        pending.push(event(EventType::PriceChange, 6, "p0"));
        pending.push(event(EventType::PriceChange, 7, "p1"));
        let folded = Folded::from_batch(pending.take_batch());
        let mut out = BytesMut::new();
        folded.write_json(&mut out);
        assert!(out.len() <= folded.json_len());
        let frame: rakuda_schema::BatchFrame = serde_json::from_slice(&out).expect("a BatchFrame");
        assert_eq!(
            (frame.count, frame.events.len(), frame.truncated),
            (2, 1, true)
        );
        assert_eq!(frame.events[0].seq, 7);
        assert_eq!(frame.events[0].payload.id, "p1");
    }

    #[test]
    fn state_like_types_keep_the_latest_per_id() {
        let mut pending = Pending::new(EventType::PriceChange, 1000);
        for seq in 1..=1000 {
            pending.push(event(
                EventType::PriceChange,
                seq,
                &format!("p{}", seq % 10),
            ));
        }
        let batch = pending.take_batch();
        assert_eq!(batch.count, 1000);
        assert_eq!(batch.events.len(), 10);
        assert!(!batch.truncated);
        // Latest of each id, ordered by that latest update.
        let seqs: Vec<u64> = batch.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (991..=1000).collect::<Vec<_>>());
        assert!(pending.is_empty());
    }

    #[test]
    fn orders_are_all_kept() {
        let mut pending = Pending::new(EventType::OrderReceived, 1000);
        for seq in 1..=300 {
            pending.push(event(EventType::OrderReceived, seq, "same-id"));
        }
        assert_eq!(pending.lowest_seq(), Some(1));
        let batch = pending.take_batch();
        assert_eq!((batch.count, batch.events.len()), (300, 300));
    }

    #[test]
    fn the_cap_keeps_the_newest_and_marks_truncation() {
        let mut pending = Pending::new(EventType::OrderReceived, 5);
        for seq in 1..=8 {
            pending.push(event(EventType::OrderReceived, seq, &format!("o{seq}")));
        }
        let batch = pending.take_batch();
        assert_eq!(batch.count, 8);
        assert!(batch.truncated);
        assert_eq!(
            batch.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn replay_groups_by_type_and_sends_lone_events_alone() {
        let events = vec![
            event(EventType::InventoryChange, 1, "a"),
            event(EventType::OrderReceived, 2, "o1"),
            event(EventType::InventoryChange, 3, "a"),
            event(EventType::InventoryChange, 4, "b"),
        ];
        let folded = coalesce_replay(events, 100);
        assert_eq!(folded.len(), 2);
        match &folded[0] {
            Folded::Batch(batch) => {
                assert_eq!(batch.event_type, EventType::InventoryChange);
                assert_eq!(batch.count, 3);
                assert_eq!(
                    batch.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
                    vec![3, 4]
                );
            }
            other => panic!("expected a batch, got {other:?}"),
        }
        assert!(matches!(&folded[1], Folded::Single(e) if e.seq == 2));
    }
}
