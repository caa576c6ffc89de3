//! `rakuda-gateway`: settings, logging, signals; the work is in the library.

use std::process::ExitCode;

use clap::Parser;
use rakuda_gateway::{run, Config};
use rakuda_service::{signals, startup};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(error) = startup::load_dotenv() {
        eprintln!("rakuda-gateway: {error}");
        return ExitCode::from(2);
    }
    // Exits with status 2 and a message naming the variable when a setting is bad.
    let config = Config::parse();
    if let Err(error) = config.check() {
        eprintln!("rakuda-gateway: {error}");
        return ExitCode::from(2);
    }
    startup::init_logging();

    let listener = match startup::bind("rakuda-gateway", "GATEWAY_ADDR", config.gateway_addr).await
    {
        Ok(listener) => listener,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(
        addr = %config.gateway_addr,
        stream = %config.nats.stream_name,
        debounce_ms = config.streams.sse_debounce_window,
        heartbeat_ms = config.streams.sse_heartbeat_interval,
        "starting rakuda-gateway"
    );

    let shutdown = CancellationToken::new();
    tokio::spawn(signals::cancel_on_signal(shutdown.clone()));
    match run(config, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "rakuda-gateway failed");
            ExitCode::FAILURE
        }
    }
}
