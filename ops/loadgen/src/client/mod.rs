//! One subscriber, SSE or WebSocket, that stays connected: when its stream ends it reconnects
//! with its last cursor (`Last-Event-ID` / `lastEventId`), as the browser client does, and
//! tallies every frame.
//!
//! - `sse` — one SSE connection on a plain socket, read in place; or over HTTPS with HTTP/2.
//! - `chunked` — `Transfer-Encoding: chunked` decoded incrementally, for `sse`.
//! - `ws` — one WebSocket connection, plain or over TLS.
//!
//! An `https://` target (a secured deployment behind nginx, as browsers reach it) is trusted
//! with the CA in [`Target::tls`] (`rakuda_testkit::tls`): SSE then goes over HTTP/2 and the
//! WebSocket over TLS. The fleet test (gateway/tests/integration/deployment/) connects so.

mod chunked;
pub mod http;
mod sse;
mod ws;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rakuda_testkit::tls::TlsClient;
use tokio::net::{TcpSocket, TcpStream};
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

/// The web client's first reconnect delay (`DEFAULT_BACKOFF_INITIAL_MS` in
/// web/src/client/RealtimeClient.ts).
pub const WEB_BACKOFF_INITIAL: Duration = Duration::from_millis(3_000);
/// The web client's longest reconnect delay (`DEFAULT_BACKOFF_MAX_MS`).
pub const WEB_BACKOFF_MAX: Duration = Duration::from_millis(30_000);

/// A `Retry-After` is whole seconds; the web client waits it plus up to this much at random
/// (`RETRY_AFTER_JITTER_MS` in web/src/client/spread.ts), so clients told the same number do
/// not come back in the same instant.
pub const RETRY_AFTER_JITTER: Duration = Duration::from_millis(1_000);

/// How many gateways one attempt tries at most: the shipped nginx passes a request on to the
/// next gateway up to `proxy_next_upstream_tries 3` times (ops/nginx/realtime.conf).
pub const NEXT_GATEWAY_TRIES: usize = 3;

/// How long a subscriber waits before it reconnects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// The load generator's own, to measure the gateway and not the wait: `reconnect_delay`
    /// after a stream that was open; after failed attempts from 100 ms, doubling up to
    /// `max_backoff`, 50–100% of it at random.
    Fast,
    /// As the web client does (`reconnectDelay` in web/src/client/RealtimeClient.ts): attempt
    /// `k` waits a random time in [0, min(max, initial·2^k)] ("full jitter"); `k` starts again
    /// at 0 once a connection carried a heartbeat or an event; a refusal's `Retry-After` is
    /// waited out plus up to [`RETRY_AFTER_JITTER`]. On top of the web client (whose
    /// `EventSource` is closed and reopened by its own backoff), the SSE `retry:` of a stream
    /// that ended is honoured as the protocol asks of an SSE client: at least that long.
    WebClient { initial: Duration, max: Duration },
}

/// The web client's delay before reconnect attempt `attempt` (0-based), `random` in [0, 1):
/// `backoffDelay`, full jitter over a window doubling from `initial` up to `max`.
pub fn web_client_delay(attempt: u32, initial: Duration, max: Duration, random: f64) -> Duration {
    let cap = max.max(initial);
    let ceiling = initial
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(cap)
        .min(cap);
    ceiling.mul_f64(random.clamp(0.0, 1.0))
}

/// The web client's `afterRetryAfter`: at least `retry_after` plus up to
/// [`RETRY_AFTER_JITTER`] when there is one, or `otherwise` when that is longer.
pub fn after_retry_after(
    retry_after: Option<Duration>,
    otherwise: Duration,
    random: f64,
) -> Duration {
    match retry_after {
        None => otherwise,
        Some(wait) => otherwise.max(wait + RETRY_AFTER_JITTER.mul_f64(random.clamp(0.0, 1.0))),
    }
}

/// Called with a subscriber's tally and the gateway it is on.
pub type OnReset = dyn Fn(&SharedTally, &str) + Send + Sync;

/// What a subscriber calls when a `reset` arrives (a dashboard refetches its summary and
/// snapshot then).
#[derive(Clone)]
pub struct ResetHook(pub Arc<OnReset>);

impl std::fmt::Debug for ResetHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetHook")
    }
}

/// Where and how a subscriber connects.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:8080` (a gateway or the load balancer).
    pub base_url: String,
    /// Every gateway of a fleet, when the client balances itself over them (no load balancer
    /// in front): it starts on the one it is given and, whenever it loses its stream or a
    /// connection attempt fails, tries another at random. Empty: `base_url` only.
    pub gateways: Vec<String>,
    /// The local address to connect from (`127.0.0.2`): one address has about 28,000
    /// ephemeral ports, so a fleet run spreads its clients over several. `None`: the kernel's
    /// choice.
    pub source: Option<IpAddr>,
    pub api_key: Option<String>,
    pub transport: Transport,
    /// `inventory,orders`; `None` for everything the key allows.
    pub channels: Option<String>,
    /// With no frame for this long the connection is presumed dead and reopened (the browser
    /// client uses two heartbeat intervals). Also the limit on connecting and on the response.
    pub idle_timeout: Duration,
    /// [`Backoff::Fast`]: wait before reconnecting after a stream that was open ends.
    pub reconnect_delay: Duration,
    /// [`Backoff::Fast`]: ceiling of the backoff after failed connection attempts.
    pub max_backoff: Duration,
    pub backoff: Backoff,
    pub on_reset: Option<ResetHook>,
    /// Over [`Target::gateways`]: which gateway each attempt tries first, and next. Without
    /// one, a client that lost its gateway tries another at random.
    pub balancer: Option<Arc<Balancer>>,
    /// The CA an `https://` base URL is trusted with; `None` for plain `http://`.
    pub tls: Option<TlsClient>,
}

impl Target {
    pub fn new(base_url: &str, transport: Transport) -> Target {
        Target {
            base_url: base_url.trim_end_matches('/').to_owned(),
            gateways: Vec::new(),
            source: None,
            api_key: None,
            transport,
            channels: None,
            idle_timeout: Duration::from_secs(40),
            reconnect_delay: Duration::from_millis(20),
            max_backoff: Duration::from_secs(2),
            backoff: Backoff::Fast,
            on_reset: None,
            balancer: None,
            tls: None,
        }
    }

    pub fn with_api_key(mut self, key: &str) -> Target {
        self.api_key = Some(key.to_owned());
        self
    }

    /// Trusts `tls`'s CA for an `https://` base URL.
    pub fn with_tls(mut self, tls: TlsClient) -> Target {
        self.tls = Some(tls);
        self
    }

    /// The gateways a client may use: [`Target::gateways`], or else `base_url` alone.
    pub fn urls(&self) -> Vec<&str> {
        if self.gateways.is_empty() {
            vec![self.base_url.as_str()]
        } else {
            self.gateways.iter().map(String::as_str).collect()
        }
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
    fn failed(why: String) -> SessionEnd {
        SessionEnd::Failed {
            why,
            retry_after: None,
            next_gateway: false,
        }
    }

    /// No connection, or no answer on it.
    fn unreachable(why: String) -> SessionEnd {
        SessionEnd::Failed {
            why,
            retry_after: None,
            next_gateway: true,
        }
    }

    /// An HTTP error status before streaming.
    fn refused(status: u16, why: String, retry_after: Option<Duration>) -> SessionEnd {
        SessionEnd::Failed {
            why,
            retry_after,
            next_gateway: matches!(status, 502 | 503),
        }
    }
}

/// Spreads a fleet's clients over its gateways as the shipped nginx does
/// (ops/nginx/nginx.conf): `least_conn`, and a gateway that cannot be reached or answers 502
/// or 503 skipped within the same attempt (`proxy_next_upstream`), so that a reconnecting
/// client lands on a live gateway with room at its first try. It counts the clients of this
/// process only (connecting or connected): the fleet's workers hold equal, interleaved shares
/// of the clients, so each sees the fleet's spread in small.
#[derive(Debug)]
pub struct Balancer {
    held: Vec<std::sync::atomic::AtomicUsize>,
    /// Gateways taken out of rotation (as an orchestrator takes an instance out of its load
    /// balancer before stopping it, and puts it back once `/readyz` answers).
    out: Vec<std::sync::atomic::AtomicBool>,
}

/// One client counted on one gateway while it connects and streams there.
struct Held<'a> {
    balancer: &'a Balancer,
    gateway: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(count) = self.balancer.held.get(self.gateway) {
            count.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Balancer {
    pub fn new(gateways: usize) -> Balancer {
        Balancer {
            held: (0..gateways)
                .map(|_| std::sync::atomic::AtomicUsize::new(0))
                .collect(),
            out: (0..gateways)
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
        }
    }

    /// Puts `gateway` in rotation or takes it out.
    pub fn set_serving(&self, gateway: usize, serving: bool) {
        if let Some(out) = self.out.get(gateway) {
            out.store(!serving, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Clients of this process on each gateway now.
    pub fn held(&self) -> Vec<usize> {
        self.held
            .iter()
            .map(|count| count.load(std::sync::atomic::Ordering::Relaxed))
            .collect()
    }

    /// Every gateway in rotation, from the fewest clients to the most, ties in random order
    /// (all of them if none is in rotation).
    pub fn order(&self) -> Vec<usize> {
        let serving =
            |gateway: &usize| !self.out[*gateway].load(std::sync::atomic::Ordering::Relaxed);
        let mut order: Vec<(usize, u64, usize)> = self
            .held()
            .into_iter()
            .enumerate()
            .map(|(gateway, held)| (held, rand::random::<u64>(), gateway))
            .collect();
        order.sort_unstable();
        let order: Vec<usize> = order.into_iter().map(|(_, _, gateway)| gateway).collect();
        if order.iter().any(serving) {
            order.into_iter().filter(serving).collect()
        } else {
            order
        }
    }

    fn hold(&self, gateway: usize) -> Held<'_> {
        if let Some(count) = self.held.get(gateway) {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Held {
            balancer: self,
            gateway,
        }
    }
}

/// Opens a TCP connection to `host` (`127.0.0.1:8080`), from `source` if given, within
/// `limit`.
async fn connect_tcp(
    host: &str,
    source: Option<IpAddr>,
    limit: Duration,
) -> std::io::Result<TcpStream> {
    let connect = async {
        let Some(source) = source else {
            return TcpStream::connect(host).await;
        };
        let address = tokio::net::lookup_host(host)
            .await?
            .find(|address| address.is_ipv4() == source.is_ipv4())
            .ok_or_else(|| {
                std::io::Error::other(format!("{host} has no address of the family of {source}"))
            })?;
        let socket = if address.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // Bound before connecting, so the kernel takes the ephemeral port from this address's
        // range and not from 127.0.0.1's, which a fleet run would exhaust.
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(address).await
    };
    match tokio::time::timeout(limit, connect).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no connection within {limit:?}"),
        )),
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
    let mut fast_backoff = Duration::from_millis(100);
    let mut attempt = 0u32;
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
        let delay = match target.backoff {
            Backoff::Fast => match ready {
                Some(_) => {
                    fast_backoff = Duration::from_millis(100);
                    target.reconnect_delay
                }
                None => {
                    let delay = fast_backoff.mul_f64(0.5 + rand::random::<f64>() * 0.5);
                    fast_backoff = (fast_backoff * 2).min(target.max_backoff);
                    delay
                }
            },
            Backoff::WebClient { initial, max } => {
                // The web client starts its backoff afresh once a connection carried traffic.
                if ready == Some(true) {
                    attempt = 0;
                }
                let delay = web_client_delay(attempt, initial, max, rand::random::<f64>());
                attempt = attempt.saturating_add(1);
                after_retry_after(retry_after, delay, rand::random::<f64>())
                    .max(retry.unwrap_or_default())
            }
        };
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

/// Calls the target's reset hook if `reset`s arrived since `seen` was last updated.
fn after_frames(target: &Target, url: &str, tally: &SharedTally, seen: &mut usize) {
    if let Some(hook) = &target.on_reset {
        let resets = lock(tally).resets.len();
        if resets > *seen {
            *seen = resets;
            (hook.0)(tally, url);
        }
    }
}

/// `503 connection_rate`: the status and the JSON `error` of a refusal body.
pub(crate) fn refusal_name(status: u16, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Refusal<'a> {
        #[serde(borrow)]
        error: &'a str,
    }
    match serde_json::from_slice::<Refusal>(body) {
        Ok(refusal) => format!("{status} {}", refusal.error),
        Err(_) => status.to_string(),
    }
}

/// A `Retry-After` header in whole seconds (the only form the gateway sends).
fn retry_after(value: &[u8]) -> Option<Duration> {
    std::str::from_utf8(value)
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
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
                    tally.last_reset_us = Some(received_us);
                }
                Err(_) => tally.bad_frames += 1,
            }
        }
        "subscribed" | "pong" | "error" => {}
        _ => {
            let mut events = std::mem::take(&mut tally.scratch);
            match events_in_frame_into(data, &mut events) {
                Ok(represented) => {
                    tally.record_typed_frame(event, &events, represented, received_us)
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_web_client_delay_is_full_jitter_over_a_doubling_window() {
        let (initial, max) = (WEB_BACKOFF_INITIAL, WEB_BACKOFF_MAX);
        // As backoffDelay: the first attempt is spread over [0, 3 s] too.
        assert_eq!(web_client_delay(0, initial, max, 0.0), Duration::ZERO);
        assert_eq!(
            web_client_delay(0, initial, max, 0.5),
            Duration::from_millis(1_500)
        );
        assert_eq!(
            web_client_delay(1, initial, max, 1.0),
            Duration::from_millis(6_000)
        );
        assert_eq!(
            web_client_delay(2, initial, max, 0.25),
            Duration::from_millis(3_000)
        );
        assert_eq!(web_client_delay(10, initial, max, 1.0), max);
        assert_eq!(web_client_delay(40, initial, max, 0.5), max / 2);
    }

    #[test]
    fn a_retry_after_is_waited_out_with_up_to_a_second_more() {
        let wait = Some(Duration::from_secs(3));
        assert_eq!(
            after_retry_after(wait, Duration::from_millis(500), 0.5),
            Duration::from_millis(3_500)
        );
        // A backoff already longer wins.
        assert_eq!(
            after_retry_after(wait, Duration::from_secs(9), 1.0),
            Duration::from_secs(9)
        );
        assert_eq!(
            after_retry_after(None, Duration::from_millis(700), 1.0),
            Duration::from_millis(700)
        );
    }

    #[test]
    fn the_balancer_orders_gateways_by_the_clients_it_holds_on_each() {
        let balancer = Balancer::new(3);
        let _a = balancer.hold(0);
        let _b = balancer.hold(0);
        {
            let _c = balancer.hold(2);
            assert_eq!(balancer.held(), vec![2, 0, 1]);
            assert_eq!(balancer.order(), vec![1, 2, 0]);
        }
        // A client that leaves is no longer counted.
        assert_eq!(balancer.held(), vec![2, 0, 0]);
        assert_eq!(balancer.order()[2], 0);
        // Out of rotation: not offered, unless nothing else is.
        balancer.set_serving(1, false);
        let order = balancer.order();
        assert_eq!(order.len(), 2);
        assert_eq!(order[1], 0);
        for gateway in 0..3 {
            balancer.set_serving(gateway, false);
        }
        assert_eq!(balancer.order().len(), 3);
    }

    #[test]
    fn a_refusal_is_named_by_its_status_and_reason() {
        let body = br#"{"error":"connection_rate","message":"retry later"}"#;
        assert_eq!(refusal_name(503, body), "503 connection_rate");
        assert_eq!(refusal_name(502, b"<html>"), "502");
        assert_eq!(retry_after(b" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(b"Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[tokio::test]
    async fn a_client_socket_is_bound_to_its_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let host = listener.local_addr().expect("address").to_string();
        let source: IpAddr = "127.0.0.3".parse().expect("address");
        let stream = connect_tcp(&host, Some(source), Duration::from_secs(5))
            .await
            .expect("connect from 127.0.0.3");
        let (_, peer) = listener.accept().await.expect("accept");
        assert_eq!(peer.ip(), source);
        assert_eq!(stream.local_addr().expect("local").ip(), source);
    }
}
