//! What sockets that never authenticate cost a running gateway binary: memory within the head
//! limit each, and no CPU while they wait (nothing polls).

use std::time::Duration;

use crate::support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SOCKETS: usize = 300;
/// How long the sockets are watched costing nothing.
const IDLE: Duration = Duration::from_secs(3);

async fn connect(gateway: &GatewayProcess) -> TcpStream {
    TcpStream::connect(gateway.url.trim_start_matches("http://"))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_head_holds_at_most_the_head_limit() {
    let stack = Stack::start().await;
    let gateway = GatewayProcess::start(
        &stack,
        &[
            ("MAX_UNAUTHENTICATED_CONNECTIONS", "2000"),
            // Every socket comes from this one host.
            ("MAX_UNAUTHENTICATED_PER_ADDRESS", "2000"),
            ("REQUEST_READ_TIMEOUT", "60s"),
        ],
    )
    .await;
    // The defaults: MAX_URI_BYTES 8 KiB + MAX_HEADER_BYTES 16 KiB + 1 KiB of request line and
    // framing + 4 bytes for each of 64 headers.
    let head_limit = 8 * 1024 + 16 * 1024 + 1024 + 64 * 4;
    // Just under the limit, and never finished.
    let almost = format!("GET / HTTP/1.1\r\nX-Pad: {}", "p".repeat(head_limit - 100));

    let before = gateway.rss_kib();
    let mut sockets = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let mut socket = connect(&gateway).await;
        socket.write_all(almost.as_bytes()).await.expect("write");
        sockets.push(socket);
    }
    // Measured once the gateway holds what was sent: every byte read off every socket.
    wait_all_read(&gateway.url, SOCKETS).await;
    let per_socket = (gateway.rss_kib().saturating_sub(before)) * 1024 / SOCKETS as u64;
    // The buffer, plus the connection's task and socket: a few KiB.
    let allowed = head_limit as u64 + 6 * 1024;
    assert!(
        per_socket <= allowed,
        "each half-sent head costs {per_socket} bytes, over {allowed}"
    );
    drop(sockets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_sockets_cost_no_cpu() {
    let stack = Stack::start().await;
    let gateway = GatewayProcess::start(
        &stack,
        &[
            ("MAX_UNAUTHENTICATED_CONNECTIONS", "2000"),
            // Every socket comes from this one host.
            ("MAX_UNAUTHENTICATED_PER_ADDRESS", "2000"),
            ("REQUEST_READ_TIMEOUT", "60s"),
        ],
    )
    .await;
    let mut sockets = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        // The first bytes of an SSE request: the old socket path polled these every 1 ms.
        let mut socket = connect(&gateway).await;
        socket
            .write_all(b"GET /api/realtime/events")
            .await
            .expect("write");
        sockets.push(socket);
    }
    // Counted from when the gateway has read what was sent and only waits for more.
    wait_all_read(&gateway.url, SOCKETS).await;
    let before = gateway.cpu_ticks();
    // This wait is what is measured: the CPU the waiting sockets cost over it.
    tokio::time::sleep(IDLE).await;
    let used = gateway.cpu_ticks() - before;
    // 300 ticks would be a whole core; a polling loop took about 0.9 of one per 1,000 sockets.
    assert!(
        used <= 15,
        "{SOCKETS} waiting sockets used {used} ticks in {IDLE:?}"
    );
    drop(sockets);
}
