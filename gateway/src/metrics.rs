//! The gateway's metrics, on a recorder it owns. `/metrics` renders them; `/stats` and
//! `/status` read the very same rendered values (see [`crate::stats`]).

use std::collections::HashMap;

use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::PrometheusHandle;
use rakuda_schema::EventType;
use rakuda_service::metric::{counter, describe, gauge, histogram, recorder};

/// How a client is connected. A closed set: it is a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Sse,
    Ws,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Sse, Transport::Ws];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }
}

/// Where a resume got its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplaySource {
    Ring,
    Stream,
    Reset,
}

impl ReplaySource {
    pub const ALL: [ReplaySource; 3] = [
        ReplaySource::Ring,
        ReplaySource::Stream,
        ReplaySource::Reset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReplaySource::Ring => "ring",
            ReplaySource::Stream => "stream",
            ReplaySource::Reset => "reset",
        }
    }
}

/// Why the gateway ended a client's connection (or told it to refetch) outside a resume.
pub const RESET_REASONS: [&str; 5] = [
    "lagged",
    "stream_recreated",
    "unresponsive",
    "bad_frames",
    "frame_too_large",
];

/// Why a request was refused; the `error` field of the JSON body.
pub const REJECT_REASONS: [&str; 15] = [
    "missing_credentials",
    "invalid_api_key",
    "invalid_token",
    "token_expired",
    "channel_not_allowed",
    "api_key_required",
    "unknown_channel",
    "bad_request",
    "realtime_disabled",
    "draining",
    "too_many_connections",
    "too_many_connections_for_key",
    "uri_too_long",
    "headers_too_large",
    "not_websocket",
];

pub struct GatewayMetrics {
    handle: PrometheusHandle,
    events_received: HashMap<EventType, Counter>,
    pub events_invalid: Counter,
    pub feed_failures: Counter,
    pub source_gaps: Counter,
    events_coalesced: HashMap<EventType, Counter>,
    pub frames_single: Counter,
    pub frames_batch: Counter,
    frames_sent: HashMap<Transport, Counter>,
    connections_opened: HashMap<Transport, Counter>,
    connections_closed: HashMap<Transport, Counter>,
    connections: HashMap<Transport, Gauge>,
    clients_reset: HashMap<&'static str, Counter>,
    replays: HashMap<ReplaySource, Counter>,
    requests_rejected: HashMap<&'static str, Counter>,
    pub nats_connected: Gauge,
    pub stream_last_sequence: Gauge,
    pub event_latency: Histogram,
    pub fanout_duration: Histogram,
    pub ws_bad_frames: Counter,
    pub canary_latency: Histogram,
    pub canary_age: Gauge,
    pub degraded: Gauge,
    pub max_connections: Gauge,
    pub replay_bytes_in_flight: Gauge,
}

impl GatewayMetrics {
    pub fn new() -> GatewayMetrics {
        let recorder = recorder();
        let r = &recorder;
        let by_type = |name: &'static str| -> HashMap<EventType, Counter> {
            EventType::ALL
                .into_iter()
                .map(|t| (t, counter(r, name, &[("type", t.as_str())])))
                .collect()
        };
        let by_transport = |name: &'static str| -> HashMap<Transport, Counter> {
            Transport::ALL
                .into_iter()
                .map(|t| (t, counter(r, name, &[("transport", t.as_str())])))
                .collect()
        };

        describe(
            r,
            "gateway_events_received_total",
            Unit::Count,
            "Events read from the stream, by type.",
        );
        describe(
            r,
            "gateway_events_invalid_total",
            Unit::Count,
            "Stream messages that were not valid events (skipped).",
        );
        describe(
            r,
            "gateway_feed_failures_total",
            Unit::Count,
            "Times reading the stream failed and is retried with backoff (stream gone, consumer lost or stalled).",
        );
        describe(
            r,
            "gateway_source_gaps_total",
            Unit::Count,
            "Source gap markers read from the stream: every client was sent reset (source_gap).",
        );
        describe(
            r,
            "gateway_events_coalesced_total",
            Unit::Count,
            "Events delivered inside debounce batch frames instead of one frame each, by type.",
        );
        describe(
            r,
            "gateway_frames_emitted_total",
            Unit::Count,
            "Frames produced for fan-out, by kind (single, batch).",
        );
        describe(
            r,
            "gateway_frames_sent_total",
            Unit::Count,
            "Frames written to client connections, by transport.",
        );
        describe(
            r,
            "gateway_connections_opened_total",
            Unit::Count,
            "Client connections opened, by transport.",
        );
        describe(
            r,
            "gateway_connections_closed_total",
            Unit::Count,
            "Client connections closed, by transport.",
        );
        describe(
            r,
            "gateway_connections",
            Unit::Count,
            "Client connections open now, by transport.",
        );
        describe(
            r,
            "gateway_clients_reset_total",
            Unit::Count,
            "Clients sent `reset` and closed, by reason (lagged: fell behind the queue).",
        );
        describe(
            r,
            "gateway_replays_total",
            Unit::Count,
            "Resumes, by where the missed events came from (ring, stream) or reset.",
        );
        describe(
            r,
            "gateway_requests_rejected_total",
            Unit::Count,
            "Requests refused, by reason.",
        );
        describe(
            r,
            "gateway_nats_connected",
            Unit::Count,
            "1 while connected to NATS, else 0.",
        );
        describe(
            r,
            "gateway_stream_last_sequence",
            Unit::Count,
            "Sequence up to which every event was sent to clients (the resume watermark).",
        );
        describe(
            r,
            "gateway_event_latency_seconds",
            Unit::Seconds,
            "Event timestamp (worker) to frame written to a client (one connection in 16 records).",
        );
        describe(
            r,
            "gateway_max_connections",
            Unit::Count,
            "MAX_CONNECTIONS: connections this instance accepts before answering 503 (for the connection-limit alert).",
        );
        describe(
            r,
            "gateway_replay_bytes_in_flight",
            Unit::Bytes,
            "Bytes held by resumes being written (REPLAY_BUDGET_BYTES caps it).",
        );
        describe(
            r,
            "gateway_fanout_duration_seconds",
            Unit::Seconds,
            "Time to hand one frame to every connection.",
        );

        GatewayMetrics {
            handle: recorder.handle(),
            events_received: by_type("gateway_events_received_total"),
            events_invalid: counter(r, "gateway_events_invalid_total", &[]),
            feed_failures: counter(r, "gateway_feed_failures_total", &[]),
            source_gaps: counter(r, "gateway_source_gaps_total", &[]),
            events_coalesced: by_type("gateway_events_coalesced_total"),
            frames_single: counter(r, "gateway_frames_emitted_total", &[("kind", "single")]),
            frames_batch: counter(r, "gateway_frames_emitted_total", &[("kind", "batch")]),
            frames_sent: by_transport("gateway_frames_sent_total"),
            connections_opened: by_transport("gateway_connections_opened_total"),
            connections_closed: by_transport("gateway_connections_closed_total"),
            connections: Transport::ALL
                .into_iter()
                .map(|t| {
                    (
                        t,
                        gauge(r, "gateway_connections", &[("transport", t.as_str())]),
                    )
                })
                .collect(),
            clients_reset: RESET_REASONS
                .into_iter()
                .map(|reason| {
                    (
                        reason,
                        counter(r, "gateway_clients_reset_total", &[("reason", reason)]),
                    )
                })
                .collect(),
            replays: ReplaySource::ALL
                .into_iter()
                .map(|s| {
                    (
                        s,
                        counter(r, "gateway_replays_total", &[("source", s.as_str())]),
                    )
                })
                .collect(),
            requests_rejected: REJECT_REASONS
                .into_iter()
                .map(|reason| {
                    (
                        reason,
                        counter(r, "gateway_requests_rejected_total", &[("reason", reason)]),
                    )
                })
                .collect(),
            nats_connected: gauge(r, "gateway_nats_connected", &[]),
            stream_last_sequence: gauge(r, "gateway_stream_last_sequence", &[]),
            event_latency: histogram(r, "gateway_event_latency_seconds"),
            fanout_duration: histogram(r, "gateway_fanout_duration_seconds"),
            ws_bad_frames: counter(r, "gateway_ws_bad_frames_total", &[]),
            canary_latency: histogram(r, "gateway_canary_latency_seconds"),
            canary_age: gauge(r, "gateway_canary_age_seconds", &[]),
            degraded: gauge(r, "gateway_degraded", &[]),
            max_connections: gauge(r, "gateway_max_connections", &[]),
            replay_bytes_in_flight: gauge(r, "gateway_replay_bytes_in_flight", &[]),
        }
    }

    /// The recorder's handle, for the upkeep task.
    pub fn handle(&self) -> PrometheusHandle {
        self.handle.clone()
    }

    pub fn render(&self) -> String {
        self.handle.render()
    }

    pub fn event_received(&self, event_type: EventType) {
        if let Some(counter) = self.events_received.get(&event_type) {
            counter.increment(1);
        }
    }

    pub fn events_coalesced(&self, event_type: EventType, count: u64) {
        if let Some(counter) = self.events_coalesced.get(&event_type) {
            counter.increment(count);
        }
    }

    pub fn frames_sent(&self, transport: Transport, count: u64) {
        if let Some(counter) = self.frames_sent.get(&transport) {
            counter.increment(count);
        }
    }

    pub fn connection_opened(&self, transport: Transport) {
        if let Some(counter) = self.connections_opened.get(&transport) {
            counter.increment(1);
        }
        if let Some(gauge) = self.connections.get(&transport) {
            gauge.increment(1.0);
        }
    }

    pub fn connection_closed(&self, transport: Transport) {
        if let Some(counter) = self.connections_closed.get(&transport) {
            counter.increment(1);
        }
        if let Some(gauge) = self.connections.get(&transport) {
            gauge.decrement(1.0);
        }
    }

    pub fn client_reset(&self, reason: &'static str) {
        if let Some(counter) = self.clients_reset.get(reason) {
            counter.increment(1);
        }
    }

    pub fn replay(&self, source: ReplaySource) {
        if let Some(counter) = self.replays.get(&source) {
            counter.increment(1);
        }
    }

    pub fn request_rejected(&self, reason: &'static str) {
        if let Some(counter) = self.requests_rejected.get(reason) {
            counter.increment(1);
        }
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics::new()
    }
}
