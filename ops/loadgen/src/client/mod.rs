//! One subscriber, SSE or WebSocket, that stays connected: when its stream ends it reconnects
//! with its last cursor (`Last-Event-ID` / `lastEventId`), as the browser client does, and
//! tallies every frame.
//!
//! - `sse` — one SSE connection on a plain socket, read in place.
//! - `chunked` — `Transfer-Encoding: chunked` decoded incrementally, for `sse`.
//! - `ws` — one WebSocket connection.

mod chunked;
mod sse;
mod ws;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::marker::events_in_frame_into;
use crate::tally::Tally;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Sse,
    Ws,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }
}

/// Where and how a subscriber connects.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:8080` (a gateway or the load balancer).
    pub base_url: String,
    pub api_key: Option<String>,
    pub transport: Transport,
    /// `inventory,orders`; `None` for everything the key allows.
    pub channels: Option<String>,
    /// With no frame for this long the connection is presumed dead and reopened (the browser
    /// client uses two heartbeat intervals).
    pub idle_timeout: Duration,
    /// Wait before reconnecting after a stream that was open ends.
    pub reconnect_delay: Duration,
    /// Ceiling of the backoff after failed connection attempts.
    pub max_backoff: Duration,
}

impl Target {
    pub fn new(base_url: &str, transport: Transport) -> Target {
        Target {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: None,
            transport,
            channels: None,
            idle_timeout: Duration::from_secs(40),
            reconnect_delay: Duration::from_millis(20),
            max_backoff: Duration::from_secs(2),
        }
    }

    pub fn with_api_key(mut self, key: &str) -> Target {
        self.api_key = Some(key.to_owned());
        self
    }
}

/// A subscriber's shared tally: the subscriber task writes, the caller reads.
pub type SharedTally = Arc<Mutex<Tally>>;

/// Locks a tally; a panic elsewhere does not hide what was recorded.
pub fn lock(tally: &SharedTally) -> MutexGuard<'_, Tally> {
    tally
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a connection attempt or stream ended.
enum SessionEnd {
    /// The stream was open and then ended; reconnect soon.
    Ended(String),
    /// It never opened (refused, HTTP error, handshake failed); back off.
    Failed(String),
    Stopped,
}

/// Runs one subscriber until `stop`.
pub async fn run(target: Arc<Target>, tally: SharedTally, stop: CancellationToken) {
    run_kickable(target, tally, stop, None).await
}

/// Runs one subscriber until `stop`; each change of `kick` drops its connection on the spot
/// (as a network blip would) so that it reconnects with its cursor at once.
pub async fn run_kickable(
    target: Arc<Target>,
    tally: SharedTally,
    stop: CancellationToken,
    mut kick: Option<watch::Receiver<u64>>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = async {
            match target.transport {
                Transport::Sse => sse::session(&target, &tally, &stop).await,
                Transport::Ws => ws::session(&target, &tally, &stop).await,
            }
        };
        let end = tokio::select! {
            end = session => end,
            _ = kicked(&mut kick) => {
                lock(&tally).ended("kicked".into());
                continue;
            }
        };
        let delay = match end {
            SessionEnd::Stopped => {
                lock(&tally).ended("stopped".into());
                return;
            }
            SessionEnd::Ended(why) => {
                lock(&tally).ended(why);
                backoff = Duration::from_millis(100);
                target.reconnect_delay
            }
            SessionEnd::Failed(why) => {
                let mut tally = lock(&tally);
                tally.failed_connects += 1;
                tally.last_error = Some(why);
                let delay = backoff.mul_f64(0.5 + rand::random::<f64>() * 0.5);
                backoff = (backoff * 2).min(target.max_backoff);
                delay
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Resolves when `kick` changes; never when there is none (or its sender is gone).
async fn kicked(kick: &mut Option<watch::Receiver<u64>>) {
    if let Some(receiver) = kick {
        if receiver.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

fn query(target: &Target, cursor: Option<&str>) -> String {
    let mut params = Vec::new();
    if let Some(channels) = &target.channels {
        params.push(format!("channels={channels}"));
    }
    if let Some(cursor) = cursor {
        params.push(format!("lastEventId={cursor}"));
    }
    if params.is_empty() {
        String::new()
    } else {
        format!("?{}", params.join("&"))
    }
}

/// Handles one frame's `event` name, `id` and `data`, received at `received_us`.
fn handle(tally: &mut Tally, event: &str, id: Option<&str>, data: &[u8], received_us: u64) {
    match event {
        "heartbeat" => {
            #[derive(serde::Deserialize)]
            struct Heartbeat {
                instance: String,
            }
            match serde_json::from_slice::<Heartbeat>(data) {
                Ok(heartbeat) => tally.saw_instance(&heartbeat.instance),
                Err(_) => tally.bad_frames += 1,
            }
        }
        "reset" => {
            #[derive(serde::Deserialize)]
            struct Reset {
                reason: String,
            }
            match serde_json::from_slice::<Reset>(data) {
                Ok(reset) => {
                    tally.resets.push(reset.reason);
                    tally.resets_after_marks.push(tally.marks.len());
                }
                Err(_) => tally.bad_frames += 1,
            }
        }
        "subscribed" | "pong" | "error" => {}
        _ => {
            let mut events = std::mem::take(&mut tally.scratch);
            match events_in_frame_into(data, &mut events) {
                Ok(represented) => tally.record_frame(&events, represented, received_us),
                Err(_) => tally.bad_frames += 1,
            }
            tally.scratch = events;
        }
    }
    if let Some(id) = id {
        match &mut tally.cursor {
            Some(cursor) if cursor == id => {}
            Some(cursor) => {
                cursor.clear();
                cursor.push_str(id);
            }
            None => tally.cursor = Some(id.to_owned()),
        }
    }
}
