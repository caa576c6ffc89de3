//! Which address a request came from: the socket's peer, or, when the peer is one of
//! `TRUSTED_PROXIES`, the address that proxy says it forwarded for. Anyone else's
//! `X-Forwarded-For` is ignored, so a client cannot pick the address it is limited by.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The socket's peer, put on every request by the listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub SocketAddr);

#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub(crate) fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(networks)
    }

    /// Whether `addr` is one of the proxies.
    pub(crate) fn trusts(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.0.iter().any(|network| network.contains(&addr))
    }

    /// The client: walking `X-Forwarded-For` from the right (the hop nearest us), the first
    /// address that is not a trusted proxy. A malformed entry stops the walk at the last
    /// address known good, since whatever is left of it could be made up.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            let Ok(addr) = hop.trim().parse::<IpAddr>() else {
                return client;
            };
            client = canonical(addr);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// IPv4 clients of a dual-stack socket arrive as `::ffff:a.b.c.d`.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", value.parse().expect("header"));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn only_a_trusted_proxy_may_name_the_client() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("net")]);
        let forwarded = headers(&["203.0.113.7"]);
        assert_eq!(
            proxies.client(ip("10.1.2.3"), &forwarded),
            ip("203.0.113.7")
        );
        assert_eq!(
            proxies.client(ip("198.51.100.1"), &forwarded),
            ip("198.51.100.1")
        );
        assert_eq!(
            TrustedProxies::default().client(ip("10.1.2.3"), &forwarded),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn a_client_cannot_prepend_its_own_choice() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("net")]);
        // The client sent `X-Forwarded-For: 1.2.3.4`; nginx appended the real address.
        let forwarded = headers(&["1.2.3.4, 203.0.113.7"]);
        assert_eq!(
            proxies.client(ip("10.0.0.2"), &forwarded),
            ip("203.0.113.7")
        );
        // Two trusted hops, split over two headers.
        let forwarded = headers(&["1.2.3.4, 203.0.113.7", "10.0.0.9"]);
        assert_eq!(
            proxies.client(ip("10.0.0.2"), &forwarded),
            ip("203.0.113.7")
        );
        // Garbage stops the walk at the last good hop.
        let forwarded = headers(&["203.0.113.7, not-an-ip"]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &forwarded), ip("10.0.0.2"));
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.2"), &headers(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
    }
}
