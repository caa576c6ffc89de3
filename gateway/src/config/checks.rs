//! Checking setting values: the value parsers clap runs, and [`Config::check`] for what clap
//! must not see (secrets, which it would repeat in its error) or cannot (combinations).

use std::path::PathBuf;

use ipnet::IpNet;
use rakuda_service::nats::NatsAuthError;
use rakuda_service::redis::RedisSettingError;

use super::{Config, MIN_API_KEY_LEN, MIN_TOKEN_SECRET_LEN};

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
    #[error(transparent)]
    Redis(#[from] RedisSettingError),
    #[error(transparent)]
    Nats(#[from] NatsAuthError),
}

impl Config {
    /// Everything clap could not check. The gateway calls it before it builds anything;
    /// `main` calls it first, to exit with the message and status 2.
    pub fn check(&self) -> Result<(), ConfigError> {
        crate::edge::ApiKeys::new(&self.api_key)?;
        if self.token_secret.is_empty() && !self.gateway_dev_mode {
            return Err(ConfigError::NoTokenSecret);
        }
        for (index, secret) in self.token_secret.iter().enumerate() {
            if secret.expose().len() < MIN_TOKEN_SECRET_LEN {
                return Err(ConfigError::TokenSecretTooShort {
                    position: index + 1,
                });
            }
        }
        rakuda_service::redis::client(self.redis_url.expose(), self.redis_tls_ca.as_deref())?;
        self.nats_auth.check()?;
        jiff::tz::TimeZone::get(&self.summary_timezone)
            .map_err(|_| ConfigError::Timezone(self.summary_timezone.clone()))?;
        Ok(())
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
