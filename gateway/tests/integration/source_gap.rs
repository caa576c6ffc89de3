//! A gap is never silent: while events flow, the only bridge is restarted (SIGTERM, and kill -9)
//! and every client, SSE and WebSocket, either receives every event or is told `reset`
//! (`source_gap`) after the last event it got before the loss. With two bridges, restarting one
//! loses nothing and resets nobody.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use rakuda_loadgen::client::{self, lock, SharedTally};
use rakuda_loadgen::publish::LoadEvents;
use rakuda_loadgen::{Target, Transport};
use rakuda_schema::EventType;
use rakuda_testkit::{free_port, NatsServer, RedisServer, Service};
use tokio_util::sync::CancellationToken;

const EVENTS: u64 = 1200;
const PER_SECOND: f64 = 300.0;
const CLIENTS: usize = 6;
/// Events every subscriber has before the fault (a second's worth).
const FLOWING: u64 = 300;
/// Events published while a bridge is away (0.3 s' worth).
const OUTAGE_EVENTS: u64 = 90;

/// A bridge's outage: until [`OUTAGE_EVENTS`] more events were published (or all of them were),
/// counted by the publisher rather than guessed from the clock.
async fn outage(published: &AtomicU64) {
    let until = (published.load(Ordering::Relaxed) + OUTAGE_EVENTS).min(EVENTS);
    eventually(
        &format!("event {until} published while a bridge is away"),
        || async { (published.load(Ordering::Relaxed) >= until).then_some(()) },
    )
    .await
}

fn bin_dir() -> PathBuf {
    Path::new(BINARY)
        .parent()
        .expect("target dir")
        .to_path_buf()
}

struct Backbone {
    redis: RedisServer,
    nats: NatsServer,
    logs: tempfile::TempDir,
}

impl Backbone {
    fn start() -> Backbone {
        Backbone {
            redis: RedisServer::start().expect("redis"),
            nats: NatsServer::start().expect("nats"),
            logs: tempfile::tempdir().expect("log dir"),
        }
    }

    /// A bridge process (not started), reporting to the registry every 100 ms.
    fn bridge(&self, name: &str) -> Service {
        let port = free_port().expect("port");
        let binary = rakuda_testkit::fleet::built_binary(&bin_dir(), "rakuda-bridge")
            .expect("the bridge binary");
        let envs = [
            ("REDIS_URL", self.redis.url()),
            ("NATS_URL", self.nats.url()),
            ("BRIDGE_METRICS_ADDR", format!("127.0.0.1:{port}")),
            ("BRIDGE_BEACON_INTERVAL", "100ms".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Service::new(
            name,
            binary,
            envs,
            port,
            self.logs.path().join(format!("{name}.log")),
        )
    }

    fn gateway_config(&self) -> rakuda_gateway::Config {
        let mut config = rakuda_gateway::Config::new(
            vec![self.nats.url().parse().expect("nats url")],
            vec![API_KEY.into()],
        );
        config.fleet.redis_url = self.redis.url().into();
        config.auth.token_secret = vec![TOKEN_SECRET.into()];
        config.fleet.canary_interval = Duration::ZERO;
        config.streams.sse_debounce_window = 0;
        config
    }
}

impl Drop for Backbone {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.logs.disable_cleanup(true);
            eprintln!("bridge logs kept in {}", self.logs.path().display());
        }
    }
}

async fn bridge_metric(bridge: &Service, sample: &str) -> f64 {
    metric_url(&bridge.url(), sample).await
}

/// Waits until the bridge stores what it reads, so it can cover for another.
async fn wait_covering(bridge: &Service) {
    bridge
        .wait_for_metric(
            "bridge_stored_through_beacon",
            |stored| stored.is_some_and(|stored| stored > 0.0),
            WAIT,
        )
        .await
        .expect("the bridge stores what it reads");
}

struct Subscriber {
    transport: Transport,
    tally: SharedTally,
}

fn subscribe(gateway: &RunningGateway, stop: &CancellationToken) -> Vec<Subscriber> {
    (0..CLIENTS)
        .map(|index| {
            let transport = if index % 2 == 0 {
                Transport::Sse
            } else {
                Transport::Ws
            };
            let mut target = Target::new(&gateway.url, transport).with_api_key(API_KEY);
            target.idle_timeout = Duration::from_secs(5);
            let tally = SharedTally::default();
            tokio::spawn(client::run(Arc::new(target), tally.clone(), stop.clone()));
            Subscriber { transport, tally }
        })
        .collect()
}

async fn wait_connected(gateway: &RunningGateway) {
    eventually("every client connected", || async {
        let sse = gateway
            .metric("gateway_connections{transport=\"sse\"}")
            .await;
        let ws = gateway
            .metric("gateway_connections{transport=\"ws\"}")
            .await;
        (sse + ws == CLIENTS as f64).then_some(())
    })
    .await;
}

/// Publishes `EVENTS` at `PER_SECOND`, counted in `published`, and runs `fault` once every
/// subscriber has received [`FLOWING`] of them, while the rest flow.
async fn publish_through(
    backbone: &Backbone,
    subscribers: &[Subscriber],
    published: &Arc<AtomicU64>,
    fault: impl std::future::Future<Output = ()>,
) {
    let events = LoadEvents {
        types: EventType::CLIENT.to_vec(),
        ..LoadEvents::default()
    };
    let mut redis = backbone_redis(backbone).await;
    let counter = published.clone();
    let publisher = tokio::spawn(async move {
        events
            .paced_counting(&mut redis, 0, EVENTS, PER_SECOND, &counter)
            .await
    });
    eventually("events flowing to every subscriber", || async {
        subscribers
            .iter()
            .all(|subscriber| lock(&subscriber.tally).marks.len() as u64 >= FLOWING)
            .then_some(())
    })
    .await;
    fault.await;
    bounded("the publisher", publisher)
        .await
        .expect("publisher task")
        .expect("publish");
}

async fn backbone_redis(backbone: &Backbone) -> redis::aio::MultiplexedConnection {
    rakuda_testkit::redis_client::connect(&backbone.redis.url()).await
}

/// The first event a subscriber never got, if any.
fn first_missing(subscriber: &Subscriber) -> Option<u64> {
    let tally = lock(&subscriber.tally);
    (0..EVENTS).find(|mark| !tally.marks.contains(mark))
}

/// Every subscriber got every event, or was reset (`source_gap`) after every event before the
/// first it missed. Returns how many events were missed in all and how many were reset.
async fn every_loss_is_told(subscribers: &[Subscriber]) -> (u64, usize) {
    // Published events still on their way, and the marker that follows the bridge's return.
    eventually(
        "every subscriber has every event or a source_gap reset",
        || async {
            subscribers
                .iter()
                .all(|subscriber| {
                    let told = lock(&subscriber.tally)
                        .resets
                        .iter()
                        .any(|reason| reason == "source_gap");
                    told || first_missing(subscriber).is_none()
                })
                .then_some(())
        },
    )
    .await;
    let mut missed = 0;
    let mut reset = 0;
    for (index, subscriber) in subscribers.iter().enumerate() {
        let tally = lock(&subscriber.tally);
        let lost = (0..EVENTS)
            .filter(|mark| !tally.marks.contains(mark))
            .count() as u64;
        missed += lost;
        assert!(
            tally.resets.iter().all(|reason| reason == "source_gap"),
            "subscriber {index}: {:?}",
            tally.resets
        );
        if tally.resets.is_empty() {
            continue;
        }
        reset += 1;
        if let Some(first) = (0..EVENTS).find(|mark| !tally.marks.contains(mark)) {
            let told_after = tally
                .resets_after_marks
                .iter()
                .zip(&tally.resets)
                .filter(|(_, reason)| *reason == "source_gap")
                .map(|(after, _)| *after as u64)
                .max()
                .unwrap_or(0);
            assert!(
                told_after >= first,
                "subscriber {index} ({:?}) first missed event {first} but was reset after {told_after} events",
                subscriber.transport
            );
        }
    }
    (missed, reset)
}

/// Stops `bridge` with `kill -9`, or with SIGTERM and waits for the end of its drain.
async fn stop_bridge(bridge: &mut Service, kill: bool) {
    if kill {
        bridge.kill();
    } else {
        bridge.signal("TERM").expect("SIGTERM");
        bridge
            .wait_exit(Duration::from_secs(15))
            .await
            .expect("the bridge exits after its drain");
    }
}

async fn only_bridge_restarted(kill: bool) {
    let backbone = Backbone::start();
    let mut bridge = backbone.bridge("bridge");
    bridge.start().await.expect("start the bridge");
    eventually("the bridge's start marker", || async {
        (bridge_metric(&bridge, "bridge_source_gaps_total{reason=\"start\"}").await == 1.0)
            .then_some(())
    })
    .await;
    wait_covering(&bridge).await;
    let gateway = start_gateway(backbone.gateway_config()).await;
    let stop = CancellationToken::new();
    let subscribers = subscribe(&gateway, &stop);
    wait_connected(&gateway).await;

    let published = Arc::new(AtomicU64::new(0));
    publish_through(&backbone, &subscribers, &published, async {
        stop_bridge(&mut bridge, kill).await;
        outage(&published).await;
        bridge.start().await.expect("restart the bridge");
    })
    .await;
    let (missed, reset) = every_loss_is_told(&subscribers).await;
    eprintln!(
        "the only bridge {}: {missed} deliveries missed by {CLIENTS} clients, {reset} clients reset (source_gap)",
        if kill { "killed (-9) and restarted" } else { "restarted (SIGTERM)" }
    );
    assert!(
        missed > 0 || reset > 0,
        "events published while no bridge was subscribed cannot have arrived"
    );
    gateway
        .wait_for_metric("gateway_source_gaps_total", 1.0)
        .await;
    stop.cancel();
    gateway.stop().await;
}

async fn one_of_two_bridges_restarted(kill: bool) {
    let backbone = Backbone::start();
    let mut first = backbone.bridge("bridge-1");
    let mut second = backbone.bridge("bridge-2");
    first.start().await.expect("start bridge-1");
    second.start().await.expect("start bridge-2");
    wait_covering(&first).await;
    wait_covering(&second).await;
    let gateway = start_gateway(backbone.gateway_config()).await;
    let stop = CancellationToken::new();
    let subscribers = subscribe(&gateway, &stop);
    wait_connected(&gateway).await;

    let published = Arc::new(AtomicU64::new(0));
    publish_through(&backbone, &subscribers, &published, async {
        stop_bridge(&mut second, kill).await;
        outage(&published).await;
        second.start().await.expect("restart bridge-2");
    })
    .await;
    for (index, subscriber) in subscribers.iter().enumerate() {
        eventually(&format!("subscriber {index} has every event"), || async {
            first_missing(subscriber).is_none().then_some(())
        })
        .await;
    }
    // The registry has decided every end (a killed bridge's once it went stale): any marker
    // it wrote is in the stream.
    rakuda_testkit::redis_client::wait_coverage_decided(
        &backbone_redis(&backbone).await,
        "rakuda:realtime:bridges",
    )
    .await;
    for (index, subscriber) in subscribers.iter().enumerate() {
        let tally = lock(&subscriber.tally);
        assert!(
            tally.resets.is_empty(),
            "subscriber {index}: {:?}",
            tally.resets
        );
        assert_eq!(
            tally.seqs.len() as u64,
            EVENTS,
            "subscriber {index}: each event once"
        );
    }
    assert_eq!(gateway.metric("gateway_source_gaps_total").await, 0.0);
    stop.cancel();
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_bridge_restarted_with_sigterm_is_a_told_gap() {
    only_bridge_restarted(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_bridge_killed_and_restarted_is_a_told_gap() {
    only_bridge_restarted(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_bridges_restarted_with_sigterm_loses_nothing_and_resets_nobody() {
    one_of_two_bridges_restarted(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_bridges_killed_loses_nothing_and_resets_nobody() {
    one_of_two_bridges_restarted(true).await;
}
