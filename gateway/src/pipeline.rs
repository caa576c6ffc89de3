//! Between the feed and the hub: parse each stream message once, keep client events for
//! resumes, debounce, and publish frames with a cursor that never claims more than was sent.

use std::sync::Arc;
use std::time::Instant as StdInstant;

use bytes::Bytes;
use rakuda_schema::channel::SOURCE_GAP_SUBJECT;
use rakuda_schema::{Channel, Validator};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::coalesce::Folded;
use crate::cursor::Cursor;
use crate::debounce::Debouncer;
use crate::event::StreamEvent;
use crate::feed::FeedItem;
use crate::frame::{FrameKind, OutFrame};

pub struct Pipeline {
    app: Arc<App>,
    debouncer: Debouncer,
    epoch: u64,
    /// The last sequence read from the stream.
    last_seq: u64,
}

impl Pipeline {
    pub fn new(app: Arc<App>) -> Pipeline {
        let debouncer = Debouncer::new(
            app.config.debounce_window(),
            app.config.debounce_max_batch_events,
        );
        Pipeline {
            app,
            debouncer,
            epoch: 0,
            last_seq: 0,
        }
    }

    pub async fn run(mut self, mut feed: mpsc::Receiver<FeedItem>, shutdown: CancellationToken) {
        // Heartbeats are ticks in the frame queue, sent from here: in order with the frames, so
        // the cursor a heartbeat claims is never ahead of what its connection has written, and
        // no connection keeps a timer of its own.
        let every = self.app.config.heartbeat_interval();
        let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.debouncer.next_deadline();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = sleep_until(deadline), if deadline.is_some() => self.flush_due(Instant::now()),
                _ = heartbeat.tick() => self.app.hub.tick(),
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
            self.app.config.debounce_window(),
            self.app.config.debounce_max_batch_events,
        );
        self.app.hub.start(epoch, last_seq);
        self.app.metrics.stream_last_sequence.set(last_seq as f64);
        self.app.mark_feed_started();
        if restarted {
            tracing::warn!(epoch, "the stream was recreated; clients must refetch");
            self.app.hub.reset_all("stream_recreated");
        }
    }

    fn on_message(&mut self, seq: u64, subject: &str, payload: Bytes, now: Instant) {
        self.last_seq = seq;
        self.flush_due(now);
        if subject == SOURCE_GAP_SUBJECT {
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
                self.app.metrics.events_invalid.increment(1);
                tracing::debug!(
                    seq,
                    subject,
                    why,
                    "skipped a stream message that is not a valid event"
                );
                self.advance();
                return;
            }
        };
        self.app.metrics.event_received(event.event_type);
        if channel.internal {
            // The canary flows through the whole path but reaches no client.
            if event.event_type == rakuda_schema::EventType::Canary
                && *event.id == *self.app.instance
            {
                self.app.canary.observe();
                let latency = time::OffsetDateTime::now_utc() - event.published;
                self.app
                    .metrics
                    .canary_latency
                    .record(latency.as_seconds_f64().max(0.0));
            }
            self.advance();
            return;
        }
        let event = Arc::new(event);
        self.app.hub.record(event.clone());
        match self.debouncer.push(event, now) {
            Some(folded) => self.emit(folded),
            None => self.advance(),
        }
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
        self.app.metrics.source_gaps.increment(1);
        self.app.hub.record_gap(seq);
        self.advance();
        self.app.hub.reset_all("source_gap");
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
        self.app.hub.advance(watermark);
        self.app.metrics.stream_last_sequence.set(watermark as f64);
    }

    fn emit(&self, folded: Folded) {
        let started = StdInstant::now();
        let cursor = Cursor {
            epoch: self.epoch,
            seq: self.watermark(),
        };
        let frame = OutFrame::encode(&folded, cursor);
        match frame.kind {
            FrameKind::Single => self.app.metrics.frames_single.increment(1),
            FrameKind::Batch => {
                self.app.metrics.frames_batch.increment(1);
                if let Folded::Batch(batch) = &folded {
                    self.app
                        .metrics
                        .events_coalesced(batch.event_type, u64::from(batch.count));
                }
            }
            // `encode` makes only event frames.
            FrameKind::Reset | FrameKind::Tick | FrameKind::Drain => {}
        }
        self.app.hub.publish(frame);
        self.app.metrics.stream_last_sequence.set(cursor.seq as f64);
        self.app
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
