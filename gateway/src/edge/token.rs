//! Short-lived signed tokens for `EventSource`, which cannot send an `X-API-Key` header.
//!
//! A token is `base64url(claims JSON) "." base64url(HMAC-SHA256(secret, first part))`. Every
//! instance shares the secret, so a token minted by one gateway works on any other.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::channels::ChannelSet;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation for a secret derived from the API keys.
const DERIVATION_LABEL: &[u8] = b"rakuda-realtime token secret v1";

pub struct TokenSigner {
    secret: Vec<u8>,
    ttl: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// Who the token was minted for (an API key id).
    sub: String,
    /// Channels the token may read.
    ch: Vec<String>,
    /// Expiry, unix seconds.
    exp: i64,
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub subject: String,
    pub channels: ChannelSet,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not match: it was altered or signed with another secret")]
    BadSignature,
    #[error("the token expired at {0}; fetch a new one from POST /api/realtime/token")]
    Expired(String),
}

impl TokenSigner {
    pub fn new(secret: &[u8], ttl: Duration) -> TokenSigner {
        TokenSigner {
            secret: secret.to_vec(),
            ttl,
        }
    }

    /// A secret every instance with the same `API_KEY` list derives alike.
    pub fn derived_from_keys(keys: &[String], ttl: Duration) -> TokenSigner {
        let mut sorted: Vec<&str> = keys.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        let mut mac = mac(DERIVATION_LABEL);
        for key in sorted {
            mac.update(key.as_bytes());
            mac.update(&[0]);
        }
        TokenSigner::new(&mac.finalize().into_bytes(), ttl)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Mints a token for `subject` limited to `channels`.
    pub fn issue(
        &self,
        subject: &str,
        channels: ChannelSet,
        now: OffsetDateTime,
    ) -> (String, OffsetDateTime) {
        let expires_at = now + self.ttl;
        let claims = Claims {
            sub: subject.to_owned(),
            ch: channels.names().into_iter().map(String::from).collect(),
            exp: expires_at.unix_timestamp(),
        };
        // Serializing a struct of strings and an integer cannot fail.
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signature = URL_SAFE_NO_PAD.encode(self.sign(body.as_bytes()));
        (format!("{body}.{signature}"), expires_at)
    }

    /// Checks the signature (in constant time) and the expiry.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Grant, TokenError> {
        let (body, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = mac(&self.secret);
        mac.update(body.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Malformed)?;
        let expires_at =
            OffsetDateTime::from_unix_timestamp(claims.exp).map_err(|_| TokenError::Malformed)?;
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
            expires_at,
        })
    }

    fn sign(&self, body: &[u8]) -> Vec<u8> {
        let mut mac = mac(&self.secret);
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

    fn signer() -> TokenSigner {
        TokenSigner::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60))
    }

    #[test]
    fn a_token_round_trips() {
        let now = OffsetDateTime::now_utc();
        let channels = ChannelSet::parse("orders,pricing").expect("valid");
        let (token, expires_at) = signer().issue("k-1", channels, now);
        let grant = signer().verify(&token, now).expect("valid token");
        assert_eq!(grant.subject, "k-1");
        assert_eq!(grant.channels, channels);
        assert_eq!(
            grant.expires_at.unix_timestamp(),
            expires_at.unix_timestamp()
        );
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let now = OffsetDateTime::now_utc();
        let (token, _) = signer().issue("k-1", ChannelSet::all(), now);
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
        let (other, _) = signer().issue("k-2", ChannelSet::all(), now);
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
    fn derived_secrets_agree_across_instances() {
        let a = TokenSigner::derived_from_keys(
            &["key-b-123".into(), "key-a-123".into()],
            Duration::from_secs(60),
        );
        let b = TokenSigner::derived_from_keys(
            &["key-a-123".into(), "key-b-123".into()],
            Duration::from_secs(60),
        );
        let now = OffsetDateTime::now_utc();
        let (token, _) = a.issue("k", ChannelSet::all(), now);
        assert!(b.verify(&token, now).is_ok());
    }
}
