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
    assert_eq!(rotating.expect("parse").token_secret.len(), 2);
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
