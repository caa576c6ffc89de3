//! Every reject reason, reached from bytes a worker could send.

use super::*;

const VALID: &str = r#"{"type":"INVENTORY_CHANGE","payload":{"id":"prod_123","action":"updated","data":{"isAvailable":false,"extra":{"nested":[1,2]}}},"timestamp":"2026-11-22T10:00:00.000Z"}"#;

fn reason(channel: &str, bytes: &[u8]) -> RejectReason {
    match validate(channel, bytes) {
        Ok(_) => panic!("expected a reject for {}", String::from_utf8_lossy(bytes)),
        Err(reject) => reject.reason,
    }
}

#[test]
fn accepts_a_valid_event_with_extra_fields() {
    let event = validate("inventory", VALID.as_bytes()).expect("valid");
    assert_eq!(event.channel.name, "inventory");
    assert_eq!(event.event_type, EventType::InventoryChange);
    assert_eq!(event.id, "prod_123");
    assert_eq!(event.action, Action::Updated);
    let typed = event.to_event();
    let data = typed.payload.data.clone().expect("data");
    assert_eq!(
        data.get("isAvailable"),
        Some(&serde_json::Value::Bool(false))
    );
    // Re-serializing gives the same bytes: nothing is reformatted.
    assert_eq!(serde_json::to_string(&typed).expect("serialize"), VALID);
}

#[test]
fn the_payload_and_timestamp_are_the_workers_bytes() {
    let text = r#"{"timestamp":"2026-11-22T10:00:00.000\u005a","payload":{"data":{"big":12345678901234567890123,"frac":0.1000000000000000055511151231257827,"s":"\u00e9\n"},"action":"created","id":"o\u0031"},"type":"ORDER_RECEIVED","extra":[1]}"#;
    let event = validate("orders", text.as_bytes()).expect("valid");
    assert_eq!(event.id, "o1", "the id is unescaped for grouping");
    assert_eq!(
        event.payload.get(),
        r#"{"data":{"big":12345678901234567890123,"frac":0.1000000000000000055511151231257827,"s":"\u00e9\n"},"action":"created","id":"o\u0031"}"#
    );
    assert_eq!(
        event.timestamp_json.get(),
        r#""2026-11-22T10:00:00.000\u005a""#
    );
    assert_eq!(event.timestamp.as_str(), "2026-11-22T10:00:00.000Z");
}

#[test]
fn duplicate_keys_are_refused_at_any_depth() {
    for text in [
        r#"{"type":"ORDER_RECEIVED","type":"ORDER_RECEIVED","payload":{"id":"o","action":"created"},"timestamp":"2026-11-22T10:00:00Z"}"#,
        r#"{"type":"ORDER_RECEIVED","payload":{"id":"o","id":"p","action":"created"},"timestamp":"2026-11-22T10:00:00Z"}"#,
        r#"{"type":"ORDER_RECEIVED","payload":{"id":"o","action":"created","data":{"a":{"b":1,"b":2}}},"timestamp":"2026-11-22T10:00:00Z"}"#,
    ] {
        let reject = validate("orders", text.as_bytes()).expect_err("duplicate key");
        assert_eq!(reject.reason, RejectReason::DuplicateKey, "{text}");
        assert!(
            reject.message.starts_with("duplicate key `"),
            "{}",
            reject.message
        );
    }
}

#[test]
fn data_is_optional_and_may_be_null() {
    let bare = r#"{"type":"ORDER_RECEIVED","payload":{"id":"ord_1","action":"created"},"timestamp":"2026-11-22T10:00:00Z"}"#;
    assert!(validate("orders", bare.as_bytes()).is_ok());
    let null = r#"{"type":"ORDER_RECEIVED","payload":{"id":"ord_1","action":"created","data":null},"timestamp":"2026-11-22T10:00:00Z"}"#;
    assert!(validate("orders", null.as_bytes()).is_ok());
}

#[test]
fn every_reason_is_reachable() {
    let big = format!(
        r#"{{"type":"INVENTORY_CHANGE","payload":{{"id":"p","action":"updated","data":{{"pad":"{}"}}}},"timestamp":"2026-11-22T10:00:00Z"}}"#,
        "x".repeat(DEFAULT_MAX_EVENT_BYTES)
    );
    let cases: Vec<(&str, Vec<u8>, RejectReason)> = vec![
        ("inventory", big.into_bytes(), RejectReason::TooLarge),
        ("inventory", vec![b'{', 0xff, 0xfe, b'}'], RejectReason::InvalidUtf8),
        ("inventory", b"{not json".to_vec(), RejectReason::InvalidJson),
        ("inventory", b"[1,2,3]".to_vec(), RejectReason::InvalidJson),
        (
            "inventory",
            br#"{"type":"INVENTORY_CHANGE","type":"INVENTORY_CHANGE"}"#.to_vec(),
            RejectReason::DuplicateKey,
        ),
        ("warehouse", VALID.as_bytes().to_vec(), RejectReason::UnknownChannel),
        (
            "inventory",
            br#"{"payload":{"id":"p","action":"updated"},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
            RejectReason::MissingField,
        ),
        (
            "inventory",
            br#"{"type":"INVENTORY_CHANGE","timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
            RejectReason::MissingField,
        ),
        (
            "inventory",
            br#"{"type":"INVENTORY_CHANGE","payload":{"action":"updated"},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
            RejectReason::MissingField,
        ),
        (
            "inventory",
            br#"{"type":"INVENTORY_CHANGE","payload":{"id":"p","action":"updated"}}"#.to_vec(),
            RejectReason::MissingField,
        ),
        (
            "inventory",
            br#"{"type":"INVENTORY_CHANGE","payload":{"id":42,"action":"updated"},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
            RejectReason::InvalidField,
        ),
        (
            "inventory",
            br#"{"type":"INVENTORY_CHANGE","payload":{"id":"","action":"updated"},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
            RejectReason::InvalidField,
        ),
        (
            "inventory",
            br#"{"type":"INVENTORY_CHANGE","payload":{"id":"p","action":"updated","data":[1]},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
            RejectReason::InvalidField,
        ),
        (
            "inventory",
            br#"{"type":"STOCK_GONE","payload":{"id":"p","action":"updated"},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
            RejectReason::UnknownType,
        ),
        (
            "inventory",
            br#"{"type":"INVENTORY_CHANGE","payload":{"id":"p","action":"archived"},"timestamp":"2026-11-22T10:00:00Z"}"#.to_vec(),
            RejectReason::UnknownAction,
        ),
        (
            "orders",
            VALID.as_bytes().to_vec(),
            RejectReason::TypeChannelMismatch,
        ),
        (
            "inventory",
            br#"{"type":"INVENTORY_CHANGE","payload":{"id":"p","action":"updated"},"timestamp":"yesterday"}"#.to_vec(),
            RejectReason::BadTimestamp,
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (channel, bytes, expected) in cases {
        assert_eq!(reason(channel, &bytes), expected, "case {expected}");
        seen.insert(expected);
    }
    // `stream_rejected` is JetStream's verdict, given by the bridge's publisher.
    assert_eq!(
        seen.len(),
        RejectReason::ALL.len() - 1,
        "every reason the validator gives needs a case"
    );
}

#[test]
fn messages_name_the_problem() {
    let reject = validate(
        "inventory",
        br#"{"type":"INVENTORY_CHANGE","payload":{"action":"updated"},"timestamp":"2026-11-22T10:00:00Z"}"#,
    )
    .expect_err("missing id");
    assert_eq!(reject.message, "required field `payload.id` is missing");
    let reject = validate("orders", VALID.as_bytes()).expect_err("mismatch");
    assert_eq!(
        reject.message,
        "type INVENTORY_CHANGE belongs on channel `inventory`, not `orders`"
    );
}

#[test]
fn size_limit_is_a_setting() {
    let validator = Validator::new(16);
    let reject = validator
        .validate("inventory", VALID.as_bytes())
        .expect_err("too large");
    assert_eq!(reject.reason, RejectReason::TooLarge);
    assert!(Validator::new(VALID.len())
        .validate("inventory", VALID.as_bytes())
        .is_ok());
}
