//! `POST /api/realtime/publish` against real Redis and NATS: events are answered with their
//! stream sequence after JetStream's ack and stored byte for byte; an idempotency key makes a
//! retried POST one event; a batch reports each refused event with its reason, stores the rest
//! and puts the refused one on the DLQ; read credentials, oversize bodies, wrong content types
//! and oversize batches are refused with nothing stored.

mod support;

use rakuda_bridge::publish_api::settings::PublishSettings;
use rakuda_bridge::Config;
use rakuda_schema::channel::{REJECT_REASON_HEADER, SOURCE_CHANNEL_HEADER};
use serde_json::{json, Value};
use support::*;

const KEY: &str = "producer:0123456789abcdef0123";
const SECRET: &str = "0123456789abcdef0123";
const TS: &str = "2026-11-22T10:00:00.000Z";

struct Api {
    bridge: RunningBridge,
    url: String,
    client: reqwest::Client,
}

impl Api {
    async fn start(backbone: &Backbone, tune: impl FnOnce(&mut PublishSettings)) -> Api {
        let mut config: Config = backbone.config();
        config.publish.publish_api_keys = vec![KEY.into()];
        tune(&mut config.publish);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/api/realtime/publish",
            listener.local_addr().expect("addr")
        );
        config.publish.bridge_http_addr = Some(listener.local_addr().expect("addr"));
        let bridge = RunningBridge::start(|metrics, shutdown| {
            rakuda_bridge::run_with(config, metrics, Some(listener), shutdown)
        })
        .await;
        bridge.wait_until_ok("/readyz").await;
        let jetstream = backbone.jetstream().await;
        eventually("the event stream exists", || async {
            jetstream.get_stream("RAKUDA_DLQ").await.ok()?;
            jetstream
                .get_stream("RAKUDA_REALTIME")
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Api {
            bridge,
            url,
            client: reqwest::Client::new(),
        }
    }

    /// POSTs `body` as JSON with the publish key and `headers`: status and parsed answer.
    async fn post(&self, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {SECRET}"))
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request).await
    }
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = bounded("publish answer", request.send())
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn inventory(id: &str) -> String {
    // Spacing and a number written as 1.50: what is stored must be these very bytes.
    format!(
        r#"{{"type":"INVENTORY_CHANGE",  "payload":{{"id":"{id}","action":"updated","data":{{"price":1.50}}}},"timestamp":"{TS}"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_is_acked_with_its_seq_and_stored_byte_identical() {
    let backbone = Backbone::start();
    let api = Api::start(&backbone, |_| {}).await;
    let event = inventory("p-1");

    let (status, answer) = api.post(&event, &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "stored", "{answer}");
    assert_eq!(answer["duplicate"], false, "{answer}");
    let seq = answer["seq"].as_u64().expect("a seq");

    let jetstream = backbone.jetstream().await;
    let stored = read_stream(&jetstream, "RAKUDA_REALTIME").await;
    let message = stored
        .iter()
        .find(|message| message.sequence == seq)
        .expect("the acked seq is in the stream");
    assert_eq!(message.payload.as_ref(), event.as_bytes());
    assert_eq!(message.subject.as_str(), "rakuda.realtime.inventory.p-1");
    // Without a key, the Redis path's content hash: the same bytes sent both ways are one event.
    let hash = rakuda_bridge::route::content_hash("rakuda:realtime:inventory", event.as_bytes());
    assert_eq!(
        message.headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some(hash.as_str())
    );
    api.bridge
        .wait_for_metric("bridge_http_publish_events_total{result=\"stored\"}", 1.0)
        .await;
    api.bridge
        .wait_for_metric("bridge_events_forwarded_total{channel=\"inventory\"}", 1.0)
        .await;
    api.bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_twice_stores_one_event() {
    let backbone = Backbone::start();
    let api = Api::start(&backbone, |_| {}).await;
    let key = [("idempotency-key", "order-77-attempt")];

    let (status, first) = api.post(&inventory("p-2"), &key).await;
    assert_eq!(
        (status, &first["duplicate"]),
        (200, &json!(false)),
        "{first}"
    );
    // A retry after a lost answer; even different bytes under the same key are the same event.
    let (status, second) = api.post(&inventory("p-2b"), &key).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["duplicate"], true, "{second}");
    assert_eq!(second["seq"], first["seq"], "{first} {second}");

    let jetstream = backbone.jetstream().await;
    let stored = read_stream(&jetstream, "RAKUDA_REALTIME").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        stored[0].headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some("order-77-attempt")
    );
    api.bridge
        .wait_for_metric(
            "bridge_http_publish_events_total{result=\"duplicate\"}",
            1.0,
        )
        .await;
    api.bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_a_bad_item_reports_it_stores_the_rest_and_dlqs_it() {
    let backbone = Backbone::start();
    let api = Api::start(&backbone, |_| {}).await;
    let bad = format!(r#"{{"type":"INVENTORY_CHANGE","timestamp":"{TS}"}}"#);
    let body = format!(
        r#"[{{"event":{},"idempotencyKey":"b-1"}},{{"event":{bad}}},{{"event":{}}}]"#,
        inventory("p-3"),
        inventory("p-4")
    );

    let (status, answer) = api.post(&body, &[]).await;
    assert_eq!(status, 207, "{answer}");
    assert_eq!(
        (
            &answer["stored"],
            &answer["rejected"],
            &answer["unacknowledged"]
        ),
        (&json!(2), &json!(1), &json!(0)),
        "{answer}"
    );
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results[0]["status"], "stored", "{answer}");
    assert_eq!(results[1]["status"], "rejected", "{answer}");
    assert_eq!(results[1]["reason"], "missing_field", "{answer}");
    assert!(
        results[1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("payload")),
        "{answer}"
    );
    assert_eq!(results[2]["status"], "stored", "{answer}");

    let jetstream = backbone.jetstream().await;
    let stored = read_stream(&jetstream, "RAKUDA_REALTIME").await;
    let seqs: Vec<u64> = stored.iter().map(|message| message.sequence).collect();
    assert_eq!(
        seqs,
        vec![
            results[0]["seq"].as_u64().expect("seq"),
            results[2]["seq"].as_u64().expect("seq")
        ]
    );
    // The DLQ copy was stored before the answer.
    let dlq = read_stream(&jetstream, "RAKUDA_DLQ").await;
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].payload.as_ref(), bad.as_bytes());
    let header = |name: &str| dlq[0].headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(
        header(REJECT_REASON_HEADER).as_deref(),
        Some("missing_field")
    );
    assert_eq!(
        header(SOURCE_CHANNEL_HEADER).as_deref(),
        Some("rakuda:realtime:inventory")
    );
    assert_eq!(header("Rakuda-Producer").as_deref(), Some("producer"));
    api.bridge
        .wait_for_metric(
            "bridge_events_rejected_total{reason=\"missing_field\"}",
            1.0,
        )
        .await;
    api.bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_credentials_and_no_credential_are_refused() {
    let backbone = Backbone::start();
    let api = Api::start(&backbone, |_| {}).await;
    let event = inventory("p-5");
    let post = || {
        api.client
            .post(&api.url)
            .header("content-type", "application/json")
            .body(event.clone())
    };

    // A gateway's read key, the way the gateway takes it.
    let (status, answer) = send(post().header("x-api-key", "dashboard:a-read-key-123456")).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"], "read_credential", "{answer}");
    let (status, answer) = send(post().header("authorization", "Bearer a-read-key-123456")).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"], "invalid_key", "{answer}");
    let (status, answer) = send(post()).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"], "missing_credentials", "{answer}");

    for reason in ["read_credential", "invalid_key", "missing_credentials"] {
        api.bridge
            .wait_for_metric(
                &format!("bridge_http_publish_refused_total{{reason=\"{reason}\"}}"),
                1.0,
            )
            .await;
    }
    let jetstream = backbone.jetstream().await;
    assert!(read_stream(&jetstream, "RAKUDA_REALTIME").await.is_empty());
    api.bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_wrong_type_too_many_and_malformed_store_nothing() {
    let backbone = Backbone::start();
    let api = Api::start(&backbone, |publish| {
        publish.publish_max_body_bytes = 4096;
        publish.publish_max_batch = 2;
    })
    .await;

    let huge = format!(
        r#"{{"type":"INVENTORY_CHANGE","payload":{{"id":"p","action":"updated","data":{{"x":"{}"}}}},"timestamp":"{TS}"}}"#,
        "x".repeat(5000)
    );
    let (status, answer) = api.post(&huge, &[]).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"], "body_too_large", "{answer}");

    let request = api
        .client
        .post(&api.url)
        .header("content-type", "text/plain")
        .header("authorization", format!("Bearer {SECRET}"))
        .body(inventory("p-6"));
    let (status, answer) = send(request).await;
    assert_eq!(status, 415, "{answer}");

    let item = format!(r#"{{"event":{}}}"#, inventory("p-7"));
    let (status, answer) = api.post(&format!("[{item},{item},{item}]"), &[]).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"], "too_many_items", "{answer}");

    for malformed in ["{\"type\":", "[{\"payload\":{}}]", "42"] {
        let (status, answer) = api.post(malformed, &[]).await;
        assert_eq!(status, 400, "{malformed}: {answer}");
        assert_eq!(answer["error"], "malformed", "{answer}");
    }

    // A single refused event: 422 with its reason, and its copy on the DLQ.
    let (status, answer) = api
        .post(&inventory("p-8").replace("updated", "exploded"), &[])
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["reason"], "unknown_action", "{answer}");

    let jetstream = backbone.jetstream().await;
    assert!(read_stream(&jetstream, "RAKUDA_REALTIME").await.is_empty());
    assert_eq!(read_stream(&jetstream, "RAKUDA_DLQ").await.len(), 1);
    for reason in [
        "body_too_large",
        "unsupported_media_type",
        "too_many_items",
        "event_rejected",
    ] {
        api.bridge
            .wait_for_metric(
                &format!("bridge_http_publish_refused_total{{reason=\"{reason}\"}}"),
                1.0,
            )
            .await;
    }
    api.bridge
        .wait_for_metric(
            "bridge_http_publish_refused_total{reason=\"malformed\"}",
            3.0,
        )
        .await;
    api.bridge.stop().await;
}
