//! The guard that keeps load on this machine: `subscribe` and `publish` refuse any gateway or
//! Redis URL whose host is not a loopback address, so a mistyped flag cannot flood a shared
//! server.

/// A URL given to `rakuda-loadgen` names a host other than this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{flag} must be on this machine (127.0.0.1, localhost or ::1), not `{host}`: \
     rakuda-loadgen only generates load on loopback"
)]
pub struct NotLoopback {
    /// The flag the URL came from (`--url`, `--redis-url`), so the operator knows what to fix.
    pub flag: String,
    pub host: String,
}

/// Accepts `url` only if its host is `127.0.0.1`, `localhost` or `::1`; `flag` names where the
/// URL came from in the error.
pub fn ensure_loopback(url: &str, flag: &str) -> Result<(), NotLoopback> {
    let host = host(url);
    if matches!(host, "127.0.0.1" | "localhost" | "::1") {
        Ok(())
    } else {
        Err(NotLoopback {
            flag: flag.to_owned(),
            host: host.to_owned(),
        })
    }
}

/// The host of `scheme://user:password@host:port/path?query` (any part but the host may be
/// missing); an IPv6 host without its brackets. Empty when there is none.
fn host(url: &str) -> &str {
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host_port.starts_with('[') {
        host_port
            .split(']')
            .next()
            .unwrap_or("")
            .trim_start_matches('[')
    } else {
        host_port.split(':').next().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(ensure_loopback("http://127.0.0.1:8080", "--url").is_ok());
        assert!(ensure_loopback("redis://localhost:6379/0", "--redis-url").is_ok());
        assert!(ensure_loopback("http://[::1]:8080/x", "--url").is_ok());
        assert!(ensure_loopback("redis://user:pw@127.0.0.1:6379", "--redis-url").is_ok());
        let error = ensure_loopback("http://10.0.0.5:8080", "--url").expect_err("not loopback");
        let error = error.to_string();
        assert!(
            error.contains("--url") && error.contains("10.0.0.5"),
            "{error}"
        );
    }
}
