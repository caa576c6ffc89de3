//! Admission that shapes a storm: past `CONNECTION_RATE_LIMIT` new streams a second, SSE and
//! WebSocket alike are refused 503 `connection_rate` with a `Retry-After` drawn within
//! `CONNECTION_RATE_RETRY_MAX`, counted, holding nothing; requests that are not streams are
//! not counted; and streams that come back with a cursor are counted as reconnects.

use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::Value;

/// A stream attempt: admitted (kept open), or the refusal as the client saw it.
enum Attempt {
    /// Held to keep the stream open; dropping it closes the stream.
    #[allow(dead_code)]
    Sse(SseClient),
    #[allow(dead_code)]
    Ws(Box<Ws>),
    Refused {
        status: u16,
        retry_after: Option<u64>,
        body: Value,
    },
}

impl Attempt {
    fn admitted(&self) -> bool {
        !matches!(self, Attempt::Refused { .. })
    }
}

async fn sse_attempt(gateway: &RunningGateway, query: &str) -> Attempt {
    let url = format!("{}/api/realtime/events{query}", gateway.url);
    match SseClient::attempt(&url).await {
        Ok(client) => Attempt::Sse(client),
        Err(response) => Attempt::Refused {
            status: response.status().as_u16(),
            retry_after: retry_after(response.headers().get("retry-after")),
            body: bounded("the refusal's body", response.json())
                .await
                .unwrap_or(Value::Null),
        },
    }
}

async fn ws_attempt(gateway: &RunningGateway, query: &str) -> Attempt {
    match ws_connect(gateway, query, &[("X-API-Key", API_KEY)]).await {
        Ok(socket) => Attempt::Ws(Box::new(socket)),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Attempt::Refused {
            status: response.status().as_u16(),
            retry_after: retry_after(response.headers().get("retry-after")),
            body: response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice(body).ok())
                .unwrap_or(Value::Null),
        },
        Err(other) => panic!("the handshake failed without an HTTP answer: {other}"),
    }
}

fn retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<u64> {
    value?.to_str().ok()?.parse().ok()
}

/// One SSE or WebSocket attempt, the transports taken in turn.
async fn attempt(gateway: &RunningGateway, turn: usize) -> Attempt {
    if turn % 2 == 0 {
        sse_attempt(gateway, "").await
    } else {
        ws_attempt(gateway, "").await
    }
}

async fn open_streams(gateway: &RunningGateway) -> f64 {
    gateway
        .metric("gateway_connections{transport=\"sse\"}")
        .await
        + gateway
            .metric("gateway_connections{transport=\"ws\"}")
            .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_connection_rate_are_refused_with_a_spread_retry_after_and_counted() {
    const BURST: usize = 3;
    const RETRY_MAX: u64 = 3;
    const REFUSALS: usize = 12;
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.limits.connection_rate_limit = 1;
    config.limits.connection_rate_burst = Some(BURST as u32);
    config.limits.connection_rate_retry_max = Duration::from_secs(RETRY_MAX);
    let gateway = start_gateway(config).await;

    // Within the burst: every stream, SSE and WebSocket, is admitted.
    let started = Instant::now();
    let mut held = Vec::new();
    for turn in 0..BURST {
        let admitted = attempt(&gateway, turn).await;
        assert!(
            admitted.admitted(),
            "stream {turn} within the burst refused"
        );
        held.push(admitted);
    }
    // Past it: refused, whichever transport. The bucket refills one a second, so a slow
    // machine may see one more admitted per second gone by; never more.
    let mut refusals = Vec::new();
    let mut first_after_burst = None;
    let mut turn = BURST;
    while refusals.len() < REFUSALS {
        assert!(
            turn < BURST + REFUSALS + 20,
            "only {} of {} attempts past the burst were refused: no connection-rate cap",
            refusals.len(),
            turn - BURST
        );
        let outcome = attempt(&gateway, turn).await;
        // When the answer came: the rate was checked before then.
        first_after_burst.get_or_insert((started.elapsed(), outcome.admitted()));
        match outcome {
            Attempt::Refused {
                status,
                retry_after,
                body,
            } => refusals.push((turn, status, retry_after, body)),
            admitted => held.push(admitted),
        }
        turn += 1;
    }
    let elapsed = started.elapsed();
    let refilled = elapsed.as_secs() as usize + 1;
    assert!(
        held.len() <= BURST + refilled,
        "{} admitted within {elapsed:?} at 1/s with a burst of {BURST}",
        held.len()
    );
    let (at, admitted) = first_after_burst.expect("an attempt past the burst");
    if at < Duration::from_millis(900) {
        assert!(
            !admitted,
            "stream {} came {at:?} after the first, inside its second, and was admitted",
            BURST + 1
        );
    }
    let mut waits = Vec::new();
    for (turn, status, retry_after, body) in &refusals {
        assert_eq!(*status, 503, "attempt {turn}");
        let wait = retry_after.unwrap_or_else(|| panic!("attempt {turn}: no Retry-After"));
        assert!(
            (1..=RETRY_MAX).contains(&wait),
            "attempt {turn}: Retry-After {wait} outside 1..={RETRY_MAX}"
        );
        waits.push(wait);
        assert_eq!(body["error"], "connection_rate", "attempt {turn}: {body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("CONNECTION_RATE_LIMIT")),
            "{body}"
        );
    }
    let counted = refusals.len();
    eprintln!(
        "connection rate: {} admitted, {counted} refused in {elapsed:?}, Retry-After {waits:?}",
        held.len()
    );
    assert!(
        waits.iter().any(|w| *w != waits[0]) || RETRY_MAX == 1,
        "Retry-After is drawn at random, not one value for all: {waits:?}"
    );
    wait_for_rejections(&gateway, &[("connection_rate", counted as f64)]).await;

    // Refused streams hold nothing: no stream, and no socket once answered.
    let admitted = held.len() as f64;
    eventually("only the admitted streams open", || async {
        (open_streams(&gateway).await == admitted).then_some(())
    })
    .await;
    // (The scrape that reads it is the one socket not yet authenticated.)
    gateway
        .wait_for_metric("gateway_unauthenticated_connections", 1.0)
        .await;

    // What is not a stream is not counted against the rate, however empty the bucket.
    let client = reqwest::Client::new();
    for _ in 0..2 {
        for path in ["/healthz", "/metrics", "/readyz"] {
            let response = client
                .get(format!("{}{path}", gateway.url))
                .send()
                .await
                .expect("GET");
            assert_eq!(response.status().as_u16(), 200, "{path}");
        }
        let (status, body) = get_json(&gateway, "/api/realtime/summary").await;
        assert_eq!(status, 200, "/summary: {body}");
        let token = client
            .post(format!("{}/api/realtime/token", gateway.url))
            .header("X-API-Key", API_KEY)
            .send()
            .await
            .expect("POST token");
        assert_eq!(token.status().as_u16(), 200, "/token");
    }
    wait_for_rejections(&gateway, &[("connection_rate", counted as f64)]).await;
    drop(held);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_refused_for_the_rate_gives_its_connection_slot_back() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    // Room for two streams. Had the refused attempts kept the slots they took before the rate
    // was checked, the instance would be full long before the bucket refills.
    config.limits.max_connections = 2;
    config.limits.connection_rate_limit = 1;
    config.limits.connection_rate_burst = Some(1);
    config.limits.connection_rate_retry_max = Duration::from_secs(1);
    let gateway = start_gateway(config).await;

    let first = attempt(&gateway, 0).await;
    assert!(first.admitted());
    let mut refused = 0;
    for turn in 1..=6 {
        match attempt(&gateway, turn).await {
            Attempt::Refused { status, .. } => {
                assert_eq!(status, 503);
                refused += 1;
            }
            // The bucket refilled (a slow machine): close it again, so only the first is held.
            admitted => drop(admitted),
        }
    }
    assert!(refused >= 4, "only {refused} of 6 refused");
    eventually("only the first stream open", || async {
        (open_streams(&gateway).await == 1.0).then_some(())
    })
    .await;

    // Once the bucket refills, a stream is admitted: the one slot left is still free.
    let next = eventually("a stream admitted once the bucket refills", || async {
        match attempt(&gateway, 0).await {
            Attempt::Refused { status, body, .. } => {
                assert_eq!(status, 503, "{body}");
                assert_eq!(
                    body["error"], "connection_rate",
                    "the instance looks full: refused streams kept their slots"
                );
                None
            }
            admitted => Some(admitted),
        }
    })
    .await;
    eventually("both streams open", || async {
        (open_streams(&gateway).await == 2.0).then_some(())
    })
    .await;
    assert_eq!(
        gateway
            .metric("gateway_requests_rejected_total{reason=\"too_many_connections\"}")
            .await,
        0.0,
        "the instance never looked full"
    );
    assert!(
        gateway
            .metric("gateway_requests_rejected_total{reason=\"connection_rate\"}")
            .await
            >= refused as f64
    );
    drop((first, next));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_opened_with_a_cursor_count_as_reconnects_by_transport() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let sse = "gateway_reconnects_total{transport=\"sse\"}";
    let ws = "gateway_reconnects_total{transport=\"ws\"}";

    // A first connection has no cursor: not a reconnect. Its opening heartbeat gives one.
    let mut fresh = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    let cursor = loop {
        let record = fresh.next().await.expect("the opening heartbeat");
        if let Some(id) = record.id {
            break id;
        }
    };
    let _fresh_ws = ws_connect(&gateway, "", &[("X-API-Key", API_KEY)])
        .await
        .expect("websocket");
    gateway
        .wait_for_metric("gateway_connections{transport=\"ws\"}", 1.0)
        .await;
    assert_eq!(gateway.metric(sse).await, 0.0);
    assert_eq!(gateway.metric(ws).await, 0.0);

    // Back with the cursor: as EventSource does (Last-Event-ID), in the query, over WebSocket.
    let mut by_header = SseClient::connect_with(
        &format!("{}/api/realtime/events", gateway.url),
        &[("X-API-Key", API_KEY), ("Last-Event-ID", &cursor)],
    )
    .await;
    assert!(by_header.next().await.is_some());
    let mut by_query = SseClient::connect(&format!(
        "{}/api/realtime/events?lastEventId={cursor}",
        gateway.url
    ))
    .await;
    assert!(by_query.next().await.is_some());
    gateway.wait_for_metric(sse, 2.0).await;
    let _back_ws = ws_connect(
        &gateway,
        &format!("?lastEventId={cursor}"),
        &[("X-API-Key", API_KEY)],
    )
    .await
    .expect("websocket with a cursor");
    gateway.wait_for_metric(ws, 1.0).await;
    gateway.stop().await;
}

/// A gateway that has not read where the stream stands (here: its stream does not exist yet)
/// refuses streams with 503 `starting` and a short `Retry-After`, rather than taking them and
/// answering every cursor `reset` as if the stream had been recreated. `/readyz` says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_not_reading_the_stream_yet_refuses_streams_as_starting() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.nats.stream_name = "RAKUDA_NOT_CREATED_YET".to_owned();
    let gateway =
        RunningGateway::start(|listener, shutdown| rakuda_gateway::run(config, listener, shutdown))
            .await;
    gateway.wait_until_ok("/healthz").await;
    let (ready, _) = get_json(&gateway, "/readyz").await;
    assert_eq!(ready, 503, "not ready while not reading");

    for query in ["", "?lastEventId=1700000000000-5"] {
        match sse_attempt(&gateway, query).await {
            Attempt::Refused {
                status,
                retry_after,
                body,
            } => {
                assert_eq!(status, 503, "{body}");
                assert_eq!(body["error"], "starting", "{body}");
                assert_eq!(retry_after, Some(1));
            }
            _ => panic!("a stream was admitted before the gateway read the stream ({query})"),
        }
    }
    wait_for_rejections(&gateway, &[("starting", 2.0)]).await;
    gateway.stop().await;
}
