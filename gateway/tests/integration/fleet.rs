//! What a fleet of gateways needs: a drain spread over a window, connection limits, stats
//! gathered from every instance, and a canary that proves events flow end to end.

use std::time::{Duration, Instant};

use crate::support::*;
use rakuda_schema::EventType;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_sse_and_websocket_clients_spread_over_the_window() {
    const CLIENTS: usize = 10;
    let stack = Stack::start().await;
    let mut gateway = GatewayProcess::start(
        &stack,
        &[
            ("GATEWAY_DRAIN_WINDOW", "3s"),
            ("GATEWAY_DRAIN_TIMEOUT", "10s"),
            ("SSE_DEBOUNCE_WINDOW", "0"),
        ],
    )
    .await;
    let events_url = format!("{}/api/realtime/events", gateway.url);
    let in_process_view = RunningGatewayUrl(gateway.url.clone());

    let mut sse = Vec::new();
    let mut ws = Vec::new();
    for _ in 0..CLIENTS {
        let mut client = SseClient::connect(&events_url).await;
        assert!(client.next().await.expect("retry").retry.is_some());
        sse.push(client);
        ws.push(in_process_view.ws().await);
    }

    let signalled = Instant::now();
    gateway.signal("TERM");
    // Every client is read from the signal on, so each close is timed as it happens.
    let mut closed_after: Vec<Duration> = Vec::new();
    let mut readers = Vec::new();
    for mut client in sse {
        readers.push(tokio::spawn(async move {
            let mut got_event = None;
            let mut last_retry = None;
            while let Some(record) = client.next().await {
                if record.event.as_deref() == Some("ORDER_RECEIVED") {
                    got_event = Some(signalled.elapsed());
                }
                last_retry = record.retry.or(last_retry);
            }
            assert!(
                last_retry.is_some_and(|ms| (3000..=4500).contains(&ms)),
                "a jittered retry: before the close"
            );
            (signalled.elapsed(), None, got_event)
        }));
    }
    for mut socket in ws {
        readers.push(tokio::spawn(async move {
            let code = ws_close_code(&mut socket).await;
            (signalled.elapsed(), code, None)
        }));
    }
    // /readyz turns 503 as soon as the signal is handled (not at once: a busy machine may take
    // a while to run the handler), and from then on a new connection is refused with a reason.
    let readyz_url = format!("{}/readyz", gateway.url);
    eventually("/readyz answering 503 after SIGTERM", || async {
        let readyz = reqwest::get(&readyz_url).await.ok()?;
        (readyz.status().as_u16() == 503).then_some(())
    })
    .await;
    let late = reqwest::Client::new()
        .get(&events_url)
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("late");
    assert_eq!(late.status().as_u16(), 503);
    assert_eq!(
        late.json::<Value>().await.expect("json")["error"],
        "draining"
    );

    // Events still flow to the open connections while they wait for their turn to close.
    let mut redis = stack.redis_connection().await;
    publish_event(&mut redis, EventType::OrderReceived, "during").await;

    let mut sse_closes = Vec::new();
    let mut ws_closes = Vec::new();
    for reader in readers {
        let (after, code, got_event) = reader.await.expect("reader");
        match code {
            Some(code) => {
                assert_eq!(code, 1012, "service restart");
                ws_closes.push(after);
            }
            None => sse_closes.push((after, got_event)),
        }
        closed_after.push(after);
    }
    // WebSocket has no `retry:`: the spread its clients get is the moment of each close, so
    // those must be spread on their own, not only mixed in with the SSE ones. (Ten moments
    // drawn over 3 s fall within 1 s of each other once in ~3,000 runs.)
    ws_closes.sort();
    let ws_spread = ws_closes[ws_closes.len() - 1] - ws_closes[0];
    assert!(
        ws_spread >= Duration::from_secs(1),
        "WebSocket closes spread over the window, not at once: {ws_closes:?}"
    );
    // Events keep flowing during the drain. A client whose random close came before the event
    // reached the gateway missed it; one that was still open once another had it must have it
    // too (judged by when the event arrived, not by a guess at how long delivery takes).
    let delivered = sse_closes
        .iter()
        .filter_map(|(_, got)| *got)
        .max()
        .expect("the event published during the drain reached an SSE client");
    for (closed, got) in &sse_closes {
        assert!(
            got.is_some() || *closed < delivered,
            "a client open until {closed:?} after SIGTERM missed the event others got by {delivered:?}"
        );
    }
    let status = gateway.wait_exit(Duration::from_secs(12)).await;
    assert!(status.success(), "exit status {status}");

    closed_after.sort();
    let first = closed_after[0];
    let last = closed_after[closed_after.len() - 1];
    eprintln!(
        "drain: {} clients closed between {first:?} and {last:?} after SIGTERM (window 3s)",
        closed_after.len()
    );
    assert!(
        last <= Duration::from_millis(4500),
        "all closed within the window (last {last:?})"
    );
    assert!(
        last - first >= Duration::from_millis(1500),
        "closes spread over the window, not at once: {first:?}..{last:?}"
    );
}

/// Waits until the kernel shows process `pid` stopped (SIGSTOP taken effect: state `T`).
async fn wait_stopped(pid: u32) {
    eventually("the process stopped by SIGSTOP", || async {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ...`: the state follows the last `)`.
        let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
        (state == 'T').then_some(())
    })
    .await
}

/// WebSocket access to a gateway process by URL.
struct RunningGatewayUrl(String);

impl RunningGatewayUrl {
    async fn ws(&self) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("{}/api/realtime/ws", self.0.replacen("http://", "ws://", 1))
            .into_client_request()
            .expect("request");
        request
            .headers_mut()
            .insert("X-API-Key", API_KEY.parse().expect("value"));
        bounded("ws connect", tokio_tungstenite::connect_async(request))
            .await
            .expect("upgrade")
            .0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_request_limits_refuse_with_a_reason() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.auth.api_key = vec![API_KEY.into(), "second-key-0002".into()];
    config.limits.max_connections = 3;
    config.limits.max_connections_per_key = 2;
    config.limits.max_uri_bytes = 512;
    config.limits.max_header_bytes = 2048;
    let gateway = start_gateway(config).await;
    let url = format!("{}/api/realtime/events", gateway.url);

    let _a1 = SseClient::connect(&url).await;
    let _a2 = ws_connect(&gateway, "", &[("X-API-Key", API_KEY)])
        .await
        .expect("second connection of the key");
    let refused = SseClient::connect(&url).await;
    assert_eq!(refused.status, 429, "per-key limit");
    let _b1 = SseClient::connect_with(&url, &[("X-API-Key", "second-key-0002")]).await;
    assert_eq!(_b1.status, 200);
    let full = reqwest::Client::new()
        .get(&url)
        .header("X-API-Key", "second-key-0002")
        .send()
        .await
        .expect("GET");
    assert_eq!(full.status().as_u16(), 503, "instance limit");
    assert_eq!(
        full.json::<Value>().await.expect("json")["error"],
        "too_many_connections"
    );
    match ws_connect(&gateway, "", &[("X-API-Key", "second-key-0002")]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503)
        }
        other => panic!("expected 503 before the upgrade, got {other:?}"),
    }

    let long = reqwest::Client::new()
        .get(format!("{url}?channels={}", "orders,".repeat(100)))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("GET");
    assert_eq!(long.status().as_u16(), 414);
    let big = reqwest::Client::new()
        .get(&url)
        .header("X-API-Key", API_KEY)
        .header("X-Padding", "p".repeat(4096))
        .send()
        .await
        .expect("GET");
    assert_eq!(big.status().as_u16(), 431);
    assert_eq!(
        big.json::<Value>().await.expect("json")["error"],
        "headers_too_large"
    );

    wait_for_rejections(
        &gateway,
        &[
            ("too_many_connections_for_key", 1.0),
            ("too_many_connections", 2.0),
            ("uri_too_long", 1.0),
            ("headers_too_large", 1.0),
        ],
    )
    .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_stats_list_every_instance_and_name_a_frozen_one() {
    let stack = Stack::start().await;
    let mut gateways = Vec::new();
    for name in ["gw-a", "gw-b", "gw-c"] {
        gateways.push(
            GatewayProcess::start(
                &stack,
                &[
                    ("GATEWAY_INSTANCE_ID", name),
                    ("CLUSTER_STATS_TIMEOUT", "1s"),
                    ("SSE_DEBOUNCE_WINDOW", "0"),
                ],
            )
            .await,
        );
    }
    // Different traffic per instance: one client on gw-a, two on gw-b, none on gw-c.
    let mut clients = Vec::new();
    for (index, count) in [(0, 1), (1, 2)] {
        for _ in 0..count {
            clients.push(
                SseClient::connect(&format!("{}/api/realtime/events", gateways[index].url)).await,
            );
        }
    }
    let mut redis = stack.redis_connection().await;
    publish_all(&mut redis, &burst(EventType::OrderReceived, 5, 5, "o")).await;
    for client in &mut clients {
        client
            .events_covering(&(BASE + 1..=BASE + 5).collect::<Vec<_>>())
            .await;
    }

    let cluster = |url: String| async move {
        let started = Instant::now();
        let body: Value = reqwest::Client::new()
            .get(format!("{url}/api/realtime/stats?scope=cluster"))
            .header("X-API-Key", API_KEY)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        (body, started.elapsed())
    };
    let (body, _) = eventually("all three instances answer", || async {
        let (body, took) = cluster(gateways[2].url.clone()).await;
        (body["instances"].as_array().map_or(0, Vec::len) == 3
            && body["missing"] == serde_json::json!([]))
        .then_some((body, took))
    })
    .await;
    let names: Vec<&str> = body["instances"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["instance"].as_str())
        .collect();
    assert_eq!(names, ["gw-a", "gw-b", "gw-c"]);
    assert_eq!(body["instances"][0]["framesSent"]["sse"], 5);
    assert_eq!(body["instances"][1]["framesSent"]["sse"], 10);
    assert_eq!(body["instances"][2]["framesSent"]["sse"], 0);
    assert_eq!(body["totals"]["framesSent"]["sse"], 15);
    assert_eq!(body["totals"]["connections"]["current"]["sse"], 3);
    assert_eq!(body["totals"]["eventsReceived"]["ORDER_RECEIVED"], 15);

    gateways[1].signal("STOP");
    wait_stopped(gateways[1].child.id()).await;
    let (body, took) = cluster(gateways[0].url.clone()).await;
    gateways[1].signal("CONT");
    eprintln!("cluster stats with gw-b frozen answered in {took:?}");
    assert!(
        took < Duration::from_millis(2500),
        "bounded by CLUSTER_STATS_TIMEOUT (took {took:?})"
    );
    assert_eq!(body["missing"], serde_json::json!(["gw-b"]));
    assert_eq!(body["instances"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_proves_the_path_and_never_reaches_clients() {
    let mut stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.fleet.canary_interval = Duration::from_millis(200);
    config.fleet.canary_degraded_after = Duration::from_millis(1500);
    config.streams.sse_debounce_window = 0;
    config.fleet.gateway_instance_id = Some("gw-canary".into());
    let gateway = start_gateway(config).await;
    let mut client = SseClient::connect(&format!("{}/api/realtime/events", gateway.url)).await;

    eventually("canaries come back", || async {
        (gateway
            .metric("gateway_events_received_total{type=\"CANARY\"}")
            .await
            >= 3.0)
            .then_some(())
    })
    .await;
    let (_, status) = get_json(&gateway, "/api/realtime/status").await;
    assert_eq!(status["status"], "ok");
    assert_eq!(status["canary"]["seen"], true);
    let metrics = gateway.metrics().await;
    let latency_count =
        sample_value(&metrics, "gateway_canary_latency_seconds_count").unwrap_or(0.0);
    assert!(
        latency_count >= 3.0,
        "canary latency is measured ({latency_count})"
    );
    let latency_sum = sample_value(&metrics, "gateway_canary_latency_seconds_sum").unwrap_or(0.0);
    eprintln!(
        "canary: mean full-path latency {:.2} ms over {latency_count} canaries (debug build)",
        latency_sum / latency_count * 1000.0
    );

    // A real event after several canaries: the client sees only the event.
    let mut redis = stack.redis_connection().await;
    publish_event(&mut redis, EventType::OrderReceived, "o1").await;
    let first = client.next_event().await.expect("event");
    assert_eq!(first.event.as_deref(), Some("ORDER_RECEIVED"));
    assert!(!first.data.contains("CANARY"));

    // The bridge stops: every process is up, but nothing flows. The canary tells.
    stack.stop_bridge().await;
    eventually("degraded without the bridge", || async {
        let (_, status) = get_json(&gateway, "/api/realtime/status").await;
        (status["status"] == "degraded").then_some(())
    })
    .await;
    let readyz: Value = reqwest::get(format!("{}/readyz", gateway.url))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(readyz["status"], "degraded");
    gateway.wait_for_metric("gateway_degraded", 1.0).await;

    stack.start_bridge().await;
    eventually("recovered with the bridge back", || async {
        let (_, status) = get_json(&gateway, "/api/realtime/status").await;
        (status["status"] == "ok").then_some(())
    })
    .await;
    gateway.wait_for_metric("gateway_degraded", 0.0).await;

    // With the only bridge away, events published meanwhile are lost: the client is told.
    gateway
        .wait_for_metric("gateway_source_gaps_total", 1.0)
        .await;
    let reset = client.next_event().await.expect("reset");
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(reset.json()["reason"], "source_gap");

    // Nothing but the one order ever reached the client.
    publish_event(&mut redis, EventType::ListingUpdate, "l1").await;
    let second = client.next_event().await.expect("event");
    assert_eq!(second.event.as_deref(), Some("LISTING_UPDATE"));
    gateway.stop().await;
}
