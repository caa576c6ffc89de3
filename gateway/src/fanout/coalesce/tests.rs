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
    let folded = coalesce_replay(events, 100, usize::MAX);
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

fn batch_of(event_type: EventType, events: &[(u64, &str)], max_events: usize) -> Batch {
    let mut pending = Pending::new(event_type, max_events);
    for (seq, id) in events {
        pending.push(event(event_type, *seq, id));
    }
    pending.take_batch()
}

fn listed(folded: &Folded) -> Vec<u64> {
    match folded {
        Folded::Single(event) => vec![event.seq],
        Folded::Batch(batch) => batch.events.iter().map(|e| e.seq).collect(),
    }
}

#[test]
fn the_part_above_a_cursor_counts_exactly_what_lies_above_it() {
    let orders = batch_of(
        EventType::OrderReceived,
        &[(3, "a"), (5, "b"), (6, "c"), (9, "d")],
        100,
    );
    let Some(Folded::Batch(part)) = orders.above(5) else {
        panic!("two events above 5")
    };
    assert_eq!((part.count, part.seqs.clone()), (2, vec![6, 9]));
    assert_eq!(listed(&Folded::Batch(part)), vec![6, 9]);
    assert!(matches!(orders.above(6), Some(Folded::Single(e)) if e.seq == 9));
    assert!(orders.above(9).is_none());

    // State-like: p1 at 2 and 7 is listed once (7); a client holding 4 is owed 7 and 8.
    let prices = batch_of(
        EventType::PriceChange,
        &[(2, "p1"), (4, "p2"), (7, "p1"), (8, "p3")],
        100,
    );
    let Some(Folded::Batch(part)) = prices.above(4) else {
        panic!("two events above 4")
    };
    assert_eq!(part.count, 2);
    assert_eq!(listed(&Folded::Batch(part)), vec![7, 8]);

    // Capped: 1..=8 with 5 listed (4..=8) and 3 dropped; above 2 are 6 events, 5 listed.
    let capped = batch_of(
        EventType::OrderReceived,
        &[
            (1, "a"),
            (2, "b"),
            (3, "c"),
            (4, "d"),
            (5, "e"),
            (6, "f"),
            (7, "g"),
            (8, "h"),
        ],
        5,
    );
    let Some(Folded::Batch(part)) = capped.above(2) else {
        panic!("a batch")
    };
    assert_eq!(
        (part.count, part.events.len(), part.truncated),
        (6, 5, true)
    );
    let Some(Folded::Batch(part)) = capped.above(3) else {
        panic!("a batch")
    };
    assert_eq!(
        (part.count, part.events.len(), part.truncated),
        (5, 5, false)
    );
}

#[test]
fn a_large_batch_splits_into_bounded_parts_that_add_up() {
    let events: Vec<(u64, String)> = (1..=10).map(|seq| (seq, format!("o{seq}"))).collect();
    let refs: Vec<(u64, &str)> = events.iter().map(|(s, id)| (*s, id.as_str())).collect();
    let batch = batch_of(EventType::OrderReceived, &refs, 100);
    let one = batch.events[0].json_len() + 1;
    let parts = batch.clone().split(3 * one);
    assert_eq!(parts.len(), 4, "3 + 3 + 3 + 1");
    assert_eq!(
        parts.iter().flat_map(listed).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let counts: Vec<u32> = parts
        .iter()
        .map(|part| match part {
            Folded::Batch(batch) => batch.count,
            Folded::Single(_) => 1,
        })
        .collect();
    assert_eq!(counts, vec![3, 3, 3, 1]);
    assert_eq!(batch.split(usize::MAX).len(), 1, "small enough: whole");
    // Folded updates are counted with the last part.
    let prices = batch_of(
        EventType::PriceChange,
        &[(1, "p1"), (2, "p2"), (3, "p1"), (4, "p3")],
        100,
    );
    let one = prices.events[0].json_len() + 1;
    let parts = prices.split(one);
    let total: u32 = parts
        .iter()
        .map(|part| match part {
            Folded::Batch(batch) => batch.count,
            Folded::Single(_) => 1,
        })
        .sum();
    assert_eq!((parts.len(), total), (3, 4));
}
