//! Reading a request head off a socket, within bounds: at most the head limit in memory, the
//! URI and header limits checked, the same answer for every request whichever path serves it.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Version};
use bytes::{Bytes, BytesMut};
use rakuda_schema::RequestRefusal;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The head buffer starts this small and grows only for unusually large requests.
const INITIAL_HEAD_BYTES: usize = 1024;
/// Headers a request may have.
pub const MAX_HEADERS: usize = 64;

/// How large a request head may be.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// `MAX_URI_BYTES`: a longer request URI gets 414.
    pub max_uri_bytes: usize,
    /// `MAX_HEADER_BYTES`: more in header names and values gets 431.
    pub max_header_bytes: usize,
}

impl HeadLimits {
    /// The most a head may take in memory: the URI, the headers, and room for the request
    /// line's method and version and each header's `: ` and CRLF.
    pub fn buffer_bytes(&self) -> usize {
        self.max_uri_bytes + self.max_header_bytes + 1024 + MAX_HEADERS * 4
    }
}

/// A request head that passed every check.
pub struct Head {
    pub request: Request<Body>,
    /// Everything read from the socket so far: the head and any body bytes after it.
    pub read: Bytes,
}

/// Why no request came out of the socket.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("the client closed the connection before its request head was complete")]
    Closed,
    #[error("the request head is over {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request has more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("the request URI is {length} bytes, over the limit of {limit} (MAX_URI_BYTES)")]
    UriTooLong { length: usize, limit: usize },
    #[error(
        "the request headers are {length} bytes, over the limit of {limit} (MAX_HEADER_BYTES)"
    )]
    HeadersTooLarge { length: usize, limit: usize },
    #[error("bad request head: {0}")]
    Malformed(String),
}

impl HeadError {
    /// The answer a client gets for it; `None` when there is nobody to answer.
    pub fn refusal(&self) -> Option<(StatusCode, RequestRefusal)> {
        match self {
            HeadError::Closed => None,
            HeadError::TooLarge { .. }
            | HeadError::TooManyHeaders
            | HeadError::HeadersTooLarge { .. } => Some((
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                RequestRefusal::HeadersTooLarge,
            )),
            HeadError::UriTooLong { .. } => {
                Some((StatusCode::URI_TOO_LONG, RequestRefusal::UriTooLong))
            }
            HeadError::Malformed(_) => Some((StatusCode::BAD_REQUEST, RequestRefusal::BadRequest)),
        }
    }
}

/// Reads up to the blank line ending the head and checks it.
pub async fn read_head(stream: &mut TcpStream, limits: HeadLimits) -> Result<Head, HeadError> {
    let limit = limits.buffer_bytes();
    let mut read = BytesMut::with_capacity(INITIAL_HEAD_BYTES);
    loop {
        if read.len() >= limit {
            return Err(HeadError::TooLarge { limit });
        }
        if read.capacity() == read.len() {
            // Doubling, but never past the limit: `reserve` would round up to the next
            // doubling (32 KiB for a 25 KiB limit); a fresh buffer of exactly the size does not.
            let grown = (read.capacity() * 2).clamp(INITIAL_HEAD_BYTES, limit);
            let mut bigger = BytesMut::with_capacity(grown);
            bigger.extend_from_slice(&read);
            read = bigger;
        }
        let got = stream
            .read_buf(&mut read)
            .await
            .map_err(|_| HeadError::Closed)?;
        if got == 0 {
            return Err(HeadError::Closed);
        }
        if let Some(request) = parse(&read, limits)? {
            return Ok(Head {
                request,
                read: read.freeze(),
            });
        }
    }
}

/// The request, once `bytes` hold a whole head.
pub fn parse(bytes: &[u8], limits: HeadLimits) -> Result<Option<Request<Body>>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(_)) => to_request(&parsed, limits).map(Some),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooManyHeaders),
        Err(error) => Err(HeadError::Malformed(error.to_string())),
    }
}

fn to_request(
    parsed: &httparse::Request<'_, '_>,
    limits: HeadLimits,
) -> Result<Request<Body>, HeadError> {
    let malformed = |what: &str| HeadError::Malformed(what.to_owned());
    let path = parsed.path.unwrap_or("/");
    if path.len() > limits.max_uri_bytes {
        return Err(HeadError::UriTooLong {
            length: path.len(),
            limit: limits.max_uri_bytes,
        });
    }
    let header_bytes: usize = parsed
        .headers
        .iter()
        .map(|header| header.name.len() + header.value.len())
        .sum();
    if header_bytes > limits.max_header_bytes {
        return Err(HeadError::HeadersTooLarge {
            length: header_bytes,
            limit: limits.max_header_bytes,
        });
    }
    let method = Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
        .map_err(|_| malformed("method"))?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut builder = Request::builder().method(method).uri(path).version(version);
    for header in parsed.headers.iter() {
        let name =
            HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| malformed("header name"))?;
        let value = HeaderValue::from_bytes(header.value).map_err(|_| malformed("header value"))?;
        builder = builder.header(name, value);
    }
    builder
        .body(Body::empty())
        .map_err(|error| HeadError::Malformed(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_uri_bytes: 64,
        max_header_bytes: 128,
    };

    #[test]
    fn a_whole_head_is_a_request_and_a_partial_one_is_not_yet() {
        let head = b"GET /api/realtime/events?channels=orders HTTP/1.1\r\nHost: gw\r\nX-API-Key: k\r\n\r\n";
        let request = parse(head, LIMITS).expect("valid").expect("complete");
        assert_eq!(request.uri().query(), Some("channels=orders"));
        assert_eq!(request.headers()["x-api-key"], "k");
        assert!(parse(&head[..20], LIMITS).expect("valid so far").is_none());
    }

    #[test]
    fn every_limit_has_its_answer() {
        let long_uri = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(80));
        let big_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "b".repeat(200));
        let many: String = (0..70).map(|i| format!("H{i}: v\r\n")).collect();
        let many_headers = format!("GET / HTTP/1.1\r\n{many}\r\n");
        for (head, status) in [
            (long_uri.as_str(), 414),
            (big_header.as_str(), 431),
            (many_headers.as_str(), 431),
            ("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
            ("\u{1}\u{2} / HTTP/1.1\r\n\r\n", 400),
        ] {
            let error = parse(head.as_bytes(), LIMITS).expect_err(head);
            let (answer, _) = error.refusal().expect("answered");
            assert_eq!(answer.as_u16(), status, "{head:?}: {error}");
        }
    }
}
