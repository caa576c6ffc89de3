//! What the servers hold while a fleet scenario runs, sampled on a timer: JetStream consumers
//! in total (NATS's `/jsz`), each gateway's history consumers (`gateway_history_consumers` on
//! its `/metrics`, when asked: scraping costs the gateways CPU), and NATS's memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::http;
use crate::procstat;
use crate::unpoisoned;

/// One sample's request may take this long before it counts as failed.
const SAMPLE_LIMIT: Duration = Duration::from_secs(1);
/// The largest `/metrics` or `/jsz` answer read.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The highest values seen since the monitor started or was last [`Monitor::reset`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Peaks {
    /// JetStream consumers on the server, every kind (each gateway's live feed, history
    /// answers, the bridge's).
    pub jetstream_consumers: Option<u64>,
    /// The first sample after the last reset: what the fleet holds at rest.
    pub jetstream_consumers_at_start: Option<u64>,
    /// The most `gateway_history_consumers` each gateway reported (when scraped).
    pub history_consumers_by_gateway: Vec<Option<u64>>,
    /// NATS's resident memory, KiB.
    pub nats_rss_kib: u64,
    pub samples: u64,
    /// Samples of `/jsz` that got no answer in time.
    pub failed_samples: u64,
}

pub struct Monitor {
    peaks: Arc<Mutex<Peaks>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// `consumers` of a `/jsz` answer.
fn jsz_consumers(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("consumers")?
        .as_u64()
}

async fn get(url: &str, path: &str) -> Option<Vec<u8>> {
    let response = http::get(url, path, None, None, SAMPLE_LIMIT, MAX_BODY)
        .await
        .ok()?;
    (response.status == 200).then_some(response.body)
}

impl Monitor {
    /// Samples every `period` until stopped: `/jsz` at `nats_monitor`, NATS's process
    /// `nats_pid`, and, if `gateways` is not empty, `/metrics` of each.
    pub fn start(
        nats_monitor: Option<String>,
        nats_pid: Option<u32>,
        gateways: Vec<String>,
        period: Duration,
    ) -> Monitor {
        let peaks = Arc::new(Mutex::new(Peaks {
            history_consumers_by_gateway: vec![None; gateways.len()],
            ..Peaks::default()
        }));
        let stop = CancellationToken::new();
        let task = {
            let peaks = peaks.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    let consumers = match &nats_monitor {
                        Some(url) => get(url, "/jsz").await.and_then(|body| jsz_consumers(&body)),
                        None => None,
                    };
                    let mut history = Vec::with_capacity(gateways.len());
                    for gateway in &gateways {
                        history.push(get(gateway, "/metrics").await.and_then(|body| {
                            rakuda_testkit::wait::sample_value(
                                &String::from_utf8_lossy(&body),
                                "gateway_history_consumers",
                            )
                            .map(|value| value as u64)
                        }));
                    }
                    let rss = nats_pid.and_then(procstat::read).map(|r| r.rss_kib);
                    let mut peaks = unpoisoned(&peaks);
                    peaks.samples += 1;
                    match consumers {
                        Some(consumers) => {
                            peaks.jetstream_consumers_at_start.get_or_insert(consumers);
                            peaks.jetstream_consumers =
                                peaks.jetstream_consumers.max(Some(consumers));
                        }
                        None => peaks.failed_samples += 1,
                    }
                    for (peak, value) in peaks.history_consumers_by_gateway.iter_mut().zip(history)
                    {
                        *peak = (*peak).max(value);
                    }
                    peaks.nats_rss_kib = peaks.nats_rss_kib.max(rss.unwrap_or(0));
                }
            })
        };
        Monitor { peaks, stop, task }
    }

    /// Forgets the peaks so far: the next ones are of what comes now.
    pub fn reset(&self) {
        let mut peaks = unpoisoned(&self.peaks);
        let gateways = peaks.history_consumers_by_gateway.len();
        *peaks = Peaks {
            history_consumers_by_gateway: vec![None; gateways],
            ..Peaks::default()
        };
    }

    /// Stops sampling; the peaks of the whole run.
    pub async fn stop(self) -> Peaks {
        self.stop.cancel();
        let _ = self.task.await;
        unpoisoned(&self.peaks).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_are_read_from_a_jsz_answer() {
        let body = br#"{"server_id":"N1","memory":0,"streams":3,"consumers":7,"messages":10}"#;
        assert_eq!(jsz_consumers(body), Some(7));
        assert_eq!(jsz_consumers(b"<html>"), None);
    }
}
