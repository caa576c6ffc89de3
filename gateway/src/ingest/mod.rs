//! Ingest: from the stream to the hub, on a thread of its own.
//!
//! ```text
//! JetStream ─> Feed ─(bounded)─> Pipeline ─> Hub
//!  ordered      one per          parse once, ring, debounce,
//!  consumer     instance         cursor = watermark, heartbeat ticks
//! ```
//!
//! - [`thread`] — the single-threaded runtime the NATS client, the feed and the pipeline run on.
//! - `store::feed` — the ordered consumer on the stream, re-created after failures and reconnects.
//! - [`pipeline`] — parse, ring, debounce, publish with a safe cursor; source gap markers.
//! - [`debounce`] — the per-type window.

pub(crate) mod debounce;
pub(crate) mod pipeline;
pub(crate) mod thread;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::feed::Feed;
use pipeline::Pipeline;
use thread::IngestThread;

/// Stream messages read ahead of the pipeline.
const FEED_QUEUE_CAPACITY: usize = 4_096;

/// Whether the pipeline knows where the stream stands (so the watermark means something).
#[derive(Debug, Clone, Default)]
pub(crate) struct Reading(Arc<AtomicBool>);

impl Reading {
    pub(crate) fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn is_reading(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Runs the feed and the pipeline on the ingest thread, owned by `tasks`, until `stop`.
pub(crate) fn spawn(
    thread: &IngestThread,
    tasks: &TaskTracker,
    feed: Feed,
    pipeline: Pipeline,
    stop: &CancellationToken,
) {
    let (feed_out, feed_in) = mpsc::channel(FEED_QUEUE_CAPACITY);
    tasks.spawn_on(feed.run(feed_out, stop.clone()), thread.handle());
    tasks.spawn_on(pipeline.run(feed_in, stop.clone()), thread.handle());
}
