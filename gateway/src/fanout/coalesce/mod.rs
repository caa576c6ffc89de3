//! Folding several events of one type into one batch frame (the schema's `BatchFrame`):
//! shared by live debounce and by resume, so a replay looks exactly like what a connected client
//! would have received. Events stay shared (`Arc`): a batch lists them, it does not copy them.
//!
//! This is the fold; *when* a live batch goes out (the per-type window) is the other half, in
//! `crate::ingest::debounce`.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use indexmap::IndexMap;
use rakuda_schema::{Channel, Coalesce, EventType};

use crate::event::StreamEvent;

/// Events of one type waiting to be sent together.
#[derive(Debug)]
pub(crate) struct Pending {
    event_type: EventType,
    max_events: usize,
    /// Events the batch stands for, exact even when not all are listed.
    count: u32,
    truncated: bool,
    events: Held,
    /// Every sequence the batch stands for, listed or not, in stream order.
    seqs: Vec<u64>,
}

#[derive(Debug)]
enum Held {
    /// Latest event per `payload.id`, in the order of their latest update.
    LatestPerId(IndexMap<Box<str>, Arc<StreamEvent>>),
    /// Every event, oldest first.
    All(VecDeque<Arc<StreamEvent>>),
}

impl Pending {
    pub(crate) fn new(event_type: EventType, max_events: usize) -> Pending {
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
            seqs: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds an event; past the cap the oldest listed event is dropped and the batch marked
    /// truncated (the screen needs the newest state most).
    pub(crate) fn push(&mut self, event: Arc<StreamEvent>) {
        self.count = self.count.saturating_add(1);
        self.seqs.push(event.seq);
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

    /// The lowest sequence still held, which bounds the resume cursor: an event folded into a
    /// later one of its entity, or dropped by the cap, is not sent until the batch is, so a
    /// cursor must not claim it before.
    pub(crate) fn lowest_seq(&self) -> Option<u64> {
        self.seqs.first().copied()
    }

    /// The events as a batch, leaving this empty.
    pub(crate) fn take_batch(&mut self) -> Batch {
        let events: Vec<Arc<StreamEvent>> = match &mut self.events {
            Held::LatestPerId(by_id) => by_id.drain(..).map(|(_, e)| e).collect(),
            Held::All(all) => all.drain(..).collect(),
        };
        let batch = Batch {
            event_type: self.event_type,
            count: self.count,
            events,
            truncated: self.truncated,
            seqs: std::mem::take(&mut self.seqs),
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
    /// Every sequence the batch stands for (`count` of them), listed or not: what a client
    /// that already holds some of them is owed is known exactly (see [`Batch::above`]).
    pub seqs: Vec<u64>,
}

impl Batch {
    /// The part of this batch a client that holds every event up to `seq` has not seen: the
    /// listed events above it, counting exactly the events above it that the batch stands for.
    /// `None` when nothing is above.
    pub fn above(&self, seq: u64) -> Option<Folded> {
        let events: Vec<Arc<StreamEvent>> = self
            .events
            .iter()
            .filter(|event| event.seq > seq)
            .cloned()
            .collect();
        if events.is_empty() {
            // A listed event is the newest of what it stands for, so nothing above `seq` is
            // folded into an event at or below it.
            return None;
        }
        let seqs: Vec<u64> = self.seqs.iter().copied().filter(|s| *s > seq).collect();
        let count = u32::try_from(seqs.len()).unwrap_or(u32::MAX);
        let truncated = match Channel::of(self.event_type).coalesce {
            // Events dropped by the cap are older than every listed one: only those above `seq`
            // are missing from this part.
            Coalesce::KeepAll => seqs.len() > events.len(),
            Coalesce::LatestPerId => self.truncated,
        };
        Some(Folded::from_batch(Batch {
            event_type: self.event_type,
            count,
            events,
            truncated,
            seqs,
        }))
    }

    /// This batch as consecutive batches whose listed events take at most about `max_bytes`
    /// of JSON each (at least one event each): a replay over large events is written as
    /// several bounded frames instead of one that may not fit the replay budget. The counts
    /// add up to this batch's; `truncated` stays on the last part.
    pub fn split(self, max_bytes: usize) -> Vec<Folded> {
        let total: usize = self.events.iter().map(|event| event.json_len() + 1).sum();
        if total <= max_bytes {
            return vec![Folded::from_batch(self)];
        }
        let mut parts: Vec<Batch> = Vec::new();
        let mut bytes = 0;
        for event in self.events {
            let size = event.json_len() + 1;
            match parts.last_mut() {
                Some(part) if bytes + size <= max_bytes => {
                    bytes += size;
                    part.events.push(event);
                }
                _ => {
                    bytes = size;
                    parts.push(Batch {
                        event_type: self.event_type,
                        count: 0,
                        events: vec![event],
                        truncated: false,
                        seqs: Vec::new(),
                    });
                }
            }
        }
        // Each part stands for its listed events; what is folded or dropped (superseded
        // updates, the cap) is counted with the newest part, as the whole batch counted it.
        let mut listed = 0u32;
        for part in &mut parts {
            part.count = u32::try_from(part.events.len()).unwrap_or(u32::MAX);
            part.seqs = part.events.iter().map(|event| event.seq).collect();
            listed = listed.saturating_add(part.count);
        }
        if let Some(last) = parts.last_mut() {
            last.count = last.count.saturating_add(self.count.saturating_sub(listed));
            last.truncated = self.truncated;
        }
        parts.into_iter().map(Folded::from_batch).collect()
    }
}

/// Coalesces a replay: events in sequence order, grouped by type in order of first appearance.
/// A type with one event gives that event alone; more give a batch, split into frames of at
/// most about `max_frame_bytes` of events each.
pub(crate) fn coalesce_replay(
    events: impl IntoIterator<Item = Arc<StreamEvent>>,
    max_events: usize,
    max_frame_bytes: usize,
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
        .flat_map(|mut pending| pending.take_batch().split(max_frame_bytes))
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

    /// Lowest sequence the frame stands for, listed or not.
    pub fn min_seq(&self) -> u64 {
        match self {
            Folded::Single(event) => event.seq,
            Folded::Batch(batch) => batch
                .seqs
                .first()
                .copied()
                .unwrap_or_else(|| batch.events.iter().map(|e| e.seq).min().unwrap_or(0)),
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
mod tests;
