//! Who may use `/api/realtime/*`: the `X-API-Key` of the existing apiKeyAuth, or a `?token=`
//! from `POST /api/realtime/token` for `EventSource`, which cannot send headers. Failed
//! attempts are limited per client address ([`super::auth_failures`]); a request that passes
//! releases its socket's unauthenticated slot ([`super::unauthenticated`]).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;

use rakuda_schema::RequestRefusal;

use super::auth_failures::AuthFailures;
use super::client_addr::{PeerAddr, TrustedProxies};
use super::error::{ApiError, Refusals};
use super::keys::ApiKeys;
use super::token::{Scope, TokenError, TokenSigner};
use super::unauthenticated::Slot;
use crate::channels::ChannelSet;

pub(crate) const API_KEY_HEADER: &str = "x-api-key";

/// Who made the request and what they may do.
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    ApiKey {
        key_id: String,
    },
    Token {
        subject: String,
        channels: ChannelSet,
        scope: Scope,
        expires_at: OffsetDateTime,
    },
}

impl Principal {
    pub(crate) fn allowed_channels(&self) -> ChannelSet {
        match self {
            Principal::ApiKey { .. } => ChannelSet::all(),
            Principal::Token { channels, .. } => *channels,
        }
    }

    /// The key a connection counts against (the token's subject is the key that minted it).
    pub(crate) fn subject(&self) -> &str {
        match self {
            Principal::ApiKey { key_id } => key_id,
            Principal::Token { subject, .. } => subject,
        }
    }

    /// When the credential stops being valid: a stream opened with a token ends then.
    pub(crate) fn expires_at(&self) -> Option<OffsetDateTime> {
        match self {
            Principal::ApiKey { .. } => None,
            Principal::Token { expires_at, .. } => Some(*expires_at),
        }
    }

    /// `/status`, `/stats` and cluster stats: the API key, or a token minted with the admin
    /// scope.
    pub(crate) fn is_admin(&self) -> bool {
        match self {
            Principal::ApiKey { .. } => true,
            Principal::Token { scope, .. } => *scope == Scope::Admin,
        }
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Who may use `/api/realtime/*`: the configured keys and the token signer.
pub(crate) struct Auth {
    pub keys: ApiKeys,
    pub tokens: Arc<TokenSigner>,
    pub refusals: Refusals,
    pub failures: AuthFailures,
    pub proxies: TrustedProxies,
    /// `REALTIME_ENABLED`: off, every route answers 503.
    pub enabled: bool,
}

/// Why a credential was not accepted.
enum Denied {
    /// No credential at all, or a token that was valid and ran out: not a guess.
    Plain(ApiError),
    /// A wrong key or a forged token: counts against the address.
    Guess(ApiError),
}

/// Middleware for every `/api/realtime/*` route: the request carries its [`Principal`] on.
pub(crate) async fn require(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
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
    let client = request
        .extensions()
        .get::<PeerAddr>()
        .map(|peer| auth.proxies.client(peer.0.ip(), request.headers()));
    if let Some(wait) = client.and_then(|client| auth.failures.blocked(client)) {
        return auth.too_many_failures(wait).into_response();
    }
    match auth.authenticate(&request) {
        Ok(principal) => {
            if let Some(slot) = request.extensions_mut().remove::<Slot>() {
                slot.release();
            }
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(Denied::Plain(error)) => error.into_response(),
        Err(Denied::Guess(error)) => match client.and_then(|client| auth.failures.failed(client)) {
            Some(wait) => auth.too_many_failures(wait).into_response(),
            None => error.into_response(),
        },
    }
}

/// Middleware for `/status` and `/stats`: an administrator only.
pub(crate) async fn require_admin(
    State(refusals): State<Refusals>,
    request: Request,
    next: Next,
) -> Response {
    let admin = request
        .extensions()
        .get::<Principal>()
        .is_some_and(Principal::is_admin);
    if !admin {
        return refusals
            .refuse(
                StatusCode::FORBIDDEN,
                RequestRefusal::AdminRequired,
                "this endpoint needs the X-API-Key header, or a token minted with \"scope\":\"admin\"",
            )
            .into_response();
    }
    next.run(request).await
}

impl Auth {
    fn too_many_failures(&self, wait: std::time::Duration) -> ApiError {
        self.refusals
            .refuse(
                StatusCode::TOO_MANY_REQUESTS,
                RequestRefusal::TooManyAuthFailures,
                "too many failed attempts from this address; wait for Retry-After seconds",
            )
            .retry_after(wait)
    }

    fn authenticate(&self, request: &Request) -> Result<Principal, Denied> {
        if let Some(value) = request.headers().get(API_KEY_HEADER) {
            let key = value.to_str().unwrap_or_default();
            return self
                .keys
                .check(key)
                .map(|key_id| Principal::ApiKey {
                    key_id: key_id.to_owned(),
                })
                .ok_or_else(|| {
                    Denied::Guess(self.refusals.refuse(
                        StatusCode::UNAUTHORIZED,
                        RequestRefusal::InvalidApiKey,
                        "the X-API-Key header does not match any configured key",
                    ))
                });
        }
        let token = axum::extract::Query::<TokenQuery>::try_from_uri(request.uri())
            .ok()
            .and_then(|query| query.0.token);
        let Some(token) = token else {
            return Err(Denied::Plain(self.refusals.refuse(
                StatusCode::UNAUTHORIZED,
                RequestRefusal::MissingCredentials,
                "send the API key in the X-API-Key header, or a token from POST /api/realtime/token as ?token=",
            )));
        };
        match self.tokens.verify(&token, OffsetDateTime::now_utc()) {
            Ok(grant) if self.keys.knows(&grant.subject) => Ok(Principal::Token {
                subject: grant.subject,
                channels: grant.channels,
                scope: grant.scope,
                expires_at: grant.expires_at,
            }),
            Ok(_) => Err(Denied::Plain(self.refusals.refuse(
                StatusCode::UNAUTHORIZED,
                RequestRefusal::InvalidToken,
                "the API key that minted this token is no longer configured; fetch a new token",
            ))),
            Err(error @ TokenError::Expired(_)) => Err(Denied::Plain(self.refusals.refuse(
                StatusCode::UNAUTHORIZED,
                RequestRefusal::TokenExpired,
                error.to_string(),
            ))),
            Err(error) => Err(Denied::Guess(self.refusals.refuse(
                StatusCode::UNAUTHORIZED,
                RequestRefusal::InvalidToken,
                error.to_string(),
            ))),
        }
    }
}

/// The channels a request gets: the `channels` it asked for (comma-separated names), within
/// what its credential allows; every allowed channel when it asked for none. An unknown channel
/// is 400 `unknown_channel`, one the credential does not allow 403 `channel_not_allowed`.
pub(crate) fn requested_channels(
    refusals: &Refusals,
    principal: &Principal,
    requested: Option<&str>,
) -> Result<ChannelSet, ApiError> {
    let allowed = principal.allowed_channels();
    let Some(requested) = requested.filter(|list| !list.trim().is_empty()) else {
        return Ok(allowed);
    };
    let requested = ChannelSet::parse(requested).map_err(|error| {
        refusals.refuse(
            StatusCode::BAD_REQUEST,
            RequestRefusal::UnknownChannel,
            error.to_string(),
        )
    })?;
    if !requested.is_subset_of(allowed) {
        return Err(refusals.refuse(
            StatusCode::FORBIDDEN,
            RequestRefusal::ChannelNotAllowed,
            format!(
                "this token allows only {}; request a token for the channels you need",
                allowed.names().join(", ")
            ),
        ));
    }
    Ok(requested)
}

#[cfg(test)]
mod tests;
