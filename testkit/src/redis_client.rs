//! Talking to a test Redis as the workers do.

use std::collections::HashMap;

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

/// The bridges' coverage registry (`<prefix>bridges`, see `bridge/src/coverage/`): the
/// stored-through beacon of every live span, once every ended span is decided (covered, or
/// its gap marker written and confirmed) and no Redis restart is still to be marked; `None`
/// while something is pending.
async fn coverage_decided(
    redis: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> Option<HashMap<String, u64>> {
    let fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(key)
        .query_async(redis)
        .await
        .ok()?;
    if fields.contains_key("restarted") {
        return None;
    }
    let mut live = HashMap::new();
    for (field, value) in &fields {
        let Some(id) = field.strip_prefix("span:") else {
            continue;
        };
        let record: serde_json::Value = serde_json::from_str(value).ok()?;
        if record["gone"] == true {
            if record["resolved"] != true {
                return None;
            }
        } else {
            live.insert(id.to_owned(), record["stored"].as_u64()?);
        }
    }
    Some(live)
}

/// Waits until the bridges' coverage registry `key` has nothing left to decide and every span
/// live then has reported again (or ended and been decided): a bridge writes one round's gap
/// markers before it reports the next, so every marker due is in the stream by then. A wait on
/// the account itself, not on the clock: on a busy machine it simply takes longer.
pub async fn wait_coverage_decided(redis: &redis::aio::MultiplexedConnection, key: &str) {
    let first = eventually("every ended bridge subscription decided", || {
        let mut redis = redis.clone();
        async move { coverage_decided(&mut redis, key).await }
    })
    .await;
    eventually("every live bridge subscription reporting again", || {
        let mut redis = redis.clone();
        let first = &first;
        async move {
            let now = coverage_decided(&mut redis, key).await?;
            first
                .iter()
                .all(|(id, stored)| now.get(id).is_none_or(|later| later > stored))
                .then_some(())
        }
    })
    .await
}
