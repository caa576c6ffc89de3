//! The `rakuda-bridge` binary: bad settings stop it with a message naming the variable (and
//! never the password a URL holds); SIGTERM drains and exits 0; a worker's bytes cannot forge a
//! log line.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rakuda_schema::EventType;
use support::*;

const BINARY: &str = env!("CARGO_BIN_EXE_rakuda-bridge");

/// The binary with only the given settings (no inherited environment, no stray `.env`).
fn bridge_command(settings: &[(&str, &str)]) -> (Command, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .current_dir(dir.path())
        .envs(settings.iter().copied());
    (command, dir)
}

#[test]
fn bad_settings_exit_non_zero_naming_the_variable() {
    for (variable, value) in [
        ("REDIS_URL", "not a url"),
        ("NATS_URL", "nats://127.0.0.1:notaport"),
        ("STREAM_MAX_MESSAGES", "lots"),
        ("EVENT_MAX_BYTES", "-5"),
        ("STREAM_MAX_AGE", "forever"),
        ("BRIDGE_METRICS_ADDR", "nowhere"),
    ] {
        let (mut command, _dir) = bridge_command(&[(variable, value)]);
        let output = command.output().expect("run rakuda-bridge");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{variable}={value} must fail");
        assert!(
            stderr.contains(variable),
            "{variable}={value}: the message must name the variable, got:\n{stderr}"
        );
    }
}

#[test]
fn a_password_in_a_bad_redis_url_is_never_printed() {
    let (mut command, _dir) = bridge_command(&[("REDIS_URL", "http//bridge:hunter2222@redis")]);
    let output = command.output().expect("run rakuda-bridge");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("REDIS_URL"), "{stderr}");
    assert!(!stderr.contains("hunter2222"), "{stderr}");
}

/// The example Redis passwords shipped in this repository (read from the files) stop the bridge
/// with a message naming `REDIS_URL` and `just certs`, never the password.
#[test]
fn shipped_example_passwords_stop_the_bridge() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let examples = rakuda_testkit::shipped::example_secrets(&root).expect("read the shipped files");
    let mut tried = 0;
    for example in examples.iter().filter(|e| e.setting == "REDIS_URL") {
        let (command, _dir) = bridge_command(&[("REDIS_URL", &example.value)]);
        let (status, stderr) = exit_of(command);
        assert_eq!(status, Some(2), "{example:?}:\n{stderr}");
        assert!(
            stderr.contains("REDIS_URL") && stderr.contains("just certs"),
            "{example:?}:\n{stderr}"
        );
        let password = example
            .value
            .rsplit_once('@')
            .and_then(|(userinfo, _)| userinfo.rsplit_once(':'))
            .map_or(example.value.as_str(), |(_, password)| password);
        assert!(!stderr.contains(password), "printed:\n{stderr}");
        tried += 1;
    }
    assert!(tried >= 2, "{examples:?}");
}

/// Runs `command` to its exit, bounded: a binary that accepted its settings would run on, so
/// past the deadline it is killed and the test fails saying so. Its status code and stderr.
fn exit_of(mut command: std::process::Command) -> (Option<i32>, String) {
    let stderr_file = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = command
        .stderr(stderr_file.reopen().expect("reopen"))
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > rakuda_testkit::wait::WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after {:?}: the settings were accepted",
                started.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(stderr_file.path()).unwrap_or_default();
    (status.code(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cannot_forge_a_log_line() {
    let backbone = Backbone::start();
    let metrics_port = rakuda_testkit::free_port().expect("free port");
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let (mut command, dir) = bridge_command(&[
        ("REDIS_URL", &backbone.redis.url()),
        ("NATS_URL", &backbone.nats.url()),
        ("BRIDGE_METRICS_ADDR", &metrics_addr),
        ("RUST_LOG", "info"),
    ]);
    let log_path = dir.path().join("bridge.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    // Logs go to stdout.
    let mut child = command
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rakuda-bridge");
    eventually("bridge /readyz answers 200", || async {
        let response = reqwest::get(format!("http://{metrics_addr}/readyz"))
            .await
            .ok()?;
        response.status().is_success().then_some(())
    })
    .await;

    // A type and a channel name that each carry a line of their own.
    let forged = r#"{"type":"ORDER_RECEIVED\nFORGED ERROR admin logged in","payload":{"id":"o1","action":"created"},"timestamp":"2026-11-22T10:00:00.000Z"}"#;
    let mut redis = backbone.redis().await;
    publish(&mut redis, "rakuda:realtime:orders", forged).await;
    publish(
        &mut redis,
        "rakuda:realtime:x\nFORGED WARN from a channel",
        "{}",
    )
    .await;
    let jetstream = backbone.jetstream().await;
    wait_for_stream_len(&jetstream, "RAKUDA_DLQ", 2).await;

    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log_path).expect("read log");
    assert!(
        text.lines()
            .all(|line| !line.trim_start().starts_with("FORGED")),
        "a forged line got into the log:\n{text}"
    );
    // Still logged, escaped: the newline is the two characters `\n`.
    assert!(
        text.contains("\\nFORGED"),
        "the reject is still logged:\n{text}"
    );
}

#[test]
fn a_malformed_dotenv_file_is_reported() {
    let (mut command, dir) = bridge_command(&[]);
    std::fs::write(dir.path().join(".env"), "REDIS_URL='unterminated\n").expect("write .env");
    let output = command.output().expect("run rakuda-bridge");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(".env"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let backbone = Backbone::start();
    let metrics_port = rakuda_testkit::free_port().expect("free port");
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let (mut command, _dir) = bridge_command(&[
        ("REDIS_URL", &backbone.redis.url()),
        ("NATS_URL", &backbone.nats.url()),
        ("BRIDGE_METRICS_ADDR", &metrics_addr),
        ("BRIDGE_DRAIN_TIMEOUT", "5s"),
    ]);
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rakuda-bridge");

    eventually("bridge /readyz answers 200", || async {
        let response = reqwest::get(format!("http://{metrics_addr}/readyz"))
            .await
            .ok()?;
        response.status().is_success().then_some(())
    })
    .await;

    let mut redis = backbone.redis().await;
    let json = event_json(EventType::ListingUpdate, "l1");
    publish(&mut redis, "rakuda:realtime:listings", &json).await;
    let jetstream = backbone.jetstream().await;
    wait_for_stream_len(&jetstream, "RAKUDA_REALTIME", 1).await;

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bridge did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
}
