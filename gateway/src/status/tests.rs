//! What `/status`, `/stats` and `/readyz` answer, from sources set by hand.

use super::*;
use crate::metrics::Transport;
use axum::routing::get;
use axum::Router;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct NoCluster;

impl ClusterSource for NoCluster {
    fn gather(&self) -> BoxFuture<'_, ClusterStats> {
        Box::pin(async {
            ClusterStats {
                scope: "cluster",
                instances: Vec::new(),
                totals: StatsSnapshot::default(),
                missing: vec!["gw-b".into()],
                timeout_ms: 1,
            }
        })
    }
}

fn sources(drain: &CancellationToken) -> Arc<StatusSources> {
    let metrics = Arc::new(GatewayMetrics::new());
    let (_, nats_connected) = watch::channel(true);
    let reading = Reading::default();
    reading.mark();
    Arc::new(StatusSources {
        instance: "gw-a".into(),
        started: Instant::now(),
        refusals: Refusals::new(metrics.edge.clone()),
        metrics,
        hub: Arc::new(Hub::new(4)),
        reading,
        nats_connected,
        canary: Arc::new(Canary::new(Duration::ZERO, Duration::from_secs(1))),
        drain: DrainSignal::new(drain.clone(), Duration::ZERO),
        cluster: Arc::new(NoCluster),
        settings: ShownSettings {
            enabled: true,
            stream_name: "S".into(),
            debounce_window_ms: 0,
            debounce_max_batch_events: 1,
            heartbeat_interval_ms: 1000,
            retry_ms: 1000,
            client_queue_capacity: 4,
            replay_ring_capacity: 4,
            token_ttl_seconds: 60,
            readyz_fail_when_degraded: false,
        },
    })
}

async fn get_json(sources: &Arc<StatusSources>, uri: &str) -> (u16, serde_json::Value) {
    let app = Router::new()
        .route("/stats", get(stats_handler))
        .route("/status", get(status_handler))
        .route("/readyz", get(readyz))
        .with_state(sources.clone());
    let request = axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .expect("request");
    let response = app.oneshot(request).await.expect("response");
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test]
async fn stats_are_the_typed_snapshot_and_scopes_are_checked() {
    let drain = CancellationToken::new();
    let sources = sources(&drain);
    sources.metrics.connections.opened(Transport::Sse);
    let (status, stats) = get_json(&sources, "/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["instance"], "gw-a");
    assert_eq!(stats["connections"]["current"]["sse"], 1);
    let (status, cluster) = get_json(&sources, "/stats?scope=cluster").await;
    assert_eq!(
        (status, cluster["missing"][0].clone()),
        (200, "gw-b".into())
    );
    let (status, error) = get_json(&sources, "/stats?scope=galaxy").await;
    assert_eq!(
        (status, error["error"].clone()),
        (400, "bad_request".into())
    );
}

/// Every key of `value`, depth first in the order written, as `outer.inner` paths.
fn key_paths(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    if let Some(object) = value.as_object() {
        for (key, inner) in object {
            let path = format!("{prefix}{key}");
            out.push(path.clone());
            key_paths(inner, &format!("{path}."), out);
        }
    }
}

#[tokio::test]
async fn status_has_the_keys_it_always_had_in_their_order() {
    let drain = CancellationToken::new();
    let sources = sources(&drain);
    sources.metrics.connections.opened(Transport::Ws);
    let (status, body) = get_json(&sources, "/status").await;
    assert_eq!(status, 200);
    let mut paths = Vec::new();
    key_paths(&body, "", &mut paths);
    assert_eq!(
        paths,
        [
            "enabled",
            "instance",
            "version",
            "uptimeSeconds",
            "draining",
            "status",
            "canary",
            "canary.enabled",
            "canary.seen",
            "canary.ageSeconds",
            "canary.degradedAfterSeconds",
            "connections",
            "connections.sse",
            "connections.ws",
            "nats",
            "nats.connected",
            "nats.stream",
            "nats.stream.name",
            "nats.stream.epoch",
            "nats.stream.lastSequence",
            "nats.stream.reading",
            "settings",
            "settings.debounceWindowMs",
            "settings.debounceMaxBatchEvents",
            "settings.heartbeatIntervalMs",
            "settings.retryMs",
            "settings.clientQueueCapacity",
            "settings.replayRingCapacity",
            "settings.tokenTtlSeconds",
        ]
    );
    assert_eq!(
        (
            &body["instance"],
            &body["status"],
            &body["connections"]["ws"],
            &body["nats"]["stream"]["name"],
            &body["settings"]["clientQueueCapacity"],
        ),
        (
            &"gw-a".into(),
            &"ok".into(),
            &1.into(),
            &"S".into(),
            &4.into()
        )
    );
    let typed: GatewayStatus = serde_json::from_value(body).expect("the schema's type");
    assert_eq!(typed.canary.degraded_after_seconds, 1.0);
}

#[tokio::test]
async fn readyz_turns_503_when_draining() {
    let drain = CancellationToken::new();
    let sources = sources(&drain);
    assert_eq!(get_json(&sources, "/readyz").await.0, 200);
    drain.cancel();
    let (status, body) = get_json(&sources, "/readyz").await;
    assert_eq!((status, body["draining"].clone()), (503, true.into()));
}
