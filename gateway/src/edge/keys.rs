//! The configured API keys: each with an id chosen by the server, kept as a digest and compared
//! in constant time.
//!
//! The id names a key in logs, in per-key limits and in the `sub` of the tokens it mints. It is
//! never derived from the key (a digest prefix would let anyone holding a token test guesses of
//! the key offline): it is the name the operator gives (`API_KEY=dashboard:<key>`) or the key's
//! position in the list (`key-1`, `key-2`, ...).

use rakuda_service::keys::{KeyError, KeySet};
use rakuda_service::settings::Secret;

use crate::config::{ConfigError, MIN_API_KEY_LEN};

/// `API_KEY`'s keys (the shared [`KeySet`], with the gateway's setting named in its errors).
pub struct ApiKeys(KeySet);

impl ApiKeys {
    /// Reads `API_KEY`'s entries: `id:key` or a bare key.
    pub fn new(entries: &[Secret]) -> Result<ApiKeys, ConfigError> {
        KeySet::new(entries, MIN_API_KEY_LEN)
            .map(ApiKeys)
            .map_err(|error| match error {
                KeyError::TooShort { position, .. } => ConfigError::ApiKeyTooShort { position },
                KeyError::IdRepeated(id) => ConfigError::ApiKeyIdRepeated(id),
            })
    }

    /// The id of the matching key, comparing against every key so the time taken does not
    /// tell which, or whether, one matched.
    pub fn check(&self, presented: &str) -> Option<&str> {
        self.0.check(presented)
    }

    /// Whether `id` names a configured key: a token minted by a key that was removed stops
    /// working at once.
    pub fn knows(&self, id: &str) -> bool {
        self.0.knows(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(entries: &[&str]) -> Result<ApiKeys, ConfigError> {
        let entries: Vec<Secret> = entries.iter().map(|entry| Secret::from(*entry)).collect();
        ApiKeys::new(&entries)
    }

    #[test]
    fn keys_match_exactly_and_ids_come_from_the_server() {
        let keys = keys(&["first-key-1", "dashboard:second-key-2"]).expect("keys");
        assert_eq!(keys.check("first-key-1"), Some("key-1"));
        assert_eq!(keys.check("second-key-2"), Some("dashboard"));
        assert_eq!(keys.check("dashboard:second-key-2"), None);
        assert_eq!(keys.check("first-key-"), None);
        assert_eq!(keys.check(""), None);
        assert!(keys.knows("dashboard") && keys.knows("key-1") && !keys.knows("key-2"));
    }

    #[test]
    fn a_key_with_a_colon_that_is_not_an_id_is_taken_whole() {
        let keys = keys(&["not an id:abcdefgh"]).expect("keys");
        assert_eq!(keys.check("not an id:abcdefgh"), Some("key-1"));
    }

    #[test]
    fn short_keys_and_repeated_ids_are_refused_without_showing_the_key() {
        let error = keys(&["long-enough-key", "tiny"])
            .err()
            .map(|e| e.to_string());
        let error = error.unwrap_or_default();
        assert!(
            error.contains("API_KEY") && error.contains("key 2"),
            "{error}"
        );
        assert!(!error.contains("tiny"), "{error}");
        let error = keys(&["a:long-enough-1", "a:long-enough-2"]).err();
        assert!(matches!(error, Some(ConfigError::ApiKeyIdRepeated(id)) if id == "a"));
    }
}
