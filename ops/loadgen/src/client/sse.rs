//! One SSE connection on a plain socket: the request written by hand, the chunked body decoded
//! and the records parsed in place. Or, to an `https://` target, one SSE stream over HTTP/2 on
//! TLS, its records parsed the same way.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use rakuda_testkit::tls::{h2_get_over, Alpn};

use super::chunked::{ChunkError, ChunkedBody};
use super::{
    after_frames, connect_tcp, handle, lock, query, refusal_name, retry_after, SessionEnd,
    SharedTally, Target,
};
use crate::marker::now_us;
use crate::tally::Tally;

/// A base URL the client cannot connect to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("SSE load needs an http:// URL, not {0}")]
    NotHttp(String),
    #[error("a subscriber needs an http:// or https:// URL, not {0}")]
    NotHttpOrHttps(String),
    #[error("{0} is HTTPS: the client needs the CA to trust (`Target::tls`)")]
    NoCa(String),
}

/// `host:port` and the path prefix of an `http://` base URL.
pub(crate) fn host_and_prefix(base_url: &str) -> Result<(&str, &str), UrlError> {
    match split_base(base_url) {
        Ok((false, host, prefix)) => Ok((host, prefix)),
        _ => Err(UrlError::NotHttp(base_url.to_owned())),
    }
}

/// Whether a base URL is `https://`, its `host:port` and its path prefix.
pub(crate) fn split_base(base_url: &str) -> Result<(bool, &str, &str), UrlError> {
    let (tls, rest) = match base_url.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (
            false,
            base_url
                .strip_prefix("http://")
                .ok_or_else(|| UrlError::NotHttpOrHttps(base_url.to_owned()))?,
        ),
    };
    Ok(match rest.find('/') {
        Some(slash) => (tls, &rest[..slash], &rest[slash..]),
        None => (tls, rest, ""),
    })
}

/// Most bytes of a response head (and of an error body) read before giving up.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One SSE connection on a plain socket: the request written by hand, the chunked body decoded
/// and the records parsed in place. reqwest's per-chunk and per-record allocations cost more
/// than the gateway's whole delivery at 500k deliveries/s, which made the load generator the
/// bottleneck it was measuring.
pub(super) async fn session(
    target: &Target,
    url: &str,
    gateway: usize,
    tally: &SharedTally,
    stop: &CancellationToken,
) -> SessionEnd {
    let (host, prefix) = match split_base(url) {
        Ok((true, host, prefix)) => {
            return h2_session(target, (url, host, prefix), gateway, tally, stop).await
        }
        Ok((false, host, prefix)) => (host, prefix),
        Err(error) => return SessionEnd::failed(error.to_string()),
    };
    let cursor = lock(tally).cursor.clone();
    let mut stream = tokio::select! {
        _ = stop.cancelled() => return SessionEnd::Stopped,
        stream = connect_tcp(host, target.source, target.idle_timeout) => match stream {
            Ok(stream) => stream,
            Err(error) => return SessionEnd::unreachable(format!("connect: {error}")),
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
        return SessionEnd::unreachable(format!("send request: {error}"));
    }

    let mut input = BytesMut::with_capacity(16 * 1024);
    let (status, chunked, length, wait) = loop {
        match read_more(&mut stream, &mut input, target.idle_timeout, stop).await {
            Read::Stopped => return SessionEnd::Stopped,
            Read::Bytes => {}
            Read::Ended(why) => {
                return SessionEnd::unreachable(format!("before the response: {why}"))
            }
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
                let wait = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("retry-after"))
                    .and_then(|h| retry_after(h.value));
                let status = response.code.unwrap_or(0);
                input.advance(head);
                break (status, chunked, length, wait);
            }
            Ok(httparse::Status::Partial) if input.len() < MAX_HEAD_BYTES => continue,
            Ok(httparse::Status::Partial) => {
                return SessionEnd::failed("response head too large".into())
            }
            Err(error) => return SessionEnd::failed(format!("bad response head: {error}")),
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
        let body = &input[..input.len().min(want)];
        lock(tally).refused(&refusal_name(status, body));
        let body = String::from_utf8_lossy(body).into_owned();
        return SessionEnd::refused(status, format!("HTTP {status}: {body}"), wait);
    }

    let mut resets_seen = {
        let mut tally = lock(tally);
        tally.connected_to(gateway, cursor.is_some());
        tally.resets.len()
    };
    let mut body = ChunkedBody::new(chunked);
    let mut payload = BytesMut::with_capacity(16 * 1024);
    loop {
        let ended = match consume(&mut body, &mut input, &mut payload, tally) {
            Ok(ended) => ended,
            Err(error) => return SessionEnd::Ended(format!("bad chunked body: {error}")),
        };
        after_frames(target, url, tally, &mut resets_seen);
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

/// One SSE stream over HTTPS with HTTP/2, as browsers reach a deployment behind nginx: the TLS
/// handshake offers only `h2`, so a stream that opens is an HTTP/2 one. `base` is the base URL,
/// its `host:port` and its path prefix.
async fn h2_session(
    target: &Target,
    base: (&str, &str, &str),
    gateway: usize,
    tally: &SharedTally,
    stop: &CancellationToken,
) -> SessionEnd {
    let (url, host, prefix) = base;
    let Some(tls) = &target.tls else {
        return SessionEnd::failed(UrlError::NoCa(url.to_owned()).to_string());
    };
    let cursor = lock(tally).cursor.clone();
    let path = format!("{prefix}/api/realtime/events{}", query(target, None));
    let mut headers = vec![("accept", "text/event-stream")];
    if let Some(key) = &target.api_key {
        headers.push(("x-api-key", key.as_str()));
    }
    if let Some(cursor) = &cursor {
        headers.push(("last-event-id", cursor.as_str()));
    }
    let open = async {
        let stream = connect_tcp(host, target.source, target.idle_timeout)
            .await
            .map_err(|error| SessionEnd::unreachable(format!("connect: {error}")))?;
        let _ = stream.set_nodelay(true);
        let stream = tls
            .handshake(stream, Alpn::H2)
            .await
            .map_err(|error| SessionEnd::unreachable(format!("TLS: {error}")))?;
        match tokio::time::timeout(target.idle_timeout, h2_get_over(stream, &path, &headers)).await
        {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(SessionEnd::unreachable(format!("request: {error}"))),
            Err(_) => Err(SessionEnd::unreachable("no response in time".into())),
        }
    };
    let mut response = tokio::select! {
        _ = stop.cancelled() => return SessionEnd::Stopped,
        response = open => match response {
            Ok(response) => response,
            Err(end) => return end,
        },
    };
    if response.status != 200 {
        // An error: its (small) body says why.
        let status = response.status;
        let wait = response
            .headers
            .get("retry-after")
            .and_then(|value| retry_after(value.as_bytes()));
        let body = tokio::time::timeout(Duration::from_secs(2), response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        lock(tally).refused(&refusal_name(status, body.as_bytes()));
        return SessionEnd::refused(status, format!("HTTP {status}: {body}"), wait);
    }

    let mut resets_seen = {
        let mut tally = lock(tally);
        tally.connected_to(gateway, cursor.is_some());
        tally.resets.len()
    };
    let mut input = BytesMut::with_capacity(16 * 1024);
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return SessionEnd::Stopped,
            chunk = tokio::time::timeout(target.idle_timeout, response.chunk()) => chunk,
        };
        match chunk {
            Err(_) => return SessionEnd::Ended("idle timeout".into()),
            Ok(None) => return SessionEnd::Ended("closed by server".into()),
            Ok(Some(Err(error))) => return SessionEnd::Ended(format!("read: {error}")),
            Ok(Some(Ok(bytes))) => input.extend_from_slice(&bytes),
        }
        // One clock reading and one lock per chunk, as on the plain path.
        let handled = handle_records_in(&mut lock(tally), &input, now_us());
        input.advance(handled);
        after_frames(target, url, tally, &mut resets_seen);
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
) -> Result<bool, ChunkError> {
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
                // The least wait before reconnecting, which the gateway jitters per client.
                b"retry" => {
                    if let Some(ms) = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                    {
                        tally.retry_hint_ms = Some(ms);
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(tally.retry_hint_ms, Some(3000));
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
        assert_eq!(
            split_base("https://127.0.0.1:8443/edge"),
            Ok((true, "127.0.0.1:8443", "/edge"))
        );
        assert_eq!(
            split_base("http://127.0.0.1:8088"),
            Ok((false, "127.0.0.1:8088", ""))
        );
        assert!(split_base("ws://x").is_err());
    }
}
