//! The bridge's metrics, registered once on a recorder the bridge owns (no global recorder,
//! so several bridges can run in one test process and each reports only its own numbers).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::PrometheusHandle;
use rakuda_schema::{GapReason, RejectReason, CHANNELS};
use rakuda_service::metric::{counter, describe, gauge, histogram, recorder};

/// Why a subscription (a span) ended; the `reason` label of `bridge_subscriptions_ended_total`.
pub const SUBSCRIPTION_END_REASONS: [&str; 4] = [
    // Redis closed the connection: a restart, or it cut a subscriber whose output buffer
    // passed `client-output-buffer-limit pubsub`.
    "connection_closed",
    // A Redis that hung without closing: the keepalive ping got no answer.
    "keepalive_failed",
    // A message was dropped because the publish queue stayed full.
    "queue_full",
    // This bridge was silent longer than the staleness limit and was taken as gone.
    "liveness_lapsed",
];

/// Why `POST /api/realtime/publish` refused a request; the `reason` label of
/// `bridge_http_publish_refused_total`. Refused events inside a request are counted by their
/// `RejectReason` in `bridge_events_rejected_total`, like the Redis path's.
pub const HTTP_REFUSAL_REASONS: [&str; 11] = [
    "missing_credentials",
    "invalid_key",
    "read_credential",
    "unsupported_media_type",
    "body_too_large",
    "too_many_items",
    "malformed",
    "body_timeout",
    "busy",
    "event_rejected",
    "ack_timeout",
];

/// What became of each event posted over HTTP; the `result` label of
/// `bridge_http_publish_events_total`.
pub const HTTP_EVENT_RESULTS: [&str; 4] = ["stored", "duplicate", "rejected", "unacknowledged"];

/// Every metric the bridge exports. Labels come from closed sets (channels, reject reasons).
pub struct BridgeMetrics {
    handle: PrometheusHandle,
    pub received: Counter,
    forwarded: HashMap<&'static str, Counter>,
    rejected: HashMap<RejectReason, Counter>,
    pub dropped: Counter,
    pub deduplicated: Counter,
    pub publish_retries: Counter,
    pub publish_latency: Histogram,
    pub in_flight: Gauge,
    pub queue_depth: Gauge,
    redis_connected: Gauge,
    pub redis_reconnects: Counter,
    nats_connected: Gauge,
    subscriptions_ended: HashMap<&'static str, Counter>,
    source_gaps: HashMap<&'static str, Counter>,
    pub coverage_errors: Counter,
    pub stored_through_beacon: Gauge,
    http_refused: HashMap<&'static str, Counter>,
    http_events: HashMap<&'static str, Counter>,
    redis_up: AtomicBool,
    nats_up: AtomicBool,
}

impl BridgeMetrics {
    pub fn new() -> BridgeMetrics {
        let recorder = recorder();
        let r = &recorder;

        let forwarded = CHANNELS
            .iter()
            .map(|c| {
                let counter = counter(r, "bridge_events_forwarded_total", &[("channel", c.name)]);
                (c.name, counter)
            })
            .collect();
        let rejected = RejectReason::ALL
            .into_iter()
            .map(|reason| {
                let counter = counter(
                    r,
                    "bridge_events_rejected_total",
                    &[("reason", reason.as_str())],
                );
                (reason, counter)
            })
            .collect();

        describe(
            r,
            "bridge_events_received_total",
            Unit::Count,
            "Messages read from Redis channels under the prefix.",
        );
        describe(
            r,
            "bridge_events_forwarded_total",
            Unit::Count,
            "Valid events stored in the stream (acked, not duplicates), by channel.",
        );
        describe(
            r,
            "bridge_events_rejected_total",
            Unit::Count,
            "Invalid messages sent to the DLQ, by reason.",
        );
        describe(
            r,
            "bridge_events_dropped_total",
            Unit::Count,
            "Messages dropped because the publish queue stayed full.",
        );
        describe(r, "bridge_events_deduplicated_total", Unit::Count, "Publishes JetStream recognised as duplicates by Nats-Msg-Id (another bridge or a retry stored them).");
        describe(
            r,
            "bridge_publish_retries_total",
            Unit::Count,
            "Publishes sent again after a NATS error.",
        );
        describe(
            r,
            "bridge_publish_latency_seconds",
            Unit::Seconds,
            "Time from publish to JetStream ack.",
        );
        describe(
            r,
            "bridge_publish_in_flight",
            Unit::Count,
            "Publishes awaiting their ack.",
        );
        describe(
            r,
            "bridge_queue_depth",
            Unit::Count,
            "Messages read from Redis, waiting to be published.",
        );
        describe(
            r,
            "bridge_redis_connected",
            Unit::Count,
            "1 while subscribed to Redis, else 0.",
        );
        describe(
            r,
            "bridge_redis_reconnects_total",
            Unit::Count,
            "Times the Redis subscription was re-established.",
        );
        describe(
            r,
            "bridge_subscriptions_ended_total",
            Unit::Count,
            "Redis subscriptions (spans) that ended, by reason; each is checked for a source gap.",
        );
        describe(
            r,
            "bridge_source_gaps_total",
            Unit::Count,
            "Source gap markers this bridge wrote: no bridge was subscribed for a while (start: nothing known before).",
        );
        describe(
            r,
            "bridge_stored_through_beacon",
            Unit::Count,
            "The beacon up to which everything the current subscription read is in the stream (0: none yet).",
        );
        describe(
            r,
            "bridge_coverage_errors_total",
            Unit::Count,
            "Rounds in which the coverage registry in Redis could not be reached.",
        );
        describe(
            r,
            "bridge_nats_connected",
            Unit::Count,
            "1 while connected to NATS, else 0.",
        );

        describe(
            r,
            "bridge_http_publish_refused_total",
            Unit::Count,
            "Requests to POST /api/realtime/publish refused (or not acknowledged in time), by reason.",
        );
        describe(
            r,
            "bridge_http_publish_events_total",
            Unit::Count,
            "Events posted to /api/realtime/publish, by result.",
        );
        let labelled = |name: &'static str, label: &'static str, values: &[&'static str]| {
            values
                .iter()
                .map(|value| (*value, counter(r, name, &[(label, value)])))
                .collect::<HashMap<_, _>>()
        };

        BridgeMetrics {
            http_refused: labelled(
                "bridge_http_publish_refused_total",
                "reason",
                &HTTP_REFUSAL_REASONS,
            ),
            http_events: labelled(
                "bridge_http_publish_events_total",
                "result",
                &HTTP_EVENT_RESULTS,
            ),
            handle: recorder.handle(),
            received: counter(r, "bridge_events_received_total", &[]),
            forwarded,
            rejected,
            dropped: counter(r, "bridge_events_dropped_total", &[]),
            deduplicated: counter(r, "bridge_events_deduplicated_total", &[]),
            publish_retries: counter(r, "bridge_publish_retries_total", &[]),
            publish_latency: histogram(r, "bridge_publish_latency_seconds"),
            in_flight: gauge(r, "bridge_publish_in_flight", &[]),
            queue_depth: gauge(r, "bridge_queue_depth", &[]),
            redis_connected: gauge(r, "bridge_redis_connected", &[]),
            redis_reconnects: counter(r, "bridge_redis_reconnects_total", &[]),
            nats_connected: gauge(r, "bridge_nats_connected", &[]),
            subscriptions_ended: SUBSCRIPTION_END_REASONS
                .into_iter()
                .map(|reason| {
                    (
                        reason,
                        counter(r, "bridge_subscriptions_ended_total", &[("reason", reason)]),
                    )
                })
                .collect(),
            source_gaps: [
                GapReason::Start,
                GapReason::Departed,
                GapReason::RedisRestarted,
            ]
            .into_iter()
            .map(|reason| {
                let label = gap_label(reason);
                (
                    label,
                    counter(r, "bridge_source_gaps_total", &[("reason", label)]),
                )
            })
            .collect(),
            coverage_errors: counter(r, "bridge_coverage_errors_total", &[]),
            stored_through_beacon: gauge(r, "bridge_stored_through_beacon", &[]),
            redis_up: AtomicBool::new(false),
            nats_up: AtomicBool::new(false),
        }
    }

    /// The counter of forwarded events for a channel.
    pub fn forwarded(&self, channel: &str) -> Option<&Counter> {
        self.forwarded.get(channel)
    }

    /// The counter of rejects for a reason.
    pub fn rejected(&self, reason: RejectReason) -> Option<&Counter> {
        self.rejected.get(&reason)
    }

    /// A subscription ended for `reason` (one of [`SUBSCRIPTION_END_REASONS`]).
    pub fn subscription_ended(&self, reason: &'static str) {
        match self.subscriptions_ended.get(reason) {
            Some(counter) => counter.increment(1),
            None => debug_assert!(false, "unknown subscription end reason {reason}"),
        }
    }

    /// This bridge wrote a source gap marker.
    pub fn source_gap(&self, reason: GapReason) {
        if let Some(counter) = self.source_gaps.get(gap_label(reason)) {
            counter.increment(1);
        }
    }

    /// `POST /api/realtime/publish` refused a request for `reason` (one of
    /// [`HTTP_REFUSAL_REASONS`]).
    pub fn http_refused(&self, reason: &'static str) {
        match self.http_refused.get(reason) {
            Some(counter) => counter.increment(1),
            None => debug_assert!(false, "unknown HTTP refusal reason {reason}"),
        }
    }

    /// Events posted over HTTP with this `result` (one of [`HTTP_EVENT_RESULTS`]).
    pub fn http_events(&self, result: &'static str, count: u64) {
        match self.http_events.get(result) {
            Some(counter) => counter.increment(count),
            None => debug_assert!(false, "unknown HTTP event result {result}"),
        }
    }

    pub fn set_redis_connected(&self, up: bool) {
        self.redis_up.store(up, Ordering::Relaxed);
        self.redis_connected.set(if up { 1.0 } else { 0.0 });
    }

    pub fn set_nats_connected(&self, up: bool) {
        self.nats_up.store(up, Ordering::Relaxed);
        self.nats_connected.set(if up { 1.0 } else { 0.0 });
    }

    pub fn redis_connected(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    pub fn nats_connected(&self) -> bool {
        self.nats_up.load(Ordering::Relaxed)
    }

    /// The recorder's handle, for the upkeep task.
    pub fn handle(&self) -> PrometheusHandle {
        self.handle.clone()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

fn gap_label(reason: GapReason) -> &'static str {
    match reason {
        GapReason::Start => "start",
        GapReason::Departed => "departed",
        GapReason::RedisRestarted => "redis_restarted",
    }
}

impl Default for BridgeMetrics {
    fn default() -> Self {
        BridgeMetrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_from_the_start() {
        let metrics = BridgeMetrics::new();
        metrics.publish_latency.record(0.002);
        let text = metrics.render();
        for name in [
            "bridge_events_received_total",
            "bridge_events_forwarded_total{channel=\"inventory\"}",
            "bridge_events_rejected_total{reason=\"bad_timestamp\"}",
            "bridge_events_dropped_total",
            "bridge_events_deduplicated_total",
            "bridge_publish_retries_total",
            "bridge_publish_latency_seconds_bucket{le=\"0.0025\"}",
            "bridge_publish_in_flight",
            "bridge_queue_depth",
            "bridge_redis_connected",
            "bridge_redis_reconnects_total",
            "bridge_nats_connected",
            "bridge_subscriptions_ended_total{reason=\"queue_full\"}",
            "bridge_source_gaps_total{reason=\"departed\"}",
            "bridge_coverage_errors_total",
            "bridge_http_publish_refused_total{reason=\"read_credential\"}",
            "bridge_http_publish_events_total{result=\"duplicate\"}",
        ] {
            assert!(
                text.lines()
                    .any(|line| line.starts_with(&format!("{name} "))),
                "{name} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn separate_instances_do_not_share_values() {
        let first = BridgeMetrics::new();
        let second = BridgeMetrics::new();
        first.received.increment(3);
        assert!(first.render().contains("bridge_events_received_total 3"));
        assert!(second.render().contains("bridge_events_received_total 0"));
    }
}
