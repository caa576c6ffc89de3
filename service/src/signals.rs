//! Turns SIGTERM and SIGINT into a cancelled token: the start of a graceful shutdown.

use tokio_util::sync::CancellationToken;

/// Waits for SIGTERM (what systemd and Kubernetes send to stop a service) or SIGINT (Ctrl-C),
/// then cancels `shutdown`.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the process with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}
