//! Shared helpers for the gateway's integration tests: real Redis and NATS, the bridge and
//! gateways running in-process on ephemeral ports, and an SSE client that reads the wire.

use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use rakuda_gateway::Config;
use rakuda_schema::{Action, Channel, EventType, RealTimeEvent};
use rakuda_testkit::sockets::TcpSocket;
use rakuda_testkit::{NatsServer, RedisServer};
use serde_json::Value;

pub use rakuda_testkit::redis_client::{publish, publish_all, wait_for_subscribers};
pub use rakuda_testkit::wait::{bounded, eventually, sample_value, WAIT};

pub const API_KEY: &str = "test-api-key-0001";
/// The tests' token signing secret (32 bytes).
pub const TOKEN_SECRET: &str = "test-token-secret-0123456789abcd";

/// The stream sequence before a test's first event: [`Stack::start`] waits for the bridge's
/// `start` source gap marker, which takes sequence 1 of a new stream. Event `n` of a test
/// (counting from 1) has sequence `BASE + n`.
pub const BASE: u64 = 1;

/// Redis, NATS and a bridge between them.
pub struct Stack {
    pub redis: RedisServer,
    pub nats: NatsServer,
    bridge_config: rakuda_bridge::Config,
    bridge: Option<rakuda_testkit::InProcess<rakuda_bridge::Error>>,
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with(|_| {}).await
    }

    /// Starts with the bridge settings changed by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut rakuda_bridge::Config)) -> Stack {
        let redis = RedisServer::start().expect("start redis-server");
        let nats = NatsServer::start().expect("start nats-server");
        let mut config =
            rakuda_bridge::Config::new(redis.url(), vec![nats.url().parse().expect("nats url")]);
        // Gaps are found within a few beacons: quickly, in tests.
        config.bridge_beacon_interval = Duration::from_millis(100);
        adjust(&mut config);
        let bridge_config = config.clone();
        let bridge = rakuda_testkit::InProcess::start(|listener, shutdown| {
            rakuda_bridge::run(config, listener, shutdown)
        })
        .await;
        let stack = Stack {
            redis,
            nats,
            bridge_config,
            bridge: Some(bridge),
        };
        let mut redis = stack.redis_connection().await;
        wait_for_subscribers(&mut redis, 1).await;
        let jetstream = stack.jetstream().await;
        eventually("the bridge created the stream", || async {
            jetstream
                .get_stream("RAKUDA_REALTIME")
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        // The first bridge on a new Redis records that it knows nothing of what came before
        // (a `start` source gap); the tests' gateways start after it, so it is history to them.
        if let Some(bridge) = &stack.bridge {
            bridge
                .wait_for_metric("bridge_source_gaps_total{reason=\"start\"}", 1.0)
                .await;
        }
        stack
    }

    pub async fn redis_connection(&self) -> redis::aio::MultiplexedConnection {
        rakuda_testkit::redis_client::connect(&self.redis.url()).await
    }

    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = bounded("nats connect", async_nats::connect(self.nats.url()))
            .await
            .expect("connect to nats");
        async_nats::jetstream::new(client)
    }

    /// Gateway settings for this stack: test key, this Redis, the canary off (its events would
    /// take stream sequences the tests count on; the canary tests turn it on), defaults otherwise.
    pub fn gateway_config(&self) -> Config {
        let mut config = Config::new(
            vec![self.nats.url().parse().expect("nats url")],
            vec![API_KEY.into()],
        );
        config.fleet.redis_url = self.redis.url().into();
        config.auth.token_secret = vec![TOKEN_SECRET.into()];
        config.fleet.canary_interval = Duration::ZERO;
        // Streams close within 200 ms of a stop rather than up to 5 s: a test's stop stays far
        // inside its deadline on a loaded machine. The drain tests set their own window.
        config.fleet.gateway_drain_window = Duration::from_millis(200);
        config
    }

    /// `http://127.0.0.1:<port>` of the running bridge (its /metrics, /healthz, /readyz).
    pub fn bridge_url(&self) -> Option<&str> {
        self.bridge.as_ref().map(|bridge| bridge.url.as_str())
    }

    /// Stops the bridge (events published afterwards go nowhere).
    pub async fn stop_bridge(&mut self) {
        if let Some(bridge) = self.bridge.take() {
            bridge.stop().await;
        }
    }

    /// Starts the bridge again (after [`Stack::stop_bridge`]) and waits until it listens.
    pub async fn start_bridge(&mut self) {
        let config = self.bridge_config.clone();
        self.bridge = Some(
            rakuda_testkit::InProcess::start(|listener, shutdown| {
                rakuda_bridge::run(config, listener, shutdown)
            })
            .await,
        );
        let mut redis = self.redis_connection().await;
        wait_for_subscribers(&mut redis, 1).await;
    }
}

/// A valid event's JSON.
pub fn event_json(event_type: EventType, id: &str) -> String {
    serde_json::to_string(&RealTimeEvent::now(event_type, id, Action::Updated)).expect("serialize")
}

/// Publishes one valid event of a type, as a worker would.
pub async fn publish_event(
    redis: &mut redis::aio::MultiplexedConnection,
    event_type: EventType,
    id: &str,
) {
    publish(
        redis,
        &redis_channel(event_type),
        event_json(event_type, id),
    )
    .await;
}

/// A raw connection to the SSE endpoint with a tiny receive buffer, which then never reads:
/// the stuck browser tab of the slow-client tests.
pub async fn stuck_sse_client(gateway_url: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let addr = gateway_url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream
        .write_all(
            format!(
                "GET /api/realtime/events HTTP/1.1\r\nHost: gw\r\nX-API-Key: {API_KEY}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("request");
    stream
}

pub fn redis_channel(event_type: EventType) -> String {
    Channel::of(event_type).redis_channel("rakuda:realtime:")
}

/// `count` events of one type with ids from `ids` (cycled), ready for [`publish_all`]. Each
/// carries `data.n` so no two are byte-identical (the bridge rightly stores identical bytes once).
pub fn burst(event_type: EventType, count: usize, ids: usize, tag: &str) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            let mut data = serde_json::Map::new();
            data.insert("n".into(), Value::from(i));
            let event =
                RealTimeEvent::now(event_type, format!("{tag}_{}", i % ids), Action::Updated)
                    .with_data(data);
            (
                redis_channel(event_type),
                serde_json::to_string(&event).expect("serialize"),
            )
        })
        .collect()
}

/// `count` ORDER_RECEIVED events, each padded to about `pad` bytes, ready for [`publish_all`].
pub fn padded_orders(count: usize, pad: usize) -> Vec<(String, String)> {
    padded_events(EventType::OrderReceived, count, pad, "o", Action::Created)
}

/// `count` events of `event_type`, entity `<prefix><i>` each, padded to about `pad` bytes,
/// ready for [`publish_all`].
pub fn padded_events(
    event_type: EventType,
    count: usize,
    pad: usize,
    prefix: &str,
    action: Action,
) -> Vec<(String, String)> {
    let padding = "x".repeat(pad);
    (0..count)
        .map(|i| {
            let mut data = serde_json::Map::new();
            data.insert("n".into(), Value::from(i));
            data.insert("pad".into(), Value::from(padding.clone()));
            let event =
                RealTimeEvent::now(event_type, format!("{prefix}{i}"), action).with_data(data);
            (
                redis_channel(event_type),
                serde_json::to_string(&event).expect("json"),
            )
        })
        .collect()
}

/// A gateway running in this process.
pub type RunningGateway = rakuda_testkit::InProcess<rakuda_gateway::Error>;

/// Starts a gateway and waits until it reads the stream (`/readyz` 200).
pub async fn start_gateway(config: Config) -> RunningGateway {
    let gateway =
        RunningGateway::start(|listener, shutdown| rakuda_gateway::run(config, listener, shutdown))
            .await;
    gateway.wait_until_ok("/readyz").await;
    gateway
}

/// Waits until `gateway_requests_rejected_total` shows each `(reason, count)`.
pub async fn wait_for_rejections(gateway: &RunningGateway, expected: &[(&str, f64)]) {
    for (reason, count) in expected {
        gateway
            .wait_for_metric(
                &format!("gateway_requests_rejected_total{{reason=\"{reason}\"}}"),
                *count,
            )
            .await;
    }
}

/// GET an API path with the test key; returns status and JSON body.
pub async fn get_json(gateway: &RunningGateway, path: &str) -> (u16, Value) {
    get_json_url(&gateway.url, path).await
}

/// One sample of `<base>/metrics`; 0 when absent.
pub async fn metric_url(base: &str, sample: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    sample_value(&text, sample).unwrap_or(0.0)
}

/// GET `<base><path>` with the test key; returns status and JSON body.
pub async fn get_json_url(base: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// One SSE record as read off the wire.
pub use rakuda_simulator::sse::SseRecord as SseEvent;

/// What the tests read out of a record.
pub trait RecordExt {
    fn json(&self) -> Value;
    /// The sequence part of `id: <epoch>-<seq>`.
    fn id_seq(&self) -> Option<u64>;
    /// Every `seq` inside (one for an event, several for a batch).
    fn seqs(&self) -> Vec<u64>;
    fn is_batch(&self) -> bool;
}

impl RecordExt for SseEvent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("data is JSON")
    }

    fn id_seq(&self) -> Option<u64> {
        self.id.as_ref()?.split_once('-')?.1.parse().ok()
    }

    fn seqs(&self) -> Vec<u64> {
        let json = self.json();
        match json.get("events").and_then(Value::as_array) {
            Some(events) => events.iter().filter_map(|e| e["seq"].as_u64()).collect(),
            None => json["seq"].as_u64().into_iter().collect(),
        }
    }

    fn is_batch(&self) -> bool {
        self.json().get("batch") == Some(&Value::Bool(true))
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Reads an SSE response record by record.
pub struct SseClient {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    body: ByteStream,
    parser: rakuda_simulator::sse::SseParser,
}

impl SseClient {
    /// `GET url` with the test API key.
    pub async fn connect(url: &str) -> SseClient {
        SseClient::connect_with(url, &[("X-API-Key", API_KEY)]).await
    }

    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> SseClient {
        let mut request = reqwest::Client::new().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = bounded("SSE connect", request.send())
            .await
            .expect("GET events");
        SseClient::reading(response)
    }

    /// `GET url` with the test API key: the stream, or the refusal to read as JSON.
    pub async fn attempt(url: &str) -> Result<SseClient, reqwest::Response> {
        let request = reqwest::Client::new().get(url).header("X-API-Key", API_KEY);
        let response = bounded("SSE connect", request.send())
            .await
            .expect("GET events");
        if response.status().is_success() {
            Ok(SseClient::reading(response))
        } else {
            Err(response)
        }
    }

    fn reading(response: reqwest::Response) -> SseClient {
        SseClient {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: Box::pin(response.bytes_stream()),
            parser: rakuda_simulator::sse::SseParser::new(),
        }
    }

    /// The next record, `None` when the server closed the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        bounded("the next SSE record", async {
            loop {
                if let Some(record) = self.parser.next_record() {
                    return Some(record);
                }
                match self.body.next().await {
                    Some(Ok(chunk)) => self.parser.push(&chunk),
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
    }

    /// The next record that is neither a heartbeat nor a bare `retry:`.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let record = self.next().await?;
            if record.event.as_deref() == Some("heartbeat") || record.event.is_none() {
                continue;
            }
            return Some(record);
        }
    }

    /// Event records until every sequence in `expected` was seen (in any frame).
    pub async fn events_covering(&mut self, expected: &[u64]) -> Vec<SseEvent> {
        let mut missing: std::collections::BTreeSet<u64> = expected.iter().copied().collect();
        let mut out = Vec::new();
        while !missing.is_empty() {
            let Some(record) = self.next_event().await else {
                panic!(
                    "stream closed with {} sequences missing: {missing:?}",
                    missing.len()
                )
            };
            if record.event.as_deref() != Some("reset") {
                for seq in record.seqs() {
                    missing.remove(&seq);
                }
            }
            out.push(record);
        }
        out
    }
}

/// The stream sequences of everything in the stream now, by reading its state.
pub async fn stream_last_seq(jetstream: &async_nats::jetstream::Context) -> u64 {
    let stream = jetstream
        .get_stream("RAKUDA_REALTIME")
        .await
        .expect("stream");
    stream.cached_info().state.last_sequence
}

/// Waits until the stream's last sequence reaches `seq`.
pub async fn wait_for_stream_seq(jetstream: &async_nats::jetstream::Context, seq: u64) {
    eventually(&format!("stream at sequence {seq}"), || async {
        let stream = jetstream.get_stream("RAKUDA_REALTIME").await.ok()?;
        (stream.cached_info().state.last_sequence >= seq).then_some(())
    })
    .await
}

/// The port of `http://127.0.0.1:<port>`.
pub fn port_of(url: &str) -> u16 {
    url.rsplit_once(':')
        .and_then(|(_, port)| port.trim_end_matches('/').parse().ok())
        .expect("a URL with a port")
}

/// Waits until the server at `url` holds at least `connections` connections and has read every
/// byte sent on them: none waits in its sockets' receive queues, none in the clients' send
/// queues on the way to it.
pub async fn wait_all_read(url: &str, connections: usize) {
    let port = port_of(url);
    eventually(
        &format!("the server on port {port} to read what {connections} connections sent"),
        || async {
            let sockets = rakuda_testkit::sockets::established_on(port).ok()?;
            let (server, clients): (Vec<TcpSocket>, Vec<TcpSocket>) = sockets
                .into_iter()
                .partition(|socket| socket.local.port() == port);
            (server.len() >= connections
                && server.iter().all(|socket| socket.rx_queue == 0)
                && clients.iter().all(|socket| socket.tx_queue == 0))
            .then_some(())
        },
    )
    .await
}

/// Both ends of `stream` as `/proc/net/tcp` lists them: (this end, the server's end).
fn tcp_ends(stream: &tokio::net::TcpStream) -> Option<(TcpSocket, TcpSocket)> {
    let (std::net::SocketAddr::V4(local), std::net::SocketAddr::V4(peer)) =
        (stream.local_addr().ok()?, stream.peer_addr().ok()?)
    else {
        return None;
    };
    let sockets = rakuda_testkit::sockets::established_on(peer.port()).ok()?;
    let ours = sockets
        .iter()
        .find(|socket| socket.local == local && socket.remote == peer)?;
    let theirs = sockets
        .iter()
        .find(|socket| socket.local == peer && socket.remote == local)?;
    Some((*ours, *theirs))
}

/// Waits until the server has read everything written on `stream` so far (an IPv4 loopback
/// connection): what is written next reaches it in a read of its own.
pub async fn wait_read_by_server(stream: &tokio::net::TcpStream) {
    eventually("the server to read what was written", || async {
        let (ours, theirs) = tcp_ends(stream)?;
        (ours.tx_queue == 0 && theirs.rx_queue == 0).then_some(())
    })
    .await
}

/// Waits until the server's writes to each of `streams` (clients that do not read) are backed
/// up: bytes wait in the server's send queue of each, and no more are added between two looks.
pub async fn wait_writes_backed_up(streams: &[tokio::net::TcpStream]) {
    let mut last: Vec<u64> = Vec::new();
    eventually(
        "the server's writes to every non-reading client to back up",
        || {
            let queued: Option<Vec<u64>> = streams
                .iter()
                .map(|stream| tcp_ends(stream).map(|(_, theirs)| theirs.tx_queue))
                .collect();
            let settled = queued
                .as_ref()
                .is_some_and(|queued| queued.iter().all(|bytes| *bytes > 0) && *queued == last);
            last = queued.unwrap_or_default();
            async move { settled.then_some(()) }
        },
    )
    .await
}

pub fn sleep(ms: u64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(ms))
}

/// A WebSocket client.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `ws://.../api/realtime/ws?query` with the given headers; the HTTP error on refusal.
pub async fn ws_connect(
    gateway: &RunningGateway,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/api/realtime/ws{query}",
        gateway.url.replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    bounded(
        "websocket connect",
        tokio_tungstenite::connect_async(request),
    )
    .await
    .map(|(socket, _)| socket)
}

/// The next text frame as JSON, skipping heartbeats; `None` when the server closed.
pub async fn ws_next(socket: &mut Ws) -> Option<Value> {
    use tokio_tungstenite::tungstenite::Message;
    bounded("the next websocket frame", async {
        loop {
            match socket.next().await? {
                Ok(Message::Text(text)) => {
                    let json: Value =
                        serde_json::from_str(text.as_str()).expect("server frames are JSON");
                    if json["event"] != "heartbeat" {
                        return Some(json);
                    }
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    })
    .await
}

/// The next text frame as the server wrote it, skipping heartbeats; `None` when it closed.
pub async fn ws_next_text(socket: &mut Ws) -> Option<String> {
    use tokio_tungstenite::tungstenite::Message;
    bounded("the next websocket frame", async {
        loop {
            match socket.next().await? {
                Ok(Message::Text(text)) => {
                    if !text.as_str().contains(r#""event":"heartbeat""#) {
                        return Some(text.as_str().to_owned());
                    }
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    })
    .await
}

/// Reads until the server closes; the close code, if it sent one.
pub async fn ws_close_code(socket: &mut Ws) -> Option<u16> {
    use tokio_tungstenite::tungstenite::Message;
    bounded("the server to close the websocket", async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
}

pub async fn ws_send(socket: &mut Ws, text: &str) {
    use futures::SinkExt;
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
        .await
        .expect("send");
}

/// The `rakuda-gateway` binary, as an operator runs it.
pub const BINARY: &str = env!("CARGO_BIN_EXE_rakuda-gateway");

/// The binary with only these settings (no inherited environment, no stray `.env`).
pub fn gateway_command(settings: &[(&str, String)]) -> (Command, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .current_dir(dir.path())
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    (command, dir)
}

pub struct GatewayProcess {
    pub child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl GatewayProcess {
    pub async fn start(stack: &Stack, extra: &[(&str, &str)]) -> GatewayProcess {
        let port = rakuda_testkit::free_port().expect("free port");
        let mut settings = vec![
            ("NATS_URL", stack.nats.url()),
            ("REDIS_URL", stack.redis.url()),
            ("CANARY_INTERVAL", "0s".to_owned()),
            ("API_KEY", API_KEY.to_owned()),
            ("TOKEN_SECRET", TOKEN_SECRET.to_owned()),
            ("GATEWAY_ADDR", format!("127.0.0.1:{port}")),
        ];
        settings.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let (mut command, dir) = gateway_command(&settings);
        let child = command.spawn().expect("spawn rakuda-gateway");
        let url = format!("http://127.0.0.1:{port}");
        eventually("gateway /readyz 200", || async {
            let response = reqwest::get(format!("{url}/readyz")).await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        GatewayProcess {
            child,
            url,
            _dir: dir,
        }
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// CPU time the process has used so far, in clock ticks (1/100 s on Linux).
    pub fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("proc stat");
        // The command name may contain spaces: fields are counted after its closing paren.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "gateway did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
