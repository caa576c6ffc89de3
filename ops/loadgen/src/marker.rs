//! A load event is an ordinary `RealTimeEvent` whose `payload.data` carries `lg_n` (its number
//! in the run) and `lg_sent_us` (publish time, microseconds since the Unix epoch), so a
//! subscriber can tell which events it got and how long each took, with nothing else to join.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// Microseconds since the Unix epoch: the publisher and the subscribers share this clock.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as u64)
        .unwrap_or(0)
}

/// One event inside a frame, as far as a load test cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub seq: u64,
    /// `lg_n`, if the event came from a load publisher.
    pub n: Option<u64>,
    /// `lg_sent_us`, if the event came from a load publisher.
    pub sent_us: Option<u64>,
}

#[derive(Deserialize)]
struct MarkerData {
    lg_n: Option<u64>,
    lg_sent_us: Option<u64>,
}

#[derive(Deserialize)]
struct PayloadView {
    data: Option<MarkerData>,
}

#[derive(Deserialize)]
struct EventView {
    seq: u64,
    payload: Option<PayloadView>,
}

/// An event frame's `data`: one event, or a batch of them.
#[derive(Deserialize)]
struct FrameView {
    seq: Option<u64>,
    payload: Option<PayloadView>,
    #[serde(default)]
    events: Vec<EventView>,
    count: Option<u64>,
}

/// The events in an event frame's `data` JSON (a single event or a batch), plus the batch's
/// `count` (how many events it stands for, which may exceed the listed ones).
pub fn events_in_frame(data: &[u8]) -> Result<(Vec<Delivered>, u64), serde_json::Error> {
    let frame: FrameView = serde_json::from_slice(data)?;
    let marker = |payload: Option<PayloadView>| {
        payload
            .and_then(|payload| payload.data)
            .map(|data| (data.lg_n, data.lg_sent_us))
            .unwrap_or((None, None))
    };
    if let Some(seq) = frame.seq {
        let (n, sent_us) = marker(frame.payload);
        return Ok((vec![Delivered { seq, n, sent_us }], 1));
    }
    let listed = frame.events.len() as u64;
    let events = frame
        .events
        .into_iter()
        .map(|event| {
            let (n, sent_us) = marker(event.payload);
            Delivered {
                seq: event.seq,
                n,
                sent_us,
            }
        })
        .collect();
    Ok((events, frame.count.unwrap_or(listed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_event_and_a_batch_give_their_markers() {
        let single = br#"{"type":"ORDER_RECEIVED","seq":7,"payload":{"id":"o","action":"created","data":{"lg_n":3,"lg_sent_us":1000,"pad":"x"}},"timestamp":"t"}"#;
        let (events, count) = events_in_frame(single).expect("single");
        assert_eq!(count, 1);
        assert_eq!(
            events,
            vec![Delivered {
                seq: 7,
                n: Some(3),
                sent_us: Some(1000)
            }]
        );

        let batch = br#"{"type":"INVENTORY_CHANGE","batch":true,"count":5,"events":[{"type":"INVENTORY_CHANGE","seq":8,"payload":{"id":"a","action":"updated","data":{"lg_n":4}},"timestamp":"t"},{"type":"INVENTORY_CHANGE","seq":9,"payload":{"id":"b","action":"updated"},"timestamp":"t"}],"truncated":true}"#;
        let (events, count) = events_in_frame(batch).expect("batch");
        assert_eq!(count, 5);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].n, Some(4));
        assert_eq!(events[1].n, None);
        assert_eq!(events[1].seq, 9);
    }

    #[test]
    fn a_frame_that_is_not_json_is_an_error() {
        assert!(events_in_frame(b"{nope").is_err());
    }
}
