//! The configured API keys: each with an id chosen by the server, kept as a digest and compared
//! in constant time.
//!
//! The id names a key in logs, in per-key limits and in the `sub` of the tokens it mints. It is
//! never derived from the key (a digest prefix would let anyone holding a token test guesses of
//! the key offline): it is the name the operator gives (`API_KEY=dashboard:<key>`) or the key's
//! position in the list (`key-1`, `key-2`, ...).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use rakuda_service::settings::Secret;

use crate::config::{ConfigError, MIN_API_KEY_LEN};

/// Longest operator-chosen key id.
const MAX_ID_LEN: usize = 32;

pub struct ApiKeys {
    keys: Vec<(String, [u8; 32])>,
}

impl ApiKeys {
    /// Reads `API_KEY`'s entries: `id:key` or a bare key.
    pub fn new(entries: &[Secret]) -> Result<ApiKeys, ConfigError> {
        let mut keys: Vec<(String, [u8; 32])> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let entry = entry.expose().trim();
            let (id, key) = match entry.split_once(':') {
                Some((id, key)) if is_id(id) => (id.to_owned(), key),
                _ => (format!("key-{}", index + 1), entry),
            };
            if key.len() < MIN_API_KEY_LEN {
                return Err(ConfigError::ApiKeyTooShort {
                    position: index + 1,
                });
            }
            if keys.iter().any(|(known, _)| *known == id) {
                return Err(ConfigError::ApiKeyIdRepeated(id));
            }
            keys.push((id, digest(key)));
        }
        Ok(ApiKeys { keys })
    }

    /// The id of the matching key, comparing against every key so the time taken does not
    /// tell which, or whether, one matched.
    pub fn check(&self, presented: &str) -> Option<&str> {
        let presented = digest(presented);
        let mut found = None;
        for (id, candidate) in &self.keys {
            if bool::from(candidate.ct_eq(&presented)) {
                found = Some(id.as_str());
            }
        }
        found
    }

    /// Whether `id` names a configured key: a token minted by a key that was removed stops
    /// working at once.
    pub fn knows(&self, id: &str) -> bool {
        self.keys.iter().any(|(known, _)| known == id)
    }
}

fn is_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
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
