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

use crate::app::App;
use crate::channels::ChannelSet;
use crate::token::TokenError;

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

/// Middleware for every `/api/realtime/*` route.
pub async fn require(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    if !app.config.realtime_enabled {
        return app
            .reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "realtime_disabled",
                "real-time updates are turned off on this gateway (REALTIME_ENABLED=false)",
            )
            .into_response();
    }
    match authenticate(&app, &request) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

fn authenticate(app: &App, request: &Request) -> Result<Principal, crate::error::ApiError> {
    if let Some(value) = request.headers().get(API_KEY_HEADER) {
        let key = value.to_str().unwrap_or_default();
        return app
            .keys
            .check(key)
            .map(|key_id| Principal::ApiKey { key_id })
            .ok_or_else(|| {
                app.reject(
                    StatusCode::UNAUTHORIZED,
                    "invalid_api_key",
                    "the X-API-Key header does not match any configured key",
                )
            });
    }
    let token = axum::extract::Query::<TokenQuery>::try_from_uri(request.uri())
        .ok()
        .and_then(|query| query.0.token);
    let Some(token) = token else {
        return Err(app.reject(
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
            "send the API key in the X-API-Key header, or a token from POST /api/realtime/token as ?token=",
        ));
    };
    match app.tokens.verify(&token, OffsetDateTime::now_utc()) {
        Ok(grant) => Ok(Principal::Token {
            subject: grant.subject,
            channels: grant.channels,
        }),
        Err(error @ TokenError::Expired(_)) => {
            Err(app.reject(StatusCode::UNAUTHORIZED, "token_expired", error.to_string()))
        }
        Err(error) => Err(app.reject(StatusCode::UNAUTHORIZED, "invalid_token", error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
