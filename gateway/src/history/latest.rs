//! The latest event of every entity, kept in memory: what `/api/realtime/snapshot` answers
//! from, so that a page costs no JetStream consumer however many dashboards ask at once.
//!
//! It holds what `<STREAM_NAME>_LATEST` holds, kept the way that stream keeps it: one entry per
//! subject the stream takes (`rakuda.realtime.<channel>.<token>`: an entity of inventory,
//! pricing or listings; orders' one subject; the source gap marker), at most the stream's
//! `max_messages` (`LATEST_MAX_ENTITIES`), the least recently changed dropped first. Only the
//! entities of channels with a latest state carry an event (its JSON as the snapshot writes it,
//! built once); the other entries only count, as they count in the stream.
//!
//! It is filled from `<STREAM_NAME>_LATEST` ([`super::fill`]) at start and each time the feed
//! starts on a stream anew (the stream was recreated), and kept current by the feed itself:
//! the pipeline records every event it reads ([`Latest::record`]). A fill is built aside and
//! swapped in; the events the feed recorded since it began are laid over it (they are newer
//! than what the stream held), so nothing the gateway read is lost to a fill.
//!
//! Positions: an entry's position is its event's sequence in the event stream (the `seq` it is
//! served with), so a page's `next` means the same on every gateway. An update moves an entity
//! to a higher position, past every page already read: a client paging through sees every
//! entity once at its latest state as of the page, or again later, newer. Entries a recreated
//! stream left in `<STREAM_NAME>_LATEST` keep their old sequences, and may share one with an
//! event of the new stream: positions are unique with a tiebreak, and a page never ends
//! between two entries of the same position.
//!
//! Cost, on the feed's thread and after the event's frame is handed to the hub: the event's
//! JSON written into the entity's own buffer (no allocation once the entity is known, unless a
//! page being written holds the old one), one hash lookup, the entry moved in its channel's
//! ordered map. `cargo bench -p rakuda-gateway --bench hot_paths -- latest` measured 0.33 µs
//! per event with 10,000 entities, 1.4 µs with 100,000 and 2.3 µs with 1,000,000 on a 2-core
//! VM: past the caches it is memory latency, a few misses per event. Memory: the event's JSON
//! and about 300 bytes per entity.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use rakuda_schema::channel::SUBJECT_PREFIX;
use rakuda_schema::CHANNELS;
use tokio::sync::watch;

use crate::channels::ChannelSet;
use crate::event::StreamEvent;
use crate::metrics::HistoryMetrics;

/// Entries held at most when `<STREAM_NAME>_LATEST` sets no limit (the bridges always set
/// `LATEST_MAX_ENTITIES`; this is its default).
pub const FALLBACK_MAX_ENTITIES: usize = 1_000_000;
/// Events the feed records while a fill is being read, kept to be laid over it, at most. Past
/// it the fill is laid over by looking up every entry the feed changed since it began instead
/// (one pass over the state, under the lock).
const JOURNAL_MAX: usize = 262_144;
/// Journaled events laid over a fill while the lock is held, at most: more are taken out and
/// applied outside it first, so the swap holds up the feed for a moment only.
const SWAP_UNDER_LOCK: usize = 4_096;
/// Classes of entries: one per channel (those with a latest state carry events), and one for
/// the entries that only count.
const CLASSES: usize = CHANNELS.len() + 1;
const COUNT_ONLY: usize = CHANNELS.len();

/// Where `subject` goes, if `<STREAM_NAME>_LATEST` holds it: it takes
/// `rakuda.realtime.*.*` (see [`rakuda_schema::channel::ENTITY_SUBJECTS`]). The class of the
/// channel when the channel keeps a latest state, else [`COUNT_ONLY`]; and the subject after
/// the prefix all share (`<channel>.<token>`).
fn class_of(subject: &str) -> Option<(usize, &str)> {
    let rest = subject.strip_prefix(SUBJECT_PREFIX)?;
    let (channel, token) = rest.split_once('.')?;
    if channel.is_empty() || token.is_empty() || token.contains('.') {
        return None;
    }
    let class = CHANNELS
        .iter()
        .position(|c| c.name == channel && c.keeps_latest())
        .unwrap_or(COUNT_ONLY);
    Some((class, rest))
}

/// Bytes of a [`Name`] kept inline: `inventory.` and a 20-byte token (a [`Name`] is then 32
/// bytes, as large as a pointer to a longer one with its length and tag).
const NAME_INLINE: usize = 30;

/// A subject after its common prefix (`inventory.prod_123`), inline when short (nearly all
/// are): the feed's lookup of it then reads no memory beside the map's own.
#[derive(Clone)]
enum Name {
    Inline { len: u8, bytes: [u8; NAME_INLINE] },
    Long(Box<[u8]>),
}

impl Name {
    fn new(name: &[u8]) -> Name {
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= NAME_INLINE => {
                let mut bytes = [0u8; NAME_INLINE];
                bytes[..name.len()].copy_from_slice(name);
                Name::Inline { len, bytes }
            }
            _ => Name::Long(name.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Name::Long(bytes) => bytes,
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl std::hash::Hash for Name {
    // As `[u8]` hashes: a lookup by the bytes alone finds the name.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::borrow::Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// An event's JSON as the snapshot lists it (`{"type","seq","payload","timestamp"}`), in an
/// allocation of its own: the message's bytes share the NATS client's read buffer, which one
/// kept event would otherwise hold whole.
pub type Json = Arc<Vec<u8>>;

/// A buffer's size is a multiple of this: the next event of an entity, a few bytes longer,
/// most often still fits.
const JSON_GRAIN: usize = 32;

/// `event`'s JSON, written into `old` when no answer holds it and it is large enough (the
/// feed's common case: no allocation and no free per event), else into a new buffer.
fn write_json(old: Option<Json>, event: &StreamEvent) -> Json {
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
enum Content<'a> {
    /// An event's JSON, already written (laid over from a journal).
    Written(Option<Json>),
    /// An event to write: into the buffer the entry had, when it can.
    Event(&'a StreamEvent),
}

/// Subjects to their entries: hashed fast (the feed looks one up per event), with a key
/// chosen at random per process.
type BySubject = HashMap<Name, Slot, foldhash::fast::RandomState>;

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

    fn iter(self) -> impl Iterator<Item = usize> {
        (0..CHANNELS.len()).filter(move |index| self.0 & (1 << index) != 0)
    }
}

struct Slot {
    class: u8,
    key: Key,
    /// The generation in which the feed last recorded this entry (0: from a fill).
    gen: u32,
}

struct Entry {
    name: Name,
    json: Option<Json>,
}

/// One recorded event, to be laid over a fill.
struct Journaled {
    name: Name,
    pos: u64,
    class: usize,
    json: Option<Json>,
}

/// The entries, in the stream's order.
pub struct Entries {
    subjects: BySubject,
    classes: [BTreeMap<Key, Entry>; CLASSES],
    /// Entries held at most: the stream's limit, or [`FALLBACK_MAX_ENTITIES`].
    cap: usize,
    /// `<STREAM_NAME>_LATEST`'s `max_messages`, when it has one.
    stream_cap: Option<u64>,
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
    fn put(
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

    fn drop_oldest(&mut self) {
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
    fn set_stream_cap(&mut self, stream_cap: Option<u64>) {
        let fresh = Entries::new(stream_cap, self.max_json);
        self.stream_cap = fresh.stream_cap;
        self.cap = fresh.cap;
        while self.len() > self.cap {
            self.drop_oldest();
        }
    }

    /// Lays `journal` (recorded by the feed, in its order) over these entries: each is newer
    /// than what the stream held when it was read.
    fn overlay(&mut self, journal: Vec<Journaled>, gen: u32) {
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
    fn recorded_in(&self, gen: u32) -> Vec<Journaled> {
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

/// Why a fill was not swapped in.
#[derive(Debug, PartialEq, Eq)]
pub struct Outdated;

/// Events the feed recorded while a fill is pending.
enum Journal {
    /// No fill pending.
    Off,
    On(Vec<Journaled>),
    /// More than [`JOURNAL_MAX`]: the entries themselves say what the feed recorded.
    Overrun,
}

struct Store {
    /// Counts the feed's starts (and refills asked for): a fill belongs to one.
    gen: u32,
    /// The epoch of the stream the feed reads.
    epoch: u64,
    /// The last sequence the feed recorded (or started after).
    through: u64,
    entries: Entries,
    journal: Journal,
}

/// A fill asked for: generation `gen`, to hold everything the event stream (of `epoch`) stored
/// up to `through`; the feed records what comes after.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    pub gen: u32,
    pub epoch: u64,
    pub through: u64,
}

/// The snapshot state, shared by the feed (which writes), the fill, and the answers.
pub struct Latest {
    store: RwLock<Store>,
    /// `true` once a fill is in: answers wait for it.
    filled: watch::Sender<bool>,
    /// The fill wanted.
    wanted: watch::Sender<Wanted>,
    metrics: Arc<HistoryMetrics>,
}

impl Latest {
    pub fn new(metrics: Arc<HistoryMetrics>) -> Latest {
        Latest {
            store: RwLock::new(Store {
                gen: 0,
                epoch: 0,
                through: 0,
                entries: Entries::new(None, 0),
                journal: Journal::Off,
            }),
            filled: watch::Sender::new(false),
            wanted: watch::Sender::new(Wanted::default()),
            metrics,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        // Each change under the lock leaves the maps consistent before the next: a panic
        // elsewhere does not make them unsafe to read.
        self.store
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The feed starts reading the stream of `epoch` after sequence `through` (at start, or
    /// the stream was recreated): what the stream held up to there is read again from
    /// `<STREAM_NAME>_LATEST`, and what the feed records from now on is laid over it.
    pub fn start(&self, epoch: u64, through: u64) {
        let wanted = {
            let mut store = self.write();
            store.epoch = epoch;
            store.through = through;
            Self::next_gen(&mut store)
        };
        self.wanted.send_replace(wanted);
    }

    /// `<STREAM_NAME>_LATEST` itself changed (recreated, purged): it is read again, up to what
    /// the feed has recorded so far.
    pub fn refill(&self) {
        let wanted = Self::next_gen(&mut self.write());
        self.wanted.send_replace(wanted);
    }

    fn next_gen(store: &mut Store) -> Wanted {
        store.gen += 1;
        store.journal = Journal::On(Vec::new());
        Wanted {
            gen: store.gen,
            epoch: store.epoch,
            through: store.through,
        }
    }

    /// Records a message the feed read: `event` when it is a valid event, `None` otherwise.
    /// Subjects `<STREAM_NAME>_LATEST` does not take are ignored. On the feed's path: the
    /// event's JSON written into the entity's buffer, and its entry moved to its new position.
    pub fn record(&self, subject: &str, seq: u64, event: Option<&StreamEvent>) {
        let Some((class, name)) = class_of(subject) else {
            return;
        };
        let content = match event {
            Some(event) => Content::Event(event),
            None => Content::Written(None),
        };
        let mut store = self.write();
        let Store {
            gen,
            through,
            entries,
            journal,
            ..
        } = &mut *store;
        *through = seq;
        let journaling = matches!(journal, Journal::On(_));
        let journaled = entries.put(name.as_bytes(), (seq, class), content, (*gen, journaling));
        match (journal, journaled) {
            (Journal::On(list), Some(event)) if list.len() < JOURNAL_MAX => list.push(event),
            (journal @ Journal::On(_), _) => *journal = Journal::Overrun,
            _ => {}
        }
        self.show(entries);
    }

    fn show(&self, entries: &Entries) {
        self.metrics.snapshot_entities.set(entries.len() as f64);
        self.metrics.snapshot_bytes.set(entries.bytes() as f64);
    }

    /// The fills wanted.
    pub fn wanted(&self) -> watch::Receiver<Wanted> {
        self.wanted.subscribe()
    }

    /// Swaps in `fresh`, read from `<STREAM_NAME>_LATEST` for generation `gen`, with what the
    /// feed recorded since laid over it; [`Outdated`] when the feed started anew meanwhile
    /// (a fill for the new generation follows).
    pub fn swap_in(&self, gen: u32, mut fresh: Entries) -> Result<(), Outdated> {
        loop {
            let mut store = self.write();
            if store.gen != gen {
                return Err(Outdated);
            }
            let journal = match &mut store.journal {
                Journal::On(journal) if journal.len() > SWAP_UNDER_LOCK => {
                    let taken = std::mem::take(journal);
                    drop(store);
                    fresh.overlay(taken, gen);
                    continue;
                }
                Journal::On(journal) => std::mem::take(journal),
                Journal::Overrun => store.entries.recorded_in(gen),
                Journal::Off => Vec::new(),
            };
            fresh.overlay(journal, gen);
            store.journal = Journal::Off;
            let old = std::mem::replace(&mut store.entries, fresh);
            self.show(&store.entries);
            drop(store);
            // The old state is freed outside the lock: the feed does not wait on it.
            drop(old);
            self.filled.send_replace(true);
            return Ok(());
        }
    }

    /// `<STREAM_NAME>_LATEST`'s limit is now `stream_cap`.
    pub fn set_stream_cap(&self, stream_cap: Option<u64>) {
        let mut store = self.write();
        store.entries.set_stream_cap(stream_cap);
        self.show(&store.entries);
    }

    /// The stream's limit as this state knows it, and how many entries it holds.
    pub fn stream_cap_and_len(&self) -> (Option<u64>, usize) {
        let store = self.read();
        (store.entries.stream_cap, store.entries.len())
    }

    /// Waits up to `wait` for the first fill: `Some(true)` if it had to wait, `Some(false)`
    /// if it was in already, `None` if it is not in yet.
    pub async fn ready(&self, wait: Duration) -> Option<bool> {
        let mut filled = self.filled.subscribe();
        if *filled.borrow_and_update() {
            return Some(false);
        }
        let waited = tokio::time::timeout(wait, filled.wait_for(|filled| *filled))
            .await
            .is_ok_and(|filled| filled.is_ok());
        waited.then_some(true)
    }

    /// Whether the state is at its limit (see [`Entries::at_cap`]).
    pub fn at_cap(&self) -> bool {
        self.read().entries.at_cap()
    }

    /// The longest JSON one entry may hold.
    pub fn max_json(&self) -> usize {
        self.read().entries.max_json
    }

    /// See [`Entries::collect`]; the lock is held for this one batch only.
    pub fn collect(
        &self,
        classes: Classes,
        range: (Bound<Key>, Bound<Key>),
        most: usize,
        room: usize,
        out: &mut Vec<(Key, Json)>,
    ) {
        self.read().entries.collect(classes, range, most, room, out);
    }

    /// See [`Entries::first_after`].
    pub fn first_after(&self, classes: Classes, from: Bound<Key>) -> Option<Key> {
        self.read().entries.first_after(classes, from)
    }
}

/// A fill being read: entries built aside from the stream's messages.
pub struct Filling {
    pub entries: Entries,
}

impl Filling {
    pub fn new(stream_cap: Option<u64>, max_json: usize) -> Filling {
        Filling {
            entries: Entries::new(stream_cap, max_json),
        }
    }

    /// Adds one message of `<STREAM_NAME>_LATEST`, in the stream's order: `event` when it is
    /// a valid event, at `seq` in the event stream.
    pub fn add(&mut self, subject: &str, seq: u64, event: Option<&StreamEvent>) {
        let Some((class, name)) = class_of(subject) else {
            return;
        };
        let content = match event {
            Some(event) => Content::Event(event),
            None => Content::Written(None),
        };
        self.entries
            .put(name.as_bytes(), (seq, class), content, (0, false));
    }
}

#[cfg(test)]
mod tests;
