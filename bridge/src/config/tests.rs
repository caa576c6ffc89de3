//! Settings parse from the environment as documented, and name themselves when wrong.

use super::*;

fn parse(args: &[&str]) -> Result<Config, clap::Error> {
    // `no_env` keeps the machine's environment out of the test.
    let command = <Config as clap::CommandFactory>::command();
    let command = command.mut_args(|arg| arg.env(None::<&str>));
    let matches = command
        .try_get_matches_from(std::iter::once("rakuda-bridge").chain(args.iter().copied()))?;
    <Config as clap::FromArgMatches>::from_arg_matches(&matches)
}

#[test]
fn defaults_match_the_constants() {
    let parsed = parse(&[]).expect("defaults parse");
    let built = Config::new(
        DEFAULT_REDIS_URL,
        vec![DEFAULT_NATS_URL.parse().expect("url")],
    );
    assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
    assert_eq!(parsed.redis_pattern(), "rakuda:realtime:*");
}

#[test]
fn nats_url_takes_a_comma_list() {
    let parsed = parse(&["--nats-url", "nats://a:4222,nats://b:4222"]).expect("parse");
    assert_eq!(parsed.nats_url.len(), 2);
}

#[test]
fn errors_name_the_variable() {
    for (args, variable) in [
        (vec!["--stream-max-messages", "abc"], "STREAM_MAX_MESSAGES"),
        (vec!["--nats-url", "nats://a:notaport"], "NATS_URL"),
        (vec!["--stream-max-age", "forever"], "STREAM_MAX_AGE"),
        (vec!["--event-max-bytes", "0"], "EVENT_MAX_BYTES"),
        (
            vec!["--bridge-metrics-addr", "localhost"],
            "BRIDGE_METRICS_ADDR",
        ),
        (vec!["--bridge-http-addr", "localhost"], "BRIDGE_HTTP_ADDR"),
        (
            vec!["--publish-max-body-bytes", "10"],
            "PUBLISH_MAX_BODY_BYTES",
        ),
        (vec!["--publish-max-batch", "0"], "PUBLISH_MAX_BATCH"),
        (
            vec!["--publish-max-concurrent", "0"],
            "PUBLISH_MAX_CONCURRENT",
        ),
        (vec!["--publish-timeout", "0s"], "PUBLISH_TIMEOUT"),
    ] {
        let error = parse(&args).expect_err("bad value").to_string();
        assert!(error.contains(variable), "{error}");
    }
}

#[test]
fn a_bad_redis_url_is_named_without_being_repeated() {
    let parsed = parse(&["--redis-url", "http//user:hunter22@nope"]).expect("clap takes it");
    let error = parsed.check().expect_err("bad URL").to_string();
    assert!(error.contains("REDIS_URL"), "{error}");
    assert!(!error.contains("hunter22"), "{error}");
    assert!(
        !format!("{parsed:?}").contains("hunter22"),
        "Debug hides it too"
    );
}

/// The example passwords shipped in this repository (read from the files) are refused,
/// named without being repeated, with how to make a real one.
#[test]
fn shipped_example_passwords_are_refused() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let examples = rakuda_testkit::shipped::example_secrets(&root).expect("read the shipped files");
    let mut checked = 0;
    for example in &examples {
        let mut config = parse(&[]).expect("defaults parse");
        match example.setting {
            "REDIS_URL" => config.redis_url = example.value.as_str().into(),
            "NATS_PASSWORD" => {
                config.nats_auth.nats_user = Some("rakuda-bridge".into());
                config.nats_auth.nats_password = Some(example.value.as_str().into());
            }
            _ => continue, // the gateway's
        }
        checked += 1;
        let error = config.check().expect_err("an example password").to_string();
        let context = format!("{example:?}: {error}");
        assert!(error.contains(example.setting), "{context}");
        assert!(error.contains("just certs"), "{context}");
        let password = example
            .value
            .rsplit_once('@')
            .and_then(|(userinfo, _)| userinfo.rsplit_once(':'))
            .map_or(example.value.as_str(), |(_, password)| password);
        assert!(!error.contains(password), "repeats it: {context}");
    }
    assert!(
        examples
            .iter()
            .any(|example| example.file == "ops/systemd/bridge.env.example"
                && example.setting == "REDIS_URL"),
        "{examples:?}"
    );
    assert!(checked >= 2, "{examples:?}");
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
