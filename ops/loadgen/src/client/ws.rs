//! One WebSocket connection, its frames read without a JSON parse where the gateway's shape
//! allows.

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{handle, lock, query, SessionEnd, SharedTally, Target};
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

/// One WebSocket connection, from the handshake (with the cursor as `lastEventId`) until the
/// stream ends or `stop`.
pub(super) async fn session(
    target: &Target,
    tally: &SharedTally,
    stop: &CancellationToken,
) -> SessionEnd {
    let cursor = lock(tally).cursor.clone();
    let base = target
        .base_url
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    let url = format!("{base}/api/realtime/ws{}", query(target, cursor.as_deref()));
    let mut request = match url.into_client_request() {
        Ok(request) => request,
        Err(error) => return SessionEnd::Failed(format!("bad URL: {error}")),
    };
    if let Some(key) = &target.api_key {
        match HeaderValue::from_str(key) {
            Ok(value) => {
                request.headers_mut().insert("X-API-Key", value);
            }
            Err(_) => return SessionEnd::Failed("the API key is not a valid header value".into()),
        }
    }
    // Small buffers: a load run holds thousands of these (tungstenite defaults to 128 KiB).
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0);
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let socket = tokio::select! {
        _ = stop.cancelled() => return SessionEnd::Stopped,
        socket = connect => socket,
    };
    let mut socket = match socket {
        Ok((socket, _)) => socket,
        Err(error) => return SessionEnd::Failed(format!("handshake: {error}")),
    };
    lock(tally).connected();
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
                let mut tally = lock(tally);
                if let Some((id, event, data)) = split_ws_frame(text.as_str()) {
                    handle(&mut tally, event, Some(id), data.as_bytes(), received_us);
                    continue;
                }
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
