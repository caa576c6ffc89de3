//! The kernel's view of this host's IPv4 TCP connections (`/proc/net/tcp`): how many bytes wait
//! in each one's queues. A test waits on these to know that a server has read what a client
//! sent, or that a client that does not read has backed a server's writes up, instead of
//! sleeping and hoping.

use std::net::{Ipv4Addr, SocketAddrV4};

/// `TCP_ESTABLISHED` in `/proc/net/tcp`'s `st` column.
const ESTABLISHED: u8 = 0x01;

/// One IPv4 TCP socket, as `/proc/net/tcp` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// The kernel's state number (1 = established).
    pub state: u8,
    /// Bytes written and not yet acknowledged by the peer (sent or not).
    pub tx_queue: u64,
    /// Bytes received and not yet read by the process that holds the socket.
    pub rx_queue: u64,
}

impl TcpSocket {
    pub fn established(&self) -> bool {
        self.state == ESTABLISHED
    }
}

/// Every IPv4 TCP socket of this network namespace.
pub fn tcp_sockets() -> std::io::Result<Vec<TcpSocket>> {
    let table = std::fs::read_to_string("/proc/net/tcp")?;
    Ok(parse_table(&table))
}

/// The connections on either side of `port` on this host that are established.
pub fn established_on(port: u16) -> std::io::Result<Vec<TcpSocket>> {
    Ok(tcp_sockets()?
        .into_iter()
        .filter(|socket| {
            socket.established() && (socket.local.port() == port || socket.remote.port() == port)
        })
        .collect())
}

fn parse_table(table: &str) -> Vec<TcpSocket> {
    // The first line is the header; a line that does not parse is skipped.
    table.lines().skip(1).filter_map(parse_line).collect()
}

/// `sl local_address rem_address st tx_queue:rx_queue ...`, addresses as `0100007F:1F90`.
fn parse_line(line: &str) -> Option<TcpSocket> {
    let mut fields = line.split_whitespace().skip(1);
    let local = address(fields.next()?)?;
    let remote = address(fields.next()?)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let (tx, rx) = fields.next()?.split_once(':')?;
    Some(TcpSocket {
        local,
        remote,
        state,
        tx_queue: u64::from_str_radix(tx, 16).ok()?,
        rx_queue: u64::from_str_radix(rx, 16).ok()?,
    })
}

/// The address is the kernel's 32-bit word printed in hex, so its bytes are in this host's
/// order; the port is a plain hex number.
fn address(field: &str) -> Option<SocketAddrV4> {
    let (ip, port) = field.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines_are_read() {
        // Two lines as a little-endian host writes them: a listener on 127.0.0.1:8080 and a
        // connection to it with 0x10 bytes unread.
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0\n   \
            1: 0100007F:1F90 0100007F:D431 01 00000020:00000010 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1\n";
        let sockets = parse_table(table);
        let host = |port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        if cfg!(target_endian = "little") {
            assert_eq!(
                sockets,
                vec![
                    TcpSocket {
                        local: host(8080),
                        remote: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                        state: 0x0A,
                        tx_queue: 0,
                        rx_queue: 0,
                    },
                    TcpSocket {
                        local: host(8080),
                        remote: host(54321),
                        state: ESTABLISHED,
                        tx_queue: 0x20,
                        rx_queue: 0x10,
                    },
                ]
            );
        }
    }

    #[tokio::test]
    async fn unread_bytes_show_in_the_receivers_queue_until_it_reads_them() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let port = listener.local_addr().expect("address").port();
        let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (mut server, _) = listener.accept().await.expect("accept");
        client.write_all(b"hello").await.expect("write");
        let server_side = |sockets: Vec<TcpSocket>| {
            sockets
                .into_iter()
                .find(|socket| socket.local.port() == port)
        };
        crate::wait::eventually("five bytes waiting for the server", || async {
            let socket = server_side(established_on(port).ok()?)?;
            (socket.rx_queue == 5).then_some(())
        })
        .await;
        let mut read = [0u8; 5];
        server.read_exact(&mut read).await.expect("read");
        let socket = server_side(established_on(port).expect("/proc/net/tcp"));
        assert_eq!(socket.map(|socket| socket.rx_queue), Some(0));
    }
}
