//! Folding several events of one type into one [`BatchFrame`]: shared by live debounce and by
//! resume, so a replay looks exactly like what a connected client would have received.

use std::collections::VecDeque;
use std::sync::Arc;

use indexmap::IndexMap;
use rakuda_schema::{BatchFrame, Channel, Coalesce, EventType, SequencedEvent};

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
    LatestPerId(IndexMap<String, Arc<SequencedEvent>>),
    /// Every event, oldest first.
    All(VecDeque<Arc<SequencedEvent>>),
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
    pub fn push(&mut self, event: Arc<SequencedEvent>) {
        self.count = self.count.saturating_add(1);
        match &mut self.events {
            Held::LatestPerId(by_id) => {
                // Re-inserting moves the id to the end: the map stays ordered by latest update.
                by_id.shift_remove(&event.payload.id);
                by_id.insert(event.payload.id.clone(), event);
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

    /// The events as a batch frame, leaving this empty.
    pub fn take_batch(&mut self) -> BatchFrame {
        let events: Vec<SequencedEvent> = match &mut self.events {
            Held::LatestPerId(by_id) => by_id.drain(..).map(|(_, e)| unwrap_event(e)).collect(),
            Held::All(all) => all.drain(..).map(unwrap_event).collect(),
        };
        let batch = BatchFrame {
            event_type: self.event_type,
            batch: true,
            count: self.count,
            events,
            truncated: self.truncated,
        };
        self.count = 0;
        self.truncated = false;
        batch
    }
}

/// The event itself; cloned only when the ring still shares it.
fn unwrap_event(event: Arc<SequencedEvent>) -> SequencedEvent {
    Arc::try_unwrap(event).unwrap_or_else(|shared| (*shared).clone())
}

/// Coalesces a replay: events in sequence order, grouped by type in order of first appearance.
/// A type with one event gives that event alone; more give a batch.
pub fn coalesce_replay(
    events: impl IntoIterator<Item = Arc<SequencedEvent>>,
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
#[derive(Debug, Clone, PartialEq)]
pub enum Folded {
    Single(SequencedEvent),
    Batch(BatchFrame),
}

impl Folded {
    /// A batch of one is sent as the event alone.
    pub fn from_batch(mut batch: BatchFrame) -> Folded {
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
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rakuda_schema::{Action, Payload, Timestamp};

    pub(crate) fn event(event_type: EventType, seq: u64, id: &str) -> Arc<SequencedEvent> {
        Arc::new(SequencedEvent {
            event_type,
            seq,
            payload: Payload {
                id: id.into(),
                action: Action::Updated,
                data: None,
            },
            timestamp: Timestamp::now(),
        })
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
