//! The ingest side from its settings: the NATS connection on the ingest thread, the feed and
//! the pipeline, and the readers of the event stream.

use crate::config::{NatsConfig, StreamsConfig};
use crate::ingest::pipeline::{Pipeline, PipelineOutputs, PipelineSettings};
use crate::ingest::thread::IngestThread;
use crate::store::feed::Feed;
use crate::store::stream::StreamReader;

use super::shared::Shared;
use super::Error;

/// Starts the ingest thread and connects to NATS on it: the client's connection task reads the
/// stream there.
pub(super) async fn connect(
    nats: &NatsConfig,
    instance: &str,
) -> Result<(IngestThread, async_nats::Client), Error> {
    let thread = IngestThread::start().map_err(Error::Ingest)?;
    let client = thread
        .spawn({
            let (servers, auth) = (nats.nats_url.clone(), nats.nats_auth.clone());
            let name = format!("rakuda-gateway {instance}");
            async move {
                let inbox = rakuda_service::nats::GATEWAY_INBOX_PREFIX;
                rakuda_service::nats::connect(name, servers, &auth, inbox).await
            }
        })
        .await
        .map_err(|_| Error::IngestStopped)??;
    Ok((thread, client))
}

/// Reads `STREAM_NAME` live, from where the pipeline's cursor says.
pub(super) fn feed(nats: &NatsConfig, shared: &Shared) -> Feed {
    Feed {
        jetstream: shared.jetstream.clone(),
        stream_name: nats.stream_name.clone(),
        connected: shared.connected.clone(),
        failures: shared.metrics.ingest.feed_failures.clone(),
    }
}

/// Debounces what the feed reads into frames for the hub, and keeps the ring, the snapshot
/// state, `reading` and the canary current.
pub(super) fn pipeline(streams: &StreamsConfig, shared: &Shared) -> Pipeline {
    Pipeline::new(
        PipelineOutputs {
            hub: shared.hub.clone(),
            ring: shared.ring.clone(),
            latest: shared.latest.clone(),
            metrics: shared.metrics.ingest.clone(),
            reading: shared.reading.clone(),
            canary: shared.canary.clone(),
            instance: shared.instance.clone(),
        },
        PipelineSettings {
            debounce_window: streams.debounce_window(),
            max_batch_events: streams.debounce_max_batch_events,
            heartbeat_interval: streams.heartbeat_interval(),
        },
    )
}

/// Reads past events of `STREAM_NAME` (replays, backfill, warming the ring).
pub(super) fn stream_reader(nats: &NatsConfig, shared: &Shared) -> StreamReader {
    StreamReader {
        jetstream: shared.jetstream.clone(),
        name: nats.stream_name.clone(),
    }
}
