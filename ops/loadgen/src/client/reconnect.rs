//! A subscriber that stays connected: each attempt tries its gateways in turn (as a load
//! balancer would pass the request on), and when the stream ends or no gateway takes it, the
//! client waits as its backoff says and tries again with its last cursor.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::backoff::Waits;
use super::balancer::NEXT_GATEWAY_TRIES;
use super::{lock, sse, ws, SharedTally, Target, Transport};

/// How a connection attempt or stream ended.
pub(super) enum SessionEnd {
    /// The stream was open and then ended; reconnect soon.
    Ended(String),
    /// It never opened (refused, HTTP error, handshake failed); back off, at least as long as
    /// the refusal's `Retry-After` if it had one.
    Failed {
        why: String,
        retry_after: Option<Duration>,
        /// What nginx's `proxy_next_upstream error timeout http_502 http_503` would pass on to
        /// the next gateway within the same request: the gateway could not be reached, did not
        /// answer, or answered 502 or 503.
        next_gateway: bool,
    },
    Stopped,
}

impl SessionEnd {
    pub(super) fn failed(why: String) -> SessionEnd {
        SessionEnd::Failed {
            why,
            retry_after: None,
            next_gateway: false,
        }
    }

    /// No connection, or no answer on it.
    pub(super) fn unreachable(why: String) -> SessionEnd {
        SessionEnd::Failed {
            why,
            retry_after: None,
            next_gateway: true,
        }
    }

    /// An HTTP error status before streaming.
    pub(super) fn refused(status: u16, why: String, retry_after: Option<Duration>) -> SessionEnd {
        SessionEnd::Failed {
            why,
            retry_after,
            next_gateway: matches!(status, 502 | 503),
        }
    }
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
    kick: Option<watch::Receiver<u64>>,
) {
    run_from(target, tally, stop, kick, 0).await
}

/// Runs one subscriber until `stop`, starting on gateway `home` of [`Target::urls`] (a fleet
/// client), as [`run_kickable`] otherwise.
pub async fn run_from(
    target: Arc<Target>,
    tally: SharedTally,
    stop: CancellationToken,
    mut kick: Option<watch::Receiver<u64>>,
    home: usize,
) {
    let urls = target.urls();
    let mut at = home % urls.len();
    let mut first = true;
    let mut waits = Waits::default();
    loop {
        // The gateways this attempt may try, in order: as a load balancer would pass the
        // request on. The first connection starts on the client's own gateway.
        let candidates: Vec<usize> = match &target.balancer {
            Some(balancer) => {
                let mut order = balancer.order();
                if first {
                    order.retain(|gateway| *gateway != at);
                    order.insert(0, at);
                }
                order.truncate(NEXT_GATEWAY_TRIES);
                order
            }
            None => vec![at],
        };
        first = false;
        let attempt_ends = async {
            let mut end = SessionEnd::Stopped;
            for (index, gateway) in candidates.iter().enumerate() {
                at = *gateway;
                let _held = target.balancer.as_ref().map(|b| b.hold(at));
                let url = urls[at];
                end = match target.transport {
                    Transport::Sse => sse::session(&target, url, at, &tally, &stop).await,
                    Transport::Ws => ws::session(&target, url, at, &tally, &stop).await,
                };
                let last = index + 1 == candidates.len();
                match &end {
                    SessionEnd::Failed {
                        why,
                        next_gateway: true,
                        ..
                    } if !last => {
                        // Passed on within the attempt, as nginx does: counted, not waited for.
                        let mut tally = lock(&tally);
                        tally.passed_on += 1;
                        tally.last_error = Some(why.clone());
                    }
                    _ => break,
                }
            }
            end
        };
        let end = tokio::select! {
            end = attempt_ends => end,
            _ = kicked(&mut kick) => {
                lock(&tally).ended("kicked".into());
                continue;
            }
        };
        // What the server asked for: the SSE `retry:` of a stream that ended, or a refusal's
        // `Retry-After`.
        let (ready, retry, retry_after) = match end {
            SessionEnd::Stopped => {
                lock(&tally).ended("stopped".into());
                return;
            }
            SessionEnd::Ended(why) => {
                let mut tally = lock(&tally);
                tally.ended(why);
                let ready = tally.instance().is_some();
                let retry = tally.retry_hint_ms.take().map(Duration::from_millis);
                (Some(ready), retry, None)
            }
            SessionEnd::Failed {
                why, retry_after, ..
            } => {
                let mut tally = lock(&tally);
                tally.failed_connects += 1;
                tally.last_error = Some(why);
                (None, None, retry_after)
            }
        };
        let delay = waits.next(&target, ready, retry, retry_after);
        if urls.len() > 1 && target.balancer.is_none() {
            // Lost this gateway (or it refused): another one, at random.
            let other = rand::random_range(0..urls.len() - 1);
            at = if other >= at { other + 1 } else { other };
        }
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
