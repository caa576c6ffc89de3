//! `GET /api/realtime/snapshot`: the latest event of every entity, answered from the state this
//! gateway keeps in memory ([`super::latest`]: what `<STREAM_NAME>_LATEST` holds, kept current
//! by the feed), in pages of at most `SNAPSHOT_MAX_LIMIT` events. A page asks nothing of
//! JetStream. Each event carries its sequence in the event stream, so a client can tell it from
//! a newer live one; positions (`after`, `next`) are those sequences. Only channels that keep a
//! latest state are served (not orders). A page says `partial` while the state is at
//! `LATEST_MAX_ENTITIES`, where the least recently changed entities are dropped.

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::budget::Answer;
use super::latest::{Classes, Key, Latest};
use super::HistoryError;
use crate::channels::ChannelSet;
use crate::metrics::HistoryMetrics;

/// The longest one answer may take, however steadily its client reads.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request waits for the first fill of the state before it is refused
/// (503 `snapshot_loading`).
pub(crate) const FILL_WAIT: Duration = Duration::from_secs(5);
/// Bytes of events written at once at most (more when one event is larger): the lock on the
/// state is held for one such batch.
const CHUNK_BYTES: usize = 64 * 1024;
/// Events taken at once at most, for the same reason.
const CHUNK_EVENTS: usize = 512;

/// Serves pages of the snapshot state.
pub(crate) struct Snapshots {
    pub latest: Arc<Latest>,
    /// `SNAPSHOT_MAX_LIMIT`.
    pub max_limit: usize,
    pub metrics: Arc<HistoryMetrics>,
    /// How long an answer waits for its client to take what it holds (`CLIENT_STALL_TIMEOUT`).
    pub stall_timeout: Duration,
}

/// A page ready to be written.
pub(crate) struct Opened {
    partial: bool,
    latest: Arc<Latest>,
    classes: Classes,
    limit: usize,
    after: u64,
    stall_timeout: Duration,
}

impl Snapshots {
    /// Opens a page of at most `limit` latest events of `channels` after position `after`
    /// (0: from the start). The state must be filled (see [`Latest::ready`]).
    pub(crate) fn open(&self, channels: ChannelSet, limit: usize, after: u64) -> Opened {
        let partial = self.latest.at_cap();
        if partial {
            self.metrics.snapshot_partial.increment(1);
        }
        Opened {
            partial,
            latest: self.latest.clone(),
            classes: Classes::of(channels),
            limit: limit.clamp(1, self.max_limit.max(1)),
            after,
            stall_timeout: self.stall_timeout,
        }
    }
}

impl Opened {
    /// The page as JSON, `{"events":[...],"next":N|null,"partial":bool}` (the schema's
    /// `SnapshotPage`, written by hand so that it streams), in chunks that stay within
    /// `answer`'s window; `keep` (the connection slot) is held until the last
    /// chunk. An error after the first chunk cuts the answer short: the client gets invalid
    /// JSON, never a page that looks whole.
    pub(crate) fn into_body<K: Send + 'static>(
        self,
        answer: Answer,
        keep: K,
    ) -> impl futures::Stream<Item = Result<Bytes, HistoryError>> + Send + 'static {
        let Opened {
            partial,
            latest,
            classes,
            limit,
            after,
            stall_timeout,
        } = self;
        async_stream::try_stream! {
            let _keep = keep;
            yield Bytes::from_static(b"{\"events\":[");
            let target = CHUNK_BYTES.max(latest.max_json()).min(answer.window_bytes);
            let mut from = Key::after(after);
            let mut listed = 0usize;
            let mut last: Option<u64> = None;
            let mut batch = Vec::new();
            loop {
                // A full page goes on only through the entries that share its last position,
                // so that `next` skips none of them.
                let (to, most) = match last {
                    Some(pos) if listed >= limit => (Key::through(pos), CHUNK_EVENTS),
                    _ => (Bound::Unbounded, (limit - listed).min(CHUNK_EVENTS)),
                };
                // Build no more than the window holds: a client that stops reading stops this.
                let held = tokio::time::timeout(stall_timeout, answer.hold(target))
                    .await
                    .map_err(|_| HistoryError::Stalled(stall_timeout))?;
                batch.clear();
                latest.collect(classes, (from, to), most, target, &mut batch);
                let Some((end, _)) = batch.last() else { break };
                from = Bound::Excluded(*end);
                last = Some(end.pos);
                let mut out = BytesMut::with_capacity(batch.iter().map(|(_, json)| json.len() + 1).sum());
                for (_, json) in &batch {
                    if listed > 0 {
                        out.put_u8(b',');
                    }
                    out.put_slice(json);
                    listed += 1;
                }
                yield answer.chunk(held, out);
            }
            let next = last.filter(|_| latest.first_after(classes, from).is_some());
            let mut tail = BytesMut::with_capacity(48);
            tail.put_slice(b"],\"next\":");
            match next {
                Some(position) => tail.put_slice(itoa::Buffer::new().format(position).as_bytes()),
                None => tail.put_slice(b"null"),
            }
            close(&mut tail, partial);
            yield tail.freeze();
        }
    }
}

/// `,"partial":<bool>}`: ends a page.
fn close(out: &mut BytesMut, partial: bool) {
    out.put_slice(if partial {
        b",\"partial\":true}"
    } else {
        b",\"partial\":false}"
    });
}
