//! The entries of the latest state, in the stream's order, per class: what [`super::Latest`]
//! keeps under its lock, and the pages it answers from.

use std::ops::Bound;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rakuda_schema::CHANNELS;

use crate::channels::ChannelSet;
use crate::event::StreamEvent;

use super::subject::*;
use super::FALLBACK_MAX_ENTITIES;

/// An event's JSON as the snapshot lists it (`{"type","seq","payload","timestamp"}`), in an
/// allocation of its own: the message's bytes share the NATS client's read buffer, which one
/// kept event would otherwise hold whole.
pub(crate) type Json = Arc<Vec<u8>>;

/// A buffer's size is a multiple of this: the next event of an entity, a few bytes longer,
/// most often still fits.
pub(super) const JSON_GRAIN: usize = 32;

/// `event`'s JSON, written into `old` when no answer holds it and it is large enough (the
/// feed's common case: no allocation and no free per event), else into a new buffer.
pub(super) fn write_json(old: Option<Json>, event: &StreamEvent) -> Json {
    let needed = event.json_exact_len();
    let size = needed.next_multiple_of(JSON_GRAIN);
    if let Some(mut json) = old {
        if let Some(buffer) = Arc::get_mut(&mut json) {
            buffer.clear();
            if buffer.capacity() < needed {
                buffer.reserve_exact(size);
            }
            event.write_json(buffer);
            return json;
        }
    }
    let mut buffer = Vec::with_capacity(size);
    event.write_json(&mut buffer);
    Arc::new(buffer)
}

/// What an entry is to hold.
pub(super) enum Content<'a> {
    /// An event's JSON, already written (laid over from a journal).
    Written(Option<Json>),
    /// An event to write: into the buffer the entry had, when it can.
    Event(&'a StreamEvent),
}

/// Subjects to their entries: hashed fast (the feed looks one up per event), with a key
/// chosen at random per process.
pub(super) type BySubject = HashMap<Name, Slot, foldhash::fast::RandomState>;

/// An entry's place in the order: its position, then a tiebreak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The event's sequence in the event stream.
    pub pos: u64,
    serial: u64,
}

impl Key {
    /// Every entry after position `pos` (0: from the start).
    pub fn after(pos: u64) -> Bound<Key> {
        if pos == 0 {
            Bound::Unbounded
        } else {
            Bound::Excluded(Key {
                pos,
                serial: u64::MAX,
            })
        }
    }

    /// Every entry up to position `pos`, included.
    pub fn through(pos: u64) -> Bound<Key> {
        Bound::Included(Key {
            pos,
            serial: u64::MAX,
        })
    }
}

/// The channels a page lists, as classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classes(u8);

impl Classes {
    /// The channels of `channels` that keep a latest state.
    pub fn of(channels: ChannelSet) -> Classes {
        let mut bits = 0u8;
        for (index, channel) in CHANNELS.iter().enumerate() {
            if channel.keeps_latest() && channels.contains(channel) {
                bits |= 1 << index;
            }
        }
        Classes(bits)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(super) fn iter(self) -> impl Iterator<Item = usize> {
        (0..CHANNELS.len()).filter(move |index| self.0 & (1 << index) != 0)
    }
}

pub(super) struct Slot {
    class: u8,
    pub(super) key: Key,
    /// The generation in which the feed last recorded this entry (0: from a fill).
    gen: u32,
}

pub(super) struct Entry {
    name: Name,
    json: Option<Json>,
}

/// One recorded event, to be laid over a fill.
pub(super) struct Journaled {
    name: Name,
    pos: u64,
    class: usize,
    json: Option<Json>,
}

/// The entries, in the stream's order.
pub struct Entries {
    pub(super) subjects: BySubject,
    classes: [BTreeMap<Key, Entry>; CLASSES],
    /// Entries held at most: the stream's limit, or [`FALLBACK_MAX_ENTITIES`].
    cap: usize,
    /// `<STREAM_NAME>_LATEST`'s `max_messages`, when it has one.
    pub(super) stream_cap: Option<u64>,
    /// The longest event JSON an entry may hold (from the stream's `max_message_size`).
    pub max_json: usize,
    serial: u64,
    bytes: usize,
}

impl Entries {
    pub fn new(stream_cap: Option<u64>, max_json: usize) -> Entries {
        let cap = stream_cap.map_or(FALLBACK_MAX_ENTITIES, |max| {
            usize::try_from(max).unwrap_or(usize::MAX)
        });
        Entries {
            subjects: BySubject::default(),
            classes: std::array::from_fn(|_| BTreeMap::new()),
            cap: cap.max(1),
            stream_cap,
            max_json,
            serial: 0,
            bytes: 0,
        }
    }

    /// Entries held (as the stream counts its messages).
    pub fn len(&self) -> usize {
        self.subjects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    /// Bytes of event JSON held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether entries may have been dropped: the stream is at its limit (at the limit
    /// exactly, nothing may have been yet; the answer errs on the side of saying so), or this
    /// state is at its own.
    pub fn at_cap(&self) -> bool {
        let len = self.len() as u64;
        self.stream_cap.is_some_and(|max| len >= max) || self.len() >= self.cap
    }

    /// Records the latest message of subject `name` (after the common prefix) at position
    /// `pos`: its event, or none for an entry that only counts. The entry the subject had is
    /// replaced, and past the limit the oldest entry goes, as the stream does. When `keep`,
    /// what to journal.
    pub(super) fn put(
        &mut self,
        name: &[u8],
        (pos, class): (u64, usize),
        content: Content<'_>,
        (gen, keep): (u32, bool),
    ) -> Option<Journaled> {
        let class = match content {
            Content::Written(None) => COUNT_ONLY,
            _ => class,
        };
        self.serial += 1;
        let key = Key {
            pos,
            serial: self.serial,
        };
        let slot = Slot {
            class: class as u8,
            key,
            gen,
        };
        let (name, old) = match self.subjects.get_mut(name) {
            Some(held) => {
                let old = self.classes[usize::from(held.class)].remove(&held.key);
                *held = slot;
                match old {
                    Some(old) => {
                        self.bytes -= old.json.as_ref().map_or(0, |json| json.len());
                        (old.name, old.json)
                    }
                    None => (Name::new(name), None),
                }
            }
            None => {
                let name = Name::new(name);
                self.subjects.insert(name.clone(), slot);
                (name, None)
            }
        };
        let json = match content {
            Content::Written(json) => json,
            Content::Event(event) if class != COUNT_ONLY => Some(write_json(old, event)),
            Content::Event(_) => None,
        };
        self.bytes += json.as_ref().map_or(0, |json| json.len());
        let journaled = keep.then(|| Journaled {
            name: name.clone(),
            pos,
            class,
            json: json.clone(),
        });
        self.classes[class].insert(key, Entry { name, json });
        while self.len() > self.cap {
            self.drop_oldest();
        }
        journaled
    }

    pub(super) fn drop_oldest(&mut self) {
        let oldest = self
            .classes
            .iter()
            .enumerate()
            .filter_map(|(class, entries)| entries.first_key_value().map(|(key, _)| (*key, class)))
            .min();
        let Some((_, class)) = oldest else { return };
        if let Some((_, entry)) = self.classes[class].pop_first() {
            self.bytes -= entry.json.as_ref().map_or(0, |json| json.len());
            self.subjects.remove(entry.name.as_bytes());
        }
    }

    /// The stream's limit changed (a bridge started with another `LATEST_MAX_ENTITIES`): the
    /// stream applied it, this state follows.
    pub(super) fn set_stream_cap(&mut self, stream_cap: Option<u64>) {
        let fresh = Entries::new(stream_cap, self.max_json);
        self.stream_cap = fresh.stream_cap;
        self.cap = fresh.cap;
        while self.len() > self.cap {
            self.drop_oldest();
        }
    }

    /// Lays `journal` (recorded by the feed, in its order) over these entries: each is newer
    /// than what the stream held when it was read.
    pub(super) fn overlay(&mut self, journal: Vec<Journaled>, gen: u32) {
        for event in journal {
            self.put(
                event.name.as_bytes(),
                (event.pos, event.class),
                Content::Written(event.json),
                (gen, false),
            );
        }
    }

    /// What the feed recorded in generation `gen`, in position order: a journal rebuilt from
    /// the entries themselves.
    pub(super) fn recorded_in(&self, gen: u32) -> Vec<Journaled> {
        let mut recorded: Vec<Journaled> = self
            .subjects
            .values()
            .filter(|slot| slot.gen == gen)
            .filter_map(|slot| {
                let class = usize::from(slot.class);
                let entry = self.classes[class].get(&slot.key)?;
                Some(Journaled {
                    name: entry.name.clone(),
                    pos: slot.key.pos,
                    class,
                    json: entry.json.clone(),
                })
            })
            .collect();
        recorded.sort_by_key(|event| event.pos);
        recorded
    }

    /// Appends to `out` the events of `classes` in (`from`, `to`), in order: at most `most`,
    /// and no more than `room` bytes of JSON (a comma each included) unless `out` was empty.
    pub fn collect(
        &self,
        classes: Classes,
        (from, to): (Bound<Key>, Bound<Key>),
        most: usize,
        room: usize,
        out: &mut Vec<(Key, Json)>,
    ) {
        let mut ranges: Vec<_> = classes
            .iter()
            .map(|class| self.classes[class].range((from, to)).peekable())
            .collect();
        let mut bytes = 0usize;
        let mut taken = 0usize;
        while taken < most {
            let next = ranges
                .iter_mut()
                .enumerate()
                .filter_map(|(index, range)| range.peek().map(|(key, _)| (**key, index)))
                .min();
            let Some((_, index)) = next else { break };
            let Some((key, entry)) = ranges[index].next() else {
                break;
            };
            let Some(json) = &entry.json else { continue };
            let size = json.len() + 1;
            if !out.is_empty() && bytes + size > room {
                break;
            }
            bytes += size;
            taken += 1;
            out.push((*key, json.clone()));
        }
    }

    /// The first entry of `classes` after `from`.
    pub fn first_after(&self, classes: Classes, from: Bound<Key>) -> Option<Key> {
        classes
            .iter()
            .filter_map(|class| {
                self.classes[class]
                    .range((from, Bound::Unbounded))
                    .next()
                    .map(|(key, _)| *key)
            })
            .min()
    }
}
