//! Hostile input against the event validator.
//!
//! The validator is the first code that reads bytes a worker (or anyone who can publish on
//! Redis) wrote, so it has to hold for every input, not only for the cases in its unit tests.
//! These properties feed it arbitrary bytes, JSON-shaped text built from random trees (nested
//! objects and arrays, repeated keys, huge and out-of-range numbers, bad escapes, lone
//! surrogates), mutated text (truncated, invalid UTF-8 spliced in), event-shaped documents with
//! random values in every field, very deep nesting, and oversized messages, and check that:
//!
//! - it never panics, and answers `Ok` or a `Reject` with one of the validator's reasons and a
//!   non-empty message;
//! - the message stays short whatever the input: it is logged and put in a DLQ header, so a
//!   worker's 1 MiB value must not turn into a 1 MiB log line;
//! - a message over the size limit is refused as `too_large` before anything else is looked at;
//! - an event built from generated fields is accepted, keeps the worker's bytes, and
//!   `to_event()` keeps its id, action, type, timestamp and data.
//!
//! Case counts are modest so the file runs in seconds; failures are not persisted to files (a
//! shrunk failure belongs in a named regression test instead).

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config as ProptestConfig;
use rakuda_schema::{
    validate, Action, Channel, EventType, Reject, RejectReason, Validator, CHANNELS,
    DEFAULT_MAX_EVENT_BYTES,
};
use serde_json::{Map, Value};

/// The longest reject message allowed, whatever the input. Quoted worker values are cut short,
/// so a message is its fixed text plus a short quote.
const MESSAGE_BOUND: usize = 512;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// What every answer must look like, valid or not.
fn check_answer(channel: &str, bytes: &[u8], max: usize) -> Result<(), TestCaseError> {
    let validator = Validator::new(max);
    match validator.validate(channel, bytes) {
        Ok(event) => {
            prop_assert!(bytes.len() <= max);
            prop_assert_eq!(event.channel.name, channel);
            prop_assert_eq!(event.event_type, event.channel.event_type);
            prop_assert!(!event.id.is_empty());
            // The same bytes on the same channel, read from the stream: the same verdict.
            let again = validator
                .validate_on(event.channel, bytes)
                .map_err(|reject| TestCaseError::fail(format!("validate_on refused: {reject}")))?;
            prop_assert_eq!(again.id, event.id.clone());
            // The typed view of an accepted event is itself an acceptable event.
            let typed = event.to_event();
            prop_assert_eq!(&typed.payload.id, &*event.id);
            prop_assert_eq!(typed.payload.action, event.action);
            prop_assert_eq!(typed.event_type, event.event_type);
            let bytes = serde_json::to_vec(&typed).expect("an event serializes");
            let again = Validator::new(usize::MAX)
                .validate(channel, &bytes)
                .map_err(|reject| TestCaseError::fail(format!("re-serialized: {reject}")))?;
            prop_assert_eq!(again.id, event.id);
        }
        Err(reject) => check_reject(&reject)?,
    }
    Ok(())
}

fn check_reject(reject: &Reject) -> Result<(), TestCaseError> {
    prop_assert!(RejectReason::ALL.contains(&reject.reason));
    // `stream_rejected` is JetStream's verdict, never the validator's.
    prop_assert_ne!(reject.reason, RejectReason::StreamRejected);
    prop_assert!(!reject.message.is_empty());
    prop_assert!(
        reject.message.len() <= MESSAGE_BOUND,
        "{} message of {} bytes: {:.200}",
        reject.reason,
        reject.message.len(),
        reject.message
    );
    prop_assert!(reject.to_string().starts_with(reject.reason.as_str()));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// A channel name: mostly real ones, so the checks after the channel's are reached.
fn channel_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(CHANNELS.map(|c| c.name).to_vec()).prop_map(String::from),
        1 => any::<String>(),
        1 => Just(String::new()),
    ]
}

/// The text of a JSON number, valid or not: ordinary, huge, out of `f64` range, malformed.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        "-?[0-9]{1,80}(\\.[0-9]{1,40})?([eE][+-]?[0-9]{1,6})?",
        prop::sample::select(vec![
            "-0", "1e999", "-1e999", "1e-999", "01", "1.", ".5", "NaN", "-"
        ])
        .prop_map(String::from),
    ]
}

/// The text of a JSON string, quotes included, valid or not.
fn string_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>().prop_map(|s| serde_json::to_string(&s).expect("a string serializes")),
        // Lone and reversed surrogates.
        1 => "\"[a-z]{0,3}\\\\u[dD][89aAbB][0-9a-fA-F]{2}[a-z]{0,3}\"",
        1 => "\"\\\\u[dD][c-fC-F][0-9a-fA-F]{2}\\\\u[dD][89aAbB][0-9a-fA-F]{2}\"",
        // Escapes JSON does not have, and raw control characters.
        1 => "\"[a-z]{0,3}\\\\[^\"\\\\/bfnrtu][a-z]{0,3}\"",
        1 => "\"[a-z]{0,3}[\\x00-\\x1f][a-z]{0,3}\"",
    ]
}

/// An object key: few distinct names, so repeated keys are common, and the validator's own.
fn key_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "a", "b", "type", "payload", "id", "action", "data", "timestamp",
        ])
        .prop_map(|k| format!("\"{k}\"")),
        // An escaped spelling of the same key is the same key.
        1 => Just("\"\\u0069d\"".to_owned()),
        1 => string_literal(),
    ]
}

/// A JSON-ish tree; rendered as text it is JSON only if every leaf is.
#[derive(Debug, Clone)]
enum Tree {
    Leaf(String),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

impl Tree {
    fn render(&self, out: &mut String) {
        match self {
            Tree::Leaf(text) => out.push_str(text),
            Tree::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.render(out);
                }
                out.push(']');
            }
            Tree::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(key);
                    out.push(':');
                    value.render(out);
                }
                out.push('}');
            }
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        self.render(&mut out);
        out
    }
}

fn leaf() -> impl Strategy<Value = Tree> {
    prop_oneof![
        prop::sample::select(vec!["null", "true", "false"]).prop_map(|s| Tree::Leaf(s.into())),
        number().prop_map(Tree::Leaf),
        string_literal().prop_map(Tree::Leaf),
        // Not JSON at all.
        prop::sample::select(vec!["", "nul", "True", "undefined", "'x'", "}", ",", ":"])
            .prop_map(|s| Tree::Leaf(s.into())),
    ]
}

fn tree() -> impl Strategy<Value = Tree> {
    leaf().prop_recursive(8, 128, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Tree::Array),
            prop::collection::vec((key_literal(), inner), 0..8).prop_map(Tree::Object),
        ]
    })
}

/// A value for one of the event's fields: the right kind, the wrong kind, or absent.
fn field(right: BoxedStrategy<String>) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => right.prop_map(Some),
        2 => tree().prop_map(|t| Some(t.text())),
        1 => Just(Some("null".to_owned())),
        1 => Just(None),
    ]
}

fn quoted(names: Vec<&'static str>) -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(names).prop_map(|n| format!("\"{n}\"")),
        1 => string_literal(),
        // Long enough to matter for the message bound.
        1 => (0usize..5_000).prop_map(|n| format!("\"{}\"", "Z".repeat(n))),
    ]
    .boxed()
}

fn timestamp_literal() -> BoxedStrategy<String> {
    prop_oneof![
        3 => timestamp().prop_map(|t| format!("\"{t}\"")),
        1 => "\"[0-9T:Z.+-]{0,30}\"",
        1 => string_literal(),
    ]
    .boxed()
}

/// An RFC 3339 time with an offset, which the contract accepts.
fn timestamp() -> impl Strategy<Value = String> {
    (
        (1u32..=9999, 1u32..=12, 1u32..=28),
        (0u32..24, 0u32..60, 0u32..60),
        prop::option::of("[0-9]{1,9}"),
        prop_oneof![
            Just("Z".to_owned()),
            (prop::bool::ANY, 0u32..24, 0u32..60)
                .prop_map(|(east, h, m)| format!("{}{h:02}:{m:02}", if east { '+' } else { '-' })),
        ],
    )
        .prop_map(|((y, mo, d), (h, mi, s), fraction, offset)| {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{fraction}{offset}")
        })
}

fn members_text(members: &[(String, String)]) -> String {
    let inner: Vec<String> = members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// An event-shaped document: each field right, wrong or absent, in any order, with extras.
fn event_shaped() -> impl Strategy<Value = String> {
    let type_names = EventType::ALL.map(EventType::as_str).to_vec();
    let actions = Action::ALL.map(Action::as_str).to_vec();
    let payload = (
        field(string_literal().boxed()),
        field(quoted(actions)),
        prop_oneof![
            2 => Just(None),
            2 => tree().prop_map(|t| Some(t.text())),
            1 => Just(Some("{}".to_owned())),
        ],
        prop::collection::vec((key_literal(), tree()), 0..3),
    )
        .prop_map(|(id, action, data, extra)| {
            let mut members = Vec::new();
            push(&mut members, "\"id\"", id);
            push(&mut members, "\"action\"", action);
            push(&mut members, "\"data\"", data);
            members.extend(extra.into_iter().map(|(k, v)| (k, v.text())));
            members_text(&members)
        });
    (
        field(quoted(type_names)),
        field(payload.boxed()),
        field(timestamp_literal()),
        prop::collection::vec((key_literal(), tree()), 0..3),
    )
        .prop_flat_map(|(event_type, payload, timestamp, extra)| {
            let mut members = Vec::new();
            push(&mut members, "\"type\"", event_type);
            push(&mut members, "\"payload\"", payload);
            push(&mut members, "\"timestamp\"", timestamp);
            members.extend(extra.into_iter().map(|(k, v)| (k, v.text())));
            Just(members).prop_shuffle()
        })
        .prop_map(|members| members_text(&members))
}

fn push(members: &mut Vec<(String, String)>, key: &str, value: Option<String>) {
    if let Some(value) = value {
        members.push((key.to_owned(), value));
    }
}

/// Damage done to otherwise well-formed text.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Truncate(Index),
    Insert(Index, u8),
    /// Bytes that are never UTF-8, or encode a surrogate, or start a sequence and stop.
    InvalidUtf8(Index, &'static [u8]),
    Duplicate(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::None),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (
            any::<Index>(),
            prop::sample::select(vec![
                &[0xff][..],
                &[0xc3][..],
                &[0xed, 0xa0, 0x80][..],
                &[0xf4, 0x90, 0x80, 0x80][..],
                &[0xc0, 0xaf][..],
            ])
        )
            .prop_map(|(i, b)| Mutation::InvalidUtf8(i, b)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
    ]
}

fn apply(text: String, mutation: &Mutation) -> Vec<u8> {
    let mut bytes = text.into_bytes();
    let at = |index: &Index, len: usize| index.index(len + 1);
    match mutation {
        Mutation::None => {}
        Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len())),
        Mutation::Insert(i, b) => bytes.insert(at(i, bytes.len()), *b),
        Mutation::InvalidUtf8(i, seq) => {
            let i = at(i, bytes.len());
            bytes.splice(i..i, seq.iter().copied());
        }
        Mutation::Duplicate(a, b) => {
            let (a, b) = (at(a, bytes.len()), at(b, bytes.len()));
            let (from, to) = (a.min(b), a.max(b));
            let copy = bytes[from..to].to_vec();
            bytes.splice(to..to, copy);
        }
    }
    bytes
}

/// Data a worker may attach: any JSON object (keys unique by construction of `Map`).
fn data_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(Value::Number),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// A JSON string literal of `text` with every character written as a `\u` escape.
fn escaped(text: &str) -> String {
    let mut out = String::from("\"");
    for unit in text.encode_utf16() {
        out.push_str(&format!("\\u{unit:04x}"));
    }
    out.push('"');
    out
}

fn literal(text: &str, escape: bool) -> String {
    if escape {
        escaped(text)
    } else {
        serde_json::to_string(text).expect("a string serializes")
    }
}

/// A valid event, as the generated fields and the text a worker would send.
#[derive(Debug, Clone)]
struct Generated {
    channel: &'static Channel,
    id: String,
    action: Action,
    data: Option<Map<String, Value>>,
    /// `data` written as `null` rather than left out when there is none.
    null_data: bool,
    timestamp: String,
    escape_strings: bool,
    top_extra: Vec<(String, Value)>,
    payload_extra: Vec<(String, Value)>,
    top_order: Vec<usize>,
    payload_order: Vec<usize>,
}

impl Generated {
    fn payload_text(&self) -> String {
        let mut members = vec![
            (
                literal("id", self.escape_strings),
                literal(&self.id, self.escape_strings),
            ),
            (
                "\"action\"".to_owned(),
                literal(self.action.as_str(), self.escape_strings),
            ),
        ];
        match (&self.data, self.null_data) {
            (Some(data), _) => members.push((
                "\"data\"".to_owned(),
                serde_json::to_string(data).expect("data serializes"),
            )),
            (None, true) => members.push(("\"data\"".to_owned(), "null".to_owned())),
            (None, false) => {}
        }
        for (key, value) in &self.payload_extra {
            members.push((
                literal(key, false),
                serde_json::to_string(value).expect("serializes"),
            ));
        }
        members_text(&reorder(members, &self.payload_order))
    }

    fn timestamp_text(&self) -> String {
        literal(&self.timestamp, self.escape_strings)
    }

    fn text(&self) -> String {
        let mut members = vec![
            (
                "\"type\"".to_owned(),
                literal(self.channel.event_type.as_str(), self.escape_strings),
            ),
            ("\"payload\"".to_owned(), self.payload_text()),
            ("\"timestamp\"".to_owned(), self.timestamp_text()),
        ];
        for (key, value) in &self.top_extra {
            members.push((
                literal(key, false),
                serde_json::to_string(value).expect("serializes"),
            ));
        }
        members_text(&reorder(members, &self.top_order))
    }
}

/// `members` in the order of the shuffled indices `order` (which may be longer).
fn reorder(members: Vec<(String, String)>, order: &[usize]) -> Vec<(String, String)> {
    let mut slots: Vec<Option<(String, String)>> = members.into_iter().map(Some).collect();
    order
        .iter()
        .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

/// Extra members whose names cannot collide with the contract's.
fn extras(prefix: &'static str) -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::btree_map(
        "[a-z]{1,6}".prop_map(move |k| format!("{prefix}{k}")),
        data_value(),
        0..3,
    )
    .prop_map(|members| members.into_iter().collect())
}

fn valid_event() -> impl Strategy<Value = Generated> {
    let order = |n: usize| Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
    (
        prop::sample::select(CHANNELS.iter().collect::<Vec<&'static Channel>>()),
        prop_oneof![
            3 => "[a-z]{3,5}_[0-9]{1,9}",
            1 => any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        ],
        prop::sample::select(Action::ALL.to_vec()),
        prop::option::of(data_value().prop_filter_map("an object", |v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })),
        any::<bool>(),
        timestamp(),
        any::<bool>(),
        (extras("x_"), extras("p_"), order(6), order(6)),
    )
        .prop_map(
            |(
                channel,
                id,
                action,
                data,
                null_data,
                timestamp,
                escape_strings,
                (top_extra, payload_extra, top_order, payload_order),
            )| Generated {
                channel,
                id,
                action,
                data,
                null_data,
                timestamp,
                escape_strings,
                top_extra,
                payload_extra,
                top_order,
                payload_order,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(2000))]

    /// Arbitrary bytes on any channel: an answer, never a panic, and a short message.
    #[test]
    fn arbitrary_bytes_get_an_answer(
        channel in channel_name(),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        check_answer(&channel, &bytes, DEFAULT_MAX_EVENT_BYTES)?;
    }

    /// JSON-shaped trees (repeated keys, odd numbers, bad escapes), then damaged.
    #[test]
    fn json_shaped_text_gets_an_answer(
        channel in channel_name(),
        tree in tree(),
        damage in mutation(),
    ) {
        check_answer(&channel, &apply(tree.text(), &damage), DEFAULT_MAX_EVENT_BYTES)?;
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// Event-shaped documents with random values in each field reach every check after JSON.
    #[test]
    fn event_shaped_text_gets_an_answer(
        channel in channel_name(),
        text in event_shaped(),
        damage in mutation(),
    ) {
        check_answer(&channel, &apply(text, &damage), DEFAULT_MAX_EVENT_BYTES)?;
    }

    /// Over the limit is `too_large` whatever the bytes are: checked before UTF-8, the channel
    /// or JSON, so an oversized message costs nothing but its length.
    #[test]
    fn oversized_input_is_too_large_before_anything_else(
        max in 0usize..1024,
        over in 1usize..4096,
        fill in any::<u8>(),
        channel in any::<String>(),
    ) {
        // Invalid UTF-8 on an unknown channel: any other check would name another reason.
        let mut bytes = vec![fill; max + over];
        bytes[0] = 0xff;
        let reject = Validator::new(max)
            .validate(&channel, &bytes)
            .expect_err("over the limit");
        check_reject(&reject)?;
        prop_assert_eq!(reject.reason, RejectReason::TooLarge);
        prop_assert!(reject.message.contains(&(max + over).to_string()));
        prop_assert!(reject.message.contains(&max.to_string()));
    }

    /// At or under the limit, size is never the reason.
    #[test]
    fn within_the_limit_is_never_too_large(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        slack in 0usize..64,
        channel in channel_name(),
    ) {
        let result = Validator::new(bytes.len() + slack).validate(&channel, &bytes);
        let too_large = matches!(&result, Err(reject) if reject.reason == RejectReason::TooLarge);
        prop_assert!(!too_large, "{:?}", result.err());
    }

    /// A generated valid event is accepted as written and its typed view keeps its fields.
    #[test]
    fn valid_events_round_trip(event in valid_event()) {
        let text = event.text();
        let valid = validate(event.channel.name, text.as_bytes())
            .map_err(|reject| TestCaseError::fail(format!("{reject}: {text}")))?;
        prop_assert_eq!(valid.channel, event.channel);
        prop_assert_eq!(valid.event_type, event.channel.event_type);
        prop_assert_eq!(&*valid.id, event.id.as_str());
        prop_assert_eq!(valid.action, event.action);
        prop_assert_eq!(valid.timestamp.as_str(), event.timestamp.as_str());
        // The worker's bytes pass through unchanged.
        prop_assert_eq!(valid.payload.get(), event.payload_text());
        prop_assert_eq!(valid.timestamp_json.get(), event.timestamp_text());

        let typed = valid.to_event();
        prop_assert_eq!(typed.event_type, event.channel.event_type);
        prop_assert_eq!(&typed.payload.id, &event.id);
        prop_assert_eq!(typed.payload.action, event.action);
        prop_assert_eq!(typed.timestamp.as_str(), event.timestamp.as_str());
        // `serde_json` (without `float_roundtrip`) may read a float one ULP off what was
        // written; the typed view and this expectation both go through that same reader.
        let expected = event
            .data
            .as_ref()
            .map(|data| serde_json::to_string(data).expect("data serializes"))
            .map(|text| serde_json::from_str::<Map<String, Value>>(&text).expect("data reads"));
        prop_assert_eq!(&typed.payload.data, &expected);

        // On any other channel the same event is misplaced, and named so.
        for other in CHANNELS.iter().filter(|c| c.name != event.channel.name) {
            let reject = validate(other.name, text.as_bytes()).expect_err("wrong channel");
            prop_assert_eq!(reject.reason, RejectReason::TypeChannelMismatch);
        }
        // One byte under its size, it is too large.
        let reject = Validator::new(text.len() - 1)
            .validate(event.channel.name, text.as_bytes())
            .expect_err("one byte over");
        prop_assert_eq!(reject.reason, RejectReason::TooLarge);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Nesting far past `serde_json`'s recursion limit is refused as JSON, not a stack overflow;
    /// shallow nesting inside `data` is accepted.
    #[test]
    fn deep_nesting_is_refused_not_a_crash(
        depth in 1usize..5000,
        objects in any::<bool>(),
        inside_data in any::<bool>(),
    ) {
        let (open, close) = if objects { ("{\"a\":", "}") } else { ("[", "]") };
        let core = format!("{}0{}", open.repeat(depth), close.repeat(depth));
        let text = if inside_data {
            format!(
                r#"{{"type":"ORDER_RECEIVED","payload":{{"id":"o","action":"created","data":{{"d":{core}}}}},"timestamp":"2026-11-22T10:00:00Z"}}"#
            )
        } else {
            core
        };
        let result = validate("orders", text.as_bytes());
        if let Err(reject) = &result {
            check_reject(reject)?;
        }
        // The limit is 128 levels; the event itself takes three around `data`'s value.
        if depth > 130 {
            let reason = result.map(|_| ()).map_err(|reject| reject.reason);
            prop_assert_eq!(reason, Err(RejectReason::InvalidJson));
        } else if depth <= 120 {
            let reason = result.map(|_| ()).map_err(|reject| reject.reason);
            let expected = match (inside_data, objects) {
                (true, _) => Ok(()),
                // An object without `type`: valid JSON, not an event.
                (false, true) => Err(RejectReason::MissingField),
                (false, false) => Err(RejectReason::InvalidJson),
            };
            prop_assert_eq!(reason, expected);
        }
    }

    /// A long value quoted in a message is cut short: the message stays under the bound
    /// however long the value is.
    #[test]
    fn long_values_give_short_messages(
        length in 1usize..20_000,
        which in 0usize..6,
        letter in prop::char::range('A', 'Z'),
    ) {
        let long: String = std::iter::repeat_n(letter, length).collect();
        let (channel, text) = hostile_field(which, &long);
        let reject = Validator::new(usize::MAX)
            .validate(&channel, text.as_bytes())
            .expect_err("a long wrong value");
        check_reject(&reject)?;
    }
}

/// An otherwise valid order event with `long` in the field `which` selects.
fn hostile_field(which: usize, long: &str) -> (String, String) {
    let event = |event_type: &str, id: &str, action: &str, timestamp: &str, extra: &str| {
        format!(
            r#"{{"type":"{event_type}","payload":{{"id":"{id}","action":"{action}"{extra}}},"timestamp":"{timestamp}"}}"#
        )
    };
    let ts = "2026-11-22T10:00:00Z";
    match which {
        0 => ("orders".into(), event(long, "o", "created", ts, "")),
        1 => ("orders".into(), event("ORDER_RECEIVED", "o", long, ts, "")),
        2 => (
            "orders".into(),
            event("ORDER_RECEIVED", "o", "created", long, ""),
        ),
        3 => {
            let duplicate = format!(r#","data":{{"{long}":1,"{long}":2}}"#);
            (
                "orders".into(),
                event("ORDER_RECEIVED", "o", "created", ts, &duplicate),
            )
        }
        4 => {
            // A repeated key deep under long keys: the path names every one of them.
            let mut data = String::from("{\"k\":1,\"k\":2}");
            for _ in 0..20 {
                data = format!(r#"{{"{long}":{data}}}"#);
            }
            let extra = format!(r#","data":{data}"#);
            (
                "orders".into(),
                event("ORDER_RECEIVED", "o", "created", ts, &extra),
            )
        }
        _ => (
            long.to_owned(),
            event("ORDER_RECEIVED", "o", "created", ts, ""),
        ),
    }
}

/// The 1 MiB case of the message bound, for each field that a message quotes.
#[test]
fn a_one_mebibyte_value_gives_a_short_message() {
    let long = "Q".repeat(1 << 20);
    for which in 0..6 {
        let (channel, text) = hostile_field(which, &long);
        let reject = Validator::new(usize::MAX)
            .validate(&channel, text.as_bytes())
            .expect_err("a long wrong value");
        assert!(
            reject.message.len() <= MESSAGE_BOUND,
            "case {which}: {} message of {} bytes",
            reject.reason,
            reject.message.len()
        );
        // The message still names the problem and starts quoting the value.
        assert!(
            reject.message.contains("QQQQ"),
            "case {which}: {}",
            reject.message
        );
    }
}
