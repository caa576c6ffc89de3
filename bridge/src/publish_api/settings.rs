//! The settings of `POST /api/realtime/publish`, and its credentials.
//!
//! The publish keys are a credential of their own: the gateways' `API_KEY`s and tokens only
//! read, and the bridge never sees them. A key is `id:key` (the id names it in logs) or a bare
//! key (then `key-<n>`); it is kept as a digest and compared in constant time.

use std::net::SocketAddr;
use std::time::Duration;

use rakuda_service::keys::{KeyError, KeySet};
use rakuda_service::settings::{self, PlaceholderSecret, Secret};

pub const DEFAULT_MAX_BODY_BYTES: usize = 1_048_576;
pub const DEFAULT_MAX_BATCH: usize = 1_000;
pub const DEFAULT_MAX_CONCURRENT: usize = 64;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest publish key: long enough that guessing one is hopeless.
pub const MIN_KEY_LEN: usize = 16;
/// Largest body an operator may allow (64 MiB): bodies are read whole into memory.
const MAX_BODY_LIMIT: usize = 64 * 1_048_576;

/// `BRIDGE_HTTP_ADDR` and the `PUBLISH_*` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct PublishSettings {
    /// Where the bridge serves `POST /api/realtime/publish` (e.g. `127.0.0.1:9102`, behind
    /// nginx). Unset: no publish API. Separate from BRIDGE_METRICS_ADDR, so the publish API
    /// can be exposed without exposing /metrics.
    #[arg(long, env = "BRIDGE_HTTP_ADDR")]
    pub bridge_http_addr: Option<SocketAddr>,

    /// Keys allowed to publish over HTTP (`Authorization: Bearer <key>`), comma separated,
    /// each `id:key` or a bare key of at least 16 characters. Required with BRIDGE_HTTP_ADDR.
    #[arg(long, env = "PUBLISH_API_KEYS", value_delimiter = ',', value_parser = Secret::parse, hide_env_values = true)]
    pub publish_api_keys: Vec<Secret>,

    /// Largest request body, in bytes (a batch included); larger ones answer 413.
    #[arg(long, env = "PUBLISH_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES, value_parser = parse_max_body)]
    pub publish_max_body_bytes: usize,

    /// Most events in one batch; more answer 413.
    #[arg(long, env = "PUBLISH_MAX_BATCH", default_value_t = DEFAULT_MAX_BATCH, value_parser = parse_max_batch)]
    pub publish_max_batch: usize,

    /// Publish requests handled at once; more answer 503 with Retry-After.
    #[arg(long, env = "PUBLISH_MAX_CONCURRENT", default_value_t = DEFAULT_MAX_CONCURRENT, value_parser = settings::nonzero)]
    pub publish_max_concurrent: usize,

    /// How long a request may take to send its body, and JetStream to acknowledge its events.
    #[arg(long, env = "PUBLISH_TIMEOUT", default_value = "5s", value_parser = settings::positive_duration)]
    pub publish_timeout: Duration,
}

impl Default for PublishSettings {
    fn default() -> Self {
        PublishSettings {
            bridge_http_addr: None,
            publish_api_keys: Vec::new(),
            publish_max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            publish_max_batch: DEFAULT_MAX_BATCH,
            publish_max_concurrent: DEFAULT_MAX_CONCURRENT,
            publish_timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl PublishSettings {
    /// The keys, checked; an error names PUBLISH_API_KEYS and never repeats a key.
    pub fn keys(&self) -> Result<PublishKeys, PublishKeyError> {
        if self.bridge_http_addr.is_some() && self.publish_api_keys.is_empty() {
            return Err(PublishKeyError::Missing);
        }
        PublishKeys::new(&self.publish_api_keys)
    }
}

/// Why PUBLISH_API_KEYS cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PublishKeyError {
    #[error(
        "BRIDGE_HTTP_ADDR is set but PUBLISH_API_KEYS is empty: set at least one publish key \
         (PUBLISH_API_KEYS=producer:$(openssl rand -hex 24)), or unset BRIDGE_HTTP_ADDR"
    )]
    Missing,
    #[error(
        "PUBLISH_API_KEYS (key {position}) is shorter than {MIN_KEY_LEN} characters: use \
         openssl rand -hex 24"
    )]
    TooShort { position: usize },
    #[error("PUBLISH_API_KEYS names the key id `{0}` twice: give each key its own id")]
    IdRepeated(String),
    #[error(transparent)]
    Placeholder(#[from] PlaceholderSecret),
}

/// The configured publish keys (the shared [`KeySet`], with this setting named in its errors).
pub struct PublishKeys(KeySet);

impl PublishKeys {
    pub fn new(entries: &[Secret]) -> Result<PublishKeys, PublishKeyError> {
        for (index, entry) in entries.iter().enumerate() {
            if entry.is_placeholder() {
                return Err(PublishKeyError::Placeholder(PlaceholderSecret {
                    variable: "PUBLISH_API_KEYS",
                    which: format!(" (key {})", index + 1),
                    remedy: "set a key of your own (PUBLISH_API_KEYS=producer:$(openssl rand \
                             -hex 24)) and give it to the producers that may publish",
                }));
            }
        }
        KeySet::new(entries, MIN_KEY_LEN)
            .map(PublishKeys)
            .map_err(|error| match error {
                KeyError::TooShort { position, .. } => PublishKeyError::TooShort { position },
                KeyError::IdRepeated(id) => PublishKeyError::IdRepeated(id),
            })
    }

    /// The id of the matching key; every key is compared, so the time taken does not tell
    /// which one, or whether one, matched.
    pub fn check(&self, presented: &str) -> Option<&str> {
        self.0.check(presented)
    }
}

fn parse_max_body(value: &str) -> Result<usize, settings::SettingError> {
    settings::bounded(value, 1024, MAX_BODY_LIMIT)
}

fn parse_max_batch(value: &str) -> Result<usize, settings::SettingError> {
    settings::bounded(value, 1, 100_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(entries: &[&str]) -> Result<PublishKeys, PublishKeyError> {
        let entries: Vec<Secret> = entries.iter().map(|entry| Secret::from(*entry)).collect();
        PublishKeys::new(&entries)
    }

    #[test]
    fn keys_match_exactly_with_their_ids() {
        let keys = keys(&["0123456789abcdef", "etl:fedcba9876543210"]).expect("keys");
        assert_eq!(keys.check("0123456789abcdef"), Some("key-1"));
        assert_eq!(keys.check("fedcba9876543210"), Some("etl"));
        assert_eq!(keys.check("etl:fedcba9876543210"), None);
        assert_eq!(keys.check(""), None);
    }

    #[test]
    fn bad_keys_are_named_without_being_repeated() {
        for (entries, expected) in [
            (vec!["0123456789abcdef", "tiny-k"], "key 2"),
            (vec!["producer:publish-key-change-me-0123"], "change-me"),
            (vec!["a:0123456789abcdef", "a:fedcba9876543210"], "twice"),
        ] {
            let error = keys(&entries)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains("PUBLISH_API_KEYS"), "{error}");
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("0123456789abcdef"), "{error}");
            assert!(!error.contains("tiny-k"), "{error}");
        }
        let settings = PublishSettings {
            bridge_http_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9102))),
            ..PublishSettings::default()
        };
        let error = settings
            .keys()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("PUBLISH_API_KEYS") && error.contains("BRIDGE_HTTP_ADDR"),
            "{error}"
        );
    }

    /// The publish key in ops/systemd/bridge.env.example is an example anyone can read.
    #[test]
    fn the_shipped_example_key_is_refused() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ops/systemd/bridge.env.example");
        let text = std::fs::read_to_string(path).expect("read bridge.env.example");
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix("PUBLISH_API_KEYS="))
            .expect("bridge.env.example sets PUBLISH_API_KEYS");
        let entries: Vec<Secret> = value.split(',').map(Secret::from).collect();
        let error = PublishKeys::new(&entries).err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("PUBLISH_API_KEYS")),
            "{error:?}"
        );
    }
}
