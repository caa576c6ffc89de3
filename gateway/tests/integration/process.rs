//! The `rakuda-gateway` binary as an operator runs it: bad settings are named, SIGTERM closes
//! streams and exits 0, and one client that stops reading is reset without slowing anyone
//! else or growing the gateway's memory.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;
use tokio::io::AsyncReadExt;

#[test]
fn bad_settings_exit_non_zero_naming_the_variable() {
    const KEY: (&str, &str) = ("API_KEY", "long-enough-key");
    const SECRET: (&str, &str) = ("TOKEN_SECRET", TOKEN_SECRET);
    for (settings, variable) in [
        (vec![SECRET], "API_KEY"),
        (vec![("API_KEY", "shorty7"), SECRET], "API_KEY"),
        (vec![KEY], "TOKEN_SECRET"),
        (
            vec![KEY, ("TOKEN_SECRET", "tiny-secret-x9")],
            "TOKEN_SECRET",
        ),
        (
            vec![
                KEY,
                SECRET,
                (
                    "TOKEN_SECRET",
                    "ok-secret-of-32-bytes-long-0001,tiny-2nd-x9",
                ),
            ],
            "TOKEN_SECRET",
        ),
        (
            vec![KEY, SECRET, ("SSE_DEBOUNCE_WINDOW", "soon")],
            "SSE_DEBOUNCE_WINDOW",
        ),
        (vec![KEY, SECRET, ("NATS_URL", "nats://x:port")], "NATS_URL"),
        (
            vec![KEY, SECRET, ("REALTIME_ENABLED", "perhaps")],
            "REALTIME_ENABLED",
        ),
        (
            vec![KEY, SECRET, ("GATEWAY_ADDR", "anywhere")],
            "GATEWAY_ADDR",
        ),
        (
            vec![KEY, SECRET, ("GATEWAY_DASHBOARD_DIR", "/nonexistent/dist")],
            "GATEWAY_DASHBOARD_DIR",
        ),
        (
            vec![KEY, SECRET, ("REDIS_URL", "http//u:redis-pass-x9@h")],
            "REDIS_URL",
        ),
        (vec![KEY, SECRET, ("NATS_USER", "gateway")], "NATS_PASSWORD"),
        (
            vec![KEY, SECRET, ("NATS_TLS_CA", "/nonexistent/ca.pem")],
            "NATS_TLS_CA",
        ),
        (
            vec![KEY, SECRET, ("TRUSTED_PROXIES", "somewhere")],
            "TRUSTED_PROXIES",
        ),
    ] {
        // A later duplicate replaces an earlier setting.
        let mut merged: Vec<(&str, String)> = Vec::new();
        for (name, value) in settings {
            merged.retain(|(known, _)| *known != name);
            merged.push((name, value.to_owned()));
        }
        let (mut command, _dir) = gateway_command(&merged);
        let output = command
            .stderr(Stdio::piped())
            .output()
            .expect("run rakuda-gateway");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{merged:?} must fail");
        assert!(
            stderr.contains(variable),
            "{variable}: the message must name it, got:\n{stderr}"
        );
        // Secrets are never repeated, whatever is wrong with them.
        for secret in [
            "shorty7",
            "tiny-secret-x9",
            "tiny-2nd-x9",
            "redis-pass-x9",
            TOKEN_SECRET,
        ] {
            assert!(!stderr.contains(secret), "{secret} printed:\n{stderr}");
        }
    }
}

/// Every example secret shipped in this repository (read from the files) stops the binary with
/// a message naming its variable, never the value; the systemd example, as shipped, too.
#[test]
fn shipped_example_secrets_stop_the_binary_naming_the_variable() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let examples = rakuda_testkit::shipped::example_secrets(&root).expect("read the shipped files");
    let real = [
        ("API_KEY", "long-enough-key".to_owned()),
        ("TOKEN_SECRET", TOKEN_SECRET.to_owned()),
    ];
    let run = |settings: &[(&str, String)]| {
        let (command, _dir) = gateway_command(settings);
        exit_of(command)
    };
    let mut tried = 0;
    for example in &examples {
        let mut settings: Vec<(&str, String)> = real
            .iter()
            .filter(|(name, _)| *name != example.setting)
            .cloned()
            .collect();
        settings.push((example.setting, example.value.clone()));
        if example.setting == "NATS_PASSWORD" {
            settings.push(("NATS_USER", "rakuda-gateway".to_owned()));
        }
        let (status, stderr) = run(&settings);
        assert_eq!(status, Some(2), "{example:?}:\n{stderr}");
        assert!(stderr.contains(example.setting), "{example:?}:\n{stderr}");
        let secret = example
            .value
            .rsplit_once('@')
            .and_then(|(userinfo, _)| userinfo.rsplit_once(':'))
            .map_or(example.value.as_str(), |(_, password)| password);
        assert!(!stderr.contains(secret), "{example:?} printed:\n{stderr}");
        tried += 1;
    }
    assert!(tried >= 5, "{examples:?}");

    // ops/systemd/gateway.env.example as shipped (its secrets not replaced).
    let shipped = std::fs::read_to_string(root.join("ops/systemd/gateway.env.example"))
        .expect("read gateway.env.example");
    let settings: Vec<(&str, String)> = shipped
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name, value.to_owned()))
        .collect();
    let (status, stderr) = run(&settings);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains("API_KEY") && stderr.contains("openssl rand"),
        "{stderr}"
    );
    for (name, value) in &settings {
        if matches!(*name, "API_KEY" | "TOKEN_SECRET" | "REDIS_URL") {
            assert!(
                !stderr.contains(value.as_str()),
                "{name} printed:\n{stderr}"
            );
        }
    }
}

/// Runs `command` to its exit, bounded: a binary that accepted its settings would run on, so
/// past the deadline it is killed and the test fails saying so. Its status code and stderr.
fn exit_of(mut command: std::process::Command) -> (Option<i32>, String) {
    let stderr_file = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = command
        .stderr(stderr_file.reopen().expect("reopen"))
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > rakuda_testkit::wait::WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after {:?}: the settings were accepted",
                started.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(stderr_file.path()).unwrap_or_default();
    (status.code(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_open_streams_and_exits_zero() {
    let stack = Stack::start().await;
    let mut gateway = GatewayProcess::start(&stack, &[("GATEWAY_DRAIN_TIMEOUT", "5s")]).await;
    let url = format!("{}/api/realtime/events", gateway.url);
    let mut clients = vec![
        SseClient::connect(&url).await,
        SseClient::connect(&url).await,
    ];
    for client in &mut clients {
        assert!(client.next().await.expect("retry").retry.is_some());
    }

    gateway.signal("TERM");
    for client in &mut clients {
        // (Past the opening heartbeat) a fresh, jittered reconnect hint, then the end of the stream.
        let mut last = client.next().await.expect("a record before the close");
        while last.event.as_deref() == Some("heartbeat") {
            last = client.next().await.expect("a record before the close");
        }
        let retry = last.retry.expect("retry: on shutdown");
        assert!((3000..=4500).contains(&retry));
        assert!(client.next().await.is_none(), "the stream is closed");
    }
    let status = gateway.wait_exit(Duration::from_secs(6)).await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_reset_without_slowing_others() {
    const EVENTS: usize = 20_000;
    let stack = Stack::start().await;
    let gateway = GatewayProcess::start(
        &stack,
        &[
            ("SSE_DEBOUNCE_WINDOW", "0"),
            // Room enough that a reader on a loaded machine (tests run in parallel) never
            // falls a whole queue behind, while the stalled one, 20 MB behind, still does.
            ("CLIENT_QUEUE_CAPACITY", "2048"),
            ("SSE_HEARTBEAT_INTERVAL", "600000"),
        ],
    )
    .await;
    let url = format!("{}/api/realtime/events", gateway.url);

    // The slow client: a raw connection with a small receive buffer that never reads.
    let mut slow = stuck_sse_client(&gateway.url).await;

    // The fast client reads everything as it comes.
    let mut fast = SseClient::connect(&url).await;
    let fast_reader = tokio::spawn(async move {
        let mut seen = 0u64;
        while seen < EVENTS as u64 {
            let record = fast.next_event().await.expect("fast client stream open");
            seen = seen.max(record.seqs().into_iter().max().unwrap_or(0));
        }
        Instant::now()
    });
    eventually("two connections", || async {
        let (_, status) = support_status(&gateway.url).await;
        (status["connections"]["sse"] == 2).then_some(())
    })
    .await;

    let rss_before = gateway.rss_kib();
    let events = padded_orders(EVENTS, 1024);
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, &events).await;
    let published = Instant::now();

    let fast_done = bounded("the fast client receives all events", fast_reader)
        .await
        .expect("reader");
    let fast_lag = fast_done.saturating_duration_since(published);
    let rss_after = gateway.rss_kib();

    // The slow client finally reads: what its socket buffers held, then a reset (it lapped the
    // queue while stalled), then the end of the connection.
    let mut received = Vec::new();
    bounded(
        "the slow connection to close",
        slow.read_to_end(&mut received),
    )
    .await
    .expect("read");
    let tail =
        String::from_utf8_lossy(&received[received.len().saturating_sub(200)..]).into_owned();
    assert!(
        tail.contains("event: reset"),
        "tail of the slow stream: {tail}"
    );
    assert!(tail.contains("slow_client"));
    assert!(
        received.len() < EVENTS * 1024,
        "the slow client did not get every event"
    );
    let metrics = reqwest::get(format!("{}/metrics", gateway.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert_eq!(
        sample_value(&metrics, "gateway_clients_reset_total{reason=\"lagged\"}"),
        Some(1.0),
        "the slow client was counted as reset"
    );

    eprintln!(
        "slow client: fast client had all {EVENTS} events {fast_lag:?} after the burst was published; \
         gateway RSS {rss_before} KiB before, {rss_after} KiB after"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "gateway memory must stay bounded: {rss_before} KiB -> {rss_after} KiB"
    );
}

async fn support_status(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(format!("{url}/api/realtime/status"))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("GET status");
    (
        response.status().as_u16(),
        response.json().await.expect("json"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_again_is_disconnected_after_the_stall_timeout() {
    let stack = Stack::start().await;
    let gateway = GatewayProcess::start(
        &stack,
        &[
            ("SSE_DEBOUNCE_WINDOW", "0"),
            ("CLIENT_STALL_TIMEOUT", "2s"),
            ("SSE_HEARTBEAT_INTERVAL", "600000"),
        ],
    )
    .await;
    let stuck = stuck_sse_client(&gateway.url).await;
    eventually("the stuck connection is open", || async {
        let (_, status) = support_status(&gateway.url).await;
        (status["connections"]["sse"] == 1).then_some(())
    })
    .await;

    // Enough traffic to fill its socket buffers; then it never reads again.
    let events = padded_orders(4000, 1024);
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, &events).await;

    let started = Instant::now();
    eventually("the stuck connection is dropped", || async {
        let (_, status) = support_status(&gateway.url).await;
        (status["connections"]["sse"] == 0).then_some(())
    })
    .await;
    eprintln!(
        "stall: a client that stopped reading was disconnected {:?} after the traffic",
        started.elapsed()
    );
    drop(stuck);
}
