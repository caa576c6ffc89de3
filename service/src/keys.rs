//! A set of keys a server accepts (the gateway's `API_KEY`, the bridges' `PUBLISH_API_KEYS`):
//! each with an id the operator chooses (`id:key`) or its position (`key-1`, `key-2`, ...),
//! kept as a digest and compared in constant time.
//!
//! The id names a key in logs, limits and tokens. It is never derived from the key (a digest
//! prefix would let anyone who sees the id test guesses of the key offline).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::settings::Secret;

/// Longest operator-chosen key id.
const MAX_ID_LEN: usize = 32;

/// Why a list of keys was refused; the caller names its setting (the key itself is never in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key {position} is shorter than {min} characters")]
    TooShort { position: usize, min: usize },
    #[error("the key id `{0}` is given twice")]
    IdRepeated(String),
}

pub struct KeySet {
    keys: Vec<(String, [u8; 32])>,
}

impl KeySet {
    /// Reads `entries` (`id:key` or a bare key), each key at least `min_len` long.
    pub fn new(entries: &[Secret], min_len: usize) -> Result<KeySet, KeyError> {
        let mut keys: Vec<(String, [u8; 32])> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let entry = entry.expose().trim();
            let (id, key) = match entry.split_once(':') {
                Some((id, key)) if is_id(id) => (id.to_owned(), key),
                _ => (format!("key-{}", index + 1), entry),
            };
            if key.len() < min_len {
                return Err(KeyError::TooShort {
                    position: index + 1,
                    min: min_len,
                });
            }
            if keys.iter().any(|(known, _)| *known == id) {
                return Err(KeyError::IdRepeated(id));
            }
            keys.push((id, digest(key)));
        }
        Ok(KeySet { keys })
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

    /// Whether `id` names a configured key.
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

    fn keys(entries: &[&str]) -> Result<KeySet, KeyError> {
        let entries: Vec<Secret> = entries.iter().map(|entry| Secret::from(*entry)).collect();
        KeySet::new(&entries, 8)
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
        let error = keys(&["long-enough-key", "tiny"]).err();
        assert_eq!(
            error,
            Some(KeyError::TooShort {
                position: 2,
                min: 8
            })
        );
        assert!(!error
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("tiny"));
        let error = keys(&["a:long-enough-1", "a:long-enough-2"]).err();
        assert_eq!(error, Some(KeyError::IdRepeated("a".into())));
    }
}
