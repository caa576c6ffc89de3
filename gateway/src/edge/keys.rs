//! The configured API keys: each with an id chosen by the server, kept as a digest and compared
//! in constant time.
//!
//! The id names a key in logs, in per-key limits and in the `sub` of the tokens it mints. It is
//! never derived from the key (a digest prefix would let anyone holding a token test guesses of
//! the key offline): it is the name the operator gives (`API_KEY=dashboard:<key>`) or the key's
//! position in the list (`key-1`, `key-2`, ...).

use rakuda_service::keys::KeySet;

/// `API_KEY`'s keys, as [`crate::config::AuthConfig::api_keys`] read them (the rules for a good key
/// are settings rules, and live with the other settings).
pub(crate) struct ApiKeys(KeySet);

impl From<KeySet> for ApiKeys {
    fn from(keys: KeySet) -> ApiKeys {
        ApiKeys(keys)
    }
}

impl ApiKeys {
    /// The id of the matching key, comparing against every key so the time taken does not
    /// tell which, or whether, one matched.
    pub(crate) fn check(&self, presented: &str) -> Option<&str> {
        self.0.check(presented)
    }

    /// Whether `id` names a configured key: a token minted by a key that was removed stops
    /// working at once.
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.0.knows(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rakuda_service::settings::Secret;

    fn keys(entries: &[&str]) -> ApiKeys {
        let entries: Vec<Secret> = entries.iter().map(|entry| Secret::from(*entry)).collect();
        ApiKeys::from(KeySet::new(&entries, 8).expect("keys"))
    }

    #[test]
    fn keys_match_exactly_and_ids_come_from_the_server() {
        let keys = keys(&["first-key-1", "dashboard:second-key-2"]);
        assert_eq!(keys.check("first-key-1"), Some("key-1"));
        assert_eq!(keys.check("second-key-2"), Some("dashboard"));
        assert_eq!(keys.check("dashboard:second-key-2"), None);
        assert_eq!(keys.check("first-key-"), None);
        assert_eq!(keys.check(""), None);
        assert!(keys.knows("dashboard") && keys.knows("key-1") && !keys.knows("key-2"));
    }

    #[test]
    fn a_key_with_a_colon_that_is_not_an_id_is_taken_whole() {
        let keys = keys(&["not an id:abcdefgh"]);
        assert_eq!(keys.check("not an id:abcdefgh"), Some("key-1"));
    }
}
