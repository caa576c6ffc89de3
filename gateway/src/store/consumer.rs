//! A consumer history reads with (a DLQ page, or the fill of the snapshot state), deleted when
//! the reading ends, however it ends: written whole, failed, timed out, or dropped because the
//! client went away mid-answer.
//! Nothing else would delete it soon: the server removes an idle one only after
//! [`CONSUMER_INACTIVE_THRESHOLD`], and requests arriving faster than that would pile them up.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::Stream;

use crate::metrics::HistoryMetrics;
pub(crate) use crate::store::stream::CONSUMER_INACTIVE_THRESHOLD;

/// How long one deletion may take before it is given up (and the server's inactivity
/// threshold is left to remove the consumer).
pub(crate) const CONSUMER_DELETE_TIMEOUT: Duration = Duration::from_secs(5);

/// A consumer this instance made; deleted on [`ConsumerGuard::delete`] or on drop.
pub(crate) struct ConsumerGuard {
    stream: Stream,
    name: String,
    metrics: Arc<HistoryMetrics>,
    armed: bool,
}

impl ConsumerGuard {
    /// Takes charge of consumer `name` of `stream` (counted in `gateway_history_consumers`).
    pub(crate) fn new(stream: Stream, name: String, metrics: Arc<HistoryMetrics>) -> ConsumerGuard {
        metrics.consumers.increment(1.0);
        ConsumerGuard {
            stream,
            name,
            metrics,
            armed: true,
        }
    }

    /// Deletes the consumer now (the answer ended normally).
    pub(crate) async fn delete(mut self) {
        self.armed = false;
        let (stream, name) = (self.stream.clone(), std::mem::take(&mut self.name));
        delete(stream, name, self.metrics.clone()).await;
    }
}

impl Drop for ConsumerGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (stream, name) = (self.stream.clone(), std::mem::take(&mut self.name));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(delete(stream, name, self.metrics.clone()));
            }
            Err(_) => {
                // Only at process exit: no runtime is left to delete it with.
                self.metrics.consumer_delete_failures.increment(1);
                self.metrics.consumers.decrement(1.0);
                tracing::warn!(consumer = %name, "no runtime to delete a history consumer; the server removes it once idle");
            }
        }
    }
}

/// Deletes `name` within [`CONSUMER_DELETE_TIMEOUT`]; a failure is counted
/// (`gateway_history_consumer_delete_failures_total`) and logged.
async fn delete(stream: Stream, name: String, metrics: Arc<HistoryMetrics>) {
    let failure =
        match tokio::time::timeout(CONSUMER_DELETE_TIMEOUT, stream.delete_consumer(&name)).await {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no answer within {CONSUMER_DELETE_TIMEOUT:?}")),
        };
    metrics.consumers.decrement(1.0);
    if let Some(error) = failure {
        metrics.consumer_delete_failures.increment(1);
        tracing::warn!(
            consumer = %name,
            %error,
            "cannot delete a history consumer; the server removes it after {CONSUMER_INACTIVE_THRESHOLD:?} idle. Check NATS if this repeats"
        );
    }
}
