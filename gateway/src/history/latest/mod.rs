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

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use std::ops::Bound;

use tokio::sync::watch;

use crate::event::StreamEvent;
use crate::metrics::HistoryMetrics;

mod entries;
mod subject;

pub use entries::*;
use subject::*;

/// Entries held at most when `<STREAM_NAME>_LATEST` sets no limit (the bridges always set
/// `LATEST_MAX_ENTITIES`; this is its default).
pub(crate) const FALLBACK_MAX_ENTITIES: usize = 1_000_000;
/// Events the feed records while a fill is being read, kept to be laid over it, at most. Past
/// it the fill is laid over by looking up every entry the feed changed since it began instead
/// (one pass over the state, under the lock).
const JOURNAL_MAX: usize = 262_144;
/// Journaled events laid over a fill while the lock is held, at most: more are taken out and
/// applied outside it first, so the swap holds up the feed for a moment only.
const SWAP_UNDER_LOCK: usize = 4_096;

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
pub(crate) struct Filling {
    pub entries: Entries,
}

impl Filling {
    pub(crate) fn new(stream_cap: Option<u64>, max_json: usize) -> Filling {
        Filling {
            entries: Entries::new(stream_cap, max_json),
        }
    }

    /// Adds one message of `<STREAM_NAME>_LATEST`, in the stream's order: `event` when it is
    /// a valid event, at `seq` in the event stream.
    pub(crate) fn add(&mut self, subject: &str, seq: u64, event: Option<&StreamEvent>) {
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
