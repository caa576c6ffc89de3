//! The benchmark scenarios, scaled down, against the real stack (the debug binaries): the load
//! generator must count every delivery, loss and reconnect right before its figures mean
//! anything.

use std::path::PathBuf;

use rakuda_loadgen::scenario::{self, Report, RunOptions, Scenario};
use rakuda_loadgen::Transport;

/// target/debug, where `cargo nextest run --workspace` built the bridge and the gateway.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/debug/deps/scenarios-<hash> -> target/debug
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf()
}

fn standard(name: &str, transport: Transport) -> Scenario {
    scenario::standard()
        .into_iter()
        .find(|s| s.name == name && s.transport == transport)
        .expect("scenario")
}

async fn run(scenario: Scenario) -> Report {
    let options = RunOptions {
        bin_dir: bin_dir(),
        gateway_cpus: None,
        gateway_env: Vec::new(),
    };
    scenario::run(&scenario, &options)
        .await
        .unwrap_or_else(|error| panic!("{}: {error}", scenario.label()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_over_sse_and_websocket_is_counted_exactly() {
    for transport in [Transport::Sse, Transport::Ws] {
        let report = run(standard("fanout-5k", transport).scaled_down(250)).await;
        assert_eq!(report.connected, 20, "{report:?}");
        assert_eq!(report.events, 100);
        assert_eq!(report.expected_deliveries, 2_000);
        assert_eq!(report.deliveries, 2_000, "{report:?}");
        assert_eq!(report.lost, 0);
        assert_eq!(report.duplicates, 0);
        let latency = report.latency_ms.expect("latency measured");
        assert!(latency.p50 > 0.0 && latency.p50 <= latency.p99 && latency.p99 <= latency.max);
        assert!(report.gateway_rss_kib.iter().all(|kib| *kib > 0));
        assert!(report.cpu_seconds.gateway > 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debounced_burst_accounts_for_every_event_in_few_frames() {
    let report = run(standard("burst", Transport::Sse).scaled_down(100)).await;
    assert_eq!(report.events, 500);
    assert_eq!(report.every_event_in_a_frame, Some(true), "{report:?}");
    let frames = report.frames_per_client.expect("frames per client");
    // 500 events of one type inside a 500 ms window: the first alone, the rest in batches.
    assert!((2.0..=10.0).contains(&frames), "{frames} frames per client");
    assert!(report.quiet_after_ms.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_brings_every_client_back_without_loss() {
    let report = run(standard("reconnect-storm", Transport::Sse).scaled_down(100)).await;
    assert_eq!(report.connected, 50);
    assert!(report.all_back_after_ms.is_some(), "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(report.deliveries, report.expected_deliveries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_samples_memory_while_events_flow() {
    let report = run(standard("soak", Transport::Sse).scaled_down(50)).await;
    assert_eq!(report.connected, 20);
    assert_eq!(report.lost, 0, "{report:?}");
    assert!(report.gateway_growth_kib_per_min.is_some(), "{report:?}");
    assert!(report.bridge_growth_kib_per_min.is_some(), "{report:?}");
}
