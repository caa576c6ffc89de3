//! One subscriber, SSE or WebSocket, that stays connected: when its stream ends it reconnects
//! with its last cursor (`Last-Event-ID` / `lastEventId`), as the browser client does, and
//! tallies every frame.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rakuda_simulator::sse::SseParser;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::marker::{events_in_frame, now_us};
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
pub async fn run(
    target: Arc<Target>,
    http: reqwest::Client,
    tally: SharedTally,
    stop: CancellationToken,
) {
    run_kickable(target, http, tally, stop, None).await
}

/// Runs one subscriber until `stop`; each change of `kick` drops its connection on the spot
/// (as a network blip would) so that it reconnects with its cursor at once.
pub async fn run_kickable(
    target: Arc<Target>,
    http: reqwest::Client,
    tally: SharedTally,
    stop: CancellationToken,
    mut kick: Option<watch::Receiver<u64>>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = async {
            match target.transport {
                Transport::Sse => sse_session(&target, &http, &tally, &stop).await,
                Transport::Ws => ws_session(&target, &tally, &stop).await,
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

/// Handles one frame's `event` name, `id` and `data`; false if the frame was unreadable.
fn handle(tally: &SharedTally, event: &str, id: Option<&str>, data: &[u8]) {
    let mut tally = lock(tally);
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
                Ok(reset) => tally.resets.push(reset.reason),
                Err(_) => tally.bad_frames += 1,
            }
        }
        "subscribed" | "pong" | "error" => {}
        _ => match events_in_frame(data) {
            Ok((events, represented)) => tally.record_frame(&events, represented, now_us()),
            Err(_) => tally.bad_frames += 1,
        },
    }
    if let Some(id) = id {
        if tally.cursor.as_deref() != Some(id) {
            tally.cursor = Some(id.to_owned());
        }
    }
}

async fn sse_session(
    target: &Target,
    http: &reqwest::Client,
    tally: &SharedTally,
    stop: &CancellationToken,
) -> SessionEnd {
    let cursor = lock(tally).cursor.clone();
    let url = format!(
        "{}/api/realtime/events{}",
        target.base_url,
        query(target, None)
    );
    let mut request = http.get(url).header("Accept", "text/event-stream");
    if let Some(key) = &target.api_key {
        request = request.header("X-API-Key", key);
    }
    if let Some(cursor) = &cursor {
        request = request.header("Last-Event-ID", cursor);
    }
    let response = tokio::select! {
        _ = stop.cancelled() => return SessionEnd::Stopped,
        response = request.send() => response,
    };
    let response = match response {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            return SessionEnd::Failed(format!("HTTP {status}: {body}"));
        }
        Err(error) => return SessionEnd::Failed(format!("connect: {error}")),
    };
    lock(tally).connected();
    let mut body = response.bytes_stream();
    let mut parser = SseParser::new();
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return SessionEnd::Stopped,
            chunk = tokio::time::timeout(target.idle_timeout, body.next()) => chunk,
        };
        match chunk {
            Err(_) => return SessionEnd::Ended("idle timeout".into()),
            Ok(None) => return SessionEnd::Ended("closed by server".into()),
            Ok(Some(Err(error))) => return SessionEnd::Ended(format!("read: {error}")),
            Ok(Some(Ok(bytes))) => {
                parser.push(&bytes);
                while let Some(record) = parser.next_record() {
                    if let Some(event) = &record.event {
                        handle(tally, event, record.id.as_deref(), record.data.as_bytes());
                    }
                }
            }
        }
    }
}

async fn ws_session(target: &Target, tally: &SharedTally, stop: &CancellationToken) -> SessionEnd {
    let cursor = lock(tally).cursor.clone();
    let base = target
        .base_url
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    let url = format!("{base}/api/realtime/ws{}", query(target, cursor.as_deref()));
    let mut request = match url.into_client_request() {
        Ok(request) => request,
        Err(error) => return SessionEnd::Failed(format!("bad URL: {error}")),
    };
    if let Some(key) = &target.api_key {
        match HeaderValue::from_str(key) {
            Ok(value) => {
                request.headers_mut().insert("X-API-Key", value);
            }
            Err(_) => return SessionEnd::Failed("the API key is not a valid header value".into()),
        }
    }
    // Small buffers: a load run holds thousands of these (tungstenite defaults to 128 KiB).
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0);
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let socket = tokio::select! {
        _ = stop.cancelled() => return SessionEnd::Stopped,
        socket = connect => socket,
    };
    let mut socket = match socket {
        Ok((socket, _)) => socket,
        Err(error) => return SessionEnd::Failed(format!("handshake: {error}")),
    };
    lock(tally).connected();
    #[derive(serde::Deserialize)]
    struct WsFrame<'a> {
        #[serde(borrow)]
        id: Option<&'a str>,
        #[serde(borrow)]
        event: &'a str,
        #[serde(borrow)]
        data: &'a serde_json::value::RawValue,
    }
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => {
                let _ = socket.close(None).await;
                return SessionEnd::Stopped;
            }
            message = tokio::time::timeout(target.idle_timeout, socket.next()) => message,
        };
        match message {
            Err(_) => return SessionEnd::Ended("idle timeout".into()),
            Ok(None) => return SessionEnd::Ended("closed by server".into()),
            Ok(Some(Err(error))) => return SessionEnd::Ended(format!("read: {error}")),
            Ok(Some(Ok(Message::Text(text)))) => {
                match serde_json::from_str::<WsFrame>(text.as_str()) {
                    Ok(frame) => handle(tally, frame.event, frame.id, frame.data.get().as_bytes()),
                    Err(_) => lock(tally).bad_frames += 1,
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                let code = frame.map(|frame| u16::from(frame.code)).unwrap_or(1005);
                return SessionEnd::Ended(format!("close {code}"));
            }
            // Pings are answered by tungstenite itself when the stream is polled.
            Ok(Some(Ok(_))) => {
                let _ = socket.flush().await;
            }
        }
    }
}
