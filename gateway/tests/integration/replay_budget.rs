//! Resumes cannot be turned into memory: clients that resume over large events and then stop
//! reading hold at most the replay budget, and the ones that do not fit get
//! `reset` (`replay_budget`).

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EVENTS: usize = 1000;
const EVENT_BYTES: usize = 20_000;
const BUDGET: usize = 96 * 1024 * 1024;
const PER_CONNECTION: usize = 48 * 1024 * 1024;
/// What the process may grow by beyond the budget (allocator slack, buffers, bookkeeping).
const MARGIN_KIB: u64 = 32 * 1024;

/// A client that resumes from `cursor` with a tiny receive buffer and then reads nothing.
async fn resuming_client(url: &str, cursor: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let addr = url.trim_start_matches("http://").parse().expect("addr");
    let mut stream = socket.connect(addr).await.expect("connect");
    let request = format!(
        "GET /api/realtime/events HTTP/1.1\r\nHost: gw\r\nX-API-Key: {API_KEY}\r\nLast-Event-ID: {cursor}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("request");
    stream
}

/// Reads what the server wrote until `needle` shows up.
async fn read_until(stream: &mut tokio::net::TcpStream, needle: &str) -> String {
    bounded(&format!("`{needle}` on the wire"), async {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let read = stream.read(&mut buffer).await.expect("read");
            assert!(
                read > 0,
                "closed before `{needle}`: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&seen).into_owned();
            if text.contains(needle) {
                return text;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_reading_resumes_stay_within_the_budget_and_the_rest_are_reset() {
    let stack = Stack::start().await;
    let (budget, per_connection) = (BUDGET.to_string(), PER_CONNECTION.to_string());
    let gateway = GatewayProcess::start(
        &stack,
        &[
            ("REPLAY_BUDGET_BYTES", budget.as_str()),
            ("REPLAY_CONNECTION_MAX_BYTES", per_connection.as_str()),
        ],
    )
    .await;
    let (_, status) = get_json_url(&gateway.url, "/api/realtime/status").await;
    let epoch = status["nats"]["stream"]["epoch"].as_u64().expect("epoch");

    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, &padded_orders(EVENTS, EVENT_BYTES)).await;
    eventually("every event in the gateway's ring", || async {
        let (_, status) = get_json_url(&gateway.url, "/api/realtime/status").await;
        (status["nats"]["stream"]["lastSequence"].as_u64() == Some(BASE + EVENTS as u64))
            .then_some(())
    })
    .await;
    let before = gateway.rss_kib();

    // Each replay holds its 1,000 orders (about 20 MB) and the frame being written (at most
    // 2 x 128 KiB): four fit in the budget.
    let cursor = format!("{epoch}-{BASE}");
    let mut stuck = Vec::new();
    for _ in 0..4 {
        stuck.push(resuming_client(&gateway.url, &cursor).await);
    }
    eventually("four replays hold their reservations", || async {
        let held = metric_url(&gateway.url, "gateway_replay_bytes_in_flight").await;
        (held > (4 * EVENTS * EVENT_BYTES) as f64).then_some(held)
    })
    .await;
    for _ in 0..2 {
        let mut refused = resuming_client(&gateway.url, &cursor).await;
        let text = read_until(&mut refused, "event: reset").await;
        let text = read_until_more(&mut refused, text, "replay_budget").await;
        assert!(text.contains(r#"{"reason":"replay_budget"}"#), "{text}");
    }
    // Measured once the stuck replays have filled what they can: each one's writes wait on a
    // client that does not read.
    wait_writes_backed_up(&stuck).await;
    let held = metric_url(&gateway.url, "gateway_replay_bytes_in_flight").await;
    assert!(held <= BUDGET as f64, "{held} bytes held, over the budget");
    let grown = gateway.rss_kib().saturating_sub(before);
    eprintln!("gateway RSS grew by {grown} KiB with four stuck and two refused resumes");
    assert!(
        grown <= (BUDGET / 1024) as u64 + MARGIN_KIB,
        "RSS grew by {grown} KiB, over the budget plus {MARGIN_KIB} KiB"
    );
    drop(stuck);
}

async fn read_until_more(
    stream: &mut tokio::net::TcpStream,
    already: String,
    needle: &str,
) -> String {
    if already.contains(needle) {
        return already;
    }
    let more = read_until(stream, needle).await;
    already + &more
}
