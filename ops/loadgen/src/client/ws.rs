//! One WebSocket connection, plain or over TLS (to an `https://` target), its frames read
//! without a JSON parse where the gateway's shape allows.

use std::future::Future;

use futures::{SinkExt, StreamExt};
use rakuda_testkit::tls::Alpn;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::frames::{after_frames, handle, opened};
use super::reconnect::SessionEnd;
use super::refusal::{refused, retry_after};
use super::target::{host_and_prefix, query, split_base, UrlError};
use super::tcp::connect_tcp;
use super::{lock, SharedTally, Target};
use crate::marker::now_us;

/// `{"id":"<id>","event":"<event>","data":<data>}`, the shape the gateway writes every event
/// and heartbeat in, split without a JSON parse (anything else returns `None` and is parsed).
fn split_ws_frame(text: &str) -> Option<(&str, &str, &str)> {
    let rest = text.strip_prefix("{\"id\":\"")?;
    let (id, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(",\"event\":\"")?;
    let (event, rest) = rest.split_once('"')?;
    let data = rest.strip_prefix(",\"data\":")?.strip_suffix('}')?;
    Some((id, event, data))
}

/// Why a WebSocket never opened.
enum Failure {
    Connect(String),
    Handshake(tokio_tungstenite::tungstenite::Error),
}

/// One WebSocket connection, from the handshake (with the cursor as `lastEventId`) until the
/// stream ends or `stop`.
pub(super) async fn session(
    target: &Target,
    base_url: &str,
    gateway: usize,
    tally: &SharedTally,
    stop: &CancellationToken,
) -> SessionEnd {
    let cursor = lock(tally).cursor.clone();
    let base = base_url
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    let url = format!("{base}/api/realtime/ws{}", query(target, cursor.as_deref()));
    let mut request = match url.into_client_request() {
        Ok(request) => request,
        Err(error) => return SessionEnd::failed(format!("bad URL: {error}")),
    };
    if let Some(key) = &target.api_key {
        match HeaderValue::from_str(key) {
            Ok(value) => {
                request.headers_mut().insert("X-API-Key", value);
            }
            Err(_) => return SessionEnd::failed("the API key is not a valid header value".into()),
        }
    }
    // Small buffers: a load run holds thousands of these (tungstenite defaults to 128 KiB).
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0);
    if base_url.starts_with("https://") {
        // Over TLS: the socket opened here (from the source address if there is one), TLS on
        // it offering HTTP/1.1 for the upgrade, the handshake on that.
        let Some(tls) = &target.tls else {
            return SessionEnd::failed(UrlError::NoCa(base_url.to_owned()).to_string());
        };
        let connect = async {
            let (_, host, _) =
                split_base(base_url).map_err(|error| Failure::Connect(error.to_string()))?;
            let stream = connect_tcp(host, target.source, target.idle_timeout)
                .await
                .map_err(|error| Failure::Connect(error.to_string()))?;
            let _ = stream.set_nodelay(true);
            let stream = tls
                .handshake(stream, Alpn::Http1)
                .await
                .map_err(|error| Failure::Connect(format!("TLS: {error}")))?;
            upgrade(target, request, stream, config).await
        };
        return frames(connect, target, base_url, gateway, cursor, tally, stop).await;
    }
    let connect = async {
        match target.source {
            None => tokio_tungstenite::connect_async_with_config(request, Some(config), true)
                .await
                .map_err(Failure::Handshake),
            // From a chosen source address: the socket opened here, the handshake on it.
            Some(source) => {
                let host = host_and_prefix(base_url)
                    .map_err(|error| Failure::Connect(error.to_string()))?
                    .0;
                let stream = connect_tcp(host, Some(source), target.idle_timeout)
                    .await
                    .map_err(|error| Failure::Connect(error.to_string()))?;
                let _ = stream.set_nodelay(true);
                upgrade(
                    target,
                    request,
                    tokio_tungstenite::MaybeTlsStream::Plain(stream),
                    config,
                )
                .await
            }
        }
    };
    frames(connect, target, base_url, gateway, cursor, tally, stop).await
}

/// The WebSocket handshake on an open connection, within the target's idle timeout.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    target: &Target,
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    stream: S,
    config: WebSocketConfig,
) -> Result<(WebSocketStream<S>, Response), Failure> {
    let handshake = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
    match tokio::time::timeout(target.idle_timeout, handshake).await {
        Ok(result) => result.map_err(Failure::Handshake),
        Err(_) => Err(Failure::Connect("no handshake answer in time".into())),
    }
}

/// Opens the WebSocket with `connect`, then reads its frames until it ends or `stop`.
async fn frames<S: AsyncRead + AsyncWrite + Unpin>(
    connect: impl Future<Output = Result<(WebSocketStream<S>, Response), Failure>>,
    target: &Target,
    base_url: &str,
    gateway: usize,
    cursor: Option<String>,
    tally: &SharedTally,
    stop: &CancellationToken,
) -> SessionEnd {
    let socket = tokio::select! {
        _ = stop.cancelled() => return SessionEnd::Stopped,
        socket = connect => socket,
    };
    let mut socket = match socket {
        Ok((socket, _)) => socket,
        Err(Failure::Connect(error)) => {
            return SessionEnd::unreachable(format!("connect: {error}"))
        }
        Err(Failure::Handshake(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|value| retry_after(value.as_bytes()));
            let body = response.body().as_deref().unwrap_or_default();
            return refused(tally, status, body, wait);
        }
        Err(Failure::Handshake(error)) => {
            return SessionEnd::unreachable(format!("handshake: {error}"))
        }
    };
    let mut resets_seen = opened(tally, gateway, cursor.is_some());
    #[derive(serde::Deserialize)]
    struct WsFrame<'a> {
        #[serde(borrow)]
        id: Option<&'a str>,
        #[serde(borrow)]
        event: &'a str,
        #[serde(borrow)]
        data: &'a serde_json::value::RawValue,
    }
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => {
                let _ = socket.close(None).await;
                return SessionEnd::Stopped;
            }
            message = tokio::time::timeout(target.idle_timeout, socket.next()) => message,
        };
        match message {
            Err(_) => return SessionEnd::Ended("idle timeout".into()),
            Ok(None) => return SessionEnd::Ended("closed by server".into()),
            Ok(Some(Err(error))) => return SessionEnd::Ended(format!("read: {error}")),
            Ok(Some(Ok(Message::Text(text)))) => {
                let received_us = now_us();
                {
                    let mut tally = lock(tally);
                    if let Some((id, event, data)) = split_ws_frame(text.as_str()) {
                        handle(&mut tally, event, Some(id), data.as_bytes(), received_us);
                    } else {
                        match serde_json::from_str::<WsFrame>(text.as_str()) {
                            Ok(frame) => handle(
                                &mut tally,
                                frame.event,
                                frame.id,
                                frame.data.get().as_bytes(),
                                received_us,
                            ),
                            Err(_) => tally.bad_frames += 1,
                        }
                    }
                }
                after_frames(target, base_url, tally, &mut resets_seen);
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                let code = frame.map(|frame| u16::from(frame.code)).unwrap_or(1005);
                return SessionEnd::Ended(format!("close {code}"));
            }
            // Pings are answered by tungstenite itself when the stream is polled.
            Ok(Some(Ok(_))) => {
                let _ = socket.flush().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_frames_split_without_a_parse() {
        let frame =
            r#"{"id":"17-8","event":"ORDER_RECEIVED","data":{"type":"ORDER_RECEIVED","seq":8}}"#;
        assert_eq!(
            split_ws_frame(frame),
            Some((
                "17-8",
                "ORDER_RECEIVED",
                r#"{"type":"ORDER_RECEIVED","seq":8}"#
            ))
        );
        assert_eq!(split_ws_frame(r#"{"event":"pong","data":{}}"#), None);
    }
}
