//! The first steps of every binary's `main`.

/// Why a program could not start; the message names the file or setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot read .env: {0}")]
    DotEnv(#[source] dotenvy::Error),
    #[error("{program}: cannot listen on {variable}={addr}: {source}")]
    Listen {
        program: String,
        variable: String,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Loads `.env` from the working directory into the environment. A missing file is normal;
/// a malformed one is a setting error, returned so `main` can name it and exit.
pub fn load_dotenv() -> Result<(), StartupError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(error) if error.not_found() => Ok(()),
        Err(error) => Err(StartupError::DotEnv(error)),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// The accept queue asked of the kernel: as long as it allows. Linux cuts a larger `listen()`
/// backlog to `net.core.somaxconn` (4096 by default since 5.4), so the operator's sysctl is what
/// decides. tokio's own `TcpListener::bind` asks for 128 (measured: the 130th connection of a
/// queue nobody accepts from waits), and when a gateway dies, its clients reconnect to the
/// others within a second or two, thousands per gateway, and every SYN past a full queue is dropped and retried by the client's kernel only after 1 s, then 3 s, then 7 s
/// — a storm that admission would absorb in seconds is stretched by the backlog instead.
pub const LISTEN_BACKLOG: u32 = 65_535;

/// Binds `addr` with [`LISTEN_BACKLOG`], or says which setting to fix (`cannot listen on
/// GATEWAY_ADDR=...: in use`).
pub async fn bind(
    program: &str,
    variable: &str,
    addr: std::net::SocketAddr,
) -> Result<tokio::net::TcpListener, StartupError> {
    listen(addr).map_err(|source| StartupError::Listen {
        program: program.to_owned(),
        variable: variable.to_owned(),
        addr,
        source,
    })
}

fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As tokio's own bind does: a restarted instance takes its port back at once, while the
    // sockets of the one before it are still in TIME_WAIT (a rolling deploy restarts in place).
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The kernel's cap on any listen backlog, or `None` where it cannot be read.
    fn somaxconn() -> Option<usize> {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Nobody accepts: every connection the kernel completes waits in the accept queue, so the
    /// number that connect is the backlog. With tokio's `TcpListener::bind` (a backlog of 128)
    /// the 130th SYN is dropped and its `connect` waits for retransmissions (1 s, 3 s, 7 s)
    /// until the deadline.
    #[tokio::test]
    async fn a_reconnect_storm_is_not_cut_at_tokios_default_backlog() {
        let Some(cap) = somaxconn() else {
            eprintln!("skipped: /proc/sys/net/core/somaxconn is not readable here");
            return;
        };
        // Far past tokio's 128, within what the kernel allows, and far from the per-process
        // open-files limit.
        let wanted = cap.min(2_000);
        assert!(
            wanted > 1_000,
            "net.core.somaxconn is {cap} here: raise it above 1000 to run this test (sysctl -w net.core.somaxconn=4096)"
        );
        let listener = bind(
            "test",
            "TEST_ADDR",
            "127.0.0.1:0".parse().expect("an address"),
        )
        .await
        .expect("listen on loopback");
        let addr = listener.local_addr().expect("a bound address");
        let mut clients = Vec::with_capacity(wanted);
        for n in 0..wanted {
            let connected =
                tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                    .await;
            match connected {
                Ok(Ok(stream)) => clients.push(stream),
                Ok(Err(error)) => panic!("connection {n} refused: {error}"),
                Err(_) => {
                    panic!("connection {n} did not complete in 5 s: the accept queue held only {n}")
                }
            }
        }
        assert_eq!(clients.len(), wanted);
        drop(listener);
    }

    #[tokio::test]
    async fn a_port_in_use_names_the_setting() {
        let first = bind(
            "test",
            "TEST_ADDR",
            "127.0.0.1:0".parse().expect("an address"),
        )
        .await
        .expect("listen on loopback");
        let addr = first.local_addr().expect("a bound address");
        let error = bind("rakuda-gateway", "GATEWAY_ADDR", addr)
            .await
            .expect_err("the port is taken");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "rakuda-gateway: cannot listen on GATEWAY_ADDR={addr}: "
            )),
            "{message}"
        );
    }
}
