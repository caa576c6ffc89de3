//! Between the feed and the hub: parse each stream message once, keep client events for
//! resumes, keep the latest event of each entity for snapshots, debounce, and publish frames
//! with a cursor that never claims more than was sent.

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use rakuda_schema::channel::SOURCE_GAP_SUBJECT;
use rakuda_schema::{Channel, EventType, ResetReason, Validator};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::debounce::Debouncer;
use super::Reading;
use crate::event::StreamEvent;
use crate::fanout::coalesce::Folded;
use crate::fanout::frame::OutFrame;
use crate::fanout::{Cursor, Hub};
use crate::fleet::canary::Canary;
use crate::history::latest::Latest;
use crate::metrics::IngestMetrics;
use crate::resume::ring::Ring;
use crate::store::feed::FeedItem;

/// How the pipeline shapes the feed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PipelineSettings {
    /// `SSE_DEBOUNCE_WINDOW`; zero sends every event on its own.
    pub debounce_window: Duration,
    /// `DEBOUNCE_MAX_BATCH_EVENTS`.
    pub max_batch_events: usize,
    /// `SSE_HEARTBEAT_INTERVAL`: a tick goes through the hub this often.
    pub heartbeat_interval: Duration,
}

/// What the pipeline writes to and reports on.
pub(crate) struct PipelineOutputs {
    pub hub: Arc<Hub>,
    pub ring: Arc<Ring>,
    /// The snapshot state: the latest event of each entity.
    pub latest: Arc<Latest>,
    pub metrics: Arc<IngestMetrics>,
    /// Set once the stream's position is known, for `/readyz`.
    pub reading: Reading,
    /// Told when this instance's own canary comes back.
    pub canary: Arc<Canary>,
    /// This instance's name: its canary carries it.
    pub instance: Arc<str>,
}

pub(crate) struct Pipeline {
    out: PipelineOutputs,
    settings: PipelineSettings,
    debouncer: Debouncer,
    epoch: u64,
    /// The last sequence read from the stream.
    last_seq: u64,
}

impl Pipeline {
    pub(crate) fn new(out: PipelineOutputs, settings: PipelineSettings) -> Pipeline {
        Pipeline {
            debouncer: Debouncer::new(settings.debounce_window, settings.max_batch_events),
            out,
            settings,
            epoch: 0,
            last_seq: 0,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut feed: mpsc::Receiver<FeedItem>,
        shutdown: CancellationToken,
    ) {
        // Heartbeats are ticks in the hub, sent from here: in order with the frames, so the
        // cursor a heartbeat claims is never ahead of what its connection has written, and no
        // connection keeps a timer of its own.
        let every = self.settings.heartbeat_interval;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.debouncer.next_deadline();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = sleep_until(deadline), if deadline.is_some() => self.flush_due(Instant::now()),
                _ = heartbeat.tick() => self.out.hub.tick(self.out.canary.degraded()),
                item = feed.recv() => match item {
                    None => return,
                    Some(FeedItem::Start { epoch, last_seq }) => self.start(epoch, last_seq),
                    Some(FeedItem::Message { seq, subject, payload }) => {
                        self.on_message(seq, &subject, payload, Instant::now());
                    }
                },
            }
        }
    }

    fn start(&mut self, epoch: u64, last_seq: u64) {
        let restarted = self.epoch != 0 && self.epoch != epoch;
        self.epoch = epoch;
        self.last_seq = last_seq;
        self.debouncer = Debouncer::new(
            self.settings.debounce_window,
            self.settings.max_batch_events,
        );
        self.out.ring.start(epoch, last_seq);
        // What the stream held before this start is read from the latest-state stream; what
        // the feed reads from here on is laid over it.
        self.out.latest.start(epoch, last_seq);
        self.out.hub.start(epoch, last_seq);
        self.out.metrics.stream_last_sequence.set(last_seq as f64);
        self.out.reading.mark();
        if restarted {
            tracing::warn!(epoch, "the stream was recreated; clients must refetch");
            self.out.hub.reset_all(ResetReason::StreamRecreated);
        }
    }

    fn on_message(&mut self, seq: u64, subject: &str, payload: Bytes, now: Instant) {
        // What is due goes out first, under the cursor of what was read before this message:
        // a frame flushed here does not contain `seq`, so it must not claim it.
        self.flush_due(now);
        self.last_seq = seq;
        if subject == SOURCE_GAP_SUBJECT {
            self.out.latest.record(subject, seq, None);
            self.on_source_gap(seq, &payload);
            return;
        }
        // The bridge's own validator: a message is an event for both or for neither.
        let parsed = match Channel::by_subject(subject) {
            Some(channel) => StreamEvent::parse(&Validator::new(usize::MAX), channel, seq, payload)
                .map(|event| (channel, event))
                .map_err(|reject| reject.to_string()),
            None => Err(format!("subject `{subject}` is not an event channel")),
        };
        let (channel, event) = match parsed {
            Ok(parsed) => parsed,
            Err(why) => {
                // The latest-state stream keeps it all the same: it counts there, and hides
                // the entity's earlier event.
                self.out.latest.record(subject, seq, None);
                self.out.metrics.events_invalid.increment(1);
                tracing::debug!(
                    seq,
                    subject = subject.escape_debug().to_string(),
                    why = why.escape_debug().to_string(),
                    "skipped a stream message that is not a valid event"
                );
                self.advance();
                return;
            }
        };
        self.out.metrics.event_received(event.event_type);
        if channel.internal {
            // Not a subject the latest-state stream takes (`rakuda.realtime.canary`), unless
            // one was published by hand on a longer one: then it counts there.
            self.out.latest.record(subject, seq, Some(&event));
            // The canary flows through the whole path but reaches no client.
            if event.event_type == EventType::Canary && *event.id == *self.out.instance {
                self.out.canary.observe();
                let latency = time::OffsetDateTime::now_utc() - event.published;
                self.out
                    .metrics
                    .canary_latency
                    .record(latency.as_seconds_f64().max(0.0));
            }
            self.advance();
            return;
        }
        let event = Arc::new(event);
        self.out.ring.record(event.clone());
        match self.debouncer.push(event.clone(), now) {
            Some(folded) => self.emit(folded),
            None => self.advance(),
        }
        // After the frame is on its way: the snapshot state never delays an event's fan-out.
        self.out.latest.record(subject, seq, Some(&event));
    }

    /// A bridge recorded that events published on Redis before this point may be lost: every
    /// client refetches, and a resume across it gets `reset` too.
    fn on_source_gap(&mut self, seq: u64, payload: &[u8]) {
        let marker = serde_json::from_slice::<rakuda_schema::SourceGap>(payload).ok();
        tracing::warn!(
            seq,
            reason = ?marker.as_ref().map(|m| m.reason),
            spans = ?marker.as_ref().map(|m| &m.spans),
            "source gap: no bridge was subscribed to Redis for a while; clients must refetch"
        );
        self.out.metrics.source_gaps.increment(1);
        self.out.ring.record_gap(seq);
        self.advance();
        self.out.hub.reset_all(ResetReason::SourceGap);
    }

    fn flush_due(&mut self, now: Instant) {
        while let Some(folded) = self.debouncer.pop_due(now) {
            self.emit(folded);
        }
    }

    /// Every event below the lowest one held back has gone out.
    fn watermark(&self) -> u64 {
        self.debouncer
            .lowest_held_seq()
            .map(|held| held.saturating_sub(1))
            .unwrap_or(self.last_seq)
    }

    fn advance(&self) {
        let watermark = self.watermark();
        self.out.hub.advance(watermark);
        self.out.metrics.stream_last_sequence.set(watermark as f64);
    }

    fn emit(&self, folded: Folded) {
        let started = StdInstant::now();
        let cursor = Cursor {
            epoch: self.epoch,
            seq: self.watermark(),
        };
        match &folded {
            Folded::Batch(batch) => {
                self.out.metrics.frames_batch.increment(1);
                self.out
                    .metrics
                    .events_coalesced(batch.event_type, u64::from(batch.count));
            }
            Folded::Single(_) => self.out.metrics.frames_single.increment(1),
        }
        self.out.hub.publish(OutFrame::encode_live(folded, cursor));
        self.out.metrics.stream_last_sequence.set(cursor.seq as f64);
        self.out
            .metrics
            .fanout_duration
            .record(started.elapsed().as_secs_f64());
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
