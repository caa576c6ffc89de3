//! One plain HTTP/1.1 GET on its own connection, from a chosen source address: what a fleet
//! run's clients need for `/api/realtime/summary` and `/api/realtime/snapshot` (the gateway
//! closes every such connection after its answer), and what the run's monitor reads
//! `/metrics` and NATS's `/jsz` with.

use std::net::IpAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::chunked::ChunkedBody;
use super::head::{get_request, HeadError, ResponseHead};
use super::target::host_and_prefix;
use super::tcp::connect_tcp;

/// A whole answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// `Retry-After`, in whole seconds, if the answer had one.
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// A GET that got no whole answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Url(#[from] super::target::UrlError),
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad response head: {0}")]
    Head(String),
    #[error("bad chunked body: {0}")]
    Chunked(#[from] super::chunked::ChunkError),
    #[error("the answer is over {0} bytes")]
    TooLarge(usize),
    #[error("the connection closed before the answer was whole")]
    Cut,
    #[error("no whole answer within {0:?}")]
    TimedOut(Duration),
}

/// `GET {base_url}{path}` (path with its query) with `X-API-Key` if given, from `source` if
/// given; the whole answer within `limit`, its body at most `max_body` bytes.
pub async fn get(
    base_url: &str,
    path: &str,
    api_key: Option<&str>,
    source: Option<IpAddr>,
    limit: Duration,
    max_body: usize,
) -> Result<Response, HttpError> {
    match tokio::time::timeout(
        limit,
        exchange(base_url, path, api_key, source, limit, max_body),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(HttpError::TimedOut(limit)),
    }
}

async fn exchange(
    base_url: &str,
    path: &str,
    api_key: Option<&str>,
    source: Option<IpAddr>,
    limit: Duration,
    max_body: usize,
) -> Result<Response, HttpError> {
    let (host, prefix) = host_and_prefix(base_url)?;
    let mut stream = connect_tcp(host, source, limit)
        .await
        .map_err(HttpError::Connect)?;
    let mut headers = vec![("Connection", "close")];
    if let Some(key) = api_key {
        headers.push(("X-API-Key", key));
    }
    let request = get_request(&format!("{prefix}{path}"), host, &headers);
    stream.write_all(request.as_bytes()).await?;

    let mut input = BytesMut::with_capacity(8 * 1024);
    let head = loop {
        if stream.read_buf(&mut input).await? == 0 {
            return Err(HttpError::Cut);
        }
        match ResponseHead::take(&mut input) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(HeadError::TooLarge) => return Err(HttpError::Head("over 64 KiB".into())),
            Err(HeadError::Malformed(error)) => return Err(HttpError::Head(error.to_string())),
        }
    };
    let length = head.length;

    let mut body = BytesMut::new();
    if head.chunked {
        let mut decoder = ChunkedBody::new(true);
        loop {
            if decoder.decode(&mut input, &mut body)? {
                break;
            }
            if body.len() > max_body {
                return Err(HttpError::TooLarge(max_body));
            }
            if stream.read_buf(&mut input).await? == 0 {
                return Err(HttpError::Cut);
            }
        }
    } else {
        body.extend_from_slice(&input);
        loop {
            if length.is_some_and(|length| body.len() >= length) {
                break;
            }
            if body.len() > max_body {
                return Err(HttpError::TooLarge(max_body));
            }
            if stream.read_buf(&mut body).await? == 0 {
                // Without a length the body runs to the close; with one, a close before it
                // is a cut answer.
                if length.is_some() {
                    return Err(HttpError::Cut);
                }
                break;
            }
        }
        if let Some(length) = length {
            body.truncate(length);
        }
    }
    Ok(Response {
        status: head.status,
        retry_after: head.retry_after,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// Serves `answer` once, after reading the request head; returns the request.
    async fn serve_once(listener: TcpListener, answer: &'static [u8]) -> String {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = socket.read(&mut buffer).await.expect("read");
            request.extend_from_slice(&buffer[..read]);
        }
        socket.write_all(answer).await.expect("write");
        String::from_utf8_lossy(&request).into_owned()
    }

    #[tokio::test]
    async fn a_chunked_answer_and_a_refusal_with_retry_after_are_read_whole() {
        for (answer, status, body, wait) in [
            (
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n"[..],
                200,
                &b"{\"a\": 1}"[..],
                None,
            ),
            (
                &b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 7\r\nRetry-After: 2\r\n\r\n{\"x\":1}"[..],
                503,
                &b"{\"x\":1}"[..],
                Some(Duration::from_secs(2)),
            ),
        ] {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let base = format!("http://{}", listener.local_addr().expect("addr"));
            let server = tokio::spawn(serve_once(listener, answer));
            let response = get(
                &base,
                "/api/realtime/summary",
                Some("key-123"),
                Some("127.0.0.2".parse().expect("ip")),
                Duration::from_secs(5),
                1024,
            )
            .await
            .expect("answer");
            assert_eq!(response.status, status);
            assert_eq!(response.body, body);
            assert_eq!(response.retry_after, wait);
            let request = server.await.expect("server");
            assert!(request.starts_with("GET /api/realtime/summary HTTP/1.1\r\n"));
            assert!(request.contains("X-API-Key: key-123\r\n"), "{request}");
        }
    }
}
