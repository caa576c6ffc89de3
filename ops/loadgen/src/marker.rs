//! A load event is an ordinary `RealTimeEvent` whose `payload.data` carries `lg_n` (its number
//! in the run) and `lg_sent_us` (publish time, microseconds since the Unix epoch), so a
//! subscriber can tell which events it got and how long each took, with nothing else to join.

use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::LazyLock;

use memchr::memmem;

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

/// A frame that holds no event (no `"seq":`).
#[derive(Debug, thiserror::Error)]
#[error("not an event frame: no \"seq\" in {0:?}")]
pub struct NotAnEventFrame(String);

/// The events in an event frame's `data` JSON (a single event or a batch), plus the batch's
/// `count` (how many events it stands for, which may exceed the listed ones).
///
/// This scans instead of parsing: at half a million deliveries a second on a core shared with
/// Redis, NATS and the bridge, a full JSON parse per delivery would make the load generator the
/// bottleneck. It relies on what the gateway writes: each event's `"seq"` comes before its
/// payload, a batch's `"count"` before its `"events"`, and load events have no `"seq"` key
/// inside their data.
pub fn events_in_frame(data: &[u8]) -> Result<(Vec<Delivered>, u64), NotAnEventFrame> {
    let mut events = Vec::new();
    let represented = events_in_frame_into(data, &mut events)?;
    Ok((events, represented))
}

/// As [`events_in_frame`], into `events` (cleared first), so a subscriber reuses one buffer
/// for every frame; returns the batch's `count`.
pub fn events_in_frame_into(
    data: &[u8],
    events: &mut Vec<Delivered>,
) -> Result<u64, NotAnEventFrame> {
    events.clear();
    let Some(first_seq) = FINDERS.seq.find(data) else {
        let shown = String::from_utf8_lossy(&data[..data.len().min(80)]).into_owned();
        return Err(NotAnEventFrame(shown));
    };
    // A batch's `"count"` and `"events"` come before its first event's `"seq"`: looking only
    // there spares two scans of every single event's whole payload.
    let head = &data[..first_seq];
    let batch_count = match (FINDERS.count.find(head), FINDERS.events.find(head)) {
        (Some(count), Some(list)) if count < list => {
            Some(leading_number(&head[count + COUNT.len()..]))
        }
        _ => None,
    };
    if batch_count.is_none() {
        // A single event: its markers follow its one `"seq"`.
        events.extend(delivered(&data[first_seq + SEQ.len()..]));
        return Ok(events.len() as u64);
    }
    let mut seqs = FINDERS
        .seq
        .find_iter(&data[first_seq..])
        .map(|at| first_seq + at)
        .peekable();
    while let Some(at) = seqs.next() {
        let end = seqs.peek().copied().unwrap_or(data.len());
        events.extend(delivered(&data[at + SEQ.len()..end]));
    }
    Ok(batch_count.flatten().unwrap_or(events.len() as u64))
}

/// The event whose `"seq":` value starts `body` (which runs to the next event's `"seq"`).
fn delivered(body: &[u8]) -> Option<Delivered> {
    Some(Delivered {
        seq: leading_number(body)?,
        n: number_after(body, &FINDERS.lg_n),
        sent_us: number_after(body, &FINDERS.lg_sent_us),
    })
}

const SEQ: &[u8] = b"\"seq\":";
const LG_N: &[u8] = b"\"lg_n\":";
const LG_SENT_US: &[u8] = b"\"lg_sent_us\":";
const COUNT: &[u8] = b"\"count\":";
const EVENTS: &[u8] = b"\"events\":";

/// Searchers built once: `memmem::find` builds one per call, which was an eighth of the load
/// generator's CPU (perf).
struct Finders {
    seq: memmem::Finder<'static>,
    lg_n: memmem::Finder<'static>,
    lg_sent_us: memmem::Finder<'static>,
    count: memmem::Finder<'static>,
    events: memmem::Finder<'static>,
}

static FINDERS: LazyLock<Finders> = LazyLock::new(|| Finders {
    seq: memmem::Finder::new(SEQ),
    lg_n: memmem::Finder::new(LG_N),
    lg_sent_us: memmem::Finder::new(LG_SENT_US),
    count: memmem::Finder::new(COUNT),
    events: memmem::Finder::new(EVENTS),
});

fn number_after(haystack: &[u8], key: &memmem::Finder<'static>) -> Option<u64> {
    key.find(haystack)
        .and_then(|at| leading_number(&haystack[at + key.needle().len()..]))
}

/// The unsigned integer at the start of `bytes` (after optional spaces).
fn leading_number(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.iter().skip_while(|b| **b == b' ');
    let mut value: Option<u64> = None;
    for byte in digits {
        if !byte.is_ascii_digit() {
            break;
        }
        value = Some(
            value
                .unwrap_or(0)
                .checked_mul(10)?
                .checked_add(u64::from(byte - b'0'))?,
        );
    }
    value
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
