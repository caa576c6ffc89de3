//! The edge from its settings: connection slots, tokens, auth, and the listener in front.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use tokio_util::task::TaskTracker;

use crate::config::{AuthConfig, ConfigError, LimitsConfig};
use crate::edge::auth::Auth;
use crate::edge::auth_failures::AuthFailures;
use crate::edge::client_addr::TrustedProxies;
use crate::edge::limits::Connections;
use crate::edge::token::TokenSigner;
use crate::edge::unauthenticated::Unauthenticated;
use crate::edge::ApiKeys;
use crate::server::head::HeadLimits;
use crate::server::listener::Listener;

use super::shared::Shared;

/// The slots streams and history answers take from (the same limits for both), and the gauge
/// that shows their most.
pub(super) fn connections(limits: &LimitsConfig, shared: &Shared) -> Arc<Connections> {
    let gauge = &shared.metrics.fleet.max_connections;
    gauge.set(limits.max_connections as f64);
    Connections::new(limits.max_connections, limits.max_connections_per_key)
}

/// Signs with the first `TOKEN_SECRET`, accepts the others; in dev mode without one, a secret
/// of this process alone.
pub(super) fn token_signer(auth: &AuthConfig) -> TokenSigner {
    let mut secrets = auth.token_secret.iter().map(|s| s.expose().as_bytes());
    match secrets.next() {
        Some(signing) => TokenSigner::new(signing, auth.token_ttl).also_accepting(secrets),
        None => {
            tracing::warn!(
                "GATEWAY_DEV_MODE without TOKEN_SECRET: tokens work on this instance only"
            );
            TokenSigner::random(auth.token_ttl)
        }
    }
}

/// Checks each request's key or token and paces failed attempts per address; `enabled` is
/// `REALTIME_ENABLED`.
pub(super) fn auth(
    auth: &AuthConfig,
    enabled: bool,
    tokens: Arc<TokenSigner>,
    shared: &Shared,
) -> Result<Auth, ConfigError> {
    Ok(Auth {
        keys: ApiKeys::from(auth.api_keys()?),
        tokens,
        refusals: shared.refusals.clone(),
        failures: AuthFailures::new(
            NonZeroU32::new(auth.auth_failures_per_minute).unwrap_or(NonZeroU32::MIN),
        ),
        proxies: TrustedProxies::new(auth.trusted_proxies.clone()),
        enabled,
    })
}

/// Accepts sockets, reads request heads within the limits and hands them to `router`;
/// `TRUSTED_PROXIES` (in `auth`) have no cap of unauthenticated sockets per address.
pub(super) fn listener(
    limits: &LimitsConfig,
    auth: &AuthConfig,
    router: Router,
    shared: &Shared,
) -> Listener {
    Listener {
        router,
        limits: HeadLimits {
            max_uri_bytes: limits.max_uri_bytes,
            max_header_bytes: limits.max_header_bytes,
        },
        read_timeout: limits.request_read_timeout,
        unauthenticated: Unauthenticated::new(
            limits.max_unauthenticated_connections,
            limits.max_unauthenticated_per_address,
            TrustedProxies::new(auth.trusted_proxies.clone()),
            shared.metrics.edge.unauthenticated.clone(),
        ),
        refusals: shared.refusals.clone(),
        stall_timeout: limits.client_stall_timeout,
        connections: TaskTracker::new(),
    }
}
