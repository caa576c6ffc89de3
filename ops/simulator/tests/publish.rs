//! A sample published by the simulator arrives on the right Redis channel and passes the
//! bridge's validation.

use std::time::Duration;

use futures::StreamExt;
use rakuda_testkit::RedisServer;

#[tokio::test]
async fn sample_reaches_its_channel_and_validates() {
    let server = RedisServer::start().expect("redis-server");
    let client = redis::Client::open(server.url()).expect("url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub
        .psubscribe("rakuda:realtime:*")
        .await
        .expect("psubscribe");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");

    let (channel, event) =
        rakuda_simulator::sample_event("pricing", "prod_9", "updated", Some(r#"{"newPrice":10}"#))
            .expect("sample");
    let (json, receivers) =
        rakuda_simulator::publish(&mut redis, "rakuda:realtime:", channel, &event)
            .await
            .expect("publish");
    assert_eq!(receivers, 1);

    let message = tokio::time::timeout(Duration::from_secs(10), pubsub.on_message().next())
        .await
        .expect("message in time")
        .expect("stream open");
    assert_eq!(message.get_channel_name(), "rakuda:realtime:pricing");
    assert_eq!(message.get_payload_bytes(), json.as_bytes());
    let parsed = rakuda_schema::validate("pricing", json.as_bytes()).expect("valid");
    assert_eq!(parsed.id, "prod_9");
}
