//! Settings parse from the command line as from the environment, and name themselves when wrong.

use super::*;
use clap::CommandFactory;

fn parse(args: &[&str]) -> Result<Config, clap::Error> {
    let command = Config::command().mut_args(|arg| arg.env(None::<&str>));
    let matches = command
        .try_get_matches_from(std::iter::once("rakuda-gateway").chain(args.iter().copied()))?;
    <Config as clap::FromArgMatches>::from_arg_matches(&matches)
}

#[test]
fn defaults_match_the_constants() {
    let parsed = parse(&["--api-key", "key-one-123"]).expect("parse");
    let built = Config::new(
        vec![DEFAULT_NATS_URL.parse().expect("url")],
        vec!["key-one-123".into()],
    );
    assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
}

#[test]
fn errors_name_the_variable() {
    for (args, variable) in [
        (vec![], "API_KEY"),
        (
            vec!["--api-key", "long-enough", "--sse-debounce-window", "soon"],
            "SSE_DEBOUNCE_WINDOW",
        ),
        (
            vec!["--api-key", "long-enough", "--sse-heartbeat-interval", "5"],
            "SSE_HEARTBEAT_INTERVAL",
        ),
        (
            vec!["--api-key", "long-enough", "--realtime-enabled", "maybe"],
            "REALTIME_ENABLED",
        ),
        (
            vec!["--api-key", "long-enough", "--cors-origins", "example.com"],
            "CORS_ORIGINS",
        ),
        (
            vec!["--api-key", "long-enough", "--trusted-proxies", "a-name"],
            "TRUSTED_PROXIES",
        ),
        (
            vec!["--api-key", "long-enough", "--gateway-addr", "everywhere"],
            "GATEWAY_ADDR",
        ),
        (
            vec![
                "--api-key",
                "long-enough",
                "--connection-rate-limit",
                "lots",
            ],
            "CONNECTION_RATE_LIMIT",
        ),
        (
            vec!["--api-key", "long-enough", "--connection-rate-burst", "0"],
            "CONNECTION_RATE_BURST",
        ),
    ] {
        let error = parse(&args).expect_err("bad value").to_string();
        assert!(error.contains(variable), "{variable}: {error}");
    }
}

/// Secrets pass clap untouched (it would repeat a refused value) and are checked after.
#[test]
fn secrets_are_checked_after_parsing_without_being_repeated() {
    let secret = "0123456789abcdef0123456789abcdef";
    for (args, variable, hidden) in [
        (vec!["--api-key", "short1"], "API_KEY", "short1"),
        (vec!["--api-key", "long-enough"], "TOKEN_SECRET", ""),
        (
            vec!["--api-key", "long-enough", "--token-secret", "tiny-one"],
            "TOKEN_SECRET",
            "tiny-one",
        ),
        (
            vec![
                "--api-key",
                "a:long-enough",
                "--api-key",
                "a:long-again",
                "--token-secret",
                secret,
            ],
            "API_KEY",
            "long-again",
        ),
    ] {
        let parsed = parse(&args).expect("clap takes any value");
        let error = parsed.check().expect_err("a bad secret").to_string();
        assert!(error.contains(variable), "{variable}: {error}");
        assert!(hidden.is_empty() || !error.contains(hidden), "{error}");
        assert!(
            !format!("{parsed:?}").contains("long-enough"),
            "Debug hides keys"
        );
    }
    let dev = parse(&["--api-key", "long-enough", "--gateway-dev-mode", "true"]).expect("parse");
    assert!(dev.check().is_ok(), "dev mode may run without a secret");
    let rotating = parse(&[
        "--api-key",
        "long-enough",
        "--token-secret",
        &format!("{secret},{secret}"),
    ]);
    assert_eq!(rotating.expect("parse").auth.token_secret.len(), 2);
}

#[test]
fn realtime_enabled_reads_false() {
    let parsed =
        parse(&["--api-key", "long-enough", "--realtime-enabled", "false"]).expect("parse");
    assert!(!parsed.realtime_enabled);
}

/// `.env.example` is what a newcomer copies: it must list every setting with its default.
#[test]
fn env_example_documents_every_setting() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.env.example");
    let text = std::fs::read_to_string(&path).expect("read .env.example");
    let problems = rakuda_service::settings::env_example_problems(
        &<Config as clap::CommandFactory>::command(),
        &text,
    );
    assert!(problems.is_empty(), ".env.example: {problems:?}");
}

/// The example secrets shipped in this repository (read from the files) are refused outside dev
/// mode, each naming its variable and how to make a real one, never repeating the value.
#[test]
fn shipped_example_secrets_are_refused_outside_dev_mode() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let examples = rakuda_testkit::shipped::example_secrets(&root).expect("read the shipped files");
    for (file, setting) in [
        ("ops/systemd/gateway.env.example", "API_KEY"),
        ("ops/systemd/gateway.env.example", "TOKEN_SECRET"),
        ("ops/systemd/gateway.env.example", "REDIS_URL"),
        (".env.example", "API_KEY"),
        ("ops/dev.sh", "TOKEN_SECRET"),
    ] {
        assert!(
            examples
                .iter()
                .any(|example| example.file == file && example.setting == setting),
            "no {setting} found in {file}: {examples:?}"
        );
    }
    let real_secret = "0123456789abcdef0123456789abcdef";
    for example in &examples {
        let mut config =
            parse(&["--api-key", "a-real-key-81", "--token-secret", real_secret]).expect("parse");
        let value = example.value.as_str();
        match example.setting {
            "API_KEY" => config.auth.api_key = vec!["a-real-key-81".into(), value.into()],
            "TOKEN_SECRET" => config.auth.token_secret = vec![value.into()],
            "REDIS_URL" => config.fleet.redis_url = value.into(),
            "NATS_PASSWORD" => {
                config.nats.nats_auth.nats_user = Some("rakuda-gateway".into());
                config.nats.nats_auth.nats_password = Some(value.into());
            }
            other => panic!("no such secret setting: {other}"),
        }
        let error = config.check().expect_err("an example secret").to_string();
        let context = format!("{example:?}: {error}");
        assert!(error.contains(example.setting), "{context}");
        assert!(
            error.contains("just certs") || error.contains("openssl rand"),
            "says how to make one: {context}"
        );
        // A URL's password, or the whole value.
        let secret_part = match value.rsplit_once('@') {
            Some((userinfo, _)) => userinfo.rsplit_once(':').map_or(userinfo, |(_, pass)| pass),
            None => value,
        };
        assert!(!error.contains(secret_part), "repeats the value: {context}");
        if example.setting == "API_KEY" {
            assert!(error.contains("key 2"), "{context}");
        }
        config.auth.gateway_dev_mode = true;
        assert!(
            !matches!(config.check(), Err(ConfigError::Placeholder(_))),
            "dev mode accepts the examples: {context}"
        );
    }
    // `just dev` runs the shipped development key and secret, so it runs in dev mode.
    let dev = std::fs::read_to_string(root.join("ops/dev.sh")).expect("read ops/dev.sh");
    assert!(dev.contains("export GATEWAY_DEV_MODE=true"), "ops/dev.sh");
}

#[test]
fn the_connection_rate_settings_refuse_what_cannot_work_and_say_why() {
    for retry_max in ["1500ms", "0s", "10m", "soon"] {
        let error = parse(&[
            "--api-key",
            "long-enough",
            "--connection-rate-retry-max",
            retry_max,
        ])
        .expect_err(retry_max)
        .to_string();
        assert!(
            error.contains("CONNECTION_RATE_RETRY_MAX") && error.contains("whole seconds"),
            "{retry_max}: {error}"
        );
    }
    let parsed = parse(&[
        "--api-key",
        "long-enough",
        "--connection-rate-retry-max",
        "2s",
    ])
    .expect("whole seconds");
    assert_eq!(
        parsed.limits.connection_rate_retry_max,
        Duration::from_secs(2)
    );

    let secret = "0123456789abcdef0123456789abcdef";
    let burst_without_limit = parse(&[
        "--api-key",
        "long-enough",
        "--token-secret",
        secret,
        "--connection-rate-limit",
        "0",
        "--connection-rate-burst",
        "50",
    ])
    .expect("clap takes each value");
    let error = burst_without_limit
        .check()
        .expect_err("a burst with the cap off")
        .to_string();
    assert!(
        error.contains("CONNECTION_RATE_BURST") && error.contains("CONNECTION_RATE_LIMIT=0"),
        "{error}"
    );
    let off = parse(&[
        "--api-key",
        "long-enough",
        "--token-secret",
        secret,
        "--connection-rate-limit",
        "0",
    ])
    .expect("parse");
    assert!(off.check().is_ok(), "0 turns the cap off");
}

#[test]
fn short_api_keys_and_repeated_ids_are_refused_without_showing_the_key() {
    let mut config = Config::new(
        vec![DEFAULT_NATS_URL.parse().expect("url")],
        vec!["long-enough-key".into(), "tiny".into()],
    );
    let error = config.auth.api_keys().err().map(|e| e.to_string());
    let error = error.unwrap_or_default();
    assert!(
        error.contains("API_KEY") && error.contains("key 2"),
        "{error}"
    );
    assert!(!error.contains("tiny"), "{error}");
    config.auth.api_key = vec!["a:long-enough-1".into(), "a:long-enough-2".into()];
    let error = config.auth.api_keys().err();
    assert!(matches!(error, Some(ConfigError::ApiKeyIdRepeated(id)) if id == "a"));
}
