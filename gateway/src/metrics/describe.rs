//! What each of the gateway's metrics means, as `/metrics` shows in its `# HELP` lines: one
//! line per metric, next to each other, so a new metric's help is written where the others are.

use metrics::Unit;
use metrics_exporter_prometheus::PrometheusRecorder;
use rakuda_service::metric::describe;

pub(super) fn describe_all(r: &PrometheusRecorder) {
    for (name, unit, help) in [
        ("gateway_events_received_total", Unit::Count, "Events read from the stream, by type."),
        ("gateway_events_invalid_total", Unit::Count, "Stream messages that were not valid events (skipped)."),
        ("gateway_feed_failures_total", Unit::Count, "Times reading the stream failed and is retried with backoff (stream gone, consumer lost or stalled)."),
        ("gateway_source_gaps_total", Unit::Count, "Source gap markers read from the stream: every client was sent reset (source_gap)."),
        ("gateway_events_coalesced_total", Unit::Count, "Events delivered inside debounce batch frames instead of one frame each, by type."),
        ("gateway_frames_emitted_total", Unit::Count, "Frames produced for fan-out, by kind (single, batch)."),
        ("gateway_frames_sent_total", Unit::Count, "Frames written to client connections, by transport."),
        ("gateway_connections_opened_total", Unit::Count, "Client connections opened, by transport."),
        ("gateway_connections_closed_total", Unit::Count, "Client connections closed, by transport."),
        ("gateway_connections", Unit::Count, "Client connections open now, by transport."),
        ("gateway_reconnects_total", Unit::Count, "Streams admitted with a resume cursor (a client coming back after a drop, a drain or a refusal), by transport."),
        ("gateway_clients_reset_total", Unit::Count, "Clients sent `reset` or closed by the gateway, by reason (lagged: fell behind the queue)."),
        ("gateway_replays_total", Unit::Count, "Resumes, by where the missed events came from (ring, stream) or reset."),
        ("gateway_requests_rejected_total", Unit::Count, "Requests refused, by reason (connection_rate: over CONNECTION_RATE_LIMIT new streams a second)."),
        ("gateway_unauthenticated_connections", Unit::Count, "Sockets holding no authenticated request yet (capped by MAX_UNAUTHENTICATED_CONNECTIONS)."),
        ("gateway_nats_connected", Unit::Count, "1 while connected to NATS, else 0."),
        ("gateway_cluster_messages_dropped_total", Unit::Count, "Presence and cluster-stats messages dropped: malformed, oversized, too many."),
        ("gateway_stream_last_sequence", Unit::Count, "Sequence up to which every event was sent to clients (the resume watermark)."),
        ("gateway_event_latency_seconds", Unit::Seconds, "Event timestamp (worker) to frame written to a client (one connection in 16 records)."),
        ("gateway_max_connections", Unit::Count, "MAX_CONNECTIONS: connections this instance accepts before answering 503 (for the connection-limit alert)."),
        ("gateway_replay_ring_warmed_events_total", Unit::Count, "Events read from the stream into the resume ring at a start of the feed (what the stream held before it), so resumes from before the start are served from memory."),
        ("gateway_replay_bytes_in_flight", Unit::Bytes, "Bytes held by resumes being written (REPLAY_BUDGET_BYTES caps it)."),
        ("gateway_fanout_duration_seconds", Unit::Seconds, "Time to hand one frame to every connection."),
        ("gateway_ws_bad_frames_total", Unit::Count, "Malformed frames WebSocket clients sent (each answered with an error frame)."),
        ("gateway_canary_latency_seconds", Unit::Seconds, "Full-path latency of this gateway's own canary (Redis -> bridge -> NATS -> gateway)."),
        ("gateway_snapshot_partial_total", Unit::Count, "Snapshot pages answered partial: the snapshot state (as <STREAM_NAME>_LATEST) is at LATEST_MAX_ENTITIES, so the least recently changed entities may have been dropped."),
        ("gateway_history_consumers", Unit::Count, "Consumers held for history: DLQ answers, and the one that fills the snapshot state from <STREAM_NAME>_LATEST (each deleted when done). Snapshot pages take none."),
        ("gateway_history_consumer_delete_failures_total", Unit::Count, "History consumers that could not be deleted (the server removes them once idle)."),
        ("gateway_history_cache_total", Unit::Count, "History answers by route (summary, backfill, snapshot) and result: hit (from the cache, or the snapshot state in memory), miss (computed; for the snapshot, one fill from <STREAM_NAME>_LATEST), joined (waited for a computation in flight and shared it)."),
        ("gateway_snapshot_entities", Unit::Count, "Entities the snapshot state in memory holds, counted as <STREAM_NAME>_LATEST counts its messages (at most its LATEST_MAX_ENTITIES)."),
        ("gateway_snapshot_bytes", Unit::Bytes, "Bytes of event JSON the snapshot state in memory holds."),
        ("gateway_snapshot_fills_total", Unit::Count, "Fills of the snapshot state from <STREAM_NAME>_LATEST: at start, after the stream is recreated, and when <STREAM_NAME>_LATEST itself was recreated or purged."),
        ("gateway_snapshot_fill_failures_total", Unit::Count, "Fills of the snapshot state that failed (NATS or <STREAM_NAME>_LATEST unavailable); retried with backoff."),
        ("gateway_history_bytes_reserved", Unit::Bytes, "Bytes reserved by summary and snapshot answers in flight (HISTORY_BUDGET_BYTES caps it)."),
        ("gateway_history_bytes_in_flight", Unit::Bytes, "Bytes of summary and snapshot answers built and not yet written to their sockets."),
        ("gateway_history_answers_cut_total", Unit::Count, "Snapshot answers cut short after their status was sent (the client stopped reading for CLIENT_STALL_TIMEOUT, or the answer took 60 s)."),
        ("gateway_degraded", Unit::Count, "1 while no canary came back for CANARY_DEGRADED_AFTER, else 0."),
    ] {
        describe(r, name, unit, help);
    }
}
