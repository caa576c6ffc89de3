//! Watching a NATS client's connection.

use std::time::Duration;

use async_nats::connection::State;
use tokio_util::sync::CancellationToken;

/// How often the connection state is sampled.
const POLL: Duration = Duration::from_millis(250);

/// How long one request (a JetStream API call or ack) may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A client that keeps reconnecting forever, also when NATS is not up yet at start, so a
/// process can start before its NATS and ride out NATS restarts.
pub async fn connect(
    name: String,
    servers: Vec<async_nats::ServerAddr>,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .connect(servers)
        .await
}

/// Calls `on_change(connected)` whenever the connection state changes (and once at the start),
/// logging each change once, until `stop`.
pub async fn watch_connection(
    client: async_nats::Client,
    stop: CancellationToken,
    on_change: impl Fn(bool) + Send + 'static,
) {
    let mut last: Option<bool> = None;
    let mut poll = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = poll.tick() => {}
        }
        let connected = client.connection_state() == State::Connected;
        if last != Some(connected) {
            on_change(connected);
            match (last, connected) {
                (_, true) => tracing::info!("connected to nats"),
                (Some(true), false) => tracing::warn!("disconnected from nats; reconnecting"),
                (_, false) => tracing::info!("connecting to nats"),
            }
            last = Some(connected);
        }
    }
}
