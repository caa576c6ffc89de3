//! SSE served straight on the socket (gateway/src/sse_socket.rs): the same answers as through
//! axum, a client that leaves is let go at once, and every other request still reaches axum,
//! however slowly its bytes arrive.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn raw(gateway: &RunningGateway) -> TcpStream {
    let addr = gateway.url.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until `needle` appears (or the connection closes); returns what was read.
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    rakuda_testkit::wait::bounded(&format!("{needle:?} from the gateway"), async {
        let mut buffer = [0u8; 4096];
        loop {
            let read = stream.read(&mut buffer).await.expect("read");
            seen.extend_from_slice(&buffer[..read]);
            if read == 0 || String::from_utf8_lossy(&seen).contains(needle) {
                return;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_is_let_go_at_once_not_at_the_next_heartbeat() {
    let stack = Stack::start().await;
    // Heartbeats every 30 s (the default): only noticing the close can free the slot in time.
    let gateway = start_gateway(stack.gateway_config()).await;
    let client = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    gateway
        .wait_for_metric("gateway_connections{transport=\"sse\"}", 1.0)
        .await;
    drop(client);
    gateway
        .wait_for_metric("gateway_connections{transport=\"sse\"}", 0.0)
        .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_line_sent_in_pieces_is_still_served_by_the_right_path() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;

    // An SSE request whose request line arrives in three writes.
    let mut sse = raw(&gateway).await;
    for piece in [
        "GET /api/real".to_owned(),
        "time/ev".to_owned(),
        format!("ents HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n\r\n"),
    ] {
        sse.write_all(piece.as_bytes()).await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let head = read_until(&mut sse, "event: heartbeat").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(head.contains("retry: "), "{head}");

    // A request that only starts like one goes to axum.
    let mut status = raw(&gateway).await;
    status
        .write_all(b"GET /api/realtime/ev")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    status
        .write_all(
            format!(
                "entsX HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let answer = read_until(&mut status, "not_found").await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    // And so do other paths, kept alive as usual.
    let (code, body) = get_json(&gateway, "/api/realtime/status").await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "ok");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_oversized_heads_get_json_errors_on_the_socket_path() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;

    let mut unauthorized = raw(&gateway).await;
    unauthorized
        .write_all(b"GET /api/realtime/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until(&mut unauthorized, "}").await;
    assert!(
        answer.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{answer}"
    );
    assert!(answer.contains("content-length: "), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");

    // Far over MAX_URI_BYTES + MAX_HEADER_BYTES: refused before it is even parsed.
    let mut huge = raw(&gateway).await;
    let padding = "p".repeat(64 * 1024);
    let request =
        format!("GET /api/realtime/events HTTP/1.1\r\nHost: x\r\nX-Pad: {padding}\r\n\r\n");
    // The gateway may close before reading it all; only its answer matters.
    let _ = huge.write_all(request.as_bytes()).await;
    let answer = read_until(&mut huge, "}").await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(answer.contains("headers_too_large"), "{answer}");

    let mut garbage = raw(&gateway).await;
    garbage
        .write_all(b"GET /api/realtime/events HTTP/1.1\r\nBad Header Line\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until(&mut garbage, "}").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("bad_request"), "{answer}");

    wait_for_rejections(
        &gateway,
        &[("headers_too_large", 1.0), ("bad_request", 1.0)],
    )
    .await;
    gateway.stop().await;
}
