//! The middleware on a router of its own: no NATS, no socket.

use super::*;
use crate::metrics::GatewayMetrics;
use axum::routing::get;
use axum::Router;
use std::num::NonZeroU32;
use std::time::Duration;
use tower::ServiceExt;

const FAILURES_PER_MINUTE: u32 = 3;

fn auth(enabled: bool) -> (Arc<Auth>, Arc<GatewayMetrics>) {
    let per_minute = NonZeroU32::new(FAILURES_PER_MINUTE).expect("nonzero");
    auth_with(enabled, AuthFailures::new(per_minute))
}

fn auth_with(enabled: bool, failures: AuthFailures) -> (Arc<Auth>, Arc<GatewayMetrics>) {
    let metrics = Arc::new(GatewayMetrics::new());
    let auth = Arc::new(Auth {
        keys: ApiKeys::from(
            rakuda_service::keys::KeySet::new(&["first-key-1".into()], 8).expect("keys"),
        ),
        tokens: Arc::new(TokenSigner::new(
            b"0123456789abcdef0123456789abcdef",
            Duration::from_secs(60),
        )),
        refusals: Refusals::new(metrics.edge.clone()),
        failures,
        proxies: TrustedProxies::default(),
        enabled,
    });
    (auth, metrics)
}

async fn answer(
    auth: &Arc<Auth>,
    request: axum::http::Request<axum::body::Body>,
) -> axum::response::Response {
    let admin = Router::new()
        .route("/api/realtime/admin", get(|| async { "ok" }))
        .route_layer(axum::middleware::from_fn_with_state(
            auth.refusals.clone(),
            require_admin,
        ));
    let app = Router::new()
        .route("/api/realtime/x", get(|| async { "ok" }))
        .merge(admin)
        .route_layer(axum::middleware::from_fn_with_state(auth.clone(), require));
    match app.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

async fn status_of(auth: &Arc<Auth>, request: axum::http::Request<axum::body::Body>) -> u16 {
    answer(auth, request).await.status().as_u16()
}

fn get_request(uri: &str, key: Option<&str>) -> axum::http::Request<axum::body::Body> {
    get_from(uri, key, "127.0.0.1:5000")
}

fn get_from(uri: &str, key: Option<&str>, peer: &str) -> axum::http::Request<axum::body::Body> {
    let mut builder = axum::http::Request::get(uri);
    if let Some(key) = key {
        builder = builder.header(API_KEY_HEADER, key);
    }
    let mut request = builder.body(axum::body::Body::empty()).expect("request");
    request
        .extensions_mut()
        .insert(PeerAddr(peer.parse().expect("addr")));
    request
}

fn token(auth: &Auth, subject: &str, scope: Scope) -> String {
    auth.tokens
        .issue(subject, ChannelSet::all(), scope, OffsetDateTime::now_utc())
        .0
}

#[tokio::test]
async fn keys_and_tokens_are_checked_and_refusals_counted() {
    let (auth, metrics) = auth(true);
    assert_eq!(
        status_of(&auth, get_request("/api/realtime/x", Some("first-key-1"))).await,
        200
    );
    assert_eq!(
        status_of(&auth, get_request("/api/realtime/x", Some("wrong-key-9"))).await,
        401
    );
    assert_eq!(
        status_of(&auth, get_request("/api/realtime/x", None)).await,
        401
    );
    let token = token(&auth, "key-1", Scope::Stream);
    assert_eq!(
        status_of(
            &auth,
            get_request(&format!("/api/realtime/x?token={token}"), None)
        )
        .await,
        200
    );
    assert_eq!(
        status_of(&auth, get_request("/api/realtime/x?token=nope.nope", None)).await,
        401
    );
    let counts = metrics.snapshot("t").requests_rejected;
    assert_eq!(counts["invalid_api_key"], 1);
    assert_eq!(counts["missing_credentials"], 1);
    assert_eq!(counts["invalid_token"], 1);
}

#[tokio::test]
async fn a_token_of_a_key_no_longer_configured_is_refused() {
    let (auth, _) = auth(true);
    let orphan = token(&auth, "key-7", Scope::Stream);
    assert_eq!(
        status_of(
            &auth,
            get_request(&format!("/api/realtime/x?token={orphan}"), None)
        )
        .await,
        401
    );
}

#[tokio::test]
async fn status_and_stats_need_the_key_or_an_admin_token() {
    let (auth, metrics) = auth(true);
    let stream = token(&auth, "key-1", Scope::Stream);
    let admin = token(&auth, "key-1", Scope::Admin);
    let admin_path = |token: &str| format!("/api/realtime/admin?token={token}");
    assert_eq!(
        status_of(&auth, get_request(&admin_path(&stream), None)).await,
        403
    );
    assert_eq!(
        status_of(&auth, get_request(&admin_path(&admin), None)).await,
        200
    );
    assert_eq!(
        status_of(
            &auth,
            get_request("/api/realtime/admin", Some("first-key-1"))
        )
        .await,
        200
    );
    assert_eq!(metrics.snapshot("t").requests_rejected["admin_required"], 1);
}

#[tokio::test]
async fn failed_attempts_are_limited_per_address_even_for_a_right_key() {
    let (auth, metrics) = auth(true);
    let guesser = "198.51.100.7:40000";
    for _ in 0..FAILURES_PER_MINUTE {
        let request = get_from("/api/realtime/x", Some("wrong-key-9"), guesser);
        assert_eq!(status_of(&auth, request).await, 401);
    }
    let over = answer(
        &auth,
        get_from("/api/realtime/x", Some("wrong-key-9"), guesser),
    )
    .await;
    assert_eq!(over.status().as_u16(), 429);
    let retry_after: u64 = over
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    // While blocked, the right key gets the same answer: no oracle for a guesser.
    let right = get_from("/api/realtime/x", Some("first-key-1"), guesser);
    assert_eq!(status_of(&auth, right).await, 429);
    // Another address is not affected; missing credentials and expired tokens are no guess.
    let other = get_from("/api/realtime/x", Some("first-key-1"), "198.51.100.8:1");
    assert_eq!(status_of(&auth, other).await, 200);
    for _ in 0..10 {
        let plain = get_from("/api/realtime/x", None, "198.51.100.9:1");
        assert_eq!(status_of(&auth, plain).await, 401);
    }
    assert_eq!(
        metrics.snapshot("t").requests_rejected["too_many_auth_failures"],
        2
    );
}

/// The limiter tracks 16 addresses here; 48 guessing addresses fill it and spend its shared
/// overflow allowance. Valid credentials from any address that is not itself over its limit
/// still get in: strangers' failures cost the strangers.
#[tokio::test]
async fn valid_credentials_get_in_however_many_strangers_failed() {
    const TRACKED: usize = 16;
    let per_minute = NonZeroU32::new(FAILURES_PER_MINUTE).expect("nonzero");
    let (auth, metrics) = auth_with(true, AuthFailures::tracking(per_minute, TRACKED));
    let guesser = |n: usize| format!("10.0.{}.{}:4000", n / 256, n % 256);
    let mut limited = 0;
    for n in 0..TRACKED * 3 {
        for _ in 0..=FAILURES_PER_MINUTE {
            let request = get_from("/api/realtime/x", Some("wrong-key-9"), &guesser(n));
            match status_of(&auth, request).await {
                401 => {}
                429 => limited += 1,
                other => panic!("a guess answered {other}"),
            }
        }
    }
    // A newcomer with the right key, or with a token, gets in.
    let newcomer = "192.0.2.50:1";
    let right = get_from("/api/realtime/x", Some("first-key-1"), newcomer);
    assert_eq!(
        status_of(&auth, right).await,
        200,
        "a valid key was refused"
    );
    let uri = format!(
        "/api/realtime/x?token={}",
        token(&auth, "key-1", Scope::Stream)
    );
    assert_eq!(status_of(&auth, get_from(&uri, None, newcomer)).await, 200);
    // A newcomer's guess is refused, the shared allowance being spent, and blocks nobody: its
    // own right key gets in next.
    let other = "192.0.2.51:1";
    let guess = get_from("/api/realtime/x", Some("wrong-key-9"), other);
    assert_eq!(status_of(&auth, guess).await, 429);
    limited += 1;
    let right = get_from("/api/realtime/x", Some("first-key-1"), other);
    assert_eq!(status_of(&auth, right).await, 200);
    // An address over its own limit waits, right key or not: no oracle for a guesser.
    let right = get_from("/api/realtime/x", Some("first-key-1"), &guesser(0));
    assert_eq!(status_of(&auth, right).await, 429);
    limited += 1;
    assert_eq!(
        metrics.snapshot("t").requests_rejected["too_many_auth_failures"],
        limited
    );
}

#[tokio::test]
async fn authentication_releases_the_sockets_unauthenticated_slot() {
    let (auth, _) = auth(true);
    let recorder = rakuda_service::metric::recorder();
    let gauge = rakuda_service::metric::readable_gauge(&recorder, "t_unauth", &[]);
    let pending = crate::edge::unauthenticated::Unauthenticated::new(
        4,
        4,
        TrustedProxies::default(),
        gauge.clone(),
    );
    let listener_copy = pending
        .hold("127.0.0.1".parse().expect("ip"))
        .expect("slot");
    let mut request = get_request("/api/realtime/x", Some("first-key-1"));
    request.extensions_mut().insert(listener_copy.clone());
    assert_eq!(status_of(&auth, request).await, 200);
    assert_eq!(
        gauge.get(),
        0,
        "released while the listener still holds its copy"
    );
    let refused_copy = pending
        .hold("127.0.0.1".parse().expect("ip"))
        .expect("slot");
    let mut request = get_request("/api/realtime/x", Some("wrong-key-9"));
    request.extensions_mut().insert(refused_copy.clone());
    assert_eq!(status_of(&auth, request).await, 401);
    assert_eq!(
        gauge.get(),
        1,
        "a refused socket stays counted until it closes"
    );
    drop(refused_copy);
    drop(listener_copy);
}

#[tokio::test]
async fn a_disabled_gateway_answers_503_to_everyone() {
    let (auth, metrics) = auth(false);
    assert_eq!(
        status_of(&auth, get_request("/api/realtime/x", Some("first-key-1"))).await,
        503
    );
    assert_eq!(
        metrics.snapshot("t").requests_rejected["realtime_disabled"],
        1
    );
}
