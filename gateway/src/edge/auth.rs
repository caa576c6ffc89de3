//! Who may use `/api/realtime/*`: the `X-API-Key` of the existing apiKeyAuth, or a `?token=`
//! from `POST /api/realtime/token` for `EventSource`, which cannot send headers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use rakuda_schema::RequestRefusal;

use super::error::{ApiError, Refusals};
use super::token::{TokenError, TokenSigner};
use crate::channels::ChannelSet;

pub const API_KEY_HEADER: &str = "x-api-key";

/// The configured API keys, kept as digests and compared in constant time.
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    pub fn new(keys: &[String]) -> ApiKeys {
        ApiKeys {
            digests: keys.iter().map(|key| digest(key)).collect(),
        }
    }

    /// The id of the matching key (`k-1a2b3c4d`), comparing against every key so the time
    /// taken does not tell which, or whether, one matched.
    pub fn check(&self, presented: &str) -> Option<String> {
        let presented = digest(presented);
        let mut found = None;
        for candidate in &self.digests {
            if bool::from(candidate.ct_eq(&presented)) {
                found = Some(key_id(candidate));
            }
        }
        found
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A key's public name: never the key itself, stable across instances.
fn key_id(digest: &[u8; 32]) -> String {
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("k-{hex}")
}

/// Who made the request and what they may read.
#[derive(Debug, Clone)]
pub enum Principal {
    ApiKey {
        key_id: String,
    },
    Token {
        subject: String,
        channels: ChannelSet,
    },
}

impl Principal {
    pub fn allowed_channels(&self) -> ChannelSet {
        match self {
            Principal::ApiKey { .. } => ChannelSet::all(),
            Principal::Token { channels, .. } => *channels,
        }
    }

    /// The key a connection counts against (the token's subject is the key that minted it).
    pub fn subject(&self) -> &str {
        match self {
            Principal::ApiKey { key_id } => key_id,
            Principal::Token { subject, .. } => subject,
        }
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Who may use `/api/realtime/*`: the configured keys and the token signer.
pub struct Auth {
    pub keys: ApiKeys,
    pub tokens: Arc<TokenSigner>,
    pub refusals: Refusals,
    /// `REALTIME_ENABLED`: off, every route answers 503.
    pub enabled: bool,
}

/// Middleware for every `/api/realtime/*` route: the request carries its [`Principal`] on.
pub async fn require(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    if !auth.enabled {
        return auth
            .refusals
            .refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                RequestRefusal::RealtimeDisabled,
                "real-time updates are turned off on this gateway (REALTIME_ENABLED=false)",
            )
            .into_response();
    }
    match auth.authenticate(&request) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

impl Auth {
    fn authenticate(&self, request: &Request) -> Result<Principal, ApiError> {
        if let Some(value) = request.headers().get(API_KEY_HEADER) {
            let key = value.to_str().unwrap_or_default();
            return self
                .keys
                .check(key)
                .map(|key_id| Principal::ApiKey { key_id })
                .ok_or_else(|| {
                    self.refusals.refuse(
                        StatusCode::UNAUTHORIZED,
                        RequestRefusal::InvalidApiKey,
                        "the X-API-Key header does not match any configured key",
                    )
                });
        }
        let token = axum::extract::Query::<TokenQuery>::try_from_uri(request.uri())
            .ok()
            .and_then(|query| query.0.token);
        let Some(token) = token else {
            return Err(self.refusals.refuse(
                StatusCode::UNAUTHORIZED,
                RequestRefusal::MissingCredentials,
                "send the API key in the X-API-Key header, or a token from POST /api/realtime/token as ?token=",
            ));
        };
        match self.tokens.verify(&token, OffsetDateTime::now_utc()) {
            Ok(grant) => Ok(Principal::Token {
                subject: grant.subject,
                channels: grant.channels,
            }),
            Err(error @ TokenError::Expired(_)) => Err(self.refusals.refuse(
                StatusCode::UNAUTHORIZED,
                RequestRefusal::TokenExpired,
                error.to_string(),
            )),
            Err(error) => Err(self.refusals.refuse(
                StatusCode::UNAUTHORIZED,
                RequestRefusal::InvalidToken,
                error.to_string(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::GatewayMetrics;
    use axum::routing::get;
    use axum::Router;
    use std::time::Duration;
    use tower::ServiceExt;

    fn auth(enabled: bool) -> (Arc<Auth>, Arc<GatewayMetrics>) {
        let metrics = Arc::new(GatewayMetrics::new());
        let auth = Arc::new(Auth {
            keys: ApiKeys::new(&["first-key-1".into()]),
            tokens: Arc::new(TokenSigner::new(
                b"0123456789abcdef0123456789abcdef",
                Duration::from_secs(60),
            )),
            refusals: Refusals::new(metrics.edge.clone()),
            enabled,
        });
        (auth, metrics)
    }

    async fn status_of(auth: &Arc<Auth>, request: axum::http::Request<axum::body::Body>) -> u16 {
        let app = Router::new()
            .route("/api/realtime/x", get(|| async { "ok" }))
            .route_layer(axum::middleware::from_fn_with_state(auth.clone(), require));
        app.oneshot(request)
            .await
            .map(|response| response.status().as_u16())
            .unwrap_or(0)
    }

    fn get_request(uri: &str, key: Option<&str>) -> axum::http::Request<axum::body::Body> {
        let mut builder = axum::http::Request::get(uri);
        if let Some(key) = key {
            builder = builder.header(API_KEY_HEADER, key);
        }
        builder.body(axum::body::Body::empty()).expect("request")
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
        let (token, _) = auth
            .tokens
            .issue("k-1", ChannelSet::all(), OffsetDateTime::now_utc());
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

    #[test]
    fn keys_match_exactly() {
        let keys = ApiKeys::new(&["first-key-1".into(), "second-key-2".into()]);
        let first = keys.check("first-key-1").expect("known");
        assert!(first.starts_with("k-") && first.len() == 10);
        assert!(keys.check("second-key-2").is_some());
        assert_ne!(keys.check("second-key-2"), Some(first));
        assert!(keys.check("first-key-").is_none());
        assert!(keys.check("").is_none());
    }
}
