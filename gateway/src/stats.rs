//! `GET /api/realtime/status` and `/stats`. Both read the values `/metrics` exports, by
//! rendering them and reading the text back, so the three can never disagree.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use rakuda_schema::EventType;
use serde_json::{json, Map, Value};

use crate::app::App;
use crate::metrics::{ReplaySource, Transport, REJECT_REASONS, RESET_REASONS};

/// The samples of a Prometheus text exposition, keyed by `name{labels}` as written.
pub struct Samples(HashMap<String, f64>);

impl Samples {
    pub fn parse(text: &str) -> Samples {
        Samples(
            text.lines()
                .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
                .filter_map(|line| {
                    let (key, value) = line.rsplit_once(' ')?;
                    Some((key.to_owned(), value.parse().ok()?))
                })
                .collect(),
        )
    }

    /// A sample's value; a series never touched counts as 0.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let key = if labels.is_empty() {
            name.to_owned()
        } else {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", labels.join(","))
        };
        self.0.get(&key).copied().unwrap_or(0.0)
    }

    fn by<'a>(&self, name: &str, label: &str, values: impl IntoIterator<Item = &'a str>) -> Value {
        let mut out = Map::new();
        for value in values {
            out.insert(value.to_owned(), number(self.get(name, &[(label, value)])));
        }
        Value::Object(out)
    }
}

/// Counters are whole numbers; show them as such.
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        json!(value as i64)
    } else {
        json!(value)
    }
}

fn transports() -> impl Iterator<Item = &'static str> {
    Transport::ALL.into_iter().map(Transport::as_str)
}

fn client_types() -> impl Iterator<Item = &'static str> {
    EventType::CLIENT.into_iter().map(EventType::as_str)
}

/// The delivery counters of this instance.
pub fn stats(app: &App) -> Value {
    let s = Samples::parse(&app.metrics.render());
    json!({
        "instance": app.instance,
        "eventsReceived": s.by("gateway_events_received_total", "type", EventType::ALL.into_iter().map(EventType::as_str)),
        "eventsInvalid": number(s.get("gateway_events_invalid_total", &[])),
        "eventsCoalesced": s.by("gateway_events_coalesced_total", "type", client_types()),
        "framesEmitted": s.by("gateway_frames_emitted_total", "kind", ["single", "batch"]),
        "framesSent": s.by("gateway_frames_sent_total", "transport", transports()),
        "connections": {
            "opened": s.by("gateway_connections_opened_total", "transport", transports()),
            "closed": s.by("gateway_connections_closed_total", "transport", transports()),
            "current": s.by("gateway_connections", "transport", transports()),
        },
        "clientsReset": s.by("gateway_clients_reset_total", "reason", RESET_REASONS),
        "replays": s.by("gateway_replays_total", "source", ReplaySource::ALL.into_iter().map(ReplaySource::as_str)),
        "requestsRejected": s.by("gateway_requests_rejected_total", "reason", REJECT_REASONS),
    })
}

#[derive(Debug, serde::Deserialize)]
pub struct StatsQuery {
    scope: Option<String>,
}

/// `GET /api/realtime/stats[?scope=cluster]`.
pub async fn stats_handler(
    State(app): State<Arc<App>>,
    query: Result<axum::extract::Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, crate::error::ApiError> {
    let scope = query.ok().and_then(|q| q.0.scope);
    match scope.as_deref() {
        None | Some("instance") => Ok(Json(stats(&app))),
        Some("cluster") => Ok(Json(crate::cluster::gather(&app).await)),
        Some(other) => Err(app.reject(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("scope `{other}` is not `instance` or `cluster`"),
        )),
    }
}

pub async fn status_handler(State(app): State<Arc<App>>) -> impl IntoResponse {
    let s = Samples::parse(&app.metrics.render());
    let cursor = app.hub.cursor();
    Json(json!({
        "enabled": app.config.realtime_enabled,
        "instance": app.instance,
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": app.started.elapsed().as_secs(),
        "draining": app.draining(),
        "status": if app.canary.degraded() { "degraded" } else { "ok" },
        "canary": {
            "enabled": app.canary.enabled(),
            "seen": app.canary.seen(),
            "ageSeconds": app.canary.age().as_secs_f64(),
            "degradedAfterSeconds": app.config.canary_degraded_after.as_secs_f64(),
        },
        "connections": s.by("gateway_connections", "transport", transports()),
        "nats": {
            "connected": app.nats_connected(),
            "stream": {
                "name": app.config.stream_name,
                "epoch": cursor.epoch,
                "lastSequence": cursor.seq,
                "reading": app.feed_started(),
            },
        },
        "settings": {
            "debounceWindowMs": app.config.sse_debounce_window,
            "debounceMaxBatchEvents": app.config.debounce_max_batch_events,
            "heartbeatIntervalMs": app.config.sse_heartbeat_interval,
            "retryMs": app.config.sse_retry,
            "clientQueueCapacity": app.config.client_queue_capacity,
            "replayRingCapacity": app.config.replay_ring_capacity,
            "tokenTtlSeconds": app.config.token_ttl.as_secs(),
        },
    }))
}

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready when connected to NATS, reading the stream, and not draining (and, with
/// `READYZ_FAIL_WHEN_DEGRADED`, not degraded). The body always says whether the canary flows.
pub async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let nats = app.nats_connected();
    let reading = app.feed_started();
    let draining = app.draining();
    let degraded = app.canary.degraded();
    let ready = nats && reading && !draining && !(degraded && app.config.readyz_fail_when_degraded);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "ready": ready,
            "status": if degraded { "degraded" } else { "ok" },
            "degraded": degraded,
            "nats": nats,
            "reading": reading,
            "draining": draining,
        })),
    )
}

pub async fn metrics_handler(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_prometheus_text() {
        let text = "# HELP x\n# TYPE x counter\nx_total{a=\"b\",c=\"d\"} 42\ny 1.5\n";
        let samples = Samples::parse(text);
        assert_eq!(samples.get("x_total", &[("a", "b"), ("c", "d")]), 42.0);
        assert_eq!(samples.get("y", &[]), 1.5);
        assert_eq!(samples.get("missing", &[]), 0.0);
        assert_eq!(number(42.0), json!(42));
    }
}
