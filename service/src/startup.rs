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

/// Binds `addr`, or says which setting to fix (`cannot listen on GATEWAY_ADDR=...: in use`).
pub async fn bind(
    program: &str,
    variable: &str,
    addr: std::net::SocketAddr,
) -> Result<tokio::net::TcpListener, StartupError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Listen {
            program: program.to_owned(),
            variable: variable.to_owned(),
            addr,
            source,
        })
}
