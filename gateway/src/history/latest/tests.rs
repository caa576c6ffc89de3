//! The state kept in memory holds what `<STREAM_NAME>_LATEST` holds: checked against a model of
//! that stream (one message per subject, at most `max_messages`, the oldest dropped), and its
//! pages list every entity once, in order, within their limits.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rakuda_schema::{Channel, EventType, Validator};

use super::*;
use crate::channels::ChannelSet;
use crate::metrics::GatewayMetrics;
use rakuda_schema::CHANNELS;

fn subject(channel: &str, id: &str) -> String {
    format!("rakuda.realtime.{channel}.{id}")
}

/// An event of `event_type` about `id` at `seq`.
fn event(event_type: EventType, seq: u64, id: &str) -> StreamEvent {
    let json = format!(
        r#"{{"type":"{event_type}","payload":{{"id":"{id}","action":"updated","data":{{"seq":{seq}}}}},"timestamp":"2026-11-22T10:00:00.000Z"}}"#
    );
    StreamEvent::parse(
        &Validator::default(),
        Channel::of(event_type),
        seq,
        Bytes::from(json),
    )
    .expect("valid event")
}

/// A subject as the state keys it.
fn name(subject: &str) -> &[u8] {
    class_of(subject).map_or(&[], |(_, name)| name.as_bytes())
}

fn json_of(event: &StreamEvent) -> Vec<u8> {
    let mut out = BytesMut::new();
    event.write_json(&mut out);
    out.to_vec()
}

/// Every page of `classes` in turn, `limit` at a time: the events listed and the pages.
fn pages(
    entries: &Entries,
    classes: Classes,
    limit: usize,
    room: usize,
) -> (Vec<(Key, Vec<u8>)>, usize) {
    let mut listed = Vec::new();
    let mut after = 0u64;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 10_000, "paging ends");
        let mut page = Vec::new();
        let mut from = Key::after(after);
        let mut last = None;
        loop {
            let (to, most) = match last {
                Some(pos) if page.len() >= limit => (Key::through(pos), usize::MAX),
                _ => (Bound::Unbounded, limit - page.len()),
            };
            let before = page.len();
            entries.collect(classes, (from, to), most, room, &mut page);
            if page.len() == before {
                break;
            }
            let end: Key = page[page.len() - 1].0;
            from = Bound::Excluded(end);
            last = Some(end.pos);
        }
        listed.extend(page.iter().map(|(key, json)| (*key, json.to_vec())));
        match last.filter(|_| entries.first_after(classes, from).is_some()) {
            Some(next) => after = next,
            None => return (listed, pages),
        }
    }
}

#[test]
fn only_the_subjects_the_latest_stream_takes_are_kept() {
    assert_eq!(
        class_of("rakuda.realtime.inventory.p1"),
        Some((0, "inventory.p1"))
    );
    assert_eq!(
        class_of("rakuda.realtime.pricing.~abc"),
        Some((2, "pricing.~abc"))
    );
    // Orders, the source gap marker, an unknown channel: kept by the stream, so they count.
    let class = |subject| class_of(subject).map(|(class, _)| class);
    assert_eq!(class("rakuda.realtime.orders.~all"), Some(COUNT_ONLY));
    assert_eq!(class("rakuda.realtime.orders.o-17"), Some(COUNT_ONLY));
    assert_eq!(
        class(rakuda_schema::channel::SOURCE_GAP_SUBJECT),
        Some(COUNT_ONLY)
    );
    assert_eq!(class("rakuda.realtime.canary.x"), Some(COUNT_ONLY));
    // Not taken by `rakuda.realtime.*.*`.
    assert_eq!(class_of("rakuda.realtime.canary"), None);
    assert_eq!(class_of("rakuda.realtime.orders"), None);
    assert_eq!(class_of("rakuda.realtime.inventory.a.b"), None);
    assert_eq!(class_of("other.realtime.inventory.a"), None);
}

#[test]
fn the_latest_event_of_each_entity_replaces_the_last_and_the_oldest_go_first() {
    let mut entries = Entries::new(Some(3), 4096);
    let put = |entries: &mut Entries, id: &str, seq: u64| {
        let event = event(EventType::InventoryChange, seq, id);
        let subject = subject("inventory", id);
        entries.put(name(&subject), (seq, 0), Content::Event(&event), (0, false));
    };
    put(&mut entries, "a", 1);
    put(&mut entries, "b", 2);
    put(&mut entries, "a", 3);
    assert_eq!(entries.len(), 2);
    assert!(!entries.at_cap());
    put(&mut entries, "c", 4);
    assert!(entries.at_cap(), "at the stream's limit: partial");
    // A fourth entity drops the least recently changed: b (a changed at 3).
    put(&mut entries, "d", 5);
    let (listed, _) = pages(&entries, Classes::of(ChannelSet::all()), 10, usize::MAX);
    let positions: Vec<u64> = listed.iter().map(|(key, _)| key.pos).collect();
    assert_eq!(positions, [3, 4, 5]);
    assert_eq!(
        listed[0].1,
        json_of(&event(EventType::InventoryChange, 3, "a"))
    );
    let held: usize = listed.iter().map(|(_, json)| json.len()).sum();
    assert_eq!(entries.bytes(), held);
    // An invalid message hides the entity's last event, and still counts.
    let hidden = subject("inventory", "a");
    entries.put(name(&hidden), (6, 0), Content::Written(None), (0, false));
    let (listed, _) = pages(&entries, Classes::of(ChannelSet::all()), 10, usize::MAX);
    assert_eq!(listed.len(), 2);
    assert_eq!(entries.len(), 3);
}

#[test]
fn pages_never_split_entries_of_one_position() {
    // A recreated stream: an entity left from the old one shares position 2 with a new one.
    let mut entries = Entries::new(None, 4096);
    for (id, seq) in [("old", 2), ("x", 1), ("new", 2), ("y", 3)] {
        let event = event(EventType::PriceChange, seq, id);
        let subject = subject("pricing", id);
        entries.put(name(&subject), (seq, 2), Content::Event(&event), (0, false));
    }
    let classes = Classes::of(ChannelSet::parse("pricing").expect("channels"));
    let (listed, pages) = pages(&entries, classes, 2, usize::MAX);
    let positions: Vec<u64> = listed.iter().map(|(key, _)| key.pos).collect();
    assert_eq!(positions, [1, 2, 2, 3], "each once");
    assert_eq!(pages, 2);
    // Other channels are not listed.
    let inventory = Classes::of(ChannelSet::parse("inventory").expect("channels"));
    assert!(entries.first_after(inventory, Bound::Unbounded).is_none());
}

#[test]
fn a_batch_stays_within_its_room_but_takes_one_event_at_least() {
    let mut entries = Entries::new(None, 4096);
    for seq in 1..=10 {
        let event = event(EventType::ListingUpdate, seq, &format!("l{seq}"));
        let subject = subject("listings", &format!("l{seq}"));
        entries.put(name(&subject), (seq, 3), Content::Event(&event), (0, false));
    }
    let classes = Classes::of(ChannelSet::all());
    let mut out = Vec::new();
    entries.collect(
        classes,
        (Bound::Unbounded, Bound::Unbounded),
        100,
        1,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    let one = out[0].1.len() + 1;
    out.clear();
    entries.collect(
        classes,
        (Bound::Unbounded, Bound::Unbounded),
        100,
        3 * one,
        &mut out,
    );
    assert_eq!(out.len(), 3);
    let (listed, _) = pages(&entries, classes, 4, 2 * one);
    assert_eq!(listed.len(), 10);
}

/// What `<STREAM_NAME>_LATEST` does with the messages it sources: one per subject, at most
/// `max` in all, the oldest dropped. The messages held, oldest first.
struct ModelStream {
    max: usize,
    held: VecDeque<(String, u64, Option<Vec<u8>>)>,
}

impl ModelStream {
    fn store(&mut self, subject: &str, seq: u64, json: Option<Vec<u8>>) {
        self.held.retain(|(held, _, _)| held != subject);
        self.held.push_back((subject.to_owned(), seq, json));
        while self.held.len() > self.max {
            self.held.pop_front();
        }
    }

    /// What a snapshot of every channel lists: (position, JSON), in order.
    fn listed(&self) -> Vec<(u64, Vec<u8>)> {
        let mut listed: Vec<_> = self
            .held
            .iter()
            .filter_map(|(_, seq, json)| Some((*seq, json.clone()?)))
            .collect();
        listed.sort_by_key(|(seq, _)| *seq);
        listed
    }
}

/// A message: a channel (0..5: inventory, orders, pricing, listings, the gap marker), an
/// entity and whether it is a valid event.
fn message() -> impl Strategy<Value = (usize, u8, bool)> {
    (0usize..5, 0u8..12, prop::bool::weighted(0.9))
}

fn feed(message: (usize, u8, bool), seq: u64) -> (String, Option<StreamEvent>) {
    let (channel, entity, valid) = message;
    let id = format!("e{entity}");
    match channel {
        4 => (rakuda_schema::channel::SOURCE_GAP_SUBJECT.to_owned(), None),
        1 => (
            subject("orders", "~all"),
            valid.then(|| event(EventType::OrderReceived, seq, &id)),
        ),
        _ => {
            let event_type = [
                EventType::InventoryChange,
                EventType::OrderReceived,
                EventType::PriceChange,
                EventType::ListingUpdate,
            ][channel];
            let name = CHANNELS[channel].name;
            (
                subject(name, &id),
                valid.then(|| event(event_type, seq, &id)),
            )
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever arrives, however the fill's reading and its swap fall among the feed's
    /// events, the state lists what the stream holds once the feed has read it all.
    #[test]
    fn the_state_holds_what_the_latest_stream_holds(
        before in prop::collection::vec(message(), 0..60),
        during in prop::collection::vec(message(), 0..60),
        (read_at, swap_at) in (0usize..=60, 0usize..=60),
        max in 1usize..20,
        journal_overrun in any::<bool>(),
    ) {
        let metrics = GatewayMetrics::new();
        let latest = Latest::new(metrics.history.clone());
        let mut model = ModelStream { max, held: VecDeque::new() };
        let mut seq = 0u64;
        // History the gateway never read: only in the stream.
        for message in before {
            seq += 1;
            let (subject, event) = feed(message, seq);
            model.store(&subject, seq, stored_json(&subject, event.as_ref()));
        }
        // The feed starts; the stream goes on. The fill reads the stream as it is after
        // `read_at` of the feed's events (the stream may be ahead of the feed or behind it),
        // and is swapped in after the feed recorded `swap_at` of them.
        latest.start(7, seq);
        let (read_at, swap_at) = (read_at.min(during.len()), swap_at.min(during.len()));
        let mut filling = None;
        let mut swapped = false;
        for (index, message) in during.iter().enumerate() {
            if index == read_at {
                filling = Some(fill_from(&model, max));
            }
            if index == swap_at {
                if let Some(filling) = filling.take() {
                    if journal_overrun {
                        latest.write().journal = Journal::Overrun;
                    }
                    prop_assert_eq!(latest.swap_in(1, filling.entries), Ok(()));
                    swapped = true;
                }
            }
            seq += 1;
            let (subject, event) = feed(*message, seq);
            model.store(&subject, seq, stored_json(&subject, event.as_ref()));
            latest.record(&subject, seq, event.as_ref());
        }
        if !swapped {
            let filling = filling.take().unwrap_or_else(|| fill_from(&model, max));
            if journal_overrun {
                latest.write().journal = Journal::Overrun;
            }
            prop_assert_eq!(latest.swap_in(1, filling.entries), Ok(()));
        }
        let store = latest.read();
        let (listed, _) = pages(&store.entries, Classes::of(ChannelSet::all()), 3, usize::MAX);
        let listed: Vec<(u64, Vec<u8>)> = listed.into_iter().map(|(key, json)| (key.pos, json)).collect();
        prop_assert_eq!(listed, model.listed());
        prop_assert_eq!(store.entries.len(), model.held.len());
        prop_assert_eq!(store.entries.at_cap(), model.held.len() >= max);
        let by_subject: BTreeMap<&[u8], u64> = store.entries.subjects.iter().map(|(s, slot)| (s.as_bytes(), slot.key.pos)).collect();
        let held: BTreeMap<&[u8], u64> = model.held.iter().map(|(s, seq, _)| (name(s), *seq)).collect();
        prop_assert_eq!(by_subject, held);
    }
}

/// What the stream stores for a message: the event's JSON on a channel with a latest state.
fn stored_json(subject: &str, event: Option<&StreamEvent>) -> Option<Vec<u8>> {
    event
        .filter(|_| class_of(subject).map(|(class, _)| class) != Some(COUNT_ONLY))
        .map(json_of)
}

/// A fill that reads the stream as `model` holds it now.
fn fill_from(model: &ModelStream, max: usize) -> Filling {
    let mut filling = Filling::new(Some(max as u64), 4096);
    for (subject, seq, json) in &model.held {
        let event = json.as_ref().and_then(|json| {
            let value: serde_json::Value = serde_json::from_slice(json).ok()?;
            let event_type: EventType = serde_json::from_value(value["type"].clone()).ok()?;
            let id = value["payload"]["id"].as_str()?.to_owned();
            Some(event(event_type, *seq, &id))
        });
        filling.add(subject, *seq, event.as_ref());
    }
    filling
}

#[test]
fn a_fill_for_an_older_start_is_not_swapped_in() {
    let metrics = GatewayMetrics::new();
    let latest = Latest::new(metrics.history.clone());
    latest.start(7, 0);
    latest.refill();
    assert_eq!(latest.swap_in(1, Entries::new(None, 0)), Err(Outdated));
    assert_eq!(latest.swap_in(2, Entries::new(None, 0)), Ok(()));
}
