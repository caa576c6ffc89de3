//! Watching a NATS client's connection.

use std::time::Duration;

use async_nats::connection::State;
use tokio_util::sync::CancellationToken;

/// How often the connection state is sampled.
const POLL: Duration = Duration::from_millis(250);

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
