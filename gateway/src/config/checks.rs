//! Checking setting values: the value parsers clap runs, and [`Config::check`] for what clap
//! must not see (secrets, which it would repeat in its error) or cannot (combinations).

use std::path::PathBuf;

use ipnet::IpNet;
use rakuda_service::keys::{KeyError, KeySet};
use rakuda_service::nats::NatsAuthError;
use rakuda_service::redis::RedisSettingError;
use rakuda_service::settings::{PlaceholderSecret, Secret};

use std::time::Duration;

use super::{
    AuthConfig, Config, MAX_CONNECTION_RATE_RETRY_MAX, MIN_API_KEY_LEN, MIN_TOKEN_SECRET_LEN,
};

/// Why the gateway's settings cannot be used. The message names the setting and what a good
/// value looks like; it never repeats a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("API_KEY: key {position} is shorter than {MIN_API_KEY_LEN} characters")]
    ApiKeyTooShort { position: usize },
    #[error("API_KEY: the key id `{0}` is used twice; give each key its own `id:`")]
    ApiKeyIdRepeated(String),
    #[error(
        "TOKEN_SECRET is not set: set at least one secret of {MIN_TOKEN_SECRET_LEN}+ bytes \
         (`openssl rand -hex 32`), the same on every gateway; GATEWAY_DEV_MODE=true allows \
         a random one for a single local gateway"
    )]
    NoTokenSecret,
    #[error("TOKEN_SECRET: secret {position} is shorter than {MIN_TOKEN_SECRET_LEN} bytes")]
    TokenSecretTooShort { position: usize },
    #[error("`{0}` has no index.html: build the dashboard first, or unset it")]
    NoDashboardIndex(String),
    #[error("each origin must look like https://host[:port], without a path")]
    Origin,
    #[error("must be letters, digits, `-`, `_` or `.`, at most {max} bytes", max = crate::fleet::cluster::MAX_INSTANCE_NAME_BYTES)]
    InstanceId,
    #[error("SUMMARY_TIMEZONE: `{0}` is not a time zone name like Asia/Tokyo or UTC")]
    Timezone(String),
    #[error("each trusted proxy must be an address or a network like 10.0.0.0/8: {0}")]
    TrustedProxy(String),
    #[error(
        "CONNECTION_RATE_BURST is set but CONNECTION_RATE_LIMIT=0 turns the connection-rate cap \
         off: set CONNECTION_RATE_LIMIT (new streams a second) to use the burst, or unset \
         CONNECTION_RATE_BURST"
    )]
    ConnectionRateBurstWithoutLimit,
    #[error(
        "must be whole seconds from 1s to {max}s, like 5s: it is sent as Retry-After, which \
         counts seconds",
        max = MAX_CONNECTION_RATE_RETRY_MAX.as_secs()
    )]
    RetryMax,
    #[error(transparent)]
    Placeholder(#[from] PlaceholderSecret),
    #[error(transparent)]
    Redis(#[from] RedisSettingError),
    #[error(transparent)]
    Nats(#[from] NatsAuthError),
}

impl AuthConfig {
    /// `API_KEY`'s entries (`id:key` or a bare key) as the key set the edge checks requests
    /// against: each key at least [`MIN_API_KEY_LEN`] long, each id once.
    pub fn api_keys(&self) -> Result<KeySet, ConfigError> {
        KeySet::new(&self.api_key, MIN_API_KEY_LEN).map_err(|error| match error {
            KeyError::TooShort { position, .. } => ConfigError::ApiKeyTooShort { position },
            KeyError::IdRepeated(id) => ConfigError::ApiKeyIdRepeated(id),
        })
    }
}

impl Config {
    /// Everything clap could not check. The gateway calls it before it builds anything;
    /// `main` calls it first, to exit with the message and status 2.
    pub fn check(&self) -> Result<(), ConfigError> {
        let (auth, fleet, limits) = (&self.auth, &self.fleet, &self.limits);
        if !auth.gateway_dev_mode {
            self.check_placeholders()?;
        }
        auth.api_keys()?;
        if auth.token_secret.is_empty() && !auth.gateway_dev_mode {
            return Err(ConfigError::NoTokenSecret);
        }
        for (index, secret) in auth.token_secret.iter().enumerate() {
            if secret.expose().len() < MIN_TOKEN_SECRET_LEN {
                return Err(ConfigError::TokenSecretTooShort {
                    position: index + 1,
                });
            }
        }
        rakuda_service::redis::client(fleet.redis_url.expose(), fleet.redis_tls_ca.as_deref())?;
        self.nats.nats_auth.check()?;
        let timezone = &self.history.summary_timezone;
        jiff::tz::TimeZone::get(timezone).map_err(|_| ConfigError::Timezone(timezone.clone()))?;
        if limits.connection_rate_limit == 0 && limits.connection_rate_burst.is_some() {
            return Err(ConfigError::ConnectionRateBurstWithoutLimit);
        }
        Ok(())
    }
}

/// How to replace each secret the repository ships an example of.
const API_KEY_REMEDY: &str = "set a long random key of your own (`openssl rand -hex 24`), or \
     GATEWAY_DEV_MODE=true on a development machine";
const TOKEN_SECRET_REMEDY: &str = "`just certs` writes a fresh one into .dev/certs/gateway.env \
     (or `openssl rand -hex 32`), the same on every gateway; GATEWAY_DEV_MODE=true accepts the \
     example on a development machine";
const REDIS_URL_REMEDY: &str = "put the password of the gateway's Redis user in the URL (`just \
     certs` makes one, in .dev/certs/gateway.env and users.conf); GATEWAY_DEV_MODE=true accepts \
     the example on a development machine";
const NATS_PASSWORD_REMEDY: &str = "set the gateway's own NATS password (`openssl rand -hex 24`, \
     its bcrypt hash in auth-password.conf), or use the nkey seed `just certs` makes";

impl Config {
    /// The example secrets shipped in this repository are public: refused outside dev mode.
    fn check_placeholders(&self) -> Result<(), PlaceholderSecret> {
        let refuse = |variable, which: String, remedy| PlaceholderSecret {
            variable,
            which,
            remedy,
        };
        let several = |secrets: &[Secret], variable, item: &str, remedy| match secrets
            .iter()
            .position(Secret::is_placeholder)
        {
            Some(index) if secrets.len() > 1 => {
                Err(refuse(variable, format!(" ({item} {})", index + 1), remedy))
            }
            Some(_) => Err(refuse(variable, String::new(), remedy)),
            None => Ok(()),
        };
        several(&self.auth.api_key, "API_KEY", "key", API_KEY_REMEDY)?;
        several(
            &self.auth.token_secret,
            "TOKEN_SECRET",
            "secret",
            TOKEN_SECRET_REMEDY,
        )?;
        several(
            std::slice::from_ref(&self.fleet.redis_url),
            "REDIS_URL",
            "",
            REDIS_URL_REMEDY,
        )?;
        let nats_password = self.nats.nats_auth.nats_password.as_slice();
        several(nats_password, "NATS_PASSWORD", "", NATS_PASSWORD_REMEDY)
    }
}

pub(super) fn parse_dashboard_dir(value: &str) -> Result<PathBuf, ConfigError> {
    let dir = PathBuf::from(value);
    if !dir.join("index.html").is_file() {
        return Err(ConfigError::NoDashboardIndex(value.to_owned()));
    }
    Ok(dir)
}

pub(super) fn parse_origin(value: &str) -> Result<String, ConfigError> {
    let origin = value.trim();
    let scheme_ok = origin.starts_with("http://") || origin.starts_with("https://");
    if !scheme_ok || origin.ends_with('/') || origin.parse::<axum::http::HeaderValue>().is_err() {
        return Err(ConfigError::Origin);
    }
    Ok(origin.to_owned())
}

/// An address (`10.0.0.5`) or a network (`10.0.0.0/8`, `fd00::/8`).
pub(super) fn parse_trusted_proxy(value: &str) -> Result<IpNet, ConfigError> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|error| ConfigError::TrustedProxy(error.to_string()))
}

/// A name other gateways accept in presence messages.
pub(super) fn parse_instance_id(value: &str) -> Result<String, ConfigError> {
    crate::fleet::cluster::instance_name(value.as_bytes())
        .map(str::to_owned)
        .ok_or(ConfigError::InstanceId)
}

/// `CONNECTION_RATE_RETRY_MAX`: whole seconds (it becomes `Retry-After`), 1 s to 5 min.
pub(super) fn parse_retry_max(value: &str) -> Result<Duration, ConfigError> {
    let retry_max = humantime::parse_duration(value.trim()).map_err(|_| ConfigError::RetryMax)?;
    let whole = retry_max.subsec_nanos() == 0;
    if !whole || retry_max < Duration::from_secs(1) || retry_max > MAX_CONNECTION_RATE_RETRY_MAX {
        return Err(ConfigError::RetryMax);
    }
    Ok(retry_max)
}
