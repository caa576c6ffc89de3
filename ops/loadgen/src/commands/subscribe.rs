//! `rakuda-loadgen subscribe`: open N connections to a running gateway, hold them, and print
//! one JSON line of what arrived (deliveries, duplicates, resets, failed connects, latency).

use std::time::Duration;

use crate::client::{lock, SharedTally, Target, Transport};
use crate::loopback::{ensure_loopback, NotLoopback};
use crate::scenario::Quantiles;
use crate::subscribers::Subscribers;

#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error(transparent)]
    NotLoopback(#[from] NotLoopback),
}

/// Holds `connections` subscribers on `url` for `duration`, then prints the summary on stdout.
pub async fn subscribe(
    url: &str,
    api_key: &str,
    connections: usize,
    transport: Transport,
    duration: Duration,
) -> Result<(), SubscribeError> {
    ensure_loopback(url, "--url")?;
    let target = Target::new(url, transport).with_api_key(api_key);
    let subscribers = Subscribers::open(target, connections).await;
    eprintln!(
        "rakuda-loadgen: {} of {connections} connections ready; holding for {duration:?}",
        subscribers.ready_count()
    );
    tokio::time::sleep(duration).await;
    let tallies = subscribers.close().await;
    println!("{}", summary(connections, &tallies));
    Ok(())
}

/// What every subscriber saw, added up.
fn summary(connections: usize, tallies: &[SharedTally]) -> serde_json::Value {
    let mut deliveries = 0u64;
    let mut duplicates = 0u64;
    let mut resets = 0usize;
    let mut failed = 0u64;
    let mut latencies = Vec::new();
    for tally in tallies {
        let tally = lock(tally);
        deliveries += tally.seqs.len() as u64;
        duplicates += tally.duplicates;
        resets += tally.resets.len();
        failed += tally.failed_connects;
        latencies.extend_from_slice(&tally.latencies_us);
    }
    serde_json::json!({
        "connections": connections,
        "deliveries": deliveries,
        "duplicates": duplicates,
        "resets": resets,
        "failedConnects": failed,
        "latencyMs": Quantiles::of(&mut latencies),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marker::Delivered;

    #[test]
    fn the_summary_adds_up_every_subscriber() {
        let tallies = [SharedTally::default(), SharedTally::default()];
        for (tally, seq) in tallies.iter().zip([1, 2]) {
            let event = Delivered {
                seq,
                n: Some(0),
                sent_us: Some(1_000),
            };
            let mut tally = lock(tally);
            tally.record_frame(&[event, event], 2, 3_000);
            tally.failed_connects = 1;
        }
        let summary = summary(2, &tallies);
        assert_eq!(summary["connections"], 2);
        assert_eq!(summary["deliveries"], 2);
        assert_eq!(summary["duplicates"], 2);
        assert_eq!(summary["resets"], 0);
        assert_eq!(summary["failedConnects"], 2);
        assert_eq!(summary["latencyMs"]["p50"], 2.0);
    }
}
