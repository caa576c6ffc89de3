//! One subscriber, SSE or WebSocket, that stays connected: when its stream ends it reconnects
//! with its last cursor (`Last-Event-ID` / `lastEventId`), as the browser client does, and
//! tallies every frame.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::marker::{events_in_frame_into, now_us};
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
                Transport::Sse => sse_session(&target, &tally, &stop).await,
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

/// `{"id":"<id>","event":"<event>","data":<data>}`, the shape the gateway writes every event
/// and heartbeat in, split without a JSON parse (anything else returns `None` and is parsed).
fn split_ws_frame(text: &str) -> Option<(&str, &str, &str)> {
    let rest = text.strip_prefix("{\"id\":\"")?;
    let (id, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(",\"event\":\"")?;
    let (event, rest) = rest.split_once('"')?;
    let data = rest.strip_prefix(",\"data\":")?.strip_suffix('}')?;
    Some((id, event, data))
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

/// `host:port` and the path prefix of an `http://` base URL.
fn host_and_prefix(base_url: &str) -> Result<(&str, &str), String> {
    let rest = base_url
        .strip_prefix("http://")
        .ok_or_else(|| format!("SSE load needs an http:// URL, not {base_url}"))?;
    Ok(match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    })
}

/// Most bytes of a response head (and of an error body) read before giving up.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One SSE connection on a plain socket: the request written by hand, the chunked body decoded
/// and the records parsed in place. reqwest's per-chunk and per-record allocations cost more
/// than the gateway's whole delivery at 500k deliveries/s, which made the load generator the
/// bottleneck it was measuring.
async fn sse_session(target: &Target, tally: &SharedTally, stop: &CancellationToken) -> SessionEnd {
    let (host, prefix) = match host_and_prefix(&target.base_url) {
        Ok(parts) => parts,
        Err(error) => return SessionEnd::Failed(error),
    };
    let cursor = lock(tally).cursor.clone();
    let mut stream = tokio::select! {
        _ = stop.cancelled() => return SessionEnd::Stopped,
        stream = TcpStream::connect(host) => match stream {
            Ok(stream) => stream,
            Err(error) => return SessionEnd::Failed(format!("connect: {error}")),
        },
    };
    let _ = stream.set_nodelay(true);
    let mut request = format!(
        "GET {prefix}/api/realtime/events{} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n",
        query(target, None)
    );
    if let Some(key) = &target.api_key {
        request.push_str(&format!("X-API-Key: {key}\r\n"));
    }
    if let Some(cursor) = &cursor {
        request.push_str(&format!("Last-Event-ID: {cursor}\r\n"));
    }
    request.push_str("\r\n");
    if let Err(error) = stream.write_all(request.as_bytes()).await {
        return SessionEnd::Failed(format!("send request: {error}"));
    }

    let mut input = BytesMut::with_capacity(16 * 1024);
    let (status, chunked, length) = loop {
        match read_more(&mut stream, &mut input, target.idle_timeout, stop).await {
            Read::Stopped => return SessionEnd::Stopped,
            Read::Bytes => {}
            Read::Ended(why) => return SessionEnd::Failed(format!("before the response: {why}")),
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&input) {
            Ok(httparse::Status::Complete(head)) => {
                let header = |name: &str| {
                    response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
                };
                let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
                let length = header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
                let status = response.code.unwrap_or(0);
                input.advance(head);
                break (status, chunked, length);
            }
            Ok(httparse::Status::Partial) if input.len() < MAX_HEAD_BYTES => continue,
            Ok(httparse::Status::Partial) => {
                return SessionEnd::Failed("response head too large".into())
            }
            Err(error) => return SessionEnd::Failed(format!("bad response head: {error}")),
        }
    };
    if status != 200 {
        // An error: its (small) body says why.
        let want = length.unwrap_or(MAX_HEAD_BYTES).min(MAX_HEAD_BYTES);
        while input.len() < want {
            match read_more(&mut stream, &mut input, Duration::from_secs(2), stop).await {
                Read::Bytes => {}
                _ => break,
            }
        }
        let body = String::from_utf8_lossy(&input[..input.len().min(want)]).into_owned();
        return SessionEnd::Failed(format!("HTTP {status}: {body}"));
    }

    lock(tally).connected();
    let mut body = ChunkedBody::new(chunked);
    let mut payload = BytesMut::with_capacity(16 * 1024);
    loop {
        let ended = match consume(&mut body, &mut input, &mut payload, tally) {
            Ok(ended) => ended,
            Err(error) => return SessionEnd::Ended(format!("bad chunked body: {error}")),
        };
        if ended {
            return SessionEnd::Ended("closed by server".into());
        }
        match read_more(&mut stream, &mut input, target.idle_timeout, stop).await {
            Read::Stopped => return SessionEnd::Stopped,
            Read::Bytes => {}
            Read::Ended(why) => return SessionEnd::Ended(why),
        }
    }
}

enum Read {
    Bytes,
    Stopped,
    Ended(String),
}

async fn read_more(
    stream: &mut TcpStream,
    input: &mut BytesMut,
    idle: Duration,
    stop: &CancellationToken,
) -> Read {
    if input.capacity() - input.len() < 4096 {
        input.reserve(16 * 1024);
    }
    tokio::select! {
        _ = stop.cancelled() => Read::Stopped,
        read = tokio::time::timeout(idle, stream.read_buf(input)) => match read {
            Err(_) => Read::Ended("idle timeout".into()),
            Ok(Ok(0)) => Read::Ended("closed by server".into()),
            Ok(Ok(_)) => Read::Bytes,
            Ok(Err(error)) => Read::Ended(format!("read: {error}")),
        },
    }
}

/// Decodes `Transfer-Encoding: chunked` incrementally (or passes a close-delimited body on).
struct ChunkedBody {
    chunked: bool,
    state: ChunkState,
}

enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Done,
}

impl ChunkedBody {
    fn new(chunked: bool) -> ChunkedBody {
        ChunkedBody {
            chunked,
            state: ChunkState::Size,
        }
    }

    /// When the next chunk (not the last, empty one) is wholly in `input`: the length of its
    /// size line and of its data.
    fn whole_chunk_ahead(&self, input: &[u8]) -> Option<(usize, usize)> {
        if !self.chunked || !matches!(self.state, ChunkState::Size) {
            return None;
        }
        let newline = memchr::memchr(b'\n', input)?;
        let line = input[..newline].strip_suffix(b"\r")?;
        let hex = line.split(|byte| *byte == b';').next()?;
        let size = usize::from_str_radix(std::str::from_utf8(hex).ok()?.trim(), 16).ok()?;
        let head = newline + 1;
        (size > 0 && input.len() >= head + size + 2).then_some((head, size))
    }

    /// Moves decoded bytes from `input` to `out`; true once the last chunk was read.
    fn decode(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, String> {
        if !self.chunked {
            out.extend_from_slice(input);
            input.clear();
            return Ok(false);
        }
        loop {
            match self.state {
                ChunkState::Done => return Ok(true),
                ChunkState::Size => {
                    let Some(line_end) = memchr::memchr(b'\n', input)
                        .filter(|at| *at > 0)
                        .map(|at| at - 1)
                    else {
                        return Ok(false);
                    };
                    let line = std::str::from_utf8(&input[..line_end])
                        .map_err(|_| "chunk size is not text".to_owned())?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(hex, 16)
                        .map_err(|_| format!("bad chunk size {hex:?}"))?;
                    input.advance(line_end + 2);
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(remaining) => {
                    if input.is_empty() {
                        return Ok(false);
                    }
                    let take = remaining.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input.advance(take);
                    self.state = if take == remaining {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(remaining - take)
                    };
                }
                ChunkState::DataEnd => {
                    if input.len() < 2 {
                        return Ok(false);
                    }
                    input.advance(2);
                    self.state = ChunkState::Size;
                }
            }
        }
    }
}

/// Where the first `\n\n` starts (memchr for the newline, then a look at the next byte: no
/// searcher to build per call).
fn record_end(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = memchr::memchr(b'\n', &bytes[from..]) {
        let at = from + at;
        match bytes.get(at + 1) {
            Some(b'\n') => return Some(at),
            Some(_) => from = at + 1,
            None => return None,
        }
    }
    None
}

/// Handles what one read brought: whole chunks straight from `input` (the gateway writes whole
/// records per chunk), anything else decoded into `payload` first. One clock reading and one
/// lock per read: every frame in it arrived at the same moment. True once the body ended.
fn consume(
    body: &mut ChunkedBody,
    input: &mut BytesMut,
    payload: &mut BytesMut,
    tally: &SharedTally,
) -> Result<bool, String> {
    let received_us = now_us();
    let mut tally = lock(tally);
    while payload.is_empty() {
        let Some((head, size)) = body.whole_chunk_ahead(input) else {
            break;
        };
        let data = &input[head..head + size];
        let handled = handle_records_in(&mut tally, data, received_us);
        // A record split across chunks (never written so by the gateway) waits in `payload`.
        payload.extend_from_slice(&data[handled..]);
        input.advance(head + size + 2);
    }
    let ended = body.decode(input, payload)?;
    let handled = handle_records_in(&mut tally, payload, received_us);
    payload.advance(handled);
    Ok(ended)
}

/// Handles every complete SSE record in `bytes`; returns how many bytes they took.
fn handle_records_in(tally: &mut Tally, bytes: &[u8], received_us: u64) -> usize {
    let mut consumed = 0;
    while let Some(end) = record_end(&bytes[consumed..]) {
        let record = &bytes[consumed..consumed + end];
        let mut id = None;
        let mut event = None;
        let mut data: &[u8] = &[];
        // Lines found with memchr: a byte-at-a-time split over the (long) data line was a sixth
        // of the load generator's CPU at fanout-5k (perf).
        let mut line_start = 0;
        while line_start <= record.len() {
            let line_end = memchr::memchr(b'\n', &record[line_start..])
                .map_or(record.len(), |at| line_start + at);
            let line = &record[line_start..line_end];
            line_start = line_end + 1;
            let (field, value) = match memchr::memchr(b':', line) {
                Some(colon) => (&line[..colon], &line[colon + 1..]),
                None => (line, &[][..]),
            };
            let value = value.strip_prefix(b" ").unwrap_or(value);
            match field {
                b"id" => id = std::str::from_utf8(value).ok(),
                b"event" => event = std::str::from_utf8(value).ok(),
                // The gateway writes one data line per record.
                b"data" => data = value,
                _ => {}
            }
        }
        if let Some(event) = event {
            handle(tally, event, id, data, received_us);
        }
        consumed += end + 2;
    }
    consumed
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
                let received_us = now_us();
                let mut tally = lock(tally);
                if let Some((id, event, data)) = split_ws_frame(text.as_str()) {
                    handle(&mut tally, event, Some(id), data.as_bytes(), received_us);
                    continue;
                }
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
                return SessionEnd::Ended(format!("close {code}"));
            }
            // Pings are answered by tungstenite itself when the stream is polled.
            Ok(Some(Ok(_))) => {
                let _ = socket.flush().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_split_anywhere_decodes_to_the_same_bytes() {
        let wire = b"5\r\nhello\r\nb;ext=1\r\n, SSE world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut body = ChunkedBody::new(true);
            let mut out = BytesMut::new();
            let mut input = BytesMut::from(&wire[..split]);
            // The last-chunk line ends the body even before its final CRLF arrives.
            let ended_early = body.decode(&mut input, &mut out).expect("first part");
            assert_eq!(ended_early, split >= wire.len() - 2, "split at {split}");
            input.extend_from_slice(&wire[split..]);
            assert!(body.decode(&mut input, &mut out).expect("second part"));
            assert_eq!(&out[..], b"hello, SSE world", "split at {split}");
        }
        let mut input = BytesMut::from(&b"zz\r\n"[..]);
        assert!(ChunkedBody::new(true)
            .decode(&mut input, &mut BytesMut::new())
            .is_err());
    }

    #[test]
    fn records_are_handled_in_place_and_a_partial_one_waits() {
        let tally = SharedTally::default();
        let mut payload = BytesMut::new();
        let mut input = BytesMut::from(
            &b"retry: 3000\n\nid: 1-7\nevent: heartbeat\ndata: {\"instance\":\"gw-1\",\"seq\":7}\n\nid: 1-8\nevent: ORDER_RECEIVED\ndata: {\"type\":\"ORDER_RECEIVED\",\"seq\":8,\"payload\":{\"data\":{\"lg_n\":0}}}\n\nid: 1-9\nevent: ORD"[..],
        );
        lock(&tally).connected();
        let ended = consume(
            &mut ChunkedBody::new(false),
            &mut input,
            &mut payload,
            &tally,
        );
        assert_eq!(ended, Ok(false));
        assert_eq!(&payload[..], b"id: 1-9\nevent: ORD");
        let tally = lock(&tally);
        assert_eq!(tally.instance(), Some("gw-1"));
        assert_eq!(tally.cursor.as_deref(), Some("1-8"));
        assert!(tally.seqs.contains(&8) && tally.marks.contains(&0));
        assert_eq!(tally.frames, 1);
    }

    /// `data` as one HTTP chunk.
    fn chunk(data: &[u8]) -> Vec<u8> {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out
    }

    #[test]
    fn a_chunked_stream_read_in_any_two_pieces_gives_the_same_tally() {
        let event = |seq: u64| {
            format!(
                "id: 1-{seq}\nevent: ORDER_RECEIVED\ndata: {{\"type\":\"ORDER_RECEIVED\",\"seq\":{seq},\"payload\":{{\"data\":{{\"lg_n\":{seq},\"lg_sent_us\":5}}}}}}\n\n"
            )
        };
        let mut wire = chunk(b"retry: 3000\n\n");
        // Two whole records in one chunk, as the gateway writes a batch of queued frames.
        wire.extend(chunk(format!("{}{}", event(1), event(2)).as_bytes()));
        // A record split across chunks: legal HTTP, handled through the slow path.
        let third = event(3);
        let (head, tail) = third.as_bytes().split_at(20);
        wire.extend(chunk(head));
        wire.extend(chunk(tail));
        wire.extend_from_slice(b"0\r\n\r\n");
        for split in 0..wire.len() {
            let tally = SharedTally::default();
            lock(&tally).connected();
            let mut body = ChunkedBody::new(true);
            let mut payload = BytesMut::new();
            let mut input = BytesMut::from(&wire[..split]);
            consume(&mut body, &mut input, &mut payload, &tally).expect("first read");
            input.extend_from_slice(&wire[split..]);
            let ended = consume(&mut body, &mut input, &mut payload, &tally);
            assert_eq!(ended, Ok(true), "split at {split}");
            let tally = lock(&tally);
            assert_eq!(tally.frames, 3, "split at {split}");
            assert_eq!(tally.seqs.len(), 3, "split at {split}");
            assert_eq!(tally.duplicates, 0, "split at {split}");
            assert_eq!(tally.cursor.as_deref(), Some("1-3"), "split at {split}");
            assert!(payload.is_empty(), "split at {split}");
        }
    }

    #[test]
    fn websocket_frames_split_without_a_parse() {
        let frame =
            r#"{"id":"17-8","event":"ORDER_RECEIVED","data":{"type":"ORDER_RECEIVED","seq":8}}"#;
        assert_eq!(
            split_ws_frame(frame),
            Some((
                "17-8",
                "ORDER_RECEIVED",
                r#"{"type":"ORDER_RECEIVED","seq":8}"#
            ))
        );
        assert_eq!(split_ws_frame(r#"{"event":"pong","data":{}}"#), None);
    }

    #[test]
    fn base_urls_split_into_host_and_prefix() {
        assert_eq!(
            host_and_prefix("http://127.0.0.1:8088"),
            Ok(("127.0.0.1:8088", ""))
        );
        assert_eq!(
            host_and_prefix("http://127.0.0.1:8088/edge"),
            Ok(("127.0.0.1:8088", "/edge"))
        );
        assert!(host_and_prefix("https://x").is_err());
    }
}
