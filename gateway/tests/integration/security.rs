//! What a client without a credential can do to a gateway, tried on real sockets: hold sockets
//! (deadlines, the unauthenticated cap), guess credentials (the failure limit, behind a proxy
//! too), outlive its token, read what an admin reads, open a WebSocket from a foreign page,
//! read files next to the dashboard, and spoof other gateways' cluster messages.

use std::time::Duration;

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn raw(gateway: &RunningGateway) -> TcpStream {
    TcpStream::connect(gateway.url.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Everything the gateway writes until it closes the socket (bounded by the test's wait).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    rakuda_testkit::wait::bounded("the gateway to close the socket", async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => seen.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&seen).into_owned()
}

/// A new socket that sends nothing: `Ok` once the gateway has held it open for a while, `Err`
/// with the answer when the gateway refused it (it answers a refusal at once, before reading).
async fn hold_or_refusal(gateway: &RunningGateway) -> Result<TcpStream, String> {
    let mut socket = raw(gateway).await;
    let mut first = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(500), socket.peek(&mut first)).await {
        Err(_) => Ok(socket),
        Ok(_) => Err(read_to_close(&mut socket).await),
    }
}

/// A socket to the gateway from `local`, one of the loopback addresses (127.0.0.0/8 all works
/// on Linux): how a test plays two hosts.
async fn raw_from(gateway: &RunningGateway, local: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{local}:0").parse().expect("addr"))
        .expect("bind a loopback address");
    let to = gateway
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    socket.connect(to).await.expect("connect")
}

async fn answer_from(gateway: &RunningGateway, local: &str, request: &str) -> String {
    let mut stream = raw_from(gateway, local).await;
    let _ = stream.write_all(request.as_bytes()).await;
    read_to_close(&mut stream).await
}

async fn answer(gateway: &RunningGateway, request: &str) -> String {
    let mut stream = raw(gateway).await;
    let _ = stream.write_all(request.as_bytes()).await;
    read_to_close(&mut stream).await
}

async fn mint(gateway: &RunningGateway, body: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/api/realtime/token", gateway.url))
        .header("X-API-Key", API_KEY)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST /token");
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.expect("json");
    json["token"].as_str().expect("token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_trickling_and_idle_sockets_are_answered_408_and_closed() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.limits.request_read_timeout = Duration::from_millis(700);
    let gateway = start_gateway(config).await;

    // Nothing at all.
    let mut silent = raw(&gateway).await;
    let answer_silent = read_to_close(&mut silent).await;
    assert!(answer_silent.starts_with("HTTP/1.1 408"), "{answer_silent}");
    assert!(answer_silent.contains("request_timeout"), "{answer_silent}");

    // Half a head, then nothing: the socket path's prefix, and a trickle of header bytes.
    for partial in [
        "GET /api/realtime/events",
        "GET /healthz HTTP/1.1\r\nX-Slow: a",
    ] {
        let mut half = raw(&gateway).await;
        half.write_all(partial.as_bytes()).await.expect("write");
        let answered = read_to_close(&mut half).await;
        assert!(
            answered.starts_with("HTTP/1.1 408"),
            "{partial:?}: {answered}"
        );
    }

    // A body that never finishes.
    let mut body = raw(&gateway).await;
    let head = format!(
        "POST /api/realtime/token HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"chan"
    );
    body.write_all(head.as_bytes()).await.expect("write");
    let answered = read_to_close(&mut body).await;
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered}");

    // A keep-alive request: answered, then the socket is closed, not left idle.
    let mut idle = raw(&gateway).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        .await
        .expect("write");
    let answered = read_to_close(&mut idle).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(
        answered.to_ascii_lowercase().contains("connection: close"),
        "{answered}"
    );

    wait_for_rejections(&gateway, &[("request_timeout", 4.0)]).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_sockets_are_capped_counted_and_released_by_authentication() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.limits.max_unauthenticated_connections = 6;
    let gateway = start_gateway(config).await;

    // An authenticated stream holds no unauthenticated slot. Reading /metrics takes one
    // itself (a public route never authenticates), so an idle gateway shows 1.
    let mut stream = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;
    assert_eq!(stream.status, 200);
    stream.next().await;
    gateway
        .wait_for_metric("gateway_unauthenticated_connections", 1.0)
        .await;

    // Silent sockets fill the six slots. A scrape's socket may still hold a slot for a moment
    // after its answer, so a socket refused before six are held is counted and tried again.
    let mut silent = Vec::new();
    let mut refused = Vec::new();
    let deadline = tokio::time::Instant::now() + rakuda_testkit::wait::WAIT;
    let answered = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refusal at the cap"
        );
        match hold_or_refusal(&gateway).await {
            Ok(socket) => {
                silent.push(socket);
                assert!(silent.len() <= 6, "a seventh socket was held");
            }
            Err(answer) => {
                refused.push(answer.clone());
                if silent.len() == 6 {
                    break answer;
                }
                sleep(50).await;
            }
        }
    };
    assert!(answered.starts_with("HTTP/1.1 503"), "{answered}");
    assert!(answered.contains("too_many_unauthenticated"), "{answered}");
    assert!(
        answered.to_ascii_lowercase().contains("retry-after: 1"),
        "{answered}"
    );

    // Once they go, new sockets get in again (refused until the gateway has seen them close).
    silent.clear();
    let mut served = loop {
        assert!(
            tokio::time::Instant::now() < deadline + rakuda_testkit::wait::WAIT,
            "never served again"
        );
        match hold_or_refusal(&gateway).await {
            Ok(socket) => break socket,
            Err(answer) => {
                refused.push(answer);
                sleep(50).await;
            }
        }
    };
    let _ = served
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answered = read_to_close(&mut served).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    gateway
        .wait_for_metric("gateway_unauthenticated_connections", 1.0)
        .await;
    for answer in &refused {
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    }
    // Every refusal the test saw was counted, and nothing else was refused.
    wait_for_rejections(
        &gateway,
        &[("too_many_unauthenticated", refused.len() as f64)],
    )
    .await;
    gateway.stop().await;
}

/// One host (127.0.0.2) opens more silent sockets than the whole gateway holds unauthenticated.
/// It keeps at most its own share: each newer socket closes its oldest silent one. Another host
/// (127.0.0.1) is served, health checks included, and so is a health check from the flooding
/// host itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_leaves_other_addresses_and_health_checks_served() {
    const TOTAL: usize = 8;
    const PER_ADDRESS: usize = 3;
    const FLOOD: usize = 12;
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.limits.max_unauthenticated_connections = TOTAL;
    config.limits.max_unauthenticated_per_address = PER_ADDRESS;
    // No silent socket times out while the test runs.
    config.limits.request_read_timeout = Duration::from_secs(300);
    let gateway = start_gateway(config).await;

    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        flood.push(raw_from(&gateway, "127.0.0.2").await);
    }
    // Another host: health checks, and an authenticated request.
    let health = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for request in [
        health.to_owned(),
        "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        format!("GET /api/realtime/status HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n\r\n"),
    ] {
        let answered = answer_from(&gateway, "127.0.0.1", &request).await;
        assert!(
            answered.starts_with("HTTP/1.1 200"),
            "{request:?}: {answered}"
        );
    }
    // The flooding host's own health check (its newest socket) is served.
    let own = answer_from(&gateway, "127.0.0.2", health).await;
    assert!(
        own.starts_with("HTTP/1.1 200"),
        "the flooder's probe: {own}"
    );
    // The flood's oldest sockets were closed, each with a named, counted refusal; its newest
    // PER_ADDRESS - 1 still wait (the probe took the last place).
    let pushed_out = FLOOD + 1 - PER_ADDRESS;
    for socket in &mut flood[..pushed_out] {
        let answered = read_to_close(socket).await;
        assert!(answered.starts_with("HTTP/1.1 429"), "{answered}");
        assert!(
            answered.contains("too_many_unauthenticated_for_address"),
            "{answered}"
        );
    }
    wait_for_rejections(
        &gateway,
        &[
            ("too_many_unauthenticated_for_address", pushed_out as f64),
            ("too_many_unauthenticated", 0.0),
        ],
    )
    .await;
    drop(flood);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_limited_per_client_and_proxies_only_speak_when_trusted() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.auth.auth_failures_per_minute = 5;
    config.auth.trusted_proxies = vec!["127.0.0.2/32".parse().expect("net")];
    let gateway = start_gateway(config).await;
    let guess = |extra: &str| {
        format!("GET /api/realtime/status HTTP/1.1\r\nHost: x\r\nX-API-Key: guess-000000\r\n{extra}\r\n")
    };

    for _ in 0..5 {
        let answered = answer(&gateway, &guess("")).await;
        assert!(answered.starts_with("HTTP/1.1 401"), "{answered}");
    }
    let limited = answer(&gateway, &guess("")).await;
    assert!(limited.starts_with("HTTP/1.1 429"), "{limited}");
    assert!(
        limited.to_ascii_lowercase().contains("retry-after: "),
        "{limited}"
    );
    // Even the right key, from the same address, while it waits.
    let right = answer(
        &gateway,
        &format!("GET /api/realtime/status HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n\r\n"),
    )
    .await;
    assert!(right.starts_with("HTTP/1.1 429"), "{right}");
    // X-Forwarded-For from an untrusted peer changes nothing.
    let spoofed = answer(&gateway, &guess("X-Forwarded-For: 203.0.113.9\r\n")).await;
    assert!(spoofed.starts_with("HTTP/1.1 429"), "{spoofed}");

    // Through a trusted proxy (127.0.0.2), each forwarded client has its own allowance.
    let port = gateway.url.rsplit(':').next().expect("port").to_owned();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut proxied = socket
        .connect(format!("127.0.0.1:{port}").parse().expect("addr"))
        .await
        .expect("connect from the proxy address");
    proxied
        .write_all(guess("X-Forwarded-For: 203.0.113.9\r\n").as_bytes())
        .await
        .expect("write");
    let answered = read_to_close(&mut proxied).await;
    assert!(
        answered.starts_with("HTTP/1.1 401"),
        "a new client: {answered}"
    );
    wait_for_rejections(&gateway, &[("too_many_auth_failures", 3.0)]).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_its_token_expires() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.auth.token_ttl = Duration::from_secs(2);
    let gateway = start_gateway(config).await;

    let token = mint(&gateway, "{}").await;
    let url = format!("{}/api/realtime/events?token={token}", gateway.url);
    let mut sse = SseClient::connect_with(&url, &[]).await;
    assert_eq!(sse.status, 200);
    let ended = rakuda_testkit::wait::bounded("the SSE stream to end at expiry", async {
        while sse.next().await.is_some() {}
    });
    ended.await;

    let token = mint(&gateway, "{}").await;
    let mut ws = ws_connect(&gateway, &format!("?token={token}"), &[])
        .await
        .expect("ws");
    assert_eq!(ws_close_code(&mut ws).await, Some(4001));

    // The expired token is refused, and not counted as a guess.
    let again = SseClient::connect_with(&url, &[]).await;
    assert_eq!(again.status, 401);
    gateway
        .wait_for_metric("gateway_clients_reset_total{reason=\"token_expired\"}", 2.0)
        .await;
    wait_for_rejections(&gateway, &[("token_expired", 1.0)]).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_stats_need_the_key_or_an_admin_token() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let stream = mint(&gateway, r#"{"channels":["orders"]}"#).await;
    let admin = mint(&gateway, r#"{"scope":"admin"}"#).await;
    let client = reqwest::Client::new();
    for path in [
        "/api/realtime/status",
        "/api/realtime/stats",
        "/api/realtime/stats?scope=cluster",
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let with = |token: &str| format!("{}{path}{sep}token={token}", gateway.url);
        let refused = client.get(with(&stream)).send().await.expect("GET");
        assert_eq!(refused.status(), 403, "{path} with a stream token");
        let body: serde_json::Value = refused.json().await.expect("json");
        assert_eq!(body["error"], "admin_required");
        let allowed = client.get(with(&admin)).send().await.expect("GET");
        assert_eq!(allowed.status(), 200, "{path} with an admin token");
    }
    let unknown = client
        .post(format!("{}/api/realtime/token", gateway.url))
        .header("X-API-Key", API_KEY)
        .body(r#"{"scopes":"admin"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(
        unknown.status(),
        400,
        "a misspelt field is an error, not a stream token"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_from_a_page_not_in_cors_origins_is_refused() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.auth.cors_origins = vec!["https://ops.example.com".into()];
    let gateway = start_gateway(config).await;
    let key = ("X-API-Key", API_KEY);

    let foreign = ws_connect(&gateway, "", &[key, ("Origin", "https://evil.example")]).await;
    match foreign {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("expected 403, got {:?}", other.map(|_| "a socket")),
    }
    assert!(
        ws_connect(&gateway, "", &[key, ("Origin", "https://ops.example.com")])
            .await
            .is_ok()
    );
    let host = gateway.url.trim_start_matches("http://").to_owned();
    let same = format!("http://{host}");
    assert!(ws_connect(&gateway, "", &[key, ("Origin", &same)])
        .await
        .is_ok());
    assert!(
        ws_connect(&gateway, "", &[key]).await.is_ok(),
        "not a browser"
    );
    wait_for_rejections(&gateway, &[("origin_not_allowed", 1.0)]).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_serves_only_its_own_visible_files() {
    let stack = Stack::start().await;
    let site = tempfile::tempdir().expect("dir");
    let outside = tempfile::tempdir().expect("dir");
    std::fs::write(site.path().join("index.html"), "<html>dashboard</html>").expect("write");
    std::fs::create_dir(site.path().join("assets")).expect("dir");
    std::fs::write(site.path().join("assets/app.js"), "console.log(1)").expect("write");
    std::fs::write(site.path().join(".env"), "TOKEN_SECRET=leaked").expect("write");
    std::fs::write(outside.path().join("secret.txt"), "outside the site").expect("write");
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        site.path().join("link.txt"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), site.path().join("linkdir")).expect("symlink");
    let mut config = stack.gateway_config();
    config.gateway_dashboard_dir = Some(site.path().to_owned());
    let gateway = start_gateway(config).await;

    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let index = answer(&gateway, &get("/")).await;
    assert!(
        index.starts_with("HTTP/1.1 200") && index.contains("dashboard"),
        "{index}"
    );
    let asset = answer(&gateway, &get("/assets/app.js")).await;
    assert!(asset.contains("console.log"), "{asset}");
    for path in [
        "/.env",
        "/%2eenv",
        "/assets/../.env",
        "/link.txt",
        "/linkdir/secret.txt",
        "//evil.example",
        "//evil.example/assets",
        "/%5cevil.example",
    ] {
        let answered = answer(&gateway, &get(path)).await;
        assert!(
            answered.starts_with("HTTP/1.1 404") || answered.starts_with("HTTP/1.1 400"),
            "{path}: {answered}"
        );
        assert!(
            !answered.contains("leaked") && !answered.contains("outside the site"),
            "{path}: {answered}"
        );
        assert!(
            !answered.to_ascii_lowercase().contains("location: //"),
            "{path}: {answered}"
        );
    }
    // A directory without its slash redirects to a path on this host, never to `//`.
    let redirect = answer(&gateway, &get("/assets")).await;
    if let Some(location) = redirect
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("location:"))
    {
        assert!(
            !location["location:".len()..].trim().starts_with("//"),
            "{location}"
        );
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_cluster_messages_are_bounded_and_counted() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let nats = async_nats::connect(stack.nats.url()).await.expect("nats");

    // Huge and malformed presence names, and a flood of plausible ones.
    nats.publish("rakuda.gateway.presence", vec![b'x'; 20 * 1024].into())
        .await
        .expect("publish");
    nats.publish("rakuda.gateway.presence", "gw\nforged".into())
        .await
        .expect("publish");
    for n in 0..400 {
        nats.publish("rakuda.gateway.presence", format!("spoof-{n}").into())
            .await
            .expect("publish");
    }
    // A spoofed answer to every stats request, with absurd counts.
    let mut requests = nats
        .subscribe("rakuda.gateway.stats")
        .await
        .expect("subscribe");
    let spoofer = nats.clone();
    let answering = tokio::spawn(async move {
        use futures::StreamExt;
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                let huge = format!(
                    "{{\"instance\":\"spoof-1\",\"eventsInvalid\":1e300,\"pad\":\"{}\"}}",
                    "p".repeat(100_000)
                );
                let _ = spoofer.publish(reply.clone(), huge.into()).await;
                let _ = spoofer
                    .publish(reply, "{\"instance\":\"gw\\nx\"}".into())
                    .await;
            }
        }
    });
    nats.flush().await.expect("flush");
    // 2 malformed names, and every name past the 256 peers remembered.
    rakuda_testkit::wait::eventually("presence spoofs counted", || async {
        (gateway
            .metric("gateway_cluster_messages_dropped_total")
            .await
            >= 2.0 + 144.0)
            .then_some(())
    })
    .await;
    let (status, cluster) = get_json(&gateway, "/api/realtime/stats?scope=cluster").await;
    assert_eq!(status, 200);
    let body = cluster.to_string();
    assert!(
        body.len() < 256 * 1024,
        "cluster stats stay small: {} bytes",
        body.len()
    );
    assert!(cluster["missing"].as_array().map_or(0, Vec::len) <= 256);
    assert!(!body.contains("1e300") && !body.contains("gw\\nforged"));
    let dropped = gateway
        .metric("gateway_cluster_messages_dropped_total")
        .await;
    assert!(
        dropped >= 146.0 + 2.0,
        "the spoofed replies are counted too: {dropped}"
    );
    answering.abort();
    gateway.stop().await;
}
