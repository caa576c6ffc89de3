//! The example secrets this repository ships, read from the files themselves: `.env.example`,
//! every `*.example`, the scripts and configs under `ops/` (not its Rust sources), README and
//! the docs. The bridge and
//! the gateway must refuse each of them outside development, and reading them here (rather
//! than listing them in a test) means a new example added to any of those files is checked too.

use std::path::{Path, PathBuf};

/// The settings that hold a secret.
pub const SECRET_SETTINGS: [&str; 4] = ["API_KEY", "TOKEN_SECRET", "REDIS_URL", "NATS_PASSWORD"];

/// Values the docs show as the *shape* of a setting, not as a value to use (a rotation's
/// `new,old`, a URL's `user:password`): they are not example secrets. Anything else found in
/// the shipped files counts as one.
pub const TEMPLATES: [&str; 5] = [
    "new",
    "new,old",
    "old,new",
    "rediss://user:password@host:6380",
    "rediss://USER:PASSWORD@",
];

/// One example secret and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleSecret {
    /// The file, relative to the repository root.
    pub file: String,
    pub setting: &'static str,
    pub value: String,
}

/// Every example secret in the repository rooted at `root`.
pub fn example_secrets(root: &Path) -> std::io::Result<Vec<ExampleSecret>> {
    let mut found = Vec::new();
    for path in shipped_files(root)? {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // not text
        };
        let file = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        for (setting, value) in candidates(&text) {
            if is_secret_value(setting, &value) {
                found.push(ExampleSecret {
                    file: file.clone(),
                    setting,
                    value,
                });
            }
        }
    }
    Ok(found)
}

/// The files an operator copies, runs or reads snippets from.
fn shipped_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = vec![root.join(".env.example"), root.join("README.md")];
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            if path.is_dir() {
                if !matches!(
                    name.as_str(),
                    "target" | "node_modules" | ".git" | ".dev" | "dist"
                ) {
                    dirs.push(path);
                }
                continue;
            }
            let relative = path.strip_prefix(root).unwrap_or(&path);
            // Not the Rust sources of ops/ (the load generator, the simulator): code, whose
            // values are tests' own, not examples for an operator.
            let in_ops = relative.starts_with("ops") && !name.ends_with(".rs");
            let a_doc = relative.starts_with("docs") && name.ends_with(".md");
            if (name.ends_with(".example") && name != ".env.example") || in_ops || a_doc {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `SETTING=value`, `${SETTING:-value}`, `X-API-Key: value` and `apiKey=value`, wherever they
/// appear (env files, shell, markdown).
fn candidates(text: &str) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for setting in SECRET_SETTINGS {
        found.extend(after_all(text, &format!("{setting}=")).map(|value| (setting, value)));
        found.extend(
            after_all(text, &format!("${{{setting}:-"))
                .map(|value| (setting, value.trim_end_matches('}').to_owned())),
        );
    }
    found.extend(after_all(text, "X-API-Key: ").map(|value| ("API_KEY", value)));
    found.extend(after_all(text, "apiKey=").map(|value| ("API_KEY", value)));
    found
}

/// The word after each occurrence of `prefix` (up to a space, a quote, a backtick, `&` or `}`),
/// where `prefix` does not continue a longer name.
fn after_all<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = String> + 'a {
    text.match_indices(prefix).filter_map(move |(at, _)| {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let rest = &text[at + prefix.len()..];
        let end = rest
            .find(|c: char| c.is_whitespace() || "'\"`&}".contains(c))
            .unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    })
}

/// Whether a value found is an example of a secret: not empty, not a shell variable or a
/// pattern, not a template, and for a URL, one that holds a password.
fn is_secret_value(setting: &str, value: &str) -> bool {
    if value.is_empty() || value.contains(['$', '<', '[', '\\', '(', '{']) {
        return false;
    }
    if TEMPLATES.contains(&value) {
        return false;
    }
    if setting == "REDIS_URL" {
        let authority = value.split("://").nth(1).unwrap_or(value);
        return authority
            .split_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_form_and_skips_what_is_no_secret() {
        let text = "API_KEY=ops:k-1\nexport TOKEN_SECRET=\"${TOKEN_SECRET:-s-2}\"\n\
                    curl -H 'X-API-Key: k-3' host/?apiKey=k-4&x=1\n\
                    REDIS_URL=redis://127.0.0.1:6379\nREDIS_URL=rediss://u:p-5@h:1\n\
                    MY_API_KEY=not-this\nNATS_PASSWORD=\nTOKEN_SECRET=new,old\n";
        let found: Vec<(&str, String)> = candidates(text)
            .into_iter()
            .filter(|(setting, value)| is_secret_value(setting, value))
            .collect();
        let values: Vec<&str> = found.iter().map(|(_, value)| value.as_str()).collect();
        assert_eq!(values.len(), 5, "{found:?}");
        assert!(!is_secret_value("API_KEY", "{key}"), "a format string");
        for value in ["ops:k-1", "s-2", "k-3", "k-4", "rediss://u:p-5@h:1"] {
            assert!(values.contains(&value), "{value}: {found:?}");
        }
    }
}
