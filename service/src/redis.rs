//! Connecting to Redis as the deployment says: an ACL user and password in `REDIS_URL`
//! (`redis://user:password@host:port`), `rediss://` for TLS, and `REDIS_TLS_CA` for a private CA.

use std::path::{Path, PathBuf};

/// Why `REDIS_URL` or `REDIS_TLS_CA` cannot be used. The messages never repeat the URL: it may
/// hold a password.
#[derive(Debug, thiserror::Error)]
pub enum RedisSettingError {
    #[error(
        "REDIS_URL is not a Redis URL (expected redis[s]://[user:password@]host:port[/db]): {0}"
    )]
    Url(#[source] ::redis::RedisError),
    #[error("REDIS_TLS_CA is set, but REDIS_URL does not start with rediss://")]
    CaWithoutTls,
    #[error("cannot read REDIS_TLS_CA ({path}): {source}")]
    UnreadableCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A client for `url`, trusting `tls_ca` (PEM) instead of the system's roots when it is set.
pub fn client(url: &str, tls_ca: Option<&Path>) -> Result<::redis::Client, RedisSettingError> {
    let Some(ca) = tls_ca else {
        return ::redis::Client::open(url)
            .map_err(|error| RedisSettingError::Url(redact_error(error)));
    };
    if !url.starts_with("rediss://") {
        return Err(RedisSettingError::CaWithoutTls);
    }
    let root_cert = std::fs::read(ca).map_err(|source| RedisSettingError::UnreadableCa {
        path: ca.to_owned(),
        source,
    })?;
    ::redis::Client::build_with_tls(
        url,
        ::redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        },
    )
    .map_err(|error| RedisSettingError::Url(redact_error(error)))
}

/// `url` with its password (if any) replaced by `***`, for logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".into();
    };
    let (authority, path) = match rest.find('/') {
        Some(index) => rest.split_at(index),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials
                .split_once(':')
                .map_or(credentials, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// Redis errors about a URL can quote it; keep only the kind and a fixed description.
fn redact_error(error: ::redis::RedisError) -> ::redis::RedisError {
    ::redis::RedisError::from((error.kind(), "the URL was refused"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_hides_the_password_and_keeps_the_rest() {
        assert_eq!(
            redacted("rediss://bridge:s3cret@redis.internal:6380/0"),
            "rediss://bridge:***@redis.internal:6380/0"
        );
        assert_eq!(redacted("redis://:s3cret@h:6379"), "redis://:***@h:6379");
        assert_eq!(redacted("redis://h:6379"), "redis://h:6379");
        assert!(!redacted("redis://u:p@ss@h:1").contains("p@ss"));
    }

    #[test]
    fn a_bad_url_is_refused_without_repeating_it() {
        let error = client("redis://user:hunter22@", None)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("REDIS_URL"), "{error}");
        assert!(!error.contains("hunter22"), "{error}");
    }

    #[test]
    fn a_ca_needs_rediss() {
        let error = client("redis://127.0.0.1:6379", Some(Path::new("/nonexistent")));
        assert!(matches!(error, Err(RedisSettingError::CaWithoutTls)));
        let error = client("rediss://127.0.0.1:6379", Some(Path::new("/nonexistent")));
        assert!(matches!(error, Err(RedisSettingError::UnreadableCa { .. })));
    }
}
