//! The history endpoints through nginx, so that every NATS call they make runs with the
//! gateway's user: the summary's counting consumers (filtered, deleted at once), the snapshot's
//! ordered consumers on the latest-state stream (filtered for one channel), and a backfill's
//! start found by time, and the DLQ page's consumers on the DLQ stream. A call the permissions
//! lack shows up as a violation in the NATS logs, which the fleet test checks at the end.

use std::net::SocketAddr;

use rakuda_testkit::tls::{h2_get, TlsClient};

/// Asks for each and expects 200; a stream with `?since=` must deliver its first bytes.
pub async fn read_within_the_gateways_permissions(tls: &TlsClient, addr: SocketAddr, key: &str) {
    let headers = [("x-api-key", key)];
    for path in [
        "/api/realtime/summary",
        "/api/realtime/snapshot",
        "/api/realtime/snapshot?channels=inventory&limit=5",
        // Reads the DLQ stream: its consumers need the gateway's permissions on RAKUDA_DLQ.
        "/api/realtime/dlq",
    ] {
        let response = h2_get(tls, addr, path, &headers)
            .await
            .expect("an HTTPS request");
        let status = response.status;
        let body = response.text().await.expect("the body");
        assert_eq!(status, 200, "{path} answered {status}: {body}");
    }
    let mut stream = h2_get(tls, addr, "/api/realtime/events?since=10m", &headers)
        .await
        .expect("an HTTPS request");
    assert_eq!(stream.status, 200, "a stream with ?since= was refused");
    let first = stream
        .chunk()
        .await
        .expect("the stream's first bytes")
        .expect("no error");
    assert!(!first.is_empty(), "the stream with ?since= sent nothing");
}
