//! `rakuda-bridge`: settings, logging, signals; the work is in the library.

use std::process::ExitCode;

use clap::Parser;
use rakuda_bridge::{run_with, Config};
use rakuda_service::{signals, startup};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(error) = startup::load_dotenv() {
        eprintln!("rakuda-bridge: {error}");
        return ExitCode::from(2);
    }
    // Exits with status 2 and a message naming the variable when a setting is bad.
    let config = Config::parse();
    if let Err(error) = config.check() {
        eprintln!("rakuda-bridge: {error}");
        return ExitCode::from(2);
    }
    startup::init_logging();

    let listener = match startup::bind(
        "rakuda-bridge",
        "BRIDGE_METRICS_ADDR",
        config.bridge_metrics_addr,
    )
    .await
    {
        Ok(listener) => listener,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let publish_listener = match config.publish.bridge_http_addr {
        None => None,
        Some(addr) => match startup::bind("rakuda-bridge", "BRIDGE_HTTP_ADDR", addr).await {
            Ok(listener) => Some(listener),
            Err(message) => {
                eprintln!("{message}");
                return ExitCode::from(2);
            }
        },
    };
    tracing::info!(
        metrics = %config.bridge_metrics_addr,
        publish_api = ?config.publish.bridge_http_addr,
        redis = %rakuda_service::redis::redacted(config.redis_url.expose()),
        nats = ?config.nats_url.iter().map(|addr| format!("{}:{}", addr.host(), addr.port())).collect::<Vec<_>>(),
        pattern = %config.redis_pattern(),
        stream = %config.stream_name,
        "starting rakuda-bridge"
    );

    let shutdown = CancellationToken::new();
    tokio::spawn(signals::cancel_on_signal(shutdown.clone()));
    match run_with(config, listener, publish_listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "rakuda-bridge failed");
            ExitCode::FAILURE
        }
    }
}
