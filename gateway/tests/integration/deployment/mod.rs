//! The deployment, proven on real processes: a 3-node NATS cluster, two bridges, two gateways
//! and nginx in front, each run from the committed ops files and secured as they are (NATS over
//! TLS with mutual TLS between the nodes and an nkey user per role, Redis over TLS with an ACL
//! user per role, nginx over HTTPS with HTTP/2), with clients (half SSE over HTTP/2, half
//! WebSocket over TLS) connected through nginx while the fleet is broken piece by piece. It also
//! shows what the security stops: a NATS client without a key or without the CA, a gateway
//! writing into the stream or deleting it, a bridge speaking for the gateways, a worker forging
//! a bridge beacon, a token reaching nginx's access log.
//!
//! The subscribers are the load generator's (`rakuda_loadgen::client`), reaching nginx as
//! browsers do: SSE over HTTPS with HTTP/2, WebSocket over TLS, trusting only the fleet's CA;
//! each reconnects with its cursor like the browser client and records what it saw.

mod history;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rakuda_loadgen::client::{self, lock, SharedTally, Target};
use rakuda_loadgen::publish::LoadEvents;
use rakuda_loadgen::Transport;
use rakuda_schema::EventType;
use rakuda_testkit::redis_client::{connect_tls, wait_for_subscribers};
use rakuda_testkit::wait::{bounded, eventually};
use rakuda_testkit::{Fleet, FleetConfig, Role};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const CLIENTS: usize = 20;
const EVENTS: u64 = 2_000;
const DRAIN_EVENTS: u64 = 500;
const DRAIN_WINDOW: Duration = Duration::from_secs(4);
const DEGRADED_AFTER: Duration = Duration::from_secs(3);
/// With no frame for this long a subscriber presumes its connection dead and reopens it
/// (heartbeats come every second here).
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

struct Subscriber {
    transport: Transport,
    tally: SharedTally,
}

fn fleet_config() -> FleetConfig {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_rakuda-gateway"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let mut config = FleetConfig::new(bin_dir);
    let settings = [
        ("SSE_DEBOUNCE_WINDOW", "0".to_owned()),
        ("SSE_HEARTBEAT_INTERVAL", "1000".to_owned()),
        (
            "GATEWAY_DRAIN_WINDOW",
            format!("{}s", DRAIN_WINDOW.as_secs()),
        ),
        ("GATEWAY_DRAIN_TIMEOUT", "15s".to_owned()),
        ("CANARY_INTERVAL", "500ms".to_owned()),
        (
            "CANARY_DEGRADED_AFTER",
            format!("{}s", DEGRADED_AFTER.as_secs()),
        ),
    ];
    config.gateway_env = settings
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    config
}

/// How long the fleet may take to deliver everything after the last publish: a stopped NATS
/// node means a stream leader election, the bridge's backoff and the gateway's stall check in a
/// row, and the whole test suite shares two cores.
const DELIVERY_WAIT: Duration = Duration::from_secs(60);

/// Every subscriber holds every event `0..count`, by `lg_n`; on timeout, what each one has.
async fn wait_for_every_event(subscribers: &[Subscriber], count: u64, what: &str) {
    let deadline = Instant::now() + DELIVERY_WAIT;
    while !subscribers
        .iter()
        .all(|s| lock(&s.tally).marks.len() as u64 >= count)
    {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}:\n{}", describe(subscribers));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn describe(subscribers: &[Subscriber]) -> String {
    let mut out = String::new();
    for (index, subscriber) in subscribers.iter().enumerate() {
        let tally = lock(&subscriber.tally);
        let sessions: Vec<String> = tally
            .sessions
            .iter()
            .map(|s| format!("{:?}:{:?}", s.instance, s.end))
            .collect();
        out.push_str(&format!(
            "  {index} {:?}: {} events, {} dup, resets {:?}, failed connects {} ({:?}), cursor {:?}, sessions {sessions:?}\n",
            subscriber.transport,
            tally.marks.len(),
            tally.duplicates,
            tally.resets,
            tally.failed_connects,
            tally.last_error,
            tally.cursor,
        ));
    }
    out
}

/// Every subscriber is connected, its first heartbeat in; the instances they landed on.
async fn wait_all_live(subscribers: &[Subscriber]) -> BTreeMap<String, usize> {
    eventually("every subscriber connected with a heartbeat", || async {
        let mut by_instance = BTreeMap::new();
        for subscriber in subscribers {
            let tally = lock(&subscriber.tally);
            if !tally.is_live() {
                return None;
            }
            *by_instance.entry(tally.instance()?.to_owned()).or_insert(0) += 1;
        }
        Some(by_instance)
    })
    .await
}

/// Waits until the publisher has published `count` events (by `published`): the faults fall
/// at fixed points of a paced run, while events flow, rather than at guessed times.
async fn published_through(published: &AtomicU64, count: u64) {
    eventually(&format!("{count} events published"), || async {
        (published.load(Ordering::Relaxed) >= count).then_some(())
    })
    .await
}

async fn degraded(http: &reqwest::Client, gateway_url: &str) -> Option<bool> {
    let body: serde_json::Value = http
        .get(format!("{gateway_url}/readyz"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["degraded"].as_bool()
}

fn assert_exactly_once(subscribers: &[Subscriber], count: u64) -> u64 {
    let mut duplicates = 0;
    for (index, subscriber) in subscribers.iter().enumerate() {
        let tally = lock(&subscriber.tally);
        let missing: Vec<u64> = (0..count).filter(|n| !tally.marks.contains(n)).collect();
        assert!(
            missing.is_empty(),
            "subscriber {index} ({:?}) lost {} events, first {:?}",
            subscriber.transport,
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        // One seq per event: neither a bridge crash nor the two bridges put an event in the
        // stream twice.
        assert_eq!(
            tally.seqs.len() as u64,
            count,
            "subscriber {index}: events arrived under more seqs than were published"
        );
        assert!(
            tally.resets.is_empty(),
            "subscriber {index}: {:?}",
            tally.resets
        );
        duplicates += tally.duplicates;
    }
    duplicates
}

/// The name the test's own NATS clients give themselves, so the server's log tells their
/// permission violations (on purpose) from anyone else's (a permission the fleet lacks).
const PROBE: &str = "rakuda-fleet-probe";

/// A NATS client as the test: with `seed` (an nkey seed file) or none, trusting `ca` or only the
/// system's roots; `events` gets what the server reports (permission violations).
async fn nats_probe(
    url: &str,
    seed: Option<&Path>,
    ca: Option<&Path>,
    events: Option<mpsc::UnboundedSender<String>>,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    // Replies as the gateway's: a probe with the bridge's seed sends nothing that needs one.
    let mut options = async_nats::ConnectOptions::new()
        .name(PROBE)
        .custom_inbox_prefix(rakuda_service::nats::GATEWAY_INBOX_PREFIX)
        .connection_timeout(Duration::from_secs(3))
        .request_timeout(Some(Duration::from_secs(1)));
    if let Some(seed) = seed {
        let seed = std::fs::read_to_string(seed).expect("read the seed");
        options = options.nkey(seed.trim().to_owned());
    }
    if let Some(ca) = ca {
        options = options.add_root_certificates(ca.to_owned());
    }
    if let Some(events) = events {
        options = options.event_callback(move |event| {
            let events = events.clone();
            async move {
                let _ = events.send(event.to_string());
            }
        });
    }
    options.require_tls(true).connect(url).await
}

/// Waits until the server has reported a permission violation to this client.
async fn violation_reported(events: &mut mpsc::UnboundedReceiver<String>, what: &str) {
    bounded(what, async {
        while let Some(event) = events.recv().await {
            if event.contains("Permissions Violation") {
                return;
            }
        }
        panic!("the client's events ended before {what}");
    })
    .await
}

/// NATS lets in only the fleet's users, over TLS with the fleet's CA, and each may do only its
/// job: the gateway can neither write into the stream nor delete or purge it, the bridge cannot
/// publish on the gateways' cluster subjects.
async fn nats_refuses_what_is_not_allowed(fleet: &Fleet) {
    let url = fleet.nats.url(1);
    let secrets = &fleet.secrets;
    let anonymous = nats_probe(&url, None, Some(&secrets.ca), None).await;
    assert!(
        anonymous.is_err(),
        "a NATS client without credentials connected"
    );
    let without_ca = nats_probe(&url, Some(&secrets.gateway_seed), None, None).await;
    assert!(
        without_ca.is_err(),
        "a NATS client that does not trust the fleet's CA connected"
    );

    let (sender, mut events) = mpsc::unbounded_channel();
    let gateway = nats_probe(
        &url,
        Some(&secrets.gateway_seed),
        Some(&secrets.ca),
        Some(sender),
    )
    .await
    .expect("the gateway's nkey connects");
    let jetstream = async_nats::jetstream::new(gateway.clone());
    let stream = jetstream
        .get_stream("RAKUDA_REALTIME")
        .await
        .expect("the gateway reads the stream's info");
    let acked = match jetstream
        .publish("rakuda.realtime.orders.forged", "{}".into())
        .await
    {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    };
    assert!(!acked, "the gateway's user stored an event in the stream");
    violation_reported(&mut events, "the refusal of the gateway's publish").await;
    assert!(
        jetstream.delete_stream("RAKUDA_REALTIME").await.is_err(),
        "the gateway's user deleted the stream"
    );
    violation_reported(&mut events, "the refusal of the gateway's delete").await;
    assert!(
        stream.purge().await.is_err(),
        "the gateway's user purged the stream"
    );
    violation_reported(&mut events, "the refusal of the gateway's purge").await;
    jetstream
        .get_stream("RAKUDA_REALTIME")
        .await
        .expect("the stream is still there");
    // Nor can it read the bridges' replies (their publish acks), nor every reply on the server.
    for inbox in ["_INBOX_bridge.>", "_INBOX.>"] {
        let _eavesdrop = gateway
            .subscribe(inbox)
            .await
            .expect("queue the subscription");
        gateway.flush().await.expect("flush");
        violation_reported(
            &mut events,
            &format!("the refusal of the gateway's {inbox}"),
        )
        .await;
    }

    let (sender, mut events) = mpsc::unbounded_channel();
    let bridge = nats_probe(
        &url,
        Some(&secrets.bridge_seed),
        Some(&secrets.ca),
        Some(sender),
    )
    .await
    .expect("the bridge's nkey connects");
    bridge
        .publish("rakuda.gateway.stats", "{}".into())
        .await
        .expect("queue the publish");
    bridge.flush().await.expect("flush");
    violation_reported(&mut events, "the refusal of the bridge's stats request").await;
}

/// Redis lets in only its ACL users, and the workers' may publish events but not a beacon.
async fn redis_refuses_what_is_not_allowed(
    fleet: &Fleet,
    worker: &mut redis::aio::MultiplexedConnection,
) {
    let forged: redis::RedisResult<i64> = redis::cmd("PUBLISH")
        .arg("rakuda:realtime:control:beacon")
        .arg("forged:1")
        .query_async(worker)
        .await;
    let error = forged.expect_err("a worker published a bridge beacon");
    // Redis answers -NOPERM; the client shows it as `NoPerm: ...`.
    assert!(
        error.to_string().to_uppercase().contains("NOPERM"),
        "{error}"
    );
    let anonymous = format!("rediss://{}", fleet.redis.addr());
    let client = redis::Client::build_with_tls(
        anonymous.as_str(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(&fleet.secrets.ca).expect("read the CA")),
        },
    )
    .expect("redis url");
    let refused: redis::RedisResult<i64> = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PUBLISH")
            .arg("rakuda:realtime:orders")
            .arg("{}")
            .query_async(&mut connection)
            .await
    }
    .await;
    assert!(refused.is_err(), "Redis took a PUBLISH without a user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_behind_nginx_delivers_every_event_through_crashes_drains_and_outages() {
    let mut fleet = Fleet::start(fleet_config()).await.expect("start the fleet");
    let http = reqwest::Client::new();
    let ca = fleet.secrets.ca.clone();
    // The test's admin user (CLIENT LIST, ACL LOG); events are published as the workers do.
    let mut admin = connect_tls(&fleet.redis.url(), &ca).await;
    let mut redis = connect_tls(&fleet.redis_url_as(Role::Worker), &ca).await;
    wait_for_subscribers(&mut admin, 2).await;
    // Both bridges store what they read (the cluster's stream is up: its first creation can take
    // a while), so either can cover for the other: killing one then loses nothing and resets no
    // client.
    for bridge in &fleet.bridges {
        bridge
            .wait_for_metric(
                "bridge_stored_through_beacon",
                |stored| stored.is_some_and(|stored| stored > 0.0),
                DELIVERY_WAIT,
            )
            .await
            .expect("the bridge stores what it reads");
    }
    nats_refuses_what_is_not_allowed(&fleet).await;
    redis_refuses_what_is_not_allowed(&fleet, &mut redis).await;

    let stop = CancellationToken::new();
    let tls = fleet.tls().expect("a TLS client for the fleet's CA");
    let subscribers: Vec<Subscriber> = (0..CLIENTS)
        .map(|index| {
            let transport = if index % 2 == 0 {
                Transport::Sse
            } else {
                Transport::Ws
            };
            let mut target = Target::new(&format!("https://{}", fleet.nginx.addr()), transport)
                .with_api_key(&fleet.api_key)
                .with_tls(tls.clone());
            target.idle_timeout = IDLE_TIMEOUT;
            let tally = SharedTally::default();
            tokio::spawn(client::run(Arc::new(target), tally.clone(), stop.clone()));
            Subscriber { transport, tally }
        })
        .collect();
    let spread = wait_all_live(&subscribers).await;
    assert_eq!(
        spread.len(),
        2,
        "least_conn should use both gateways: {spread:?}"
    );

    // Phase 1: 2,000 events over 10 s while a bridge, a gateway and a NATS node die.
    let events = LoadEvents {
        types: EventType::CLIENT.to_vec(),
        ..LoadEvents::default()
    };
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let events = events.clone();
        let mut redis = redis.clone();
        let published = published.clone();
        tokio::spawn(async move {
            events
                .paced_counting(&mut redis, 0, EVENTS, 200.0, &published)
                .await
        })
    };
    // Two seconds' worth of events between faults.
    published_through(&published, 400).await;
    fleet.bridges[0].kill();
    published_through(&published, 800).await;
    let killed_at = Instant::now();
    fleet.gateways[0].kill();
    published_through(&published, 1_200).await;
    fleet.nats.stop_node(0);
    bounded("the publisher", publisher)
        .await
        .expect("publisher task")
        .expect("publish");
    wait_for_every_event(&subscribers, EVENTS, "all 2,000 events at every subscriber").await;
    let phase_one_duplicates = assert_exactly_once(&subscribers, EVENTS);
    // The killed gateway's subscribers came back through nginx on the other one.
    let mut moved = 0;
    let mut reconnect_gaps = Vec::new();
    for subscriber in &subscribers {
        let tally = lock(&subscriber.tally);
        assert_eq!(tally.instance(), Some("gateway-2"));
        let crashed = tally
            .sessions
            .windows(2)
            .find(|pair| pair[0].instance.as_deref() == Some("gateway-1"));
        if let Some(pair) = crashed {
            moved += 1;
            let ended = pair[0].ended_at.expect("ended");
            reconnect_gaps.push(pair[1].connected_at.duration_since(ended));
            assert!(ended >= killed_at);
        }
    }
    assert_eq!(moved, spread["gateway-1"]);
    let slowest_reconnect = reconnect_gaps.iter().max().copied().unwrap_or_default();

    // The stopped NATS node rejoins.
    fleet.nats.restart_node(0).expect("restart the NATS node");

    // Phase 2: the killed gateway comes back; the other one is drained with SIGTERM while
    // events flow. Its subscribers move over through nginx, spread over the drain window.
    fleet.gateways[0].start().await.expect("restart gateway-1");
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let events = events.clone();
        let mut redis = redis.clone();
        let published = published.clone();
        tokio::spawn(async move {
            events
                .paced_counting(&mut redis, EVENTS, DRAIN_EVENTS, 100.0, &published)
                .await
        })
    };
    // Half a second's worth of events flowing before the drain.
    published_through(&published, 50).await;
    let signalled = Instant::now();
    fleet.gateways[1].signal("TERM").expect("SIGTERM");
    let status = fleet.gateways[1]
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("gateway-2 exits after its drain");
    assert!(status.success(), "gateway-2 exited with {status}");
    bounded("the publisher", publisher)
        .await
        .expect("publisher task")
        .expect("publish");
    let total = EVENTS + DRAIN_EVENTS;
    wait_for_every_event(&subscribers, total, "all 2,500 events after the drain").await;
    let after_drain = wait_all_live(&subscribers).await;
    assert_eq!(after_drain.get("gateway-1"), Some(&CLIENTS));
    let total_duplicates = assert_exactly_once(&subscribers, total);
    let mut closes: Vec<Duration> = subscribers
        .iter()
        .filter_map(|subscriber| {
            let tally = lock(&subscriber.tally);
            tally
                .sessions
                .iter()
                .find(|s| {
                    s.instance.as_deref() == Some("gateway-2") && s.ended_at > Some(signalled)
                })
                .and_then(|s| s.ended_at)
                .map(|ended| ended.duration_since(signalled))
        })
        .collect();
    closes.sort();
    assert_eq!(closes.len(), CLIENTS, "every subscriber was on gateway-2");
    let spread_secs = (closes[CLIENTS - 1] - closes[0]).as_secs_f64();
    // Spread over the window, not all at once: the first and last close are more than half a
    // window apart, and the closes fall into many different moments. Counted as distinct
    // quarter-second slots of the window: closing everyone at once fills one or two, uniform
    // closes fill about 11.6 of 16, and a test process descheduled for a second or two on a
    // loaded machine (which sees several closes "at once" when it runs again, as CI did once
    // with 12 of 20 seen within 0.8 s) still sees 8 or more. Fewer than 5 by chance: well under
    // one in a million runs.
    assert!(
        spread_secs > DRAIN_WINDOW.as_secs_f64() / 2.0,
        "drain closes not spread: {closes:?}"
    );
    let slot = DRAIN_WINDOW / 16;
    let mut slots: Vec<u128> = closes
        .iter()
        .map(|close| close.as_nanos() / slot.as_nanos())
        .collect();
    slots.dedup();
    assert!(
        slots.len() >= 5,
        "drain closes fall into only {} of the window's {slot:?} slots: {closes:?}",
        slots.len()
    );

    // Phase 3: with both bridges down the gateways keep running, and their canary says
    // `degraded` within CANARY_DEGRADED_AFTER; a bridge back brings them round.
    fleet.gateways[1].start().await.expect("restart gateway-2");
    let gateway_urls: Vec<String> = fleet.gateways.iter().map(|g| g.url()).collect();
    fleet.bridges[1].kill();
    let bridges_down = Instant::now();
    for url in &gateway_urls {
        eventually("gateway reports degraded", || async {
            (degraded(&http, url).await == Some(true)).then_some(())
        })
        .await;
    }
    let degraded_within = bridges_down.elapsed();
    assert!(degraded_within < DEGRADED_AFTER + Duration::from_secs(3));
    fleet.bridges[0].start().await.expect("restart bridge-1");
    let bridge_back = Instant::now();
    for url in &gateway_urls {
        eventually("gateway recovers", || async {
            (degraded(&http, url).await == Some(false)).then_some(())
        })
        .await;
    }
    let recovered_within = bridge_back.elapsed();
    // With no bridge subscribed for a while, events published then are lost: every client is
    // told so once a bridge is back, whichever gateway it is on.
    for (index, subscriber) in subscribers.iter().enumerate() {
        eventually(
            &format!("subscriber {index} is reset (source_gap)"),
            || async {
                let tally = lock(&subscriber.tally);
                (tally.resets == ["source_gap"]).then_some(())
            },
        )
        .await;
    }

    stop.cancel();
    history::read_within_the_gateways_permissions(&tls, fleet.nginx.addr(), &fleet.api_key).await;
    history::publish_is_served_through_nginx(
        &tls,
        fleet.nginx.addr(),
        &fleet.publish_key,
        &fleet.api_key,
    )
    .await;

    // Nothing the fleet does needs more than its permissions: every NATS permission violation
    // and every Redis ACL refusal logged in the whole run is one this test caused on purpose.
    let nats_logs = fleet.nats.logs();
    let violations: Vec<&str> = nats_logs
        .lines()
        .filter(|line| line.contains("Violation"))
        .collect();
    assert!(
        violations.len() >= 6,
        "NATS logged fewer violations than the test caused: {violations:?}"
    );
    let unexpected: Vec<&&str> = violations
        .iter()
        .filter(|line| !line.contains(PROBE))
        .collect();
    assert!(
        unexpected.is_empty(),
        "a bridge or gateway lacks a NATS permission: {unexpected:?}"
    );
    let acl_log: redis::Value = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut admin)
        .await
        .expect("ACL LOG");
    let refusals = match acl_log {
        redis::Value::Array(entries) => entries,
        other => panic!("ACL LOG answered {other:?}"),
    };
    for refusal in &refusals {
        let text = format!("{refusal:?}");
        assert!(
            text.contains("rakuda-worker") && text.contains("control:beacon"),
            "a bridge, gateway or worker lacks a Redis permission: {text}"
        );
    }
    assert!(!refusals.is_empty(), "Redis did not log the forged beacon");

    // SSE went over HTTP/2 and WebSocket over HTTP/1.1 (through one TLS port), and a token in
    // the query string never reaches the access log.
    let marker = "tok-never-logged-0123456789";
    let refused = rakuda_testkit::tls::h2_get(
        &tls,
        fleet.nginx.addr(),
        &format!("/api/realtime/events?token={marker}"),
        &[],
    )
    .await
    .expect("an HTTPS request");
    assert!(
        matches!(refused.status, 401 | 403),
        "a made-up token got {}",
        refused.status
    );
    let refused_status = refused.status;
    drop(refused);
    let access_log = eventually("nginx to log the refused request", || async {
        let log = std::fs::read_to_string(fleet.nginx.access_log()).ok()?;
        log.contains(&format!("\" {status} ", status = refused_status))
            .then_some(log)
    })
    .await;
    assert!(
        access_log.contains("\"GET /api/realtime/events HTTP/2.0\" 200"),
        "no SSE stream over HTTP/2 in the access log"
    );
    assert!(
        access_log.contains("\"GET /api/realtime/ws HTTP/1.1\" 101"),
        "no WebSocket upgrade in the access log"
    );
    assert!(
        !access_log.contains(marker) && !access_log.contains("token="),
        "a query string reached the access log"
    );

    eprintln!(
        "fleet: {CLIENTS} clients ({} SSE over HTTP/2, {} WS over TLS) through nginx (HTTPS), \
         NATS (TLS, nkeys) and Redis (TLS, ACL users), {total} events each; \
         lost 0; duplicates dropped by seq: {phase_one_duplicates} after the gateway crash, \
         {total_duplicates} in all; slowest reconnect after kill -9: {slowest_reconnect:?}; \
         drain closes from {:?} to {:?} after SIGTERM (window {DRAIN_WINDOW:?}); \
         degraded {degraded_within:?} after the bridges stopped, recovered {recovered_within:?} \
         after one came back; refused: anonymous and CA-less NATS clients, the gateway's publish \
         into the stream, delete and purge, the bridge's stats request, a worker's beacon \
         ({} NATS violations logged, all the test's own)",
        CLIENTS / 2,
        CLIENTS / 2,
        closes[0],
        closes[CLIENTS - 1],
        violations.len(),
    );
}
