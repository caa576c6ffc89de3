//! Short-lived signed tokens for `EventSource`, which cannot send an `X-API-Key` header.
//!
//! A token is `base64url(claims JSON) "." base64url(HMAC-SHA256(secret, first part))`. Every
//! instance shares `TOKEN_SECRET`, so a token minted by one gateway works on any other. The
//! claims name the minting key's id (`sub`), the channels, the scope, and `iat`/`exp`; a
//! verifier refuses a lifetime longer than its own `TOKEN_TTL`, so even a token signed with
//! the right secret cannot outlive the setting.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::channels::ChannelSet;

type HmacSha256 = Hmac<Sha256>;

/// How far a token's `iat` may be ahead of this instance's clock (clocks of a fleet drift).
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Bytes of a random secret in dev mode.
const DEV_SECRET_BYTES: usize = 32;

pub struct TokenSigner {
    /// Signs, and verifies.
    signing: Vec<u8>,
    /// Verify too: the secrets being rotated out.
    older: Vec<Vec<u8>>,
    ttl: Duration,
}

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The streams (`/events`, `/ws`) only: what a browser needs.
    #[default]
    Stream,
    /// Also `/status`, `/stats` and cluster stats.
    Admin,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The id of the API key that minted the token.
    sub: String,
    /// Channels the token may read.
    ch: Vec<String>,
    /// What the token may be used for.
    scope: Scope,
    /// Issued at, unix seconds.
    iat: i64,
    /// Expiry, unix seconds.
    exp: i64,
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub subject: String,
    pub channels: ChannelSet,
    pub scope: Scope,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not match: it was altered or signed with another secret")]
    BadSignature,
    #[error("the token expired at {0}; fetch a new one from POST /api/realtime/token")]
    Expired(String),
    #[error("the token claims a lifetime longer than TOKEN_TTL or was issued in the future")]
    BadLifetime,
}

impl TokenSigner {
    /// Signs with `signing`.
    pub fn new(signing: &[u8], ttl: Duration) -> TokenSigner {
        TokenSigner {
            signing: signing.to_vec(),
            older: Vec::new(),
            ttl,
        }
    }

    /// Also accepts tokens signed with `older` (the rest of `TOKEN_SECRET`).
    pub(crate) fn also_accepting<'a>(
        mut self,
        older: impl IntoIterator<Item = &'a [u8]>,
    ) -> TokenSigner {
        self.older.extend(older.into_iter().map(<[u8]>::to_vec));
        self
    }

    /// A secret of this process alone (`GATEWAY_DEV_MODE` without `TOKEN_SECRET`): tokens work
    /// on this instance only, and not after a restart.
    pub(crate) fn random(ttl: Duration) -> TokenSigner {
        let secret: Vec<u8> = (0..DEV_SECRET_BYTES)
            .map(|_| rand::random::<u8>())
            .collect();
        TokenSigner::new(&secret, ttl)
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Mints a token for the key `subject`, limited to `channels` and `scope`.
    pub fn issue(
        &self,
        subject: &str,
        channels: ChannelSet,
        scope: Scope,
        now: OffsetDateTime,
    ) -> (String, OffsetDateTime) {
        // Whole seconds, as the claims carry them, so `exp - iat` is exactly the TTL.
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let expires_at = now + self.ttl;
        let claims = Claims {
            sub: subject.to_owned(),
            ch: channels.names().into_iter().map(String::from).collect(),
            scope,
            iat: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
        };
        // Serializing a struct of strings and an integer cannot fail.
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signature = URL_SAFE_NO_PAD.encode(self.sign(body.as_bytes()));
        (format!("{body}.{signature}"), expires_at)
    }

    /// Checks the signature (in constant time, against every secret), the lifetime (`exp -
    /// iat` within `TOKEN_TTL`, `iat` not in the future) and the expiry.
    pub(crate) fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Grant, TokenError> {
        let (body, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut signed = false;
        for secret in std::iter::once(&self.signing).chain(&self.older) {
            let mut mac = mac(secret);
            mac.update(body.as_bytes());
            signed |= mac.verify_slice(&signature).is_ok();
        }
        if !signed {
            return Err(TokenError::BadSignature);
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Malformed)?;
        let issued_at =
            OffsetDateTime::from_unix_timestamp(claims.iat).map_err(|_| TokenError::Malformed)?;
        let expires_at =
            OffsetDateTime::from_unix_timestamp(claims.exp).map_err(|_| TokenError::Malformed)?;
        if issued_at > now + CLOCK_SKEW || expires_at - issued_at > self.ttl {
            return Err(TokenError::BadLifetime);
        }
        if expires_at <= now {
            return Err(TokenError::Expired(
                rakuda_schema::Timestamp::from_instant(expires_at)
                    .as_str()
                    .to_owned(),
            ));
        }
        let channels = ChannelSet::from_names(claims.ch.iter().map(String::as_str))
            .map_err(|_| TokenError::Malformed)?;
        Ok(Grant {
            subject: claims.sub,
            channels,
            scope: claims.scope,
            expires_at,
        })
    }

    fn sign(&self, body: &[u8]) -> Vec<u8> {
        let mut mac = mac(&self.signing);
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn signer() -> TokenSigner {
        TokenSigner::new(SECRET, Duration::from_secs(60))
    }

    #[test]
    fn a_token_round_trips() {
        let now = OffsetDateTime::now_utc();
        let channels = ChannelSet::parse("orders,pricing").expect("valid");
        let (token, expires_at) = signer().issue("key-1", channels, Scope::Stream, now);
        let grant = signer().verify(&token, now).expect("valid token");
        assert_eq!(grant.subject, "key-1");
        assert_eq!(grant.channels, channels);
        assert_eq!(grant.scope, Scope::Stream);
        assert_eq!(
            grant.expires_at.unix_timestamp(),
            expires_at.unix_timestamp()
        );
        let (admin, _) = signer().issue("key-1", channels, Scope::Admin, now);
        assert_eq!(
            signer().verify(&admin, now).map(|g| g.scope),
            Ok(Scope::Admin)
        );
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let now = OffsetDateTime::now_utc();
        let (token, _) = signer().issue("key-1", ChannelSet::all(), Scope::Stream, now);
        assert!(matches!(
            signer().verify(&token, now + Duration::from_secs(61)),
            Err(TokenError::Expired(_))
        ));
        // Flip one character of the signature.
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert_eq!(
            signer().verify(&tampered, now),
            Err(TokenError::BadSignature)
        );
        // Claims swapped for other ones, old signature kept.
        let (other, _) = signer().issue("key-2", ChannelSet::all(), Scope::Admin, now);
        let forged = format!(
            "{}.{}",
            other.split('.').next().unwrap_or(""),
            token.split('.').nth(1).unwrap_or("")
        );
        assert_eq!(signer().verify(&forged, now), Err(TokenError::BadSignature));
        let foreign = TokenSigner::new(
            b"another secret, just as long as it",
            Duration::from_secs(60),
        );
        assert_eq!(foreign.verify(&token, now), Err(TokenError::BadSignature));
        assert_eq!(signer().verify("garbage", now), Err(TokenError::Malformed));
    }

    #[test]
    fn a_lifetime_over_the_ttl_or_an_issue_date_in_the_future_is_refused() {
        let now = OffsetDateTime::now_utc();
        // Signed with the right secret, but by a signer with a far longer TTL (as a key
        // holder who knew the secret could): `exp` in the year 9999 gets nowhere.
        let long = TokenSigner::new(SECRET, Duration::from_secs(250_000 * 86_400));
        let (token, _) = long.issue("key-1", ChannelSet::all(), Scope::Stream, now);
        assert_eq!(signer().verify(&token, now), Err(TokenError::BadLifetime));
        let (early, _) = signer().issue(
            "key-1",
            ChannelSet::all(),
            Scope::Stream,
            now + Duration::from_secs(3_600),
        );
        assert_eq!(signer().verify(&early, now), Err(TokenError::BadLifetime));
        // A little clock skew between instances is fine.
        let (skewed, _) = signer().issue(
            "key-1",
            ChannelSet::all(),
            Scope::Stream,
            now + Duration::from_secs(5),
        );
        assert!(signer().verify(&skewed, now).is_ok());
    }

    #[test]
    fn rotation_signs_with_the_first_secret_and_accepts_the_others() {
        let now = OffsetDateTime::now_utc();
        let new_secret = b"a brand new secret of 32 bytes!!";
        let (old_token, _) = signer().issue("key-1", ChannelSet::all(), Scope::Stream, now);
        let rotating =
            TokenSigner::new(new_secret, Duration::from_secs(60)).also_accepting([SECRET]);
        assert!(
            rotating.verify(&old_token, now).is_ok(),
            "old tokens still work"
        );
        let (new_token, _) = rotating.issue("key-1", ChannelSet::all(), Scope::Stream, now);
        let rotated = TokenSigner::new(new_secret, Duration::from_secs(60));
        assert!(
            rotated.verify(&new_token, now).is_ok(),
            "signed with the first"
        );
        assert_eq!(
            rotated.verify(&old_token, now),
            Err(TokenError::BadSignature),
            "once the old secret is removed, its tokens stop working"
        );
    }
}
