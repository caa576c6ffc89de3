//! The history endpoints through nginx, so that every NATS call they make runs with the
//! gateway's user: the summary's counting consumers (filtered, deleted at once), the snapshot's
//! ordered consumers on the latest-state stream (filtered for one channel), and a backfill's
//! start found by time, and the DLQ page's consumers on the DLQ stream. A call the permissions
//! lack shows up as a violation in the NATS logs, which the fleet test checks at the end.

use std::net::SocketAddr;

use bytes::Bytes;
use rakuda_testkit::tls::{h2_get, h2_post, TlsClient};

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

type Headers<'a> = &'a [(&'a str, &'a str)];

/// The bridges' publish API through nginx over TLS, as shipped: a read key is refused, and an
/// event the validator refuses is answered with its reason after the bridge handled it (a
/// refused event lands on the DLQ, not in the stream the fleet's clients count).
pub async fn publish_is_served_through_nginx(
    tls: &TlsClient,
    addr: SocketAddr,
    publish_key: &str,
    read_key: &str,
) {
    let refused = r#"{"type":"ORDER_RECEIVED","payload":{"action":"created"},"timestamp":"2026-11-22T10:00:00.000Z"}"#;
    let bearer = format!("Bearer {publish_key}");
    let cases: [(Headers, u16, &str); 2] = [
        (
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            422,
            "missing_field",
        ),
        (
            &[
                ("x-api-key", read_key),
                ("content-type", "application/json"),
            ],
            403,
            "read_credential",
        ),
    ];
    for (headers, expected, reason) in cases {
        let response = h2_post(
            tls,
            addr,
            "/api/realtime/publish",
            headers,
            Bytes::from_static(refused.as_bytes()),
        )
        .await
        .expect("an HTTPS request");
        let status = response.status;
        let body = response.text().await.expect("the body");
        assert_eq!(status, expected, "publish answered {status}: {body}");
        assert!(body.contains(reason), "publish answered {status}: {body}");
    }
}
