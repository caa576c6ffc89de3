//! HTTP/1.1 heads as the plain-socket clients write and read them: a GET request's head, and a
//! response's status line and headers, read off the bytes as they arrive. The SSE subscriber
//! (`sse`) and the one-shot GET (`http`) speak HTTP/1.1 by hand (an HTTP library's per-chunk
//! allocations cost more than the gateway's delivery at load), and read a head alike.

use std::time::Duration;

use bytes::{Buf, BytesMut};

use super::refusal::retry_after;

/// Most bytes of a response head (and of an error body) read before giving up.
pub(super) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// `GET {path} HTTP/1.1` to `host`, then `headers` in order, then the blank line.
pub(super) fn get_request(path: &str, host: &str, headers: &[(&str, &str)]) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// What the clients act on in a response's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ResponseHead {
    pub(super) status: u16,
    /// `Transfer-Encoding: chunked`.
    pub(super) chunked: bool,
    /// `Content-Length`, if there is one.
    pub(super) length: Option<usize>,
    /// `Retry-After`, in whole seconds, if there is one.
    pub(super) retry_after: Option<Duration>,
}

/// A response head that cannot be read.
#[derive(Debug)]
pub(super) enum HeadError {
    /// Still not whole after [`MAX_HEAD_BYTES`].
    TooLarge,
    Malformed(httparse::Error),
}

impl ResponseHead {
    /// The head at the start of `input`, taken off it once whole (what follows, the body's
    /// first bytes, stays); `Ok(None)` while more bytes are needed.
    pub(super) fn take(input: &mut BytesMut) -> Result<Option<ResponseHead>, HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(input) {
            Ok(httparse::Status::Complete(head_bytes)) => {
                let header = |name: &str| {
                    response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| h.value)
                };
                let head = ResponseHead {
                    status: response.code.unwrap_or(0),
                    chunked: header("transfer-encoding").is_some_and(|v| {
                        v.to_ascii_lowercase().windows(7).any(|w| w == b"chunked")
                    }),
                    length: header("content-length")
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| v.trim().parse::<usize>().ok()),
                    retry_after: header("retry-after").and_then(retry_after),
                };
                input.advance(head_bytes);
                Ok(Some(head))
            }
            Ok(httparse::Status::Partial) if input.len() < MAX_HEAD_BYTES => Ok(None),
            Ok(httparse::Status::Partial) => Err(HeadError::TooLarge),
            Err(error) => Err(HeadError::Malformed(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_has_its_headers_in_order() {
        assert_eq!(
            get_request("/x?a=1", "127.0.0.1:80", &[("Connection", "close"), ("X-API-Key", "k")]),
            "GET /x?a=1 HTTP/1.1\r\nHost: 127.0.0.1:80\r\nConnection: close\r\nX-API-Key: k\r\n\r\n"
        );
    }

    #[test]
    fn a_response_head_is_taken_once_whole_and_the_body_stays() {
        let mut input =
            BytesMut::from(&b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\n"[..]);
        assert!(matches!(ResponseHead::take(&mut input), Ok(None)));
        input
            .extend_from_slice(b"Content-Length: 7\r\ntransfer-encoding: Chunked\r\n\r\n{\"x\":1}");
        let head = ResponseHead::take(&mut input)
            .expect("readable")
            .expect("whole");
        assert_eq!(
            head,
            ResponseHead {
                status: 503,
                chunked: true,
                length: Some(7),
                retry_after: Some(Duration::from_secs(2)),
            }
        );
        assert_eq!(&input[..], b"{\"x\":1}");
    }

    #[test]
    fn a_response_head_too_large_or_malformed_is_an_error() {
        // One header still going at the limit.
        let mut huge = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX-Pad: "[..]);
        huge.resize(MAX_HEAD_BYTES, b'x');
        assert!(matches!(
            ResponseHead::take(&mut huge),
            Err(HeadError::TooLarge)
        ));
        let mut bad = BytesMut::from(&b"NOT HTTP\r\n\r\n"[..]);
        assert!(matches!(
            ResponseHead::take(&mut bad),
            Err(HeadError::Malformed(_))
        ));
    }
}
