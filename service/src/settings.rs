//! Parsers for setting values. Used as clap `value_parser`s, so an error reads
//! `invalid value 'x' for '--name <VARIABLE>': <the SettingError's message>`.

use std::time::Duration;

use async_nats::ServerAddr;

/// Why a setting's value was refused; the message says what a good value looks like.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingError {
    #[error("not a NATS URL (expected nats://host:port): {0}")]
    NatsUrl(String),
    #[error("must be letters, digits, `_` or `-`")]
    StreamName,
    #[error("not a duration like `30s` or `24h`: {0}")]
    Duration(#[from] humantime::DurationError),
    #[error("must be longer than zero")]
    ZeroDuration,
    #[error("not a whole number: {0}")]
    WholeNumber(#[from] std::num::ParseIntError),
    #[error("must be at least 1")]
    Zero,
    #[error("must be between {min} and {max}")]
    OutOfRange { min: usize, max: usize },
}

/// A NATS server URL (`nats://host:port`); several are given as a comma list.
pub fn nats_url(value: &str) -> Result<ServerAddr, SettingError> {
    value
        .trim()
        .parse::<ServerAddr>()
        .map_err(|error| SettingError::NatsUrl(error.to_string()))
}

/// A JetStream stream name.
pub fn stream_name(value: &str) -> Result<String, SettingError> {
    let valid = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(SettingError::StreamName)
    }
}

/// A duration like `30s`, `15m` or `24h`, longer than zero.
pub fn positive_duration(value: &str) -> Result<Duration, SettingError> {
    let duration = humantime::parse_duration(value)?;
    if duration.is_zero() {
        return Err(SettingError::ZeroDuration);
    }
    Ok(duration)
}

/// A duration like `5s`; zero allowed (it means "off" where a setting says so).
pub fn duration(value: &str) -> Result<Duration, SettingError> {
    Ok(humantime::parse_duration(value)?)
}

/// A whole number of at least 1.
pub fn nonzero(value: &str) -> Result<usize, SettingError> {
    match value.parse::<usize>()? {
        0 => Err(SettingError::Zero),
        n => Ok(n),
    }
}

/// A whole number between `min` and `max`.
pub fn bounded(value: &str, min: usize, max: usize) -> Result<usize, SettingError> {
    match value.parse::<usize>()? {
        n if (min..=max).contains(&n) => Ok(n),
        _ => Err(SettingError::OutOfRange { min, max }),
    }
}

/// A setting that is a secret (a key, a password, a signing secret). Its `Debug` never shows the
/// value, and it is parsed without checks so that clap, which repeats a refused value in its
/// error, never prints it: each program checks its secrets after parsing, with messages that
/// name the setting only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A clap value parser that cannot fail.
    pub fn parse(value: &str) -> Result<Secret, std::convert::Infallible> {
        Ok(Secret(value.to_owned()))
    }
}

/// What every example secret shipped in this repository contains (`.env.example`, `ops/dev.sh`,
/// `ops/systemd/*.env.example`, the docs): anyone can read them, so outside development they are
/// refused. A test reads the shipped files and checks each of their secrets is caught by this.
pub const PLACEHOLDER_MARKERS: [&str; 3] = ["change-me", "changeme", "change_me"];

impl Secret {
    /// Whether this is one of the example values shipped in this repository, not a secret.
    pub fn is_placeholder(&self) -> bool {
        let value = self.0.to_ascii_lowercase();
        PLACEHOLDER_MARKERS
            .iter()
            .any(|marker| value.contains(marker))
    }
}

/// A secret setting left at an example value shipped in this repository. The message names the
/// setting and how to make a real value; it never repeats the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{variable}{which} is an example value shipped with rakuda-realtime (it contains \
     `change-me`), which anyone can read: {remedy}"
)]
pub struct PlaceholderSecret {
    pub variable: &'static str,
    /// ` (key 2)` when the setting lists several, else empty.
    pub which: String,
    pub remedy: &'static str,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

/// What `.env.example` (its text) gets wrong about a program's settings: each setting with an
/// environment variable must be listed, with its default when it has one; a setting without a
/// default is listed commented out (`# TOKEN_SECRET=`), since an empty value is not "unset".
/// Empty when right.
pub fn env_example_problems(command: &clap::Command, env_example: &str) -> Vec<String> {
    let documented: std::collections::HashMap<&str, &str> = env_example
        .lines()
        .map(|line| {
            let line = line.trim();
            line.strip_prefix("# ")
                .filter(|rest| is_assignment(rest))
                .unwrap_or(line)
        })
        .filter(|line| is_assignment(line))
        .filter_map(|line| line.split_once('='))
        .collect();
    let mut problems = Vec::new();
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let env = env.to_string_lossy();
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = default.join(",");
        match documented.get(env.as_ref()) {
            None => problems.push(format!("{env} is missing")),
            Some(value) if !default.is_empty() && *value != default => {
                problems.push(format!("{env}={value} but the default is {default}"))
            }
            Some(_) => {}
        }
    }
    problems
}

/// `NAME=...` with an upper-case variable name.
fn is_assignment(line: &str) -> bool {
    line.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_accept_good_values_and_explain_bad_ones() {
        assert!(nats_url("nats://127.0.0.1:4222").is_ok());
        assert!(nats_url("nats://127.0.0.1:port").is_err());
        assert_eq!(
            stream_name("RAKUDA_REALTIME").as_deref(),
            Ok("RAKUDA_REALTIME")
        );
        assert!(stream_name("a.b").is_err());
        assert_eq!(positive_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(positive_duration("0s").is_err());
        assert_eq!(nonzero("3"), Ok(3));
        assert_eq!(
            nonzero("0").map_err(|e| e.to_string()),
            Err("must be at least 1".into())
        );
        assert_eq!(
            bounded("7", 1, 5).map_err(|e| e.to_string()),
            Err("must be between 1 and 5".into())
        );
        assert!(matches!(nonzero("x"), Err(SettingError::WholeNumber(_))));
    }
}
