//! One answer per request. SSE streams are served straight on the socket
//! (gateway/src/server/socket.rs), everything else by hyper; the listener reads every head
//! (gateway/src/server/listener.rs). The same request gets the same status and body on both
//! paths, a client that leaves is let go at once, and every other request still reaches the
//! router, however slowly its bytes arrive.

use crate::support::*;
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
        // Read before the next piece is written: each reaches the gateway on its own.
        wait_read_by_server(&sse).await;
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
    wait_read_by_server(&status).await;
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

/// The status line and body of the gateway's answer to `request`, read until it closes the
/// connection (every refusal ends its connection, on either path).
async fn answer(gateway: &RunningGateway, request: &str) -> (String, String) {
    let mut stream = raw(gateway).await;
    // The gateway may answer and close before reading all of an oversized request.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut seen = Vec::new();
    rakuda_testkit::wait::bounded("the gateway's answer and close", async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => seen.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_gets_the_same_status_and_body_on_both_paths() {
    let stack = Stack::start().await;
    let config = stack.gateway_config();
    let (max_uri, max_headers) = (config.limits.max_uri_bytes, config.limits.max_header_bytes);
    let gateway = start_gateway(config).await;

    // `{path}` is the SSE stream (the socket path) or another endpoint behind the same auth
    // (hyper's path); the rest of the request is byte for byte the same.
    let many_headers: String = (0..70).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, String)> = vec![
        (
            "401 without a credential",
            "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        ),
        (
            "401 with a wrong key",
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: not-the-key-at-all\r\n\r\n".into(),
        ),
        (
            "401 with a forged token",
            "GET {path}?token=v1.forged.token HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        ),
        (
            "414 for a long URI",
            format!(
                "GET {{path}}?pad={} HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n\r\n",
                "u".repeat(max_uri)
            ),
        ),
        (
            "431 for large headers",
            format!(
                "GET {{path}} HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\nX-Pad: {}\r\n\r\n",
                "h".repeat(max_headers)
            ),
        ),
        (
            "431 for too many headers",
            format!("GET {{path}} HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
        ),
        (
            "400 for a malformed header",
            "GET {path} HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n".into(),
        ),
        (
            "400 for a bad version",
            "GET {path} HTTP/9.9\r\nHost: x\r\n\r\n".into(),
        ),
    ];
    for (case, template) in &cases {
        let (sse_status, sse_body) = answer(
            &gateway,
            &template.replace("{path}", "/api/realtime/events"),
        )
        .await;
        let (other_status, other_body) = answer(
            &gateway,
            &template.replace("{path}", "/api/realtime/status"),
        )
        .await;
        let code = &case[..3];
        assert!(
            sse_status.starts_with(&format!("HTTP/1.1 {code}")),
            "{case}: the SSE path answered {sse_status:?} {sse_body}"
        );
        assert_eq!(sse_status, other_status, "{case}: status differs");
        assert_eq!(sse_body, other_body, "{case}: body differs");
        let body: serde_json::Value = serde_json::from_str(&sse_body)
            .unwrap_or_else(|error| panic!("{case}: body is not JSON ({error}): {sse_body}"));
        assert!(body["error"].is_string(), "{case}: {body}");
    }

    // 404: the socket path serves one exact path, so anything near it is the router's, and
    // answers like any other unknown endpoint.
    let not_found =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n\r\n");
    let (near_status, near_body) = answer(&gateway, &not_found("/api/realtime/events/x")).await;
    let (far_status, far_body) = answer(&gateway, &not_found("/api/realtime/nothing")).await;
    assert!(near_status.starts_with("HTTP/1.1 404"), "{near_status}");
    assert_eq!((near_status, near_body), (far_status, far_body));
    gateway.stop().await;
}
