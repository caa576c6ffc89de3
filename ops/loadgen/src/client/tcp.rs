//! The TCP connection under every client (SSE, WebSocket, the one-shot GET), opened from a
//! chosen source address when there is one: a fleet run spreads its clients over several
//! loopback addresses, each with its own ephemeral ports.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

/// Opens a TCP connection to `host` (`127.0.0.1:8080`), from `source` if given, within
/// `limit`.
pub(super) async fn connect_tcp(
    host: &str,
    source: Option<IpAddr>,
    limit: Duration,
) -> std::io::Result<TcpStream> {
    let connect = async {
        let Some(source) = source else {
            return TcpStream::connect(host).await;
        };
        let address = tokio::net::lookup_host(host)
            .await?
            .find(|address| address.is_ipv4() == source.is_ipv4())
            .ok_or_else(|| {
                std::io::Error::other(format!("{host} has no address of the family of {source}"))
            })?;
        let socket = if address.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // Bound before connecting, so the kernel takes the ephemeral port from this address's
        // range and not from 127.0.0.1's, which a fleet run would exhaust.
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(address).await
    };
    match tokio::time::timeout(limit, connect).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no connection within {limit:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_socket_is_bound_to_its_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let host = listener.local_addr().expect("address").to_string();
        let source: IpAddr = "127.0.0.3".parse().expect("address");
        let stream = connect_tcp(&host, Some(source), Duration::from_secs(5))
            .await
            .expect("connect from 127.0.0.3");
        let (_, peer) = listener.accept().await.expect("accept");
        assert_eq!(peer.ip(), source);
        assert_eq!(stream.local_addr().expect("local").ip(), source);
    }
}
