//! `rakuda-bridge`: settings, logging, signals; the work is in the library.

use std::process::ExitCode;

use clap::Parser;
use rakuda_bridge::{run, Config};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is a setting error like any other.
    if let Err(error) = dotenvy::dotenv() {
        if !error.not_found() {
            eprintln!("rakuda-bridge: cannot read .env: {error}");
            return ExitCode::from(2);
        }
    }
    // Exits with status 2 and a message naming the variable when a setting is bad.
    let config = Config::parse();

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let listener = match tokio::net::TcpListener::bind(config.bridge_metrics_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "rakuda-bridge: cannot listen on BRIDGE_METRICS_ADDR={}: {error}",
                config.bridge_metrics_addr
            );
            return ExitCode::from(2);
        }
    };
    tracing::info!(
        metrics = %config.bridge_metrics_addr,
        redis = %config.redis_url,
        nats = ?config.nats_url.iter().map(|addr| format!("{}:{}", addr.host(), addr.port())).collect::<Vec<_>>(),
        pattern = %config.redis_pattern(),
        stream = %config.stream_name,
        "starting rakuda-bridge"
    );

    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    match run(config, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "rakuda-bridge failed");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (what systemd and Kubernetes send to stop a service) or SIGINT (Ctrl-C) starts the drain.
async fn signal_shutdown(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the bridge with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}
