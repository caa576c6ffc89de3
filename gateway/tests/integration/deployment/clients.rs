//! The fleet test's subscribers, as browsers reach a secured deployment: SSE over HTTPS with
//! HTTP/2, WebSocket over TLS (HTTP/1.1 upgrade), both through nginx and trusting only the
//! fleet's CA. Each reconnects with its cursor like the browser client and records what it saw
//! in a load-generator [`Tally`], so the assertions are the ones the plain-HTTP clients had.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rakuda_loadgen::client::{lock, SharedTally};
use rakuda_loadgen::marker::{events_in_frame, now_us};
use rakuda_loadgen::tally::{Session, Tally};
use rakuda_loadgen::Transport;
use rakuda_testkit::tls::{h2_get, websocket, TlsClient};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// With no frame for this long the connection is presumed dead and reopened (heartbeats come
/// every second in the test).
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
const RECONNECT_DELAY: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub struct Target {
    pub tls: TlsClient,
    /// nginx's HTTPS address.
    pub addr: SocketAddr,
    pub api_key: String,
    pub transport: Transport,
}

enum End {
    /// The stream was open and then ended; reconnect soon.
    Ended(String),
    /// It never opened; back off.
    Failed(String),
    Stopped,
}

/// Runs one subscriber until `stop`.
pub async fn run(target: Target, tally: SharedTally, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let end = match target.transport {
            Transport::Sse => sse_session(&target, &tally, &stop).await,
            Transport::Ws => ws_session(&target, &tally, &stop).await,
        };
        let delay = match end {
            End::Stopped => {
                ended(&tally, "stopped".into());
                return;
            }
            End::Ended(why) => {
                ended(&tally, why);
                backoff = Duration::from_millis(100);
                RECONNECT_DELAY
            }
            End::Failed(why) => {
                let mut tally = lock(&tally);
                tally.failed_connects += 1;
                tally.last_error = Some(why);
                let delay = backoff.mul_f64(0.5 + rand::random::<f64>() * 0.5);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                delay
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One SSE stream over HTTP/2 (the TLS handshake offers only `h2`, so a stream that opens is
/// an HTTP/2 one).
async fn sse_session(target: &Target, tally: &SharedTally, stop: &CancellationToken) -> End {
    let cursor = lock(tally).cursor.clone();
    let mut headers = vec![
        ("x-api-key", target.api_key.as_str()),
        ("accept", "text/event-stream"),
    ];
    if let Some(cursor) = &cursor {
        headers.push(("last-event-id", cursor.as_str()));
    }
    let response = tokio::select! {
        _ = stop.cancelled() => return End::Stopped,
        response = h2_get(&target.tls, target.addr, "/api/realtime/events", &headers) => response,
    };
    let mut response = match response {
        Ok(response) if response.status == 200 => response,
        Ok(response) => {
            let status = response.status;
            let body = response.text().await.unwrap_or_default();
            return End::Failed(format!("HTTP {status}: {body}"));
        }
        Err(error) => return End::Failed(error.to_string()),
    };
    connected(tally);
    let mut input: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return End::Stopped,
            chunk = tokio::time::timeout(IDLE_TIMEOUT, response.chunk()) => chunk,
        };
        let bytes = match chunk {
            Err(_) => return End::Ended("idle timeout".into()),
            Ok(None) => return End::Ended("closed by server".into()),
            Ok(Some(Err(error))) => return End::Ended(format!("read: {error}")),
            Ok(Some(Ok(bytes))) => bytes,
        };
        input.extend_from_slice(&bytes);
        let received_us = now_us();
        let mut tally = lock(tally);
        let mut consumed = 0;
        while let Some(end) = find(&input[consumed..], b"\n\n") {
            let record = &input[consumed..consumed + end];
            let (mut id, mut event, mut data) = (None, None, &[][..]);
            for line in record.split(|byte| *byte == b'\n') {
                let (field, value) = match line.iter().position(|byte| *byte == b':') {
                    Some(colon) => (&line[..colon], &line[colon + 1..]),
                    None => (line, &[][..]),
                };
                let value = value.strip_prefix(b" ").unwrap_or(value);
                match field {
                    b"id" => id = std::str::from_utf8(value).ok(),
                    b"event" => event = std::str::from_utf8(value).ok(),
                    b"data" => data = value,
                    _ => {}
                }
            }
            if let Some(event) = event {
                handle(&mut tally, event, id, data, received_us);
            }
            consumed += end + 2;
        }
        input.drain(..consumed);
    }
}

/// One WebSocket over TLS, the cursor as `lastEventId`.
async fn ws_session(target: &Target, tally: &SharedTally, stop: &CancellationToken) -> End {
    let cursor = lock(tally).cursor.clone();
    let path = match &cursor {
        Some(cursor) => format!("/api/realtime/ws?lastEventId={cursor}"),
        None => "/api/realtime/ws".to_owned(),
    };
    let headers = [("x-api-key", target.api_key.as_str())];
    let socket = tokio::select! {
        _ = stop.cancelled() => return End::Stopped,
        socket = websocket(&target.tls, target.addr, &path, &headers) => socket,
    };
    let mut socket = match socket {
        Ok(socket) => socket,
        Err(error) => return End::Failed(error.to_string()),
    };
    connected(tally);
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
                return End::Stopped;
            }
            message = tokio::time::timeout(IDLE_TIMEOUT, socket.next()) => message,
        };
        match message {
            Err(_) => return End::Ended("idle timeout".into()),
            Ok(None) => return End::Ended("closed by server".into()),
            Ok(Some(Err(error))) => return End::Ended(format!("read: {error}")),
            Ok(Some(Ok(Message::Text(text)))) => {
                let received_us = now_us();
                let mut tally = lock(tally);
                match serde_json::from_str::<WsFrame>(text.as_str()) {
                    Ok(frame) => handle(
                        &mut tally,
                        frame.event,
                        frame.id,
                        frame.data.get().as_bytes(),
                        received_us,
                    ),
                    Err(_) => tally.bad_frames += 1,
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                let code = frame.map(|frame| u16::from(frame.code)).unwrap_or(1005);
                return End::Ended(format!("close {code}"));
            }
            // Pings are answered by tungstenite when the stream is polled and flushed.
            Ok(Some(Ok(_))) => {
                let _ = futures::SinkExt::flush(&mut socket).await;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn connected(tally: &SharedTally) {
    lock(tally).sessions.push(Session {
        connected_at: Instant::now(),
        instance: None,
        ended_at: None,
        end: None,
    });
}

fn ended(tally: &SharedTally, why: String) {
    if let Some(session) = lock(tally).sessions.last_mut() {
        if session.ended_at.is_none() {
            session.ended_at = Some(Instant::now());
            session.end = Some(why);
        }
    }
}

/// One frame's `event`, `id` and `data`, as the load generator's clients record it.
fn handle(tally: &mut Tally, event: &str, id: Option<&str>, data: &[u8], received_us: u64) {
    match event {
        "heartbeat" => {
            #[derive(serde::Deserialize)]
            struct Heartbeat {
                instance: String,
            }
            match serde_json::from_slice::<Heartbeat>(data) {
                Ok(heartbeat) => {
                    if let Some(session) = tally.sessions.last_mut() {
                        session.instance.get_or_insert(heartbeat.instance);
                    }
                }
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
                    let marks = tally.marks.len();
                    tally.resets_after_marks.push(marks);
                }
                Err(_) => tally.bad_frames += 1,
            }
        }
        "subscribed" | "pong" | "error" => {}
        _ => match events_in_frame(data) {
            Ok((events, represented)) => tally.record_frame(&events, represented, received_us),
            Err(_) => tally.bad_frames += 1,
        },
    }
    if let Some(id) = id {
        tally.cursor = Some(id.to_owned());
    }
}
