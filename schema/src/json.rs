//! Strict reading of a worker's JSON: valid syntax, and no object with the same key twice.
//!
//! `serde_json` keeps the last value of a repeated key, a typed struct refuses the document, and
//! a browser's `JSON.parse` keeps the last one too: three readers, two answers. The bridge and
//! the gateways both read events through [`check_unique_keys`], so a message is valid for all of
//! them or for none.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use serde_json::value::RawValue;

/// Objects with more keys than this are checked with a hash set instead of a linear scan, so a
/// hostile object with thousands of keys costs linear time.
const LINEAR_SCAN_KEYS: usize = 16;

/// Why a document is not strict JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all (or nested deeper than `serde_json`'s recursion limit of 128).
    #[error("{0}")]
    Syntax(String),
    /// An object names the same key twice; the message names the key's path.
    #[error("{0}")]
    DuplicateKey(String),
}

/// Checks that `text` is one JSON value whose objects, at every depth, have unique keys.
pub fn check_unique_keys(text: &str) -> Result<(), JsonError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Unique { path: Path::ROOT }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|error| match error.classify() {
            // The only data error this visitor raises is a duplicate key.
            Category::Data => JsonError::DuplicateKey(error.to_string()),
            Category::Io | Category::Syntax | Category::Eof => JsonError::Syntax(error.to_string()),
        })
}

/// The members of one JSON object, in document order, values left as raw text. Call only on
/// text that passed [`check_unique_keys`].
pub fn object_members(text: &str) -> Result<Vec<(Cow<'_, str>, &RawValue)>, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let members = deserializer
        .deserialize_map(Members)
        .map_err(|error| JsonError::Syntax(error.to_string()))?;
    Ok(members)
}

/// Where a value sits in the document, for messages: `payload.data.price`.
#[derive(Clone, Copy)]
struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    key: &'p str,
}

impl Path<'_> {
    const ROOT: Path<'static> = Path {
        parent: None,
        key: "",
    };
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            if parent.parent.is_some() {
                write!(f, "{parent}.")?;
            }
        }
        f.write_str(self.key)
    }
}

/// Visits a whole value, refusing repeated keys.
struct Unique<'p> {
    path: Path<'p>,
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let item = Path {
            parent: Some(&self.path),
            key: "[]",
        };
        while seq.next_element_seed(Unique { path: item })?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut few: Vec<Cow<'de, str>> = Vec::new();
        let mut many: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let repeated = if many.is_empty() {
                few.contains(&key)
            } else {
                many.contains(&key)
            };
            if repeated {
                let at = Path {
                    parent: Some(&self.path),
                    key: &key,
                };
                // Keys can be as long as the message: quote the path's start only.
                let at = at.to_string();
                return Err(de::Error::custom(format_args!(
                    "duplicate key `{}`",
                    crate::reject::quote(&at)
                )));
            }
            map.next_value_seed(Unique {
                path: Path {
                    parent: Some(&self.path),
                    key: &key,
                },
            })?;
            if many.is_empty() && few.len() < LINEAR_SCAN_KEYS {
                few.push(key);
            } else {
                many.extend(few.drain(..));
                many.insert(key);
            }
        }
        Ok(())
    }
}

/// An object key, borrowed from the document unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// An object's members with raw values.
struct Members;

impl<'de> Visitor<'de> for Members {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            members.push((key, map.next_value::<&'de RawValue>()?));
        }
        Ok(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_keys_pass_at_every_depth() {
        assert_eq!(
            check_unique_keys(r#"{"a":1,"b":{"a":[{"a":1},{"a":2}]},"c":null}"#),
            Ok(())
        );
        assert_eq!(check_unique_keys("[1,2,3]"), Ok(()));
        assert_eq!(check_unique_keys("\"text\""), Ok(()));
    }

    #[test]
    fn a_repeated_key_is_named_with_its_path() {
        let error = check_unique_keys(r#"{"type":"A","type":"B"}"#).expect_err("duplicate");
        assert!(
            matches!(&error, JsonError::DuplicateKey(message) if message.starts_with("duplicate key `type`")),
            "{error:?}"
        );
        let error = check_unique_keys(r#"{"payload":{"data":{"p":1,"q":2,"p":3}}}"#)
            .expect_err("nested duplicate");
        assert!(
            error
                .to_string()
                .starts_with("duplicate key `payload.data.p`"),
            "{error}"
        );
        // An escaped spelling of the same key is the same key.
        assert!(matches!(
            check_unique_keys(r#"{"id":1,"\u0069d":2}"#),
            Err(JsonError::DuplicateKey(_))
        ));
    }

    #[test]
    fn large_objects_are_checked_too() {
        let mut members: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        assert_eq!(
            check_unique_keys(&format!("{{{}}}", members.join(","))),
            Ok(())
        );
        members.push("\"k3\":0".into());
        assert!(matches!(
            check_unique_keys(&format!("{{{}}}", members.join(","))),
            Err(JsonError::DuplicateKey(_))
        ));
    }

    #[test]
    fn syntax_errors_and_deep_nesting_are_syntax() {
        for bad in ["{", "{\"a\":}", "[1,]", "{} {}", ""] {
            assert!(
                matches!(check_unique_keys(bad), Err(JsonError::Syntax(_))),
                "{bad}"
            );
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            check_unique_keys(&deep),
            Err(JsonError::Syntax(_))
        ));
    }

    #[test]
    fn members_keep_raw_text_and_order() {
        let members = object_members(r#"{"z":1.50,"a":{"x":"\u00e9"}}"#).expect("object");
        let raw: Vec<(&str, &str)> = members.iter().map(|(k, v)| (k.as_ref(), v.get())).collect();
        assert_eq!(raw, vec![("z", "1.50"), ("a", r#"{"x":"\u00e9"}"#)]);
    }
}
