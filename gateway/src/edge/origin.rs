//! Which browser pages may open a WebSocket. Browsers do not apply CORS to WebSocket, so a page
//! on any site could otherwise open one with a token it got hold of; when `CORS_ORIGINS` is set,
//! the `Origin` a browser sends must be in it, or be the gateway's own (the dashboard it serves).
//! Clients that are not browsers send no `Origin` and are not affected.

use axum::http::{header, HeaderMap};

#[derive(Debug, Clone, Default)]
pub(crate) struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// `CORS_ORIGINS`; empty allows every origin, as before the setting was made.
    pub(crate) fn new(origins: Vec<String>) -> AllowedOrigins {
        AllowedOrigins(origins)
    }

    /// Whether a WebSocket with these request headers may open.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        if self.0.is_empty() {
            return true;
        }
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        if self
            .0
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            return true;
        }
        // Same origin: the page was served by this host (behind a proxy, the Host it forwards).
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok());
        let origin_host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        matches!((host, origin_host), (Some(host), Some(origin_host)) if host.eq_ignore_ascii_case(origin_host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::HOST, host.parse().expect("host"));
        if let Some(origin) = origin {
            map.insert(header::ORIGIN, origin.parse().expect("origin"));
        }
        map
    }

    #[test]
    fn listed_and_same_origins_pass_others_do_not() {
        let allowed = AllowedOrigins::new(vec!["https://ops.example.com".into()]);
        assert!(allowed.allows(&headers(Some("https://ops.example.com"), "rt.example.com")));
        assert!(allowed.allows(&headers(Some("https://rt.example.com"), "rt.example.com")));
        assert!(
            allowed.allows(&headers(None, "rt.example.com")),
            "not a browser"
        );
        assert!(!allowed.allows(&headers(Some("https://evil.example"), "rt.example.com")));
        assert!(!allowed.allows(&headers(Some("null"), "rt.example.com")));
        assert!(AllowedOrigins::default().allows(&headers(Some("https://any.example"), "h")));
    }
}
