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
use super::frames::{after_frames, handle, opened};
use super::head::{get_request, HeadError, ResponseHead, MAX_HEAD_BYTES};
use super::reconnect::SessionEnd;
use super::refusal::{refused, retry_after};
use super::target::{query, split_base, UrlError};
use super::tcp::connect_tcp;
use super::{lock, SharedTally, Target};
use crate::marker::now_us;
use crate::tally::Tally;

/// The path of the SSE stream under a base URL's `prefix`, with the target's query.
fn events_path(target: &Target, prefix: &str) -> String {
    format!("{prefix}/api/realtime/events{}", query(target, None))
}

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
    let mut headers = vec![("Accept", "text/event-stream")];
    if let Some(key) = &target.api_key {
        headers.push(("X-API-Key", key.as_str()));
    }
    if let Some(cursor) = &cursor {
        headers.push(("Last-Event-ID", cursor.as_str()));
    }
    let request = get_request(&events_path(target, prefix), host, &headers);
    if let Err(error) = stream.write_all(request.as_bytes()).await {
        return SessionEnd::unreachable(format!("send request: {error}"));
    }

    let mut input = BytesMut::with_capacity(16 * 1024);
    let head = loop {
        match read_more(&mut stream, &mut input, target.idle_timeout, stop).await {
            Read::Stopped => return SessionEnd::Stopped,
            Read::Bytes => {}
            Read::Ended(why) => {
                return SessionEnd::unreachable(format!("before the response: {why}"))
            }
        }
        match ResponseHead::take(&mut input) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(HeadError::TooLarge) => {
                return SessionEnd::failed("response head too large".into())
            }
            Err(HeadError::Malformed(error)) => {
                return SessionEnd::failed(format!("bad response head: {error}"))
            }
        }
    };
    if head.status != 200 {
        // An error: its (small) body says why.
        let want = head.length.unwrap_or(MAX_HEAD_BYTES).min(MAX_HEAD_BYTES);
        while input.len() < want {
            match read_more(&mut stream, &mut input, Duration::from_secs(2), stop).await {
                Read::Bytes => {}
                _ => break,
            }
        }
        let body = &input[..input.len().min(want)];
        return refused(tally, head.status, body, head.retry_after);
    }

    let mut resets_seen = opened(tally, gateway, cursor.is_some());
    let mut body = ChunkedBody::new(head.chunked);
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
    let path = events_path(target, prefix);
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
        return refused(tally, status, body.as_bytes(), wait);
    }

    let mut resets_seen = opened(tally, gateway, cursor.is_some());
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
}
