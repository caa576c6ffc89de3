//! Talking to a test Redis as the workers do.

use crate::wait::eventually;

/// A multiplexed connection to `url`.
pub async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis")
}

/// A multiplexed connection to a `rediss://` `url` whose certificate `ca` (PEM) signed.
pub async fn connect_tls(url: &str, ca: &std::path::Path) -> redis::aio::MultiplexedConnection {
    let root_cert = std::fs::read(ca).expect("read the CA");
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        },
    )
    .expect("redis url")
    .get_multiplexed_async_connection()
    .await
    .expect("connect to redis over TLS")
}

/// `PUBLISH channel payload`.
pub async fn publish(
    redis: &mut redis::aio::MultiplexedConnection,
    channel: &str,
    payload: impl AsRef<[u8]>,
) {
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload.as_ref())
        .query_async(redis)
        .await
        .expect("PUBLISH");
}

/// Many `PUBLISH`es, pipelined: as fast as Redis takes them.
pub async fn publish_all(
    redis: &mut redis::aio::MultiplexedConnection,
    messages: &[(String, String)],
) {
    for chunk in messages.chunks(500) {
        let mut pipe = redis::pipe();
        for (channel, payload) in chunk {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        let () = pipe.query_async(redis).await.expect("pipelined PUBLISH");
    }
}

/// Waits until `n` clients hold a pattern subscription (the bridges are listening).
pub async fn wait_for_subscribers(redis: &mut redis::aio::MultiplexedConnection, n: usize) {
    eventually(&format!("{n} redis pattern subscriber(s)"), || {
        let mut redis = redis.clone();
        async move {
            // PUBSUB NUMPAT counts distinct patterns, not clients; CLIENT LIST shows each.
            let clients: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut redis)
                .await
                .ok()?;
            let count = clients
                .lines()
                .filter(|line| {
                    line.split(' ')
                        .any(|field| field.starts_with("psub=") && field != "psub=0")
                })
                .count();
            (count == n).then_some(())
        }
    })
    .await
}
