//! `rakuda-sim validate` answers exactly as the bridge would (other tools, such as the web
//! package's tests, use it to check what they publish).

use std::io::Write;
use std::process::{Command, Stdio};

fn validate(channel: &str, message: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rakuda-sim"))
        .args(["validate", channel])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rakuda-sim");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(message.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn accepts_what_the_bridge_accepts_and_names_what_it_rejects() {
    let valid = r#"{"type":"ORDER_RECEIVED","payload":{"id":"o1","action":"created"},"timestamp":"2026-11-22T10:00:00.000Z"}"#;
    assert_eq!(validate("orders", valid), (true, String::new()));
    let (ok, stderr) = validate("inventory", valid);
    assert!(!ok);
    assert!(stderr.contains("type_channel_mismatch"), "{stderr}");
    let (ok, stderr) = validate("orders", "{}");
    assert!(!ok);
    assert!(stderr.contains("missing_field"), "{stderr}");
}
