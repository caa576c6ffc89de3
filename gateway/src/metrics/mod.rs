//! The gateway's metrics, on a recorder it owns, grouped by the stage that records them: each
//! component gets its own group and nothing else. `/metrics` renders them all; `/stats` and the
//! cluster stats read the very same counters through a typed [`StatsSnapshot`].
//!
//! Every labelled series is registered up front from a closed set (an enum listed with strum's
//! `iter()`), and recorded by indexing with the enum itself, so a new variant is a new series,
//! never a silently dropped one.

mod describe;
mod snapshot;

use std::sync::Arc;

use metrics::{Gauge, Histogram};
use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::PrometheusRecorder;
use rakuda_schema::{ClientResetReason, EventType, ReplaySource, RequestRefusal};
use rakuda_service::metric::{
    gauge, histogram, readable_counter, readable_gauge, recorder, ReadableCounter, ReadableGauge,
};
use strum::{EnumCount, IntoEnumIterator};

pub(crate) use snapshot::StatsSnapshot;

/// How a client is connected. A closed set: it is a label.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter, strum::EnumCount, strum::IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum Transport {
    Sse,
    Ws,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Which history answer a cache serves: the `route` label of `gateway_history_cache_total`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter, strum::EnumCount, strum::IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum CacheRoute {
    /// `/api/realtime/summary`.
    Summary,
    /// The counts a first connection's `?backfill=`/`?since=` start from.
    Backfill,
    /// `/api/realtime/snapshot`, answered from the state kept in memory.
    Snapshot,
}

/// How a history answer was had: the `result` label of `gateway_history_cache_total`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter, strum::EnumCount, strum::IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum CacheResult {
    /// Served from what was already computed (the cache; for the snapshot, the state in memory).
    Hit,
    /// Computed (for the snapshot: one fill of the state from `<STREAM_NAME>_LATEST`).
    Miss,
    /// Waited for a computation already in flight and took its result.
    Joined,
}

/// One counter per variant of `E`, registered as `name{label="<variant>"}`.
fn per_variant<E, const N: usize>(
    r: &PrometheusRecorder,
    name: &'static str,
    label: &'static str,
) -> [ReadableCounter; N]
where
    E: IntoEnumIterator + Into<&'static str>,
{
    let counters: Vec<ReadableCounter> = E::iter()
        .map(|variant| readable_counter(r, name, &[(label, variant.into())]))
        .collect();
    // strum's COUNT is the number of variants `iter()` yields, so the lengths agree.
    counters
        .try_into()
        .unwrap_or_else(|_| unreachable!("one counter per variant"))
}

/// What the ingest thread records: the stream as it is read, debounced and fanned out.
pub struct IngestMetrics {
    events_received: [ReadableCounter; 5],
    pub events_invalid: ReadableCounter,
    events_coalesced: [ReadableCounter; 5],
    pub frames_single: ReadableCounter,
    pub frames_batch: ReadableCounter,
    pub feed_failures: ReadableCounter,
    pub source_gaps: ReadableCounter,
    pub stream_last_sequence: Gauge,
    pub fanout_duration: Histogram,
    pub canary_latency: Histogram,
}

impl IngestMetrics {
    pub fn event_received(&self, event_type: EventType) {
        self.events_received[type_index(event_type)].increment(1);
    }

    pub fn events_coalesced(&self, event_type: EventType, count: u64) {
        self.events_coalesced[type_index(event_type)].increment(count);
    }
}

fn type_index(event_type: EventType) -> usize {
    EventType::ALL
        .iter()
        .position(|t| *t == event_type)
        .unwrap_or(0)
}

/// What client connections record, whatever their transport.
pub struct ConnectionMetrics {
    frames_sent: [ReadableCounter; Transport::COUNT],
    opened: [ReadableCounter; Transport::COUNT],
    closed: [ReadableCounter; Transport::COUNT],
    reconnects: [ReadableCounter; Transport::COUNT],
    current: [ReadableGauge; Transport::COUNT],
    clients_reset: [ReadableCounter; ClientResetReason::COUNT],
    replays: [ReadableCounter; ReplaySource::COUNT],
    pub event_latency: Histogram,
    pub ws_bad_frames: ReadableCounter,
    pub replay_bytes_in_flight: Gauge,
    /// Events laid into the resume ring from before a start of the feed.
    pub ring_warmed_events: ReadableCounter,
}

impl ConnectionMetrics {
    pub fn frames_sent(&self, transport: Transport, count: u64) {
        self.frames_sent[transport as usize].increment(count);
    }

    pub fn opened(&self, transport: Transport) {
        self.opened[transport as usize].increment(1);
        self.current[transport as usize].increment();
    }

    pub fn closed(&self, transport: Transport) {
        self.closed[transport as usize].increment(1);
        self.current[transport as usize].decrement();
    }

    /// A stream admitted with a cursor: a client coming back (from this gateway or another).
    pub fn reconnected(&self, transport: Transport) {
        self.reconnects[transport as usize].increment(1);
    }

    /// Connections open now.
    pub fn current(&self, transport: Transport) -> u64 {
        self.current[transport as usize].get()
    }

    pub fn client_reset(&self, reason: ClientResetReason) {
        self.clients_reset[reason as usize].increment(1);
    }

    pub fn replay(&self, source: ReplaySource) {
        self.replays[source as usize].increment(1);
    }
}

/// What the HTTP edge records.
pub struct EdgeMetrics {
    requests_rejected: [ReadableCounter; RequestRefusal::COUNT],
    /// Sockets holding no authenticated request yet.
    pub unauthenticated: ReadableGauge,
}

impl EdgeMetrics {
    pub fn request_rejected(&self, reason: RequestRefusal) {
        self.requests_rejected[reason as usize].increment(1);
    }
}

/// What the fleet's watchers record: NATS, the canary, the connection limit.
pub struct FleetMetrics {
    pub nats_connected: Gauge,
    pub canary_age: Gauge,
    pub degraded: Gauge,
    pub max_connections: Gauge,
    /// Cluster messages (presence, stats replies and requests) dropped as malformed, oversized
    /// or too many.
    pub cluster_dropped: ReadableCounter,
}

/// What the history routes (`/summary`, `/snapshot`) record.
pub struct HistoryMetrics {
    /// Snapshot pages answered `partial`: the latest-state stream is at `LATEST_MAX_ENTITIES`.
    pub snapshot_partial: ReadableCounter,
    /// Consumers made for snapshot and DLQ answers and not yet deleted.
    pub consumers: Gauge,
    pub consumer_delete_failures: ReadableCounter,
    /// Bytes reserved by answers in flight (`HISTORY_BUDGET_BYTES` caps it).
    pub bytes_reserved: Gauge,
    /// Bytes of answers built and not yet written to their sockets.
    pub bytes_in_flight: Gauge,
    /// Snapshot answers cut short after their status was sent (the client read nothing for
    /// too long, or the answer took too long).
    pub answers_cut: ReadableCounter,
    /// `gateway_history_cache_total{route, result}`, indexed by [`CacheRoute`] then
    /// [`CacheResult`].
    cache: [[ReadableCounter; CacheResult::COUNT]; CacheRoute::COUNT],
    /// Entities the snapshot state in memory holds (as `<STREAM_NAME>_LATEST` counts its
    /// messages: orders' one subject and the source gap marker included).
    pub snapshot_entities: Gauge,
    /// Bytes of event JSON the snapshot state in memory holds.
    pub snapshot_bytes: Gauge,
    /// Fills of the snapshot state from `<STREAM_NAME>_LATEST` completed.
    pub snapshot_fills: ReadableCounter,
    /// Fills that failed (retried with backoff).
    pub snapshot_fill_failures: ReadableCounter,
}

impl HistoryMetrics {
    /// The counter of `route` and `result` in `gateway_history_cache_total`.
    pub fn cache(&self, route: CacheRoute, result: CacheResult) -> &ReadableCounter {
        &self.cache[route as usize][result as usize]
    }
}

pub struct GatewayMetrics {
    handle: PrometheusHandle,
    pub ingest: Arc<IngestMetrics>,
    pub connections: Arc<ConnectionMetrics>,
    pub edge: Arc<EdgeMetrics>,
    pub fleet: Arc<FleetMetrics>,
    pub history: Arc<HistoryMetrics>,
}

impl GatewayMetrics {
    pub fn new() -> GatewayMetrics {
        let recorder = recorder();
        let r = &recorder;
        describe::describe_all(r);
        let by_type = |name: &'static str| -> [ReadableCounter; 5] {
            EventType::ALL.map(|t| readable_counter(r, name, &[("type", t.as_str())]))
        };
        let by_transport = |name: &'static str| -> [ReadableCounter; Transport::COUNT] {
            per_variant::<Transport, { Transport::COUNT }>(r, name, "transport")
        };
        let current: Vec<ReadableGauge> = Transport::iter()
            .map(|t| readable_gauge(r, "gateway_connections", &[("transport", t.as_str())]))
            .collect();
        let current: [ReadableGauge; Transport::COUNT] = current
            .try_into()
            .unwrap_or_else(|_| unreachable!("one gauge per transport"));
        GatewayMetrics {
            handle: recorder.handle(),
            ingest: Arc::new(IngestMetrics {
                events_received: by_type("gateway_events_received_total"),
                events_invalid: readable_counter(r, "gateway_events_invalid_total", &[]),
                events_coalesced: by_type("gateway_events_coalesced_total"),
                frames_single: readable_counter(
                    r,
                    "gateway_frames_emitted_total",
                    &[("kind", "single")],
                ),
                frames_batch: readable_counter(
                    r,
                    "gateway_frames_emitted_total",
                    &[("kind", "batch")],
                ),
                feed_failures: readable_counter(r, "gateway_feed_failures_total", &[]),
                source_gaps: readable_counter(r, "gateway_source_gaps_total", &[]),
                stream_last_sequence: gauge(r, "gateway_stream_last_sequence", &[]),
                fanout_duration: histogram(r, "gateway_fanout_duration_seconds"),
                canary_latency: histogram(r, "gateway_canary_latency_seconds"),
            }),
            connections: Arc::new(ConnectionMetrics {
                frames_sent: by_transport("gateway_frames_sent_total"),
                opened: by_transport("gateway_connections_opened_total"),
                closed: by_transport("gateway_connections_closed_total"),
                reconnects: by_transport("gateway_reconnects_total"),
                current,
                clients_reset: per_variant::<ClientResetReason, { ClientResetReason::COUNT }>(
                    r,
                    "gateway_clients_reset_total",
                    "reason",
                ),
                replays: per_variant::<ReplaySource, { ReplaySource::COUNT }>(
                    r,
                    "gateway_replays_total",
                    "source",
                ),
                event_latency: histogram(r, "gateway_event_latency_seconds"),
                ws_bad_frames: readable_counter(r, "gateway_ws_bad_frames_total", &[]),
                replay_bytes_in_flight: gauge(r, "gateway_replay_bytes_in_flight", &[]),
                ring_warmed_events: readable_counter(
                    r,
                    "gateway_replay_ring_warmed_events_total",
                    &[],
                ),
            }),
            edge: Arc::new(EdgeMetrics {
                requests_rejected: per_variant::<RequestRefusal, { RequestRefusal::COUNT }>(
                    r,
                    "gateway_requests_rejected_total",
                    "reason",
                ),
                unauthenticated: readable_gauge(r, "gateway_unauthenticated_connections", &[]),
            }),
            fleet: Arc::new(FleetMetrics {
                nats_connected: gauge(r, "gateway_nats_connected", &[]),
                canary_age: gauge(r, "gateway_canary_age_seconds", &[]),
                degraded: gauge(r, "gateway_degraded", &[]),
                max_connections: gauge(r, "gateway_max_connections", &[]),
                cluster_dropped: readable_counter(r, "gateway_cluster_messages_dropped_total", &[]),
            }),
            history: Arc::new(HistoryMetrics {
                snapshot_partial: readable_counter(r, "gateway_snapshot_partial_total", &[]),
                consumers: gauge(r, "gateway_history_consumers", &[]),
                consumer_delete_failures: readable_counter(
                    r,
                    "gateway_history_consumer_delete_failures_total",
                    &[],
                ),
                bytes_reserved: gauge(r, "gateway_history_bytes_reserved", &[]),
                bytes_in_flight: gauge(r, "gateway_history_bytes_in_flight", &[]),
                answers_cut: readable_counter(r, "gateway_history_answers_cut_total", &[]),
                cache: CacheRoute::iter()
                    .map(|route| {
                        let results: Vec<ReadableCounter> = CacheResult::iter()
                            .map(|result| {
                                readable_counter(
                                    r,
                                    "gateway_history_cache_total",
                                    &[("route", route.into()), ("result", result.into())],
                                )
                            })
                            .collect();
                        results
                            .try_into()
                            .unwrap_or_else(|_| unreachable!("one counter per result"))
                    })
                    .collect::<Vec<[ReadableCounter; CacheResult::COUNT]>>()
                    .try_into()
                    .unwrap_or_else(|_| unreachable!("one row per route")),
                snapshot_entities: gauge(r, "gateway_snapshot_entities", &[]),
                snapshot_bytes: gauge(r, "gateway_snapshot_bytes", &[]),
                snapshot_fills: readable_counter(r, "gateway_snapshot_fills_total", &[]),
                snapshot_fill_failures: readable_counter(
                    r,
                    "gateway_snapshot_fill_failures_total",
                    &[],
                ),
            }),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// The recorder's handle, for the upkeep task.
    pub fn handle(&self) -> PrometheusHandle {
        self.handle.clone()
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics::new()
    }
}
