//! What a gateway's refusal before streaming says (its status, the JSON `error` of its body, its
//! `Retry-After`), read alike whatever the client spoke: plain SSE, SSE over HTTP/2, WebSocket
//! or a history request.

use std::time::Duration;

use super::reconnect::SessionEnd;
use super::{lock, SharedTally};

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
pub(super) fn retry_after(value: &[u8]) -> Option<Duration> {
    std::str::from_utf8(value)
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A refusal of a stream: counted in the tally by its name, and the session ended so that the
/// client backs off (at least its `Retry-After`), or passes on to the next gateway.
pub(super) fn refused(
    tally: &SharedTally,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> SessionEnd {
    lock(tally).refused(&refusal_name(status, body));
    let body = String::from_utf8_lossy(body);
    SessionEnd::refused(status, format!("HTTP {status}: {body}"), retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_named_by_its_status_and_reason() {
        let body = br#"{"error":"connection_rate","message":"retry later"}"#;
        assert_eq!(refusal_name(503, body), "503 connection_rate");
        assert_eq!(refusal_name(502, b"<html>"), "502");
        assert_eq!(retry_after(b" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(b"Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
