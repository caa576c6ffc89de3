//! Hostile input against the gateway's parsers: what a browser, or anyone with a socket, sends
//! before it is authenticated or while it is connected.
//!
//! - The request head (`server::head`): arbitrary bytes, and near-valid heads (random
//!   methods, paths and versions, up to 80 headers, long values, CR/LF/NUL injected). `parse`
//!   never panics; it answers "not yet", a request within `MAX_URI_BYTES`, `MAX_HEADER_BYTES`
//!   and `MAX_HEADERS`, or an error with a named refusal. A decision on a prefix stands on the
//!   whole input, which is what lets `read_head` decide on what it has read so far; and
//!   `read_head` over a real loopback socket, fed in random chunks, gives `parse`'s answer and
//!   never reads more than `HeadLimits::buffer_bytes()`, which is the two limits plus a small
//!   constant.
//! - The connect query (`?channels=&lastEventId=`, read by axum's `Query<ConnectQuery>`), the
//!   channel list (`ChannelSet::parse`) and the resume cursor (`Cursor`): no panic, a named
//!   error of bounded size, and a cursor that parses prints back to itself.
//! - The WebSocket client op: `ws.rs` reads a text frame with `serde_json::from_str::<ClientOp>`
//!   and then `ChannelSet::from_names`, inside a session that needs a live socket, so the same
//!   two steps are run here directly (see `client_frame`).
//!
//! Error texts go back to clients and into logs, so each property also checks that they stay a
//! few hundred bytes however large the input. Case counts are modest so the file runs in seconds;
//! the socket property runs only a handful of cases, since each opens a connection. Failures are
//! not persisted to files: a shrunk failure belongs in a named regression test.

use std::str::FromStr;

use axum::extract::Query;
use axum::http::{StatusCode, Uri};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config as ProptestConfig;
use rakuda_gateway::parts::{
    parse, read_head, ChannelSet, ConnectQuery, Cursor, HeadError, HeadLimits, MalformedCursor,
    UnknownChannel, MAX_HEADERS,
};
use rakuda_schema::{ClientOp, RequestRefusal, WsErrorKind, CHANNELS};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest error text a client or a log line may get, whatever the input.
const MESSAGE_BOUND: usize = 512;
/// What `buffer_bytes()` may add to the two limits: the request line's method and version and
/// each header's `: ` and CRLF.
const HEAD_SLACK_BOUND: usize = 2048;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn client_channels() -> Vec<&'static str> {
    CHANNELS
        .iter()
        .filter(|c| !c.internal)
        .map(|c| c.name)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Request heads
// ---------------------------------------------------------------------------------------------

fn limits() -> impl Strategy<Value = HeadLimits> {
    (0usize..600, 0usize..1200).prop_map(|(max_uri_bytes, max_header_bytes)| HeadLimits {
        max_uri_bytes,
        max_header_bytes,
    })
}

/// One thing wrong with an otherwise valid head.
#[derive(Debug, Clone)]
enum Damage {
    /// A byte (CR, LF, NUL, space, colon, or any) put anywhere.
    Insert(Index, u8),
    Method(String),
    Path(String),
    Version(String),
    HeaderName(Index, String),
    HeaderValue(Index, String),
    /// Lines end in a bare LF.
    BareLf,
    /// The blank line that ends the head never comes.
    Unfinished,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => (
            any::<Index>(),
            prop_oneof![
                3 => prop::sample::select(vec![b'\r', b'\n', 0u8, b' ', b':', b'\t']),
                1 => any::<u8>(),
            ],
        )
            .prop_map(|(at, byte)| Damage::Insert(at, byte)),
        1 => prop_oneof![
            "[A-Za-z!#$%&'*+.^_`|~-]{1,20}",
            "[^\r\n]{0,8}",
            (0usize..1500).prop_map(|n| "M".repeat(n)),
        ]
        .prop_map(Damage::Method),
        1 => prop_oneof![
            "/[!-~]{0,100}",
            "[^\r\n ]{0,40}",
            "http://[a-z]{1,10}(:[0-9]{1,5})?/[a-z]{0,10}",
            "/[a-z]{0,5}[\u{80}-\u{10ffff}]{1,5}",
        ]
        .prop_map(Damage::Path),
        1 => prop::sample::select(vec!["HTTP/2", "HTTP/1.2", "http/1.1", "HTTP/1.1 ", "", "HTTP/1"])
            .prop_map(|v| Damage::Version(v.to_owned())),
        1 => (any::<Index>(), "[^\r\n:]{0,10}").prop_map(|(at, name)| Damage::HeaderName(at, name)),
        1 => (any::<Index>(), "[^\r\n]{0,20}")
            .prop_map(|(at, value)| Damage::HeaderValue(at, value)),
        1 => Just(Damage::BareLf),
        1 => Just(Damage::Unfinished),
    ]
}

/// A head that is nearly right: valid parts (some long, sometimes many headers), then none,
/// one or two things damaged, and maybe body bytes after it.
fn near_valid_head() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE"])
        .prop_map(String::from);
    let path = prop_oneof![
        6 => (
            prop::sample::select(vec!["/api/realtime/events", "/api/realtime/ws", "/"]),
            prop::option::of("[a-zA-Z0-9=&,%._~-]{0,80}"),
        )
            .prop_map(|(path, query)| match query {
                Some(query) => format!("{path}?{query}"),
                None => path.to_owned(),
            }),
        1 => Just("*".to_owned()),
        1 => (0usize..1500).prop_map(|n| format!("/{}", "u".repeat(n))),
    ];
    let version = prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0"]).prop_map(String::from);
    let header = (
        prop_oneof![
            4 => prop::sample::select(vec![
                "Host", "X-API-Key", "Authorization", "Last-Event-ID", "Origin", "Cookie",
                "Sec-WebSocket-Key", "Upgrade", "Connection",
            ])
            .prop_map(String::from),
            1 => "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}",
        ],
        prop_oneof![
            6 => "[ -~]{0,40}",
            1 => (0usize..1500).prop_map(|n| "v".repeat(n)),
        ],
    );
    let headers = prop_oneof![
        4 => prop::collection::vec(header.clone(), 0..10),
        1 => prop::collection::vec(header, 55..80),
    ];
    let damages = prop_oneof![
        2 => Just(Vec::new()),
        2 => prop::collection::vec(damage(), 1..=2),
    ];
    (
        (method, path, version, headers),
        damages,
        prop::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(
            |((mut method, mut path, mut version, mut headers), damages, body)| {
                let (mut eol, mut complete) = ("\r\n", true);
                let mut inserts = Vec::new();
                for damage in damages {
                    match damage {
                        Damage::Insert(at, byte) => inserts.push((at, byte)),
                        Damage::Method(m) => method = m,
                        Damage::Path(p) => path = p,
                        Damage::Version(v) => version = v,
                        Damage::HeaderName(at, name) if !headers.is_empty() => {
                            let i = at.index(headers.len());
                            headers[i].0 = name;
                        }
                        Damage::HeaderValue(at, value) if !headers.is_empty() => {
                            let i = at.index(headers.len());
                            headers[i].1 = value;
                        }
                        Damage::HeaderName(..) | Damage::HeaderValue(..) => {}
                        Damage::BareLf => eol = "\n",
                        Damage::Unfinished => complete = false,
                    }
                }
                let mut head = format!("{method} {path} {version}{eol}");
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}{eol}"));
                }
                let mut bytes = head.into_bytes();
                if complete {
                    bytes.extend_from_slice(eol.as_bytes());
                    bytes.extend(body);
                }
                for (at, byte) in inserts {
                    let at = at.index(bytes.len() + 1);
                    bytes.insert(at, byte);
                }
                bytes
            },
        )
}

fn head_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..2048),
        3 => near_valid_head(),
    ]
}

/// What every answer of `parse` must look like.
fn check_parse(bytes: &[u8], limits: HeadLimits) -> Result<(), TestCaseError> {
    match parse(bytes, limits) {
        Ok(None) => {}
        Ok(Some(request)) => {
            let uri = request.uri().to_string();
            prop_assert!(
                uri.len() <= limits.max_uri_bytes,
                "URI of {} bytes over {}",
                uri.len(),
                limits.max_uri_bytes
            );
            prop_assert!(request.headers().len() <= MAX_HEADERS);
            let header_bytes: usize = request
                .headers()
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len())
                .sum();
            prop_assert!(header_bytes <= limits.max_header_bytes);
            // The connect query is read from this URI; it answers too.
            check_query(request.uri())?;
        }
        Err(error) => check_head_error(&error, limits)?,
    }
    Ok(())
}

fn check_head_error(error: &HeadError, limits: HeadLimits) -> Result<(), TestCaseError> {
    let text = error.to_string();
    prop_assert!(!text.is_empty() && text.len() <= MESSAGE_BOUND, "{}", text);
    let expected = match error {
        // Only `read_head` sees the socket close or its buffer fill.
        HeadError::Closed | HeadError::TooLarge { .. } => {
            return Err(TestCaseError::fail(format!("parse said {error:?}")));
        }
        HeadError::TooManyHeaders => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RequestRefusal::HeadersTooLarge,
        ),
        HeadError::UriTooLong { length, limit } => {
            prop_assert_eq!(*limit, limits.max_uri_bytes);
            prop_assert!(length > limit);
            (StatusCode::URI_TOO_LONG, RequestRefusal::UriTooLong)
        }
        HeadError::HeadersTooLarge { length, limit } => {
            prop_assert_eq!(*limit, limits.max_header_bytes);
            prop_assert!(length > limit);
            (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                RequestRefusal::HeadersTooLarge,
            )
        }
        HeadError::Malformed(_) => (StatusCode::BAD_REQUEST, RequestRefusal::BadRequest),
    };
    prop_assert_eq!(error.refusal(), Some(expected));
    Ok(())
}

/// An error and the answer a client gets for it.
fn error_outcome(error: &HeadError) -> String {
    format!("{error:?} -> {:?}", error.refusal())
}

/// `parse`'s answer in a form two answers can be compared by.
fn outcome(result: &Result<Option<axum::http::Request<axum::body::Body>>, HeadError>) -> String {
    match result {
        Ok(None) => "partial".to_owned(),
        Ok(Some(request)) => format!(
            "{} {} {:?} {:?}",
            request.method(),
            request.uri(),
            request.version(),
            request.headers()
        ),
        Err(error) => error_outcome(error),
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// Arbitrary and near-valid heads: an answer, never a panic, within every limit.
    #[test]
    fn head_parse_answers_within_limits(bytes in head_bytes(), limits in limits()) {
        check_parse(&bytes, limits)?;
    }

    /// Once a prefix is decided (a request or an error), the whole input gets the same answer:
    /// `read_head` parses what it has so far, so this is what makes its answer independent of
    /// how the bytes arrive.
    #[test]
    fn a_decided_prefix_stands(bytes in head_bytes(), split in any::<Index>(), limits in limits()) {
        let at = split.index(bytes.len() + 1);
        let prefix = parse(&bytes[..at], limits);
        check_parse(&bytes[..at], limits)?;
        if !matches!(prefix, Ok(None)) {
            prop_assert_eq!(outcome(&prefix), outcome(&parse(&bytes, limits)));
        }
    }

    /// The head buffer is the two limits plus a small constant, and a head at exactly the
    /// limits (longest URI, header bytes spread over up to `MAX_HEADERS` headers) fits in it;
    /// one byte more of either is refused with its own answer.
    #[test]
    fn the_head_buffer_is_the_limits_plus_a_constant(
        max_uri_bytes in 1usize..4096,
        max_header_bytes in 0usize..8192,
        headers in 0usize..=MAX_HEADERS,
    ) {
        let limits = HeadLimits { max_uri_bytes, max_header_bytes };
        let buffer = limits.buffer_bytes();
        prop_assert!(buffer >= max_uri_bytes + max_header_bytes);
        prop_assert!(
            buffer - max_uri_bytes - max_header_bytes <= HEAD_SLACK_BOUND,
            "buffer of {} for limits {:?}",
            buffer,
            limits
        );

        let at_limits = |uri_bytes: usize, header_bytes: usize| {
            // Names of one byte, values sharing the rest; no header when there are no bytes.
            let count = headers.min(header_bytes / 2);
            let mut head = format!("OPTIONS /{} HTTP/1.1\r\n", "u".repeat(uri_bytes - 1));
            let mut left = header_bytes;
            for i in 0..count {
                let share = if i + 1 == count { left - 1 } else { header_bytes / count - 1 };
                head.push_str(&format!("h: {}\r\n", "v".repeat(share)));
                left -= share + 1;
            }
            head.push_str("\r\n");
            (head, count)
        };
        let (head, count) = at_limits(max_uri_bytes, max_header_bytes);
        prop_assert!(head.len() <= buffer, "head of {} over buffer {}", head.len(), buffer);
        let request = parse(head.as_bytes(), limits)
            .map_err(|error| TestCaseError::fail(format!("{error}")))?
            .ok_or_else(|| TestCaseError::fail("complete head read as partial"))?;
        prop_assert_eq!(request.headers().len(), count);

        let refusal = |head: String| {
            parse(head.as_bytes(), limits).map(|_| ()).map_err(|e| e.refusal())
        };
        let (longer_uri, _) = at_limits(max_uri_bytes + 1, max_header_bytes);
        prop_assert_eq!(
            refusal(longer_uri),
            Err(Some((StatusCode::URI_TOO_LONG, RequestRefusal::UriTooLong)))
        );
        if count > 0 {
            let (more_headers, _) = at_limits(max_uri_bytes, max_header_bytes + 1);
            prop_assert_eq!(
                refusal(more_headers),
                Err(Some((
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    RequestRefusal::HeadersTooLarge
                )))
            );
        }
    }
}

/// What `read_head` must answer for `bytes` sent whole and then closed: `parse` on what fits in
/// the buffer when that decides; otherwise `TooLarge` if the buffer fills, else `Closed`.
fn expected_read(bytes: &[u8], limits: HeadLimits) -> String {
    let limit = limits.buffer_bytes();
    let window = &bytes[..bytes.len().min(limit)];
    match parse(window, limits) {
        Ok(None) if bytes.len() >= limit => error_outcome(&HeadError::TooLarge { limit }),
        Ok(None) => error_outcome(&HeadError::Closed),
        decided => outcome(&decided),
    }
}

/// Sends `bytes` in chunks of the given sizes over loopback, runs `read_head` on the other end,
/// and returns its answer and how many bytes it took off the socket.
async fn read_over_socket(
    bytes: Vec<u8>,
    chunks: Vec<usize>,
    limits: HeadLimits,
) -> (String, usize, Option<Vec<u8>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("address");
    let total = bytes.len();
    let client = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut sent = 0;
        for size in chunks.iter().cycle() {
            if sent == bytes.len() {
                break;
            }
            let end = (sent + size).min(bytes.len());
            // The server reads everything to the end, so a write only fails if it panicked.
            if stream.write_all(&bytes[sent..end]).await.is_err() {
                return;
            }
            sent = end;
            tokio::task::yield_now().await;
        }
        let _ = stream.shutdown().await;
    });
    let (mut stream, _) = listener.accept().await.expect("accept");
    let answer = read_head(&mut stream, limits).await;
    // Whatever the answer, the rest of the bytes are still on the socket: counting them tells
    // how many `read_head` took.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.expect("read the rest");
    client.await.expect("client");
    let consumed = total - rest.len();
    match answer {
        Ok(head) => {
            let read = head.read.to_vec();
            let text = outcome(&Ok(Some(head.request)));
            (text, consumed, Some(read))
        }
        Err(error) => (error_outcome(&error), consumed, None),
    }
}

proptest! {
    // Each case opens a loopback connection: a handful, not hundreds.
    #![proptest_config(config(32))]

    /// `read_head` over a socket, in random chunks, answers as `parse` does on the whole input
    /// (on its first `buffer_bytes()` when it is longer) and never takes more than that.
    #[test]
    fn read_head_on_a_socket_answers_as_parse(
        bytes in prop_oneof![
            3 => near_valid_head(),
            1 => prop::collection::vec(any::<u8>(), 0..4096),
            // Over the buffer with no end of head: refused once the buffer is full.
            1 => (1usize..4000).prop_map(|n| {
                let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
                head.extend(std::iter::repeat_n(b'x', n));
                head
            }),
        ],
        chunks in prop::collection::vec(1usize..700, 1..8),
        max_uri_bytes in 0usize..600,
        max_header_bytes in 0usize..1200,
    ) {
        let limits = HeadLimits { max_uri_bytes, max_header_bytes };
        let expected = expected_read(&bytes, limits);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (answer, consumed, read) =
            runtime.block_on(read_over_socket(bytes.clone(), chunks, limits));
        prop_assert_eq!(&answer, &expected);
        // Every error has an answer for the client, except a client that is gone.
        prop_assert_eq!(answer.ends_with("-> None"), answer.starts_with("Closed"), "{}", answer);
        prop_assert!(
            consumed <= limits.buffer_bytes(),
            "took {} bytes, buffer is {}",
            consumed,
            limits.buffer_bytes()
        );
        if let Some(read) = read {
            // What it hands on is exactly what it took, the head and any bytes after it.
            prop_assert_eq!(read.len(), consumed);
            prop_assert_eq!(&read[..], &bytes[..consumed]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connect query, channel lists, cursors
// ---------------------------------------------------------------------------------------------

/// The two fields of `ConnectQuery` (private to the gateway) every connection reads; its
/// `Debug` output is compared with theirs, so fields added after them do not matter here.
#[derive(Debug)]
struct ExpectedQuery {
    channels: Option<String>,
    last_event_id: Option<String>,
}

fn expected_debug_start(expected: &ExpectedQuery) -> String {
    format!(
        "ConnectQuery {{ channels: {:?}, last_event_id: {:?}",
        expected.channels, expected.last_event_id
    )
}

/// The connect query read from `uri` as both transports do: the query (as its `Debug` text), or
/// a 400 whose message, as `admit` words it, is short.
fn check_query(uri: &Uri) -> Result<Option<String>, TestCaseError> {
    match Query::<ConnectQuery>::try_from_uri(uri) {
        Ok(Query(query)) => Ok(Some(format!("{query:?}"))),
        Err(rejection) => {
            prop_assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
            let text = format!("bad query string: {rejection}");
            prop_assert!(text.len() <= MESSAGE_BOUND, "{}", text);
            Ok(None)
        }
    }
}

fn check_channel_list(list: &str) -> Result<Option<ChannelSet>, TestCaseError> {
    match ChannelSet::parse(list) {
        Ok(set) => {
            prop_assert!(set.is_subset_of(ChannelSet::all()));
            // Every named piece is a client channel, and the set is exactly those.
            let pieces: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            for piece in &pieces {
                prop_assert!(client_channels().contains(piece), "{:?} accepted", piece);
            }
            let mut names = pieces.clone();
            names.sort_unstable();
            names.dedup();
            prop_assert_eq!(set.names().len(), names.len());
            // A set prints as a list that parses back to it.
            prop_assert_eq!(ChannelSet::parse(&set.names().join(",")), Ok(set));
            Ok(Some(set))
        }
        Err(error) => {
            check_unknown_channel(&error)?;
            // It names (the start of) a piece of the list that is not a client channel.
            let named = list
                .split(',')
                .map(str::trim)
                .any(|p| !client_channels().contains(&p) && p.starts_with(error.0.as_str()));
            prop_assert!(named, "{:?} does not name a piece of {:?}", error.0, list);
            Ok(None)
        }
    }
}

fn check_unknown_channel(error: &UnknownChannel) -> Result<(), TestCaseError> {
    prop_assert!(error.0.chars().count() <= 64);
    let text = error.to_string();
    prop_assert!(text.len() <= MESSAGE_BOUND, "{}", text);
    Ok(())
}

fn check_cursor(text: &str) -> Result<Option<Cursor>, TestCaseError> {
    match Cursor::from_str(text) {
        Ok(cursor) => {
            let printed = cursor.to_string();
            prop_assert_eq!(printed.parse::<Cursor>(), Ok(cursor));
            Ok(Some(cursor))
        }
        Err(MalformedCursor(quoted)) => {
            prop_assert!(quoted.chars().count() <= 64);
            prop_assert!(text.starts_with(quoted.as_str()));
            let message = MalformedCursor(quoted).to_string();
            prop_assert!(message.len() <= MESSAGE_BOUND, "{}", message);
            Ok(None)
        }
    }
}

fn channel_list() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => prop::sample::select(client_channels()).prop_map(String::from),
        1 => Just("canary".to_owned()),
        1 => Just(String::new()),
        1 => "[a-z]{1,10}",
        1 => any::<String>(),
    ];
    prop::collection::vec((piece, "[ \t]{0,2}", "[ \t]{0,2}"), 0..8).prop_map(|pieces| {
        pieces
            .into_iter()
            .map(|(piece, before, after)| format!("{before}{piece}{after}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

fn cursor_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (any::<u64>(), any::<u64>()).prop_map(|(epoch, seq)| format!("{epoch}-{seq}")),
        2 => "[ \t]{0,2}[+-]?[0-9]{0,25}-{0,3}[+-]?[0-9]{0,25}[ \t]{0,2}",
        1 => any::<String>(),
        // Long, but a URI carrying it stays under `http`'s 64 KiB URI limit.
        1 => (0usize..10_000).prop_map(|n| format!("1-{}", "9".repeat(n))),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    /// A channel list, made of names, near names and anything: a set of client channels or
    /// the first unknown name, cut short.
    #[test]
    fn channel_lists_answer(list in prop_oneof![channel_list(), any::<String>()]) {
        check_channel_list(&list)?;
    }

    /// A list of client channels (with blanks and repeats) is exactly that set.
    #[test]
    fn client_channel_lists_parse(
        names in prop::collection::vec(prop::sample::select(client_channels()), 1..8),
    ) {
        let set = ChannelSet::parse(&names.join(" , ,")).expect("client channels");
        for channel in CHANNELS.iter() {
            prop_assert_eq!(set.contains(channel), names.contains(&channel.name));
        }
        prop_assert_eq!(ChannelSet::from_names(names.iter().copied()), Ok(set));
    }

    /// Any text as a resume cursor: a cursor that prints back to itself, or a short error.
    #[test]
    fn cursors_answer(text in cursor_text()) {
        check_cursor(&text)?;
    }

    /// A cursor's printed form parses to the same cursor and prints the same.
    #[test]
    fn cursors_round_trip(epoch in any::<u64>(), seq in any::<u64>()) {
        let cursor = Cursor { epoch, seq };
        let printed = cursor.to_string();
        prop_assert_eq!(printed.parse::<Cursor>(), Ok(cursor));
        prop_assert_eq!(printed.parse::<Cursor>().map(|c| c.to_string()), Ok(printed));
    }

    /// Any query string: the connect query, or a 400 with a short message.
    #[test]
    fn arbitrary_queries_answer(query in any::<String>(), raw in "[!-~]{0,200}") {
        for query in [utf8_percent_encode(&query, NON_ALPHANUMERIC).to_string(), raw] {
            if let Ok(uri) = Uri::try_from(format!("/api/realtime/events?{query}")) {
                check_query(&uri)?;
            }
        }
    }

    /// A generated query is read as its decoded values; a repeated field is a 400; and the
    /// values then read as `admit` reads them.
    #[test]
    fn generated_queries_read_as_written(
        pairs in prop::collection::vec(
            (
                prop::sample::select(vec!["channels", "lastEventId", "other", "channels[]"]),
                prop_oneof![channel_list(), cursor_text(), any::<String>()],
            ),
            0..4,
        ),
    ) {
        let query: Vec<String> = pairs
            .iter()
            .map(|(key, value)| format!("{key}={}", utf8_percent_encode(value, NON_ALPHANUMERIC)))
            .collect();
        let uri = Uri::try_from(format!("/api/realtime/ws?{}", query.join("&")))
            .expect("a percent-encoded query is a URI");
        let value_of = |key: &str| {
            pairs.iter().find(|(k, _)| *k == key).map(|(_, value)| value.clone())
        };
        let repeated = ["channels", "lastEventId"]
            .iter()
            .any(|key| pairs.iter().filter(|(k, _)| k == key).count() > 1);
        let read = check_query(&uri)?;
        if repeated {
            prop_assert_eq!(read, None);
        } else {
            let expected = ExpectedQuery {
                channels: value_of("channels"),
                last_event_id: value_of("lastEventId"),
            };
            let read = read.ok_or_else(|| TestCaseError::fail("a query without repeats refused"))?;
            let start = expected_debug_start(&expected);
            prop_assert!(read.starts_with(&start), "{} is not {}", read, start);
            if let Some(list) = expected.channels.filter(|list| !list.trim().is_empty()) {
                check_channel_list(&list)?;
            }
            if let Some(cursor) = expected.last_event_id.filter(|text| !text.is_empty()) {
                check_cursor(&cursor)?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket client ops
// ---------------------------------------------------------------------------------------------

/// What a text frame asks for, once read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    Ping,
    Subscribe(ChannelSet),
    Unsubscribe(ChannelSet),
}

/// The two steps `ws.rs` runs on a text frame: read the op, then its channel names. An error is
/// what the client gets back in an `error` message.
fn client_frame(text: &str) -> Result<Frame, (WsErrorKind, String)> {
    let bad = |message: String| (WsErrorKind::BadFrame, message);
    let op = serde_json::from_str::<ClientOp>(text).map_err(|error| {
        bad(format!(
            "expected {{\"op\":\"subscribe\"|\"unsubscribe\",\"channels\":[...]}} or {{\"op\":\"ping\"}}: {error}"
        ))
    })?;
    let set = |channels: &[String]| {
        if channels.is_empty() {
            return Err(bad("`channels` must list at least one channel".to_owned()));
        }
        ChannelSet::from_names(channels.iter().map(String::as_str))
            .map_err(|error| bad(error.to_string()))
    };
    Ok(match op {
        ClientOp::Ping => Frame::Ping,
        ClientOp::Subscribe { channels } => Frame::Subscribe(set(&channels)?),
        ClientOp::Unsubscribe { channels } => Frame::Unsubscribe(set(&channels)?),
    })
}

fn check_frame(text: &str) -> Result<Option<Frame>, TestCaseError> {
    match client_frame(text) {
        Ok(frame) => {
            // A frame that reads is one of the ops, and the op prints back to itself.
            let op = serde_json::from_str::<ClientOp>(text).expect("read once already");
            let printed = serde_json::to_string(&op).expect("an op serializes");
            prop_assert_eq!(serde_json::from_str::<ClientOp>(&printed).ok(), Some(op));
            Ok(Some(frame))
        }
        Err((kind, message)) => {
            prop_assert_eq!(kind, WsErrorKind::BadFrame);
            prop_assert!(!message.is_empty());
            // `serde_json` quotes an unknown `op` in full, so the answer to a frame may be as
            // long as the frame (itself bounded by WS_MAX_FRAME_BYTES); never longer than that
            // plus the fixed text.
            prop_assert!(
                message.len() <= text.len() + MESSAGE_BOUND,
                "{} bytes for a frame of {}",
                message.len(),
                text.len()
            );
            Ok(None)
        }
    }
}

/// A JSON value that is often op-shaped.
fn op_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(Value::Number),
        any::<String>().prop_map(Value::String),
    ];
    let any_value = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    });
    let op = prop_oneof![
        3 => prop::sample::select(vec!["subscribe", "unsubscribe", "ping", "Ping", "dance", ""])
            .prop_map(|op| Value::String(op.into())),
        1 => any_value.clone(),
    ];
    let name = prop_oneof![
        4 => prop::sample::select(client_channels()).prop_map(|n| Value::String(n.into())),
        1 => Just(Value::String("canary".into())),
        1 => any::<String>().prop_map(Value::String),
        1 => any_value.clone(),
    ];
    let channels = prop_oneof![
        3 => prop::collection::vec(name, 0..6).prop_map(Value::Array),
        1 => any_value.clone(),
    ];
    (
        prop::option::of(op),
        prop::option::of(channels),
        prop::collection::vec(("[a-z]{1,6}", any_value.clone()), 0..2),
    )
        .prop_map(|(op, channels, extra)| {
            let mut members = Map::new();
            for (key, value) in extra {
                members.insert(key, value);
            }
            if let Some(op) = op {
                members.insert("op".into(), op);
            }
            if let Some(channels) = channels {
                members.insert("channels".into(), channels);
            }
            Value::Object(members)
        })
}

/// What the frame `value` must read as: the model the parser is checked against.
fn expected_frame(value: &Value) -> Option<Frame> {
    let op = value.get("op")?.as_str()?;
    if op == "ping" {
        return Some(Frame::Ping);
    }
    let names: Vec<&str> = value
        .get("channels")?
        .as_array()?
        .iter()
        .map(Value::as_str)
        .collect::<Option<_>>()?;
    if names.is_empty() {
        return None;
    }
    let set = ChannelSet::from_names(names).ok()?;
    match op {
        "subscribe" => Some(Frame::Subscribe(set)),
        "unsubscribe" => Some(Frame::Unsubscribe(set)),
        _ => None,
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// Any text as a frame: an op, or a `bad_frame` error naming the problem.
    #[test]
    fn arbitrary_frames_answer(
        text in prop_oneof![
            any::<String>(),
            "[{}\\[\\]\":, a-z0-9]{0,64}",
            (0usize..20_000).prop_map(|n| format!("{{\"op\":\"{}\"}}", "x".repeat(n))),
        ],
    ) {
        check_frame(&text)?;
    }

    /// Op-shaped JSON reads as the model says: `ping`, or `subscribe`/`unsubscribe` with a
    /// non-empty list of client channel names; everything else is a `bad_frame`.
    #[test]
    fn op_shaped_frames_read_as_documented(value in op_value()) {
        let text = value.to_string();
        let read = check_frame(&text)?;
        prop_assert_eq!(read, expected_frame(&value), "{}", text);
    }
}

/// Frames from the documentation, and near misses, with the answers the model gives.
#[test]
fn documented_frames() {
    let orders = ChannelSet::parse("orders").expect("orders");
    for (text, expected) in [
        (
            r#"{"op":"subscribe","channels":["orders"]}"#,
            Some(Frame::Subscribe(orders)),
        ),
        (
            r#"{"op":"unsubscribe","channels":["orders"],"x":1}"#,
            Some(Frame::Unsubscribe(orders)),
        ),
        (r#"{"op":"ping"}"#, Some(Frame::Ping)),
        (r#"{"op":"subscribe","channels":[]}"#, None),
        (r#"{"op":"subscribe","channels":["canary"]}"#, None),
        (r#"{"op":"subscribe"}"#, None),
        (r#"{"op":"ping","op":"ping"}"#, None),
        // `serde` also reads an internally tagged enum from a sequence whose first element is
        // the tag: an odd spelling of a valid op, not a way around any check.
        (r#"["ping"]"#, Some(Frame::Ping)),
        (
            r#"["subscribe",["orders"]]"#,
            Some(Frame::Subscribe(orders)),
        ),
        (r#"["subscribe",[]]"#, None),
        (r#"[]"#, None),
        ("", None),
    ] {
        assert_eq!(client_frame(text).ok(), expected, "{text}");
    }
    let (_, message) =
        client_frame(&json!({"op": "subscribe", "channels": ["x".repeat(10_000)]}).to_string())
            .expect_err("unknown channel");
    assert!(message.len() <= MESSAGE_BOUND, "{} bytes", message.len());
}
