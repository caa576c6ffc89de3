//! SSE requests served straight on the client socket, without hyper's connection.
//!
//! hyper keeps a read buffer (grown to 16 KiB) and an 8 KiB write buffer for the whole life of
//! an HTTP/1 connection. An SSE stream lives for hours, writes a few hundred bytes now and then
//! and never reads again, so those buffers were most of a dashboard's cost (19 KiB of the 26
//! KiB per idle connection, measured with massif and `just bench`). Here the request head is
//! read with a small buffer that is freed once parsed, the request goes through the same axum
//! router as every other request (auth, limits, CORS, metrics, errors: nothing is duplicated),
//! and the response is written by hand: the head, then each body chunk in one write.
//!
//! Which connections come here is decided by peeking at the first bytes: `GET
//! /api/realtime/events`. Everything else (WebSocket upgrades, status, metrics, the dashboard)
//! goes to axum as before. Peeking happens in a task per connection, so a client that sends its
//! request slowly never holds up `accept`.

use std::io::{self, IoSlice, Write};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::{BufMut, BytesMut};
use futures::StreamExt;
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::app::App;

/// The request line prefix served here.
const SSE_REQUEST: &[u8] = b"GET /api/realtime/events";
/// How long a new connection may take to send enough of its request line to be classified;
/// after that it goes to hyper, which has its own header timeout handling.
const CLASSIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the whole request head may take to arrive.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The head buffer starts this small and grows only for unusually large requests.
const INITIAL_HEAD_BYTES: usize = 1024;
/// Headers a request may have.
const MAX_HEADERS: usize = 64;
/// Connections classified as "not SSE" waiting for axum to take them.
const HANDOFF_QUEUE: usize = 1024;

/// Sits between the TCP listener and axum: SSE requests are served here, the rest handed on.
pub struct SseSocketListener<L> {
    inner: L,
    app: Arc<App>,
    router: Router,
    tasks: TaskTracker,
    handoff_tx: mpsc::Sender<(TcpStream, std::net::SocketAddr)>,
    handoff_rx: mpsc::Receiver<(TcpStream, std::net::SocketAddr)>,
}

impl<L> SseSocketListener<L>
where
    L: axum::serve::Listener<Io = TcpStream, Addr = std::net::SocketAddr>,
{
    /// `tasks` owns every connection served here; `run` waits for it when shutting down.
    pub fn new(inner: L, app: Arc<App>, router: Router, tasks: TaskTracker) -> Self {
        let (handoff_tx, handoff_rx) = mpsc::channel(HANDOFF_QUEUE);
        SseSocketListener {
            inner,
            app,
            router,
            tasks,
            handoff_tx,
            handoff_rx,
        }
    }
}

impl<L> axum::serve::Listener for SseSocketListener<L>
where
    L: axum::serve::Listener<Io = TcpStream, Addr = std::net::SocketAddr>,
{
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                // Classified connections first: they have waited longest.
                biased;
                Some(handed) = self.handoff_rx.recv() => return handed,
                (stream, addr) = self.inner.accept() => {
                    let app = self.app.clone();
                    let router = self.router.clone();
                    let handoff = self.handoff_tx.clone();
                    self.tasks.spawn(async move {
                        if is_sse_request(&stream).await {
                            serve(stream, app, router).await;
                        } else {
                            // The queue is bounded; waiting here only holds this connection.
                            let _ = handoff.send((stream, addr)).await;
                        }
                    });
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Peeks (without consuming) until the request line shows whether this is an SSE request.
async fn is_sse_request(stream: &TcpStream) -> bool {
    let mut buffer = [0u8; SSE_REQUEST.len() + 1];
    let classify = async {
        loop {
            let seen = match stream.peek(&mut buffer).await {
                Ok(0) | Err(_) => return false,
                Ok(seen) => seen,
            };
            let prefix = seen.min(SSE_REQUEST.len());
            if buffer[..prefix] != SSE_REQUEST[..prefix] {
                return false;
            }
            if seen > SSE_REQUEST.len() {
                // `/api/realtime/events` and not `/api/realtime/eventsfoo`.
                return matches!(buffer[SSE_REQUEST.len()], b' ' | b'?');
            }
            // A partial request line: wait for more bytes before peeking again.
            if stream.readable().await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(CLASSIFY_TIMEOUT, classify)
        .await
        .unwrap_or(false)
}

/// Reads the request head, runs it through the router, writes the response.
async fn serve(mut stream: TcpStream, app: Arc<App>, router: Router) {
    let limit = app.config.max_uri_bytes + app.config.max_header_bytes + 1024;
    let request = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, limit)).await {
        Ok(Ok(request)) => request,
        Ok(Err(HeadError::Closed)) | Err(_) => return,
        Ok(Err(HeadError::TooLarge)) => {
            let error = app.reject(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!("the request head is over {limit} bytes"),
            );
            let _ = write_response(&mut stream, error.into_response(), Version::HTTP_11).await;
            return;
        }
        Ok(Err(HeadError::Malformed(reason))) => {
            let error = app.reject(StatusCode::BAD_REQUEST, "bad_request", reason);
            let _ = write_response(&mut stream, error.into_response(), Version::HTTP_11).await;
            return;
        }
    };
    let version = request.version();
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if let Err(error) = write_response(&mut stream, response, version).await {
        tracing::debug!(%error, "SSE client connection ended");
    }
    let _ = stream.shutdown().await;
}

enum HeadError {
    Closed,
    TooLarge,
    Malformed(String),
}

/// Reads up to the blank line ending the head; the body (an SSE GET has none) is not read.
async fn read_head(stream: &mut TcpStream, limit: usize) -> Result<Request<Body>, HeadError> {
    let mut head = BytesMut::with_capacity(INITIAL_HEAD_BYTES);
    loop {
        if head.len() >= limit {
            return Err(HeadError::TooLarge);
        }
        if head.capacity() == head.len() {
            head.reserve(head.len().min(limit - head.len()).max(INITIAL_HEAD_BYTES));
        }
        let read = stream
            .read_buf(&mut head)
            .await
            .map_err(|_| HeadError::Closed)?;
        if read == 0 {
            return Err(HeadError::Closed);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&head) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(_)) => return to_request(&parsed),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(error) => return Err(HeadError::Malformed(format!("bad request head: {error}"))),
        }
    }
}

fn to_request(parsed: &httparse::Request<'_, '_>) -> Result<Request<Body>, HeadError> {
    let malformed = |what: &str| HeadError::Malformed(format!("bad request head: {what}"));
    let method = Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
        .map_err(|_| malformed("method"))?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(parsed.path.unwrap_or("/"))
        .version(version);
    for header in parsed.headers.iter() {
        let name =
            HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| malformed("header name"))?;
        let value = HeaderValue::from_bytes(header.value).map_err(|_| malformed("header value"))?;
        builder = builder.header(name, value);
    }
    builder
        .body(Body::empty())
        .map_err(|error| HeadError::Malformed(format!("bad request head: {error}")))
}

/// Writes the response: its head, then the body. A body of known length (an error) goes with
/// `Content-Length`; a stream with chunked encoding (close-delimited for HTTP/1.0), each chunk
/// in a single write. Ends when the body ends or the client goes away.
async fn write_response(
    stream: &mut TcpStream,
    response: Response,
    version: Version,
) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    let length = HttpBody::size_hint(&body).exact();
    let chunked = length.is_none() && version == Version::HTTP_11;

    let mut head = BytesMut::with_capacity(512);
    head.put_slice(b"HTTP/1.1 ");
    head.put_slice(parts.status.as_str().as_bytes());
    head.put_u8(b' ');
    head.put_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    head.put_slice(b"\r\n");
    for (name, value) in &parts.headers {
        // Framing is this writer's business; the connection always closes after the response.
        if matches!(
            name.as_str(),
            "connection" | "content-length" | "transfer-encoding"
        ) {
            continue;
        }
        head.put_slice(name.as_str().as_bytes());
        head.put_slice(b": ");
        head.put_slice(value.as_bytes());
        head.put_slice(b"\r\n");
    }
    if let Some(length) = length {
        head.put_slice(format!("content-length: {length}\r\n").as_bytes());
    } else if chunked {
        head.put_slice(b"transfer-encoding: chunked\r\n");
    }
    head.put_slice(b"connection: close\r\n\r\n");
    send_all(stream, &[&head]).await?;
    drop(head);

    let (mut reader, writer) = stream.split();
    let socket: &TcpStream = writer.as_ref();
    let mut chunks = body.into_data_stream();
    let mut probe = [0u8; 64];
    loop {
        let chunk = tokio::select! {
            chunk = chunks.next() => chunk,
            // The client never sends anything after its request; a read that returns means it
            // closed the connection (or broke protocol): stop streaming to it at once instead
            // of at the next heartbeat.
            read = reader.read(&mut probe) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => continue,
            },
        };
        let data = match chunk {
            None => break,
            Some(Ok(data)) => data,
            Some(Err(error)) => return Err(io::Error::other(error)),
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            let header = ChunkHeader::new(data.len());
            send_all(socket, &[header.as_bytes(), &data, b"\r\n"]).await?;
        } else {
            send_all(socket, &[&data]).await?;
        }
    }
    if chunked {
        send_all(socket, &[b"0\r\n\r\n"]).await?;
    }
    Ok(())
}

/// A chunk's `<hex length>\r\n`, formatted on the stack: a connection writes one per event, and
/// nothing a connection does per event allocates.
struct ChunkHeader {
    bytes: [u8; 2 * size_of::<usize>() + 2],
    len: usize,
}

impl ChunkHeader {
    fn new(length: usize) -> ChunkHeader {
        let mut bytes = [0u8; 2 * size_of::<usize>() + 2];
        let mut cursor = io::Cursor::new(&mut bytes[..]);
        // Cannot fail: the array holds every usize in hex plus CRLF.
        let _ = write!(cursor, "{length:x}\r\n");
        let len = cursor.position() as usize;
        ChunkHeader { bytes, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Parts one `sendmsg` gathers; a longer list goes in several calls.
const MAX_PARTS_PER_SEND: usize = 4;

/// Sends every byte of `parts`, in order, in one `sendmsg` unless the socket buffer is full (then
/// the rest follows as it drains).
///
/// `sendmsg`, not tokio's `writev`: a write on a socket file goes through the VFS layer first
/// (`vfs_writev`, `fdget_pos`, fsnotify), about 0.4 µs more per call on this machine (6.2–6.55
/// against 5.8–6.06 µs for a 300-byte frame to each of 1,000 loopback sockets), and one write per
/// connection per event is most of what a fan-out costs. `MSG_NOSIGNAL`: a client that has gone
/// is an error to return, never a SIGPIPE.
async fn send_all(socket: &TcpStream, parts: &[&[u8]]) -> io::Result<()> {
    let mut sent = Progress::default();
    sent.advance(parts, 0);
    while sent.part < parts.len() {
        let attempt = socket.try_io(Interest::WRITABLE, || {
            let mut slices = [IoSlice::new(&[]); MAX_PARTS_PER_SEND];
            let pending = parts[sent.part..].iter().take(MAX_PARTS_PER_SEND);
            let mut count = 0;
            for (index, part) in pending.enumerate() {
                let from = if index == 0 { sent.offset } else { 0 };
                slices[index] = IoSlice::new(&part[from..]);
                count += 1;
            }
            SockRef::from(socket).send_vectored_with_flags(&slices[..count], libc::MSG_NOSIGNAL)
        });
        match attempt {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => sent.advance(parts, written),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// How far [`send_all`] has got: the first part not wholly sent, and how much of it was.
#[derive(Default)]
struct Progress {
    part: usize,
    offset: usize,
}

impl Progress {
    /// Moves past `written` more bytes, and past any parts that are empty.
    fn advance(&mut self, parts: &[&[u8]], mut written: usize) {
        while let Some(part) = parts.get(self.part) {
            let left = part.len() - self.offset;
            if written < left {
                self.offset += written;
                return;
            }
            written -= left;
            self.part += 1;
            self.offset = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair on loopback: (the gateway's end, the client's end).
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (accepted.expect("accept").0, client.expect("connect"))
    }

    #[test]
    fn a_chunk_header_is_the_hex_length_and_crlf() {
        assert_eq!(ChunkHeader::new(9).as_bytes(), b"9\r\n");
        assert_eq!(ChunkHeader::new(300).as_bytes(), b"12c\r\n");
        assert_eq!(ChunkHeader::new(0).as_bytes(), b"0\r\n");
        assert_eq!(
            ChunkHeader::new(usize::MAX).as_bytes(),
            format!("{:x}\r\n", usize::MAX).as_bytes()
        );
    }

    #[test]
    fn progress_moves_across_parts_and_skips_empty_ones() {
        let parts: [&[u8]; 4] = [b"", b"abc", b"", b"de"];
        let mut progress = Progress::default();
        progress.advance(&parts, 0);
        assert_eq!((progress.part, progress.offset), (1, 0));
        progress.advance(&parts, 2);
        assert_eq!((progress.part, progress.offset), (1, 2));
        progress.advance(&parts, 2);
        assert_eq!((progress.part, progress.offset), (3, 1));
        progress.advance(&parts, 1);
        assert_eq!(progress.part, parts.len());
    }

    #[tokio::test]
    async fn send_all_delivers_every_part_in_order_through_a_full_socket_buffer() {
        let (server, mut client) = socket_pair().await;
        // Far more than the socket buffers hold, in more parts than one sendmsg gathers, so the
        // send meets WouldBlock and partial writes until the reader catches up.
        let big: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let parts: Vec<&[u8]> = vec![b"head:", &big[..3_000_000], b"", &big[3_000_000..], b":end"];
        let expected: Vec<u8> = parts.concat();
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.expect("read");
            received
        });
        tokio::time::timeout(Duration::from_secs(20), send_all(&server, &parts))
            .await
            .expect("send in time")
            .expect("send");
        drop(server);
        let received = tokio::time::timeout(Duration::from_secs(20), reader)
            .await
            .expect("read in time")
            .expect("reader task");
        assert_eq!(received.len(), expected.len());
        assert!(
            received == expected,
            "bytes arrived changed or out of order"
        );
    }

    #[tokio::test]
    async fn send_all_to_a_client_that_is_gone_is_an_error_not_a_signal() {
        let (server, client) = socket_pair().await;
        drop(client);
        // The first send may still be accepted; the peer's RST then fails a later one.
        let mut failed = None;
        for _ in 0..100 {
            if let Err(error) = send_all(&server, &[b"data: x\n\n"]).await {
                failed = Some(error);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let error = failed.expect("sending to a closed peer fails");
        assert!(
            matches!(
                error.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "unexpected error kind: {error}"
        );
    }
}
