//! Histogram memory stays flat when nothing scrapes `/metrics`: the upkeep task folds the
//! recorder's pending observations into buckets.

use std::time::Duration;

use rakuda_service::metric::{histogram, keep_up, recorder};
use tokio_util::sync::CancellationToken;

/// Observations recorded: at a word each, 160 MB if they piled up.
const OBSERVATIONS: usize = 20_000_000;
/// What the process may grow by while recording them with the upkeep running.
const ALLOWED_GROWTH_KIB: u64 = 24 * 1024;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .expect("VmRSS in /proc/self/status")
}

// One thread: the upkeep task runs between chunks, never during a `record`. metrics-util's
// `AtomicBucket` can drop the observations of one upkeep interval when a clear races a
// recording on another thread (the clear can read a fresh block before its `next` link is
// set), so the exact count below is only deterministic without that race. The memory bound
// is what this test is about; the count shows the upkeep folds observations rather than
// discarding them.
#[tokio::test(flavor = "current_thread")]
async fn histogram_observations_do_not_pile_up_without_a_scraper() {
    let recorder = recorder();
    let latency = histogram(&recorder, "test_latency_seconds");
    let stop = CancellationToken::new();
    let upkeep = tokio::spawn(keep_up(
        recorder.handle(),
        Duration::from_millis(10),
        stop.clone(),
    ));

    let before = rss_kib();
    for chunk in 0..OBSERVATIONS / 100_000 {
        for i in 0..100_000 {
            latency.record(((chunk * 100_000 + i) % 1000) as f64 / 1e4);
        }
        // Let the upkeep task run, as a busy gateway's runtime would.
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let grown = rss_kib().saturating_sub(before);
    stop.cancel();
    upkeep.await.expect("upkeep task");

    let rendered = recorder.handle().render();
    assert!(
        rendered.contains(&format!("test_latency_seconds_count {OBSERVATIONS}")),
        "every observation is still counted:\n{rendered}"
    );
    assert!(
        grown < ALLOWED_GROWTH_KIB,
        "RSS grew by {grown} KiB while recording {OBSERVATIONS} observations"
    );
}
