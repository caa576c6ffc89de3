//! The drain, in one place. On SIGTERM `/readyz` turns 503 and new connections get 503
//! `draining` (both read [`DrainSignal`]); every open stream closes at a moment of its own within
//! `GATEWAY_DRAIN_WINDOW` ([`DrainTurn`]), so the clients of a restarting instance reconnect
//! elsewhere spread out rather than in the same second; and [`drain`] waits until they have, at
//! most `GATEWAY_DRAIN_TIMEOUT`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use crate::fanout::Hub;
use crate::metrics::{ConnectionMetrics, Transport};

/// How often the drain checks whether every connection has closed.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Whether the gateway is draining; cancelled on SIGTERM.
#[derive(Debug, Clone)]
pub(crate) struct DrainSignal {
    token: CancellationToken,
    window: Duration,
}

impl DrainSignal {
    /// Draining once `token` is cancelled; connections close spread over `window`.
    pub(crate) fn new(token: CancellationToken, window: Duration) -> DrainSignal {
        DrainSignal { token, window }
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.token.is_cancelled()
    }

    /// A connection's turn to close, for a connection that just subscribed to the hub.
    pub(crate) fn turn(&self) -> DrainTurn {
        let mut turn = DrainTurn {
            window: self.window,
            close: None,
        };
        // Checked after the connection subscribed: a notice sent before that never reaches it.
        if self.is_draining() {
            turn.start();
        }
        turn
    }
}

/// A connection's turn to close once the gateway drains: the drain notice (a hub message, or
/// the gateway already draining when the connection subscribed) starts the wait, and the close
/// comes at a random moment within the window.
///
/// Until the notice there is no timer and nothing to register: polling [`DrainTurn::arrived`]
/// costs a branch, where watching the shared shutdown token cost every connection a lock on
/// every loop turn (2.7% of the gateway's CPU at `light-1k`, perf). Cancel-safe.
pub(crate) struct DrainTurn {
    window: Duration,
    close: Option<Pin<Box<Sleep>>>,
}

impl DrainTurn {
    /// Picks this connection's moment to close (once).
    pub(crate) fn start(&mut self) {
        if self.close.is_some() {
            return;
        }
        let offset = if self.window.is_zero() {
            Duration::ZERO
        } else {
            self.window.mul_f64(rand::random::<f64>())
        };
        self.close = Some(Box::pin(tokio::time::sleep(offset)));
    }

    /// Resolves when this connection should close; never before [`DrainTurn::start`].
    pub(crate) async fn arrived(&mut self) {
        match self.close.as_mut() {
            Some(close) => close.as_mut().await,
            None => std::future::pending().await,
        }
    }
}

/// Tells every connection that the gateway drains and waits until none is open, at most
/// `timeout`; `false` when some were still open then.
pub(crate) async fn drain(
    hub: &Hub,
    connections: &Arc<ConnectionMetrics>,
    timeout: Duration,
) -> bool {
    hub.drain();
    let open = || connections.current(Transport::Sse) + connections.current(Transport::Ws);
    tracing::info!(
        connections = open(),
        ?timeout,
        "draining: /readyz is 503, new connections are refused, open ones close spread over the window"
    );
    let drained = tokio::time::timeout(timeout, async {
        while open() > 0 {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            connections = open(),
            "drain timeout expired; closing the rest"
        );
    }
    drained
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_turn_comes_within_the_window_and_only_once_draining() {
        let token = CancellationToken::new();
        let signal = DrainSignal::new(token.clone(), Duration::from_secs(5));
        let mut turn = signal.turn();
        assert!(
            tokio::time::timeout(Duration::from_secs(60), turn.arrived())
                .await
                .is_err(),
            "no turn before the drain"
        );
        token.cancel();
        let mut late = signal.turn();
        tokio::time::timeout(Duration::from_secs(5), late.arrived())
            .await
            .expect("a connection opened while draining closes within the window");
        turn.start();
        tokio::time::timeout(Duration::from_secs(5), turn.arrived())
            .await
            .expect("within the window");
    }
}
