//! Where and how a subscriber connects ([`Target`]): the base URL or a fleet's gateways, the
//! source address, the key, the transport, the channels, the timeouts and the backoff; and what
//! is built from it for every connection: the URL's parts and the query with the cursor.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rakuda_testkit::tls::TlsClient;

use super::backoff::Backoff;
use super::balancer::Balancer;
use super::SharedTally;

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

/// Called with a subscriber's tally and the gateway it is on.
pub type OnReset = dyn Fn(&SharedTally, &str) + Send + Sync;

/// What a subscriber calls when a `reset` arrives (a dashboard refetches its summary and
/// snapshot then).
#[derive(Clone)]
pub struct ResetHook(pub Arc<OnReset>);

impl std::fmt::Debug for ResetHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetHook")
    }
}

/// Where and how a subscriber connects.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:8080` (a gateway or the load balancer).
    pub base_url: String,
    /// Every gateway of a fleet, when the client balances itself over them (no load balancer
    /// in front): it starts on the one it is given and, whenever it loses its stream or a
    /// connection attempt fails, tries another at random. Empty: `base_url` only.
    pub gateways: Vec<String>,
    /// The local address to connect from (`127.0.0.2`): one address has about 28,000
    /// ephemeral ports, so a fleet run spreads its clients over several. `None`: the kernel's
    /// choice.
    pub source: Option<IpAddr>,
    pub api_key: Option<String>,
    pub transport: Transport,
    /// `inventory,orders`; `None` for everything the key allows.
    pub channels: Option<String>,
    /// With no frame for this long the connection is presumed dead and reopened (the browser
    /// client uses two heartbeat intervals). Also the limit on connecting and on the response.
    pub idle_timeout: Duration,
    /// [`Backoff::Fast`]: wait before reconnecting after a stream that was open ends.
    pub reconnect_delay: Duration,
    /// [`Backoff::Fast`]: ceiling of the backoff after failed connection attempts.
    pub max_backoff: Duration,
    pub backoff: Backoff,
    pub on_reset: Option<ResetHook>,
    /// Over [`Target::gateways`]: which gateway each attempt tries first, and next. Without
    /// one, a client that lost its gateway tries another at random.
    pub balancer: Option<Arc<Balancer>>,
    /// The CA an `https://` base URL is trusted with; `None` for plain `http://`.
    pub tls: Option<TlsClient>,
}

impl Target {
    pub fn new(base_url: &str, transport: Transport) -> Target {
        Target {
            base_url: base_url.trim_end_matches('/').to_owned(),
            gateways: Vec::new(),
            source: None,
            api_key: None,
            transport,
            channels: None,
            idle_timeout: Duration::from_secs(40),
            reconnect_delay: Duration::from_millis(20),
            max_backoff: Duration::from_secs(2),
            backoff: Backoff::Fast,
            on_reset: None,
            balancer: None,
            tls: None,
        }
    }

    pub fn with_api_key(mut self, key: &str) -> Target {
        self.api_key = Some(key.to_owned());
        self
    }

    /// Trusts `tls`'s CA for an `https://` base URL.
    pub fn with_tls(mut self, tls: TlsClient) -> Target {
        self.tls = Some(tls);
        self
    }

    /// The gateways a client may use: [`Target::gateways`], or else `base_url` alone.
    pub fn urls(&self) -> Vec<&str> {
        if self.gateways.is_empty() {
            vec![self.base_url.as_str()]
        } else {
            self.gateways.iter().map(String::as_str).collect()
        }
    }
}

/// The query of a stream's request: the channels asked for and, on WebSocket (SSE sends it as
/// `Last-Event-ID`), the cursor to resume from.
pub(super) fn query(target: &Target, cursor: Option<&str>) -> String {
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
pub(super) fn host_and_prefix(base_url: &str) -> Result<(&str, &str), UrlError> {
    match split_base(base_url) {
        Ok((false, host, prefix)) => Ok((host, prefix)),
        _ => Err(UrlError::NotHttp(base_url.to_owned())),
    }
}

/// Whether a base URL is `https://`, its `host:port` and its path prefix.
pub(super) fn split_base(base_url: &str) -> Result<(bool, &str, &str), UrlError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
