//! The first steps of every binary's `main`.

/// Loads `.env` from the working directory into the environment. A missing file is normal;
/// a malformed one is a setting error, returned so `main` can name it and exit.
pub fn load_dotenv() -> Result<(), String> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(error) if error.not_found() => Ok(()),
        Err(error) => Err(format!("cannot read .env: {error}")),
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

/// Binds `addr`, or says which setting to fix (`cannot listen on GATEWAY_ADDR=...: in use`).
pub async fn bind(
    program: &str,
    variable: &str,
    addr: std::net::SocketAddr,
) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| format!("{program}: cannot listen on {variable}={addr}: {error}"))
}
