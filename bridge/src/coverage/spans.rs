//! This process's subscriptions to Redis ("spans"), as far as coverage is concerned: which
//! beacons each has read, and up to which beacon everything it read is in the stream.
//!
//! A span begins when the bridge subscribes and ends when that subscription does, or when it
//! drops a message (then the same connection carries on as a new span). The subscriber, the
//! publisher and the coverage task share this state, each through a few calls.

use std::sync::Mutex;

use serde::Serialize;

/// A beacon read by a span: once every message queued before it is acknowledged, everything the
/// span read before this beacon is in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    span: u32,
    chain: String,
    n: u64,
}

/// What the registry gets to know about one span (numbers are beacon numbers of `chain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// `<bridge>.<span>`
    pub id: String,
    pub born: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dep: Option<u64>,
    pub gone: bool,
}

#[derive(Debug, Clone)]
struct Span {
    id: u32,
    born: u64,
    /// The chain its numbers belong to (set by its first beacon).
    chain: Option<String>,
    since: Option<u64>,
    last_read: Option<u64>,
    stored: Option<u64>,
    ended: bool,
}

impl Span {
    /// Ended and nothing it read is still on its way: its end point is final.
    fn settled(&self) -> bool {
        self.ended && self.last_read.is_none_or(|dep| self.stored >= Some(dep))
    }
}

#[derive(Debug, Default)]
struct Spans {
    next_id: u32,
    /// The span reading now, if subscribed.
    current: Option<Span>,
    /// Spans that ended and are not yet reported gone to the registry.
    ended: Vec<Span>,
    /// The newest beacon number known in this process, and its chain.
    latest: Option<(String, u64)>,
}

/// This process's spans.
#[derive(Debug)]
pub struct Coverage {
    /// This process's name in the registry: random, so a restarted bridge is a new one.
    bridge: String,
    spans: Mutex<Spans>,
    /// Wakes the coverage task when a span begins: a beacon right away makes the span's first
    /// claim start close to its subscription instead of up to an interval later.
    begun: tokio::sync::Notify,
    /// `bridge_stored_through_beacon`, when the metrics are attached.
    stored_gauge: std::sync::OnceLock<metrics::Gauge>,
}

impl Coverage {
    pub fn new() -> Coverage {
        Coverage {
            bridge: format!("{:08x}", rand::random::<u32>()),
            spans: Mutex::new(Spans::default()),
            begun: tokio::sync::Notify::new(),
            stored_gauge: std::sync::OnceLock::new(),
        }
    }

    /// Reports the current span's stored-through beacon on `gauge`.
    pub fn attach_gauge(&self, gauge: metrics::Gauge) {
        gauge.set(0.0);
        let _ = self.stored_gauge.set(gauge);
    }

    /// Resolves when a span began since the last call.
    pub async fn span_begun(&self) {
        self.begun.notified().await
    }

    /// This process's name in the registry.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Spans> {
        // Every update is a few assignments; a panic cannot leave the state half-changed.
        self.spans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A subscription began (or the current one carries on after a dropped message): a new
    /// span, the current one (if any) ended.
    pub fn begin(&self) {
        let mut spans = self.lock();
        end_current(&mut spans);
        let born = match &spans.latest {
            Some((_, n)) => *n,
            None => 0,
        };
        let id = spans.next_id;
        spans.next_id += 1;
        spans.current = Some(Span {
            id,
            born,
            chain: None,
            since: None,
            last_read: None,
            stored: None,
            ended: false,
        });
        drop(spans);
        if let Some(gauge) = self.stored_gauge.get() {
            gauge.set(0.0);
        }
        self.begun.notify_one();
    }

    /// The subscription ended.
    pub fn end(&self) {
        end_current(&mut self.lock());
    }

    /// The current span read beacon `payload` (`<chain>:<n>`); the checkpoint to queue behind
    /// what it read so far, or `None` when the payload is not a beacon.
    pub fn beacon(&self, payload: &[u8]) -> Option<Checkpoint> {
        let (chain, n) = parse_beacon(payload)?;
        let mut spans = self.lock();
        note_latest(&mut spans, chain, n);
        let current = spans.current.as_ref()?;
        if current.chain.as_deref().is_some_and(|known| known != chain)
            || current.last_read.is_some_and(|last| n <= last)
        {
            // The registry was wiped (its chain changed) or the numbers went backwards: this
            // span's claims mean nothing any more; carry on as a new span from here.
            drop(spans);
            self.begin();
            spans = self.lock();
        }
        let current = spans.current.as_mut()?;
        current.chain = Some(chain.to_owned());
        current.since.get_or_insert(n);
        current.last_read = Some(n);
        Some(Checkpoint {
            span: current.id,
            chain: chain.to_owned(),
            n,
        })
    }

    /// Everything queued before `checkpoint` is acknowledged by JetStream.
    pub fn stored(&self, checkpoint: &Checkpoint) {
        let mut spans = self.lock();
        let Spans { current, ended, .. } = &mut *spans;
        let span = current
            .iter_mut()
            .chain(ended.iter_mut())
            .find(|span| span.id == checkpoint.span);
        if let Some(span) = span {
            if span.chain.as_deref() == Some(checkpoint.chain.as_str()) {
                span.stored = span.stored.max(Some(checkpoint.n));
            }
        }
        let current = spans.current.as_ref().and_then(|span| span.stored);
        if let (Some(gauge), Some(stored)) = (self.stored_gauge.get(), current) {
            gauge.set(stored as f64);
        }
    }

    /// A beacon number the coverage task published.
    pub fn published(&self, chain: &str, n: u64) {
        note_latest(&mut self.lock(), chain, n);
    }

    /// What to tell the registry of `chain`: every span of that chain, the ended ones that
    /// have settled marked gone. Spans of another chain are forgotten: the registry they
    /// belonged to is gone, and the first span registered in its successor declares a gap.
    /// With `closing`, the current span ends too (the bridge is stopping).
    pub fn records(&self, chain: &str, closing: bool) -> Vec<Record> {
        let mut spans = self.lock();
        if closing {
            end_current(&mut spans);
        }
        spans
            .ended
            .retain(|span| span.chain.as_deref().is_none_or(|own| own == chain));
        let bridge = &self.bridge;
        let record = |span: &Span, gone: bool| Record {
            id: format!("{bridge}.{}", span.id),
            born: span.born,
            since: span.since,
            stored: span.stored,
            dep: span.ended.then_some(span.last_read).flatten(),
            gone,
        };
        let mut records: Vec<Record> = spans
            .ended
            .iter()
            .map(|span| record(span, span.settled() || closing))
            .collect();
        if let Some(current) = &spans.current {
            if current.chain.as_deref().is_none_or(|own| own == chain) {
                records.push(record(current, false));
            }
        }
        records
    }

    /// The registry took these records; spans it took as gone need no more reports.
    pub fn reported(&self, records: &[Record]) {
        let mut spans = self.lock();
        let bridge = &self.bridge;
        spans.ended.retain(|span| {
            let id = format!("{bridge}.{}", span.id);
            !records.iter().any(|record| record.gone && record.id == id)
        });
    }

    /// The registry declared these spans ended (this process was silent for too long): the
    /// current one, if among them, may claim nothing more, so reading carries on as a new span.
    pub fn revoked(&self, ids: &[String]) {
        let current = self
            .lock()
            .current
            .as_ref()
            .map(|span| format!("{}.{}", self.bridge, span.id));
        if current.is_some_and(|current| ids.contains(&current)) {
            self.begin();
        }
        let mut spans = self.lock();
        let bridge = &self.bridge;
        spans
            .ended
            .retain(|span| !ids.contains(&format!("{bridge}.{}", span.id)));
    }

    /// The current span's id in the registry, if subscribed.
    pub fn current_id(&self) -> Option<String> {
        let spans = self.lock();
        spans
            .current
            .as_ref()
            .map(|span| format!("{}.{}", self.bridge, span.id))
    }
}

impl Default for Coverage {
    fn default() -> Self {
        Coverage::new()
    }
}

fn end_current(spans: &mut Spans) {
    if let Some(mut span) = spans.current.take() {
        span.ended = true;
        spans.ended.push(span);
    }
}

fn note_latest(spans: &mut Spans, chain: &str, n: u64) {
    let newer = match &spans.latest {
        Some((known, latest)) => known != chain || n > *latest,
        None => true,
    };
    if newer {
        spans.latest = Some((chain.to_owned(), n));
    }
}

/// `<chain>:<n>`
fn parse_beacon(payload: &[u8]) -> Option<(&str, u64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (chain, n) = text.rsplit_once(':')?;
    if chain.is_empty() || chain.len() > 64 {
        return None;
    }
    Some((chain, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_id<'a>(records: &'a [Record], coverage: &Coverage, span: u32) -> &'a Record {
        let id = format!("{}.{span}", coverage.bridge());
        records
            .iter()
            .find(|record| record.id == id)
            .expect("record")
    }

    #[test]
    fn a_span_claims_from_its_first_beacon_to_what_is_stored() {
        let coverage = Coverage::new();
        coverage.published("c", 4);
        coverage.begin();
        assert!(coverage.beacon(b"not a beacon").is_none());
        let first = coverage.beacon(b"c:5").expect("checkpoint");
        let second = coverage.beacon(b"c:6").expect("checkpoint");
        coverage.stored(&first);
        let records = coverage.records("c", false);
        let record = by_id(&records, &coverage, 0);
        assert_eq!(
            (
                record.born,
                record.since,
                record.stored,
                record.dep,
                record.gone
            ),
            (4, Some(5), Some(5), None, false)
        );
        coverage.stored(&second);
        assert_eq!(coverage.records("c", false)[0].stored, Some(6));
    }

    #[test]
    fn an_ended_span_is_gone_once_what_it_read_is_stored() {
        let coverage = Coverage::new();
        coverage.begin();
        let checkpoint = coverage.beacon(b"c:1").expect("checkpoint");
        coverage.begin();
        let records = coverage.records("c", false);
        let ended = by_id(&records, &coverage, 0);
        assert_eq!(
            (ended.dep, ended.gone),
            (Some(1), false),
            "still on its way"
        );
        assert_eq!(by_id(&records, &coverage, 1).born, 1);
        coverage.stored(&checkpoint);
        let records = coverage.records("c", false);
        assert!(by_id(&records, &coverage, 0).gone);
        coverage.reported(&records);
        assert_eq!(
            coverage.records("c", false).len(),
            1,
            "only the current span"
        );
    }

    #[test]
    fn a_changed_chain_or_numbers_going_back_start_a_new_span() {
        let coverage = Coverage::new();
        coverage.begin();
        coverage.beacon(b"c:7").expect("checkpoint");
        coverage.beacon(b"d:1").expect("checkpoint");
        assert_eq!(
            coverage.records("d", false).len(),
            1,
            "the old chain's span is forgotten"
        );
        coverage.beacon(b"d:1").expect("checkpoint");
        let records = coverage.records("d", false);
        assert_eq!(records.len(), 2);
        assert!(records.iter().any(|record| record.dep == Some(1)));
    }

    #[test]
    fn closing_ends_everything_and_revoking_starts_afresh() {
        let coverage = Coverage::new();
        coverage.begin();
        coverage.beacon(b"c:3").expect("checkpoint");
        let current = coverage.current_id().expect("subscribed");
        coverage.revoked(std::slice::from_ref(&current));
        assert_ne!(coverage.current_id(), Some(current));
        let records = coverage.records("c", true);
        assert!(records.iter().all(|record| record.gone));
    }
}
