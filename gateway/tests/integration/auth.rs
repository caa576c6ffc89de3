//! Credentials: no key, wrong key, expired, tampered or foreign tokens, tokens for other
//! channels, tokens minting tokens, the realtime switch; and a plain EventSource-style request
//! with a valid token.

use std::time::Duration;

use crate::support::*;
use rakuda_schema::EventType;
use serde_json::Value;

/// The gateway's `TOKEN_TTL` in the test of bad credentials.
const TOKEN_TTL: Duration = Duration::from_secs(60);

async fn call(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = bounded("HTTP call", request.send()).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn mint(gateway: &RunningGateway, body: Option<&str>) -> String {
    let (status, json) = call(
        reqwest::Method::POST,
        &format!("{}/api/realtime/token", gateway.url),
        &[("X-API-Key", API_KEY)],
        body,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert!(json["expiresAt"].as_str().is_some());
    json["token"].as_str().expect("token").to_owned()
}

/// A token's claims (`base64url(claims JSON)` before the signature's dot).
fn token_claims(token: &str) -> Value {
    use base64::Engine;
    let (claims, _) = token.split_once('.').expect("claims.signature");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .expect("base64url claims");
    serde_json::from_slice(&json).expect("JSON claims")
}

/// The token a gateway with `TOKEN_SECRET` and `ttl` would have minted for `claims`' key,
/// channels and scope `2 × ttl` before them: it expired before they were issued.
fn already_expired(claims: &Value, ttl: Duration) -> String {
    use rakuda_gateway::parts::{ChannelSet, Scope, TokenSigner};
    let channels: Vec<&str> = claims["ch"]
        .as_array()
        .expect("ch")
        .iter()
        .map(|name| name.as_str().expect("a channel name"))
        .collect();
    let channels = ChannelSet::parse(&channels.join(",")).expect("the token's channels");
    let scope: Scope = serde_json::from_value(claims["scope"].clone()).expect("scope");
    let issued_at = time::OffsetDateTime::from_unix_timestamp(claims["iat"].as_i64().expect("iat"))
        .expect("iat is a time");
    let signer = TokenSigner::new(TOKEN_SECRET.as_bytes(), ttl);
    let (token, expires_at) = signer.issue(
        claims["sub"].as_str().expect("sub"),
        channels,
        scope,
        issued_at - ttl * 2,
    );
    assert!(expires_at < time::OffsetDateTime::now_utc());
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_credential_gets_a_specific_json_error() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    // Long enough that no token below expires while the test runs on a loaded machine: expiry
    // is shown with a token that expired before the test began.
    config.auth.token_ttl = TOKEN_TTL;
    let gateway = start_gateway(config).await;
    let events = format!("{}/api/realtime/events", gateway.url);
    let get = reqwest::Method::GET;

    let (status, body) = call(get.clone(), &events, &[], None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_credentials"))
    );
    assert!(body["message"]
        .as_str()
        .expect("message")
        .contains("X-API-Key"));

    let (status, body) = call(
        get.clone(),
        &events,
        &[("X-API-Key", "wrong-key-000000")],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_api_key"))
    );

    let token = mint(&gateway, None).await;
    // Flip the signature's first character: the last one also carries padding bits, and
    // changing only those makes the token malformed rather than wrongly signed (1 run in 16).
    let (claims, signature) = token.split_once('.').expect("claims.signature");
    let first = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{claims}.{first}{}", &signature[1..]);
    let (status, body) = call(
        get.clone(),
        &format!("{events}?token={tampered}"),
        &[],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    assert!(body["message"]
        .as_str()
        .expect("message")
        .contains("signature"));

    let (status, body) = call(get.clone(), &format!("{events}?token=garbage"), &[], None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );

    let orders_only = mint(&gateway, Some(r#"{"channels":["orders"]}"#)).await;
    let (status, body) = call(
        get.clone(),
        &format!("{events}?token={orders_only}&channels=inventory"),
        &[],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("channel_not_allowed"))
    );

    let (status, body) = call(
        reqwest::Method::POST,
        &format!("{}/api/realtime/token?token={token}", gateway.url),
        &[],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("api_key_required"))
    );

    let (status, body) = call(
        reqwest::Method::POST,
        &format!("{}/api/realtime/token", gateway.url),
        &[("X-API-Key", API_KEY)],
        Some(r#"{"channels":["warehouse"]}"#),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unknown_channel"))
    );

    // Expiry, without waiting for it: the gateway's token lives TOKEN_TTL from its issue, and
    // the very token it would have minted two TTLs earlier (same secret, key, channels, scope
    // and TTL, made by the gateway's own signer) has expired by now.
    let claims = token_claims(&token);
    let issued_at = claims["iat"].as_i64().expect("iat");
    let ttl = i64::try_from(TOKEN_TTL.as_secs()).expect("a TTL in seconds");
    assert_eq!(claims["exp"].as_i64(), Some(issued_at + ttl), "{claims}");
    let expired = already_expired(&claims, TOKEN_TTL);
    let (status, body) = call(get.clone(), &format!("{events}?token={expired}"), &[], None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("token_expired"))
    );
    assert!(body["message"]
        .as_str()
        .expect("message")
        .contains("POST /api/realtime/token"));

    // Other /api/realtime routes are guarded too.
    let (status, _) = call(
        get.clone(),
        &format!("{}/api/realtime/stats", gateway.url),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 401);

    wait_for_rejections(
        &gateway,
        &[
            ("missing_credentials", 2.0),
            ("invalid_api_key", 1.0),
            ("invalid_token", 2.0),
            ("channel_not_allowed", 1.0),
            ("api_key_required", 1.0),
            ("unknown_channel", 1.0),
            ("token_expired", 1.0),
        ],
    )
    .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_works_like_an_event_source_and_limits_channels() {
    let stack = Stack::start().await;
    let first = start_gateway(stack.gateway_config()).await;
    let second = start_gateway(stack.gateway_config()).await;
    let token = mint(&first, Some(r#"{"channels":["orders"]}"#)).await;

    // Minted by one instance, accepted by another; no headers at all, as EventSource sends.
    let mut client = SseClient::connect_with(
        &format!("{}/api/realtime/events?token={token}", second.url),
        &[],
    )
    .await;
    assert_eq!(client.status, 200);
    let mut redis = stack.redis_connection().await;
    publish_event(&mut redis, EventType::InventoryChange, "p").await;
    publish_event(&mut redis, EventType::OrderReceived, "o").await;
    let event = client.next_event().await.expect("event");
    assert_eq!(
        event.event.as_deref(),
        Some("ORDER_RECEIVED"),
        "the token allows orders only"
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_disabled_answers_503_with_a_reason() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.realtime_enabled = false;
    let gateway = start_gateway(config).await;
    let (status, body) = call(
        reqwest::Method::GET,
        &format!("{}/api/realtime/events", gateway.url),
        &[("X-API-Key", API_KEY)],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("realtime_disabled"))
    );
    assert!(body["message"]
        .as_str()
        .expect("message")
        .contains("REALTIME_ENABLED"));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_the_configured_origins() {
    let stack = Stack::start().await;
    let mut config = stack.gateway_config();
    config.auth.cors_origins = vec!["https://ops.rakuda.example".into()];
    let gateway = start_gateway(config).await;
    let preflight = |origin: &'static str| {
        let url = format!("{}/api/realtime/token", gateway.url);
        async move {
            reqwest::Client::new()
                .request(reqwest::Method::OPTIONS, url)
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "x-api-key,content-type")
                .send()
                .await
                .expect("preflight")
        }
    };
    let allowed = preflight("https://ops.rakuda.example").await;
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("https://ops.rakuda.example")
    );
    let allowed_headers = allowed
        .headers()
        .get("access-control-allow-headers")
        .map(|v| v.to_str().unwrap_or_default().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(allowed_headers.contains("x-api-key"), "{allowed_headers}");
    let other = preflight("https://evil.example").await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
    gateway.stop().await;
}
