//! One typed reading of the gateway's counters: what `/stats` answers and what the instances of
//! a cluster exchange and add up. It reads the same counters `/metrics` renders, never the
//! rendered text.

use std::collections::BTreeMap;

use rakuda_schema::{ClientResetReason, EventType, ReplaySource, RequestRefusal};
use serde::{Deserialize, Serialize};
use strum::IntoEnumIterator;

use super::{GatewayMetrics, Transport};

/// A count per transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerTransport {
    pub sse: u64,
    pub ws: u64,
}

impl PerTransport {
    fn read(value: impl Fn(Transport) -> u64) -> PerTransport {
        PerTransport {
            sse: value(Transport::Sse),
            ws: value(Transport::Ws),
        }
    }

    fn add(&mut self, other: &PerTransport) {
        self.sse = self.sse.saturating_add(other.sse);
        self.ws = self.ws.saturating_add(other.ws);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FramesEmitted {
    pub single: u64,
    pub batch: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionCounts {
    pub opened: PerTransport,
    pub closed: PerTransport,
    pub current: PerTransport,
}

/// The delivery counters of one instance, or the totals of several. Label maps are keyed by
/// the label's wire name: an instance of a newer version with one more reason still adds up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// Empty in totals.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance: String,
    pub events_received: BTreeMap<String, u64>,
    pub events_invalid: u64,
    pub events_coalesced: BTreeMap<String, u64>,
    pub frames_emitted: FramesEmitted,
    pub frames_sent: PerTransport,
    pub connections: ConnectionCounts,
    pub clients_reset: BTreeMap<String, u64>,
    pub replays: BTreeMap<String, u64>,
    pub requests_rejected: BTreeMap<String, u64>,
}

impl StatsSnapshot {
    /// Adds `other`'s counts into these.
    pub fn add(&mut self, other: &StatsSnapshot) {
        add_all(&mut self.events_received, &other.events_received);
        self.events_invalid = self.events_invalid.saturating_add(other.events_invalid);
        add_all(&mut self.events_coalesced, &other.events_coalesced);
        let frames = &mut self.frames_emitted;
        frames.single = frames.single.saturating_add(other.frames_emitted.single);
        frames.batch = frames.batch.saturating_add(other.frames_emitted.batch);
        self.frames_sent.add(&other.frames_sent);
        self.connections.opened.add(&other.connections.opened);
        self.connections.closed.add(&other.connections.closed);
        self.connections.current.add(&other.connections.current);
        add_all(&mut self.clients_reset, &other.clients_reset);
        add_all(&mut self.replays, &other.replays);
        add_all(&mut self.requests_rejected, &other.requests_rejected);
    }
}

fn add_all(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (key, value) in from {
        let slot = into.entry(key.clone()).or_default();
        *slot = slot.saturating_add(*value);
    }
}

impl GatewayMetrics {
    /// The counters of this instance, now.
    pub fn snapshot(&self, instance: &str) -> StatsSnapshot {
        let ingest = &self.ingest;
        let connections = &self.connections;
        let client_types = EventType::ALL
            .into_iter()
            .filter(|t| EventType::CLIENT.contains(t));
        StatsSnapshot {
            instance: instance.to_owned(),
            events_received: EventType::ALL
                .into_iter()
                .enumerate()
                .map(|(index, t)| (t.as_str().to_owned(), ingest.events_received[index].get()))
                .collect(),
            events_invalid: ingest.events_invalid.get(),
            events_coalesced: client_types
                .map(|t| {
                    let index = super::type_index(t);
                    (t.as_str().to_owned(), ingest.events_coalesced[index].get())
                })
                .collect(),
            frames_emitted: FramesEmitted {
                single: ingest.frames_single.get(),
                batch: ingest.frames_batch.get(),
            },
            frames_sent: PerTransport::read(|t| connections.frames_sent[t as usize].get()),
            connections: ConnectionCounts {
                opened: PerTransport::read(|t| connections.opened[t as usize].get()),
                closed: PerTransport::read(|t| connections.closed[t as usize].get()),
                current: PerTransport::read(|t| connections.current(t)),
            },
            clients_reset: ClientResetReason::iter()
                .map(|r| {
                    (
                        r.as_str().to_owned(),
                        connections.clients_reset[r as usize].get(),
                    )
                })
                .collect(),
            replays: ReplaySource::iter()
                .map(|s| (s.as_str().to_owned(), connections.replays[s as usize].get()))
                .collect(),
            requests_rejected: RequestRefusal::iter()
                .map(|r| {
                    (
                        r.as_str().to_owned(),
                        self.edge.requests_rejected[r as usize].get(),
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_the_counters_metrics_renders() {
        let metrics = GatewayMetrics::new();
        metrics.ingest.event_received(EventType::OrderReceived);
        metrics.connections.opened(Transport::Ws);
        metrics.connections.frames_sent(Transport::Sse, 7);
        metrics.edge.request_rejected(RequestRefusal::TokenExpired);
        metrics
            .connections
            .client_reset(ClientResetReason::SourceGap);
        let snapshot = metrics.snapshot("gw-1");
        assert_eq!(snapshot.events_received["ORDER_RECEIVED"], 1);
        assert_eq!(snapshot.connections.current, PerTransport { sse: 0, ws: 1 });
        assert_eq!(snapshot.frames_sent.sse, 7);
        assert_eq!(snapshot.requests_rejected["token_expired"], 1);
        assert_eq!(snapshot.clients_reset["source_gap"], 1);
        assert_eq!(
            snapshot.requests_rejected.len(),
            RequestRefusal::iter().count()
        );
        let text = metrics.render();
        assert!(text.contains("gateway_requests_rejected_total{reason=\"token_expired\"} 1"));
        assert!(text.contains("gateway_frames_sent_total{transport=\"sse\"} 7"));
    }

    #[test]
    fn snapshots_add_up_and_read_back() {
        let metrics = GatewayMetrics::new();
        metrics.connections.frames_sent(Transport::Ws, 2);
        let one = metrics.snapshot("a");
        let mut totals = StatsSnapshot::default();
        totals.add(&one);
        totals.add(&one);
        assert_eq!(totals.frames_sent.ws, 4);
        let json = serde_json::to_string(&one).expect("json");
        assert!(
            json.contains("\"framesSent\":{\"sse\":0,\"ws\":2}"),
            "{json}"
        );
        let back: StatsSnapshot = serde_json::from_str(&json).expect("typed");
        assert_eq!(back, one);
    }
}
