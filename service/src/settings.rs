//! Parsers for setting values. Used as clap `value_parser`s, so an error reads
//! `invalid value 'x' for '--name <VARIABLE>': <what these functions say>`.

use std::time::Duration;

use async_nats::ServerAddr;

/// A NATS server URL (`nats://host:port`); several are given as a comma list.
pub fn nats_url(value: &str) -> Result<ServerAddr, String> {
    value
        .trim()
        .parse::<ServerAddr>()
        .map_err(|error| format!("not a NATS URL (expected nats://host:port): {error}"))
}

/// A JetStream stream name.
pub fn stream_name(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(value.to_owned())
    } else {
        Err("must be letters, digits, `_` or `-`".into())
    }
}

/// A duration like `30s`, `15m` or `24h`, longer than zero.
pub fn positive_duration(value: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(value)
        .map_err(|error| format!("not a duration like `30s` or `24h`: {error}"))?;
    if duration.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(duration)
}

/// A duration like `5s`; zero allowed (it means "off" where a setting says so).
pub fn duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value)
        .map_err(|error| format!("not a duration like `5s` or `0s`: {error}"))
}

/// A Redis URL (`redis://host:port[/db]`).
pub fn redis_url(value: &str) -> Result<String, String> {
    let valid = ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|scheme| value.starts_with(scheme) && value.len() > scheme.len());
    if valid && !value.contains(char::is_whitespace) {
        Ok(value.to_owned())
    } else {
        Err("not a Redis URL (expected redis://host:port[/db])".into())
    }
}

/// A whole number of at least 1.
pub fn nonzero(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(error) => Err(format!("not a whole number: {error}")),
    }
}

/// A whole number between `min` and `max`.
pub fn bounded(value: &str, min: usize, max: usize) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) => Err(format!("must be between {min} and {max}")),
        Err(error) => Err(format!("not a whole number: {error}")),
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
        assert_eq!(nonzero("0"), Err("must be at least 1".into()));
        assert_eq!(bounded("7", 1, 5), Err("must be between 1 and 5".into()));
    }
}
