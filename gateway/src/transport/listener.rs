//! The accept loop. Every socket's request head is read here, into a bounded buffer, and refused
//! here when it is too large or malformed, so every request gets one answer whichever path then
//! serves it: SSE streams straight on the socket ([`super::socket`]), everything else by hyper,
//! one request per connection, from the head already read.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::{Buf, Bytes};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::head::{read_head, Head, HeadLimits};
use super::respond::write_response;
use super::socket;
use crate::edge::Refusals;

/// How long the whole request head may take to arrive.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What the accept loop needs.
pub struct Listener {
    pub router: Router,
    pub limits: HeadLimits,
    pub refusals: Refusals,
    /// `CLIENT_STALL_TIMEOUT`: the kernel drops a peer that accepts nothing for this long.
    pub stall_timeout: Duration,
    /// Owns every connection task; the caller waits for it when shutting down.
    pub connections: TaskTracker,
}

impl Listener {
    /// Accepts on `listener` until `stop`.
    pub async fn run(self, listener: TcpListener, stop: CancellationToken) {
        // What hyper serves ends its connection after the response (an upgrade goes on as a
        // WebSocket): every request head is read, and limited, by this loop.
        let one_request = self
            .router
            .clone()
            .layer(axum::middleware::map_response(close_after));
        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors, most likely: wait a moment instead of spinning.
                        tracing::warn!(%error, "accept failed; pausing");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            tune_client_socket(&stream, self.stall_timeout);
            let routers = (self.router.clone(), one_request.clone());
            let refusals = self.refusals.clone();
            let limits = self.limits;
            let tracker = self.connections.clone();
            self.connections
                .spawn(connection(stream, peer, routers, refusals, limits, tracker));
        }
    }
}

/// One connection: its head, then the path that serves it.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    (router, one_request): (Router, Router),
    refusals: Refusals,
    limits: HeadLimits,
    tracker: TaskTracker,
) {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, limits)).await {
        Ok(Ok(head)) => head,
        Err(_) => return,
        Ok(Err(error)) => {
            if let Some((status, reason)) = error.refusal() {
                tracing::debug!(%peer, %error, "request refused before routing");
                let response = refusals.refuse(status, reason, error.to_string());
                let _ =
                    write_response(&mut stream, response.into_response(), Version::HTTP_11).await;
            }
            return;
        }
    };
    let Head { request, read } = head;
    if socket::is_sse(&request) {
        // The request holds copies of what it needs: the bytes read go now, not when the
        // stream ends hours later.
        drop(read);
        let version = request.version();
        let response = socket::route(request, router).await;
        // The stream gets a task of its own: this one's future is sized for reading and routing
        // the request too, and a stream lives for hours.
        tracker.spawn(socket::stream(stream, response, version));
        return;
    }
    // Boxed: this task's future is as large as its largest await, and an SSE stream (the
    // branch above) lives for hours; held inline, hyper's connection state would be part of
    // every stream's memory.
    Box::pin(serve_with_hyper(stream, read, peer, one_request, limits)).await;
}

/// hyper serves one request (or a WebSocket upgrade) from the head already read.
async fn serve_with_hyper(
    stream: TcpStream,
    read: Bytes,
    peer: SocketAddr,
    one_request: Router,
    limits: HeadLimits,
) {
    let io = TokioIo::new(Replayed { read, stream });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .max_buf_size(limits.buffer_bytes().max(8192))
        .serve_connection(io, TowerToHyperService::new(one_request))
        .with_upgrades()
        .await;
    if let Err(error) = served {
        tracing::debug!(%peer, %error, "HTTP connection ended with an error");
    }
}

/// `Connection: close` on every response but a protocol switch.
async fn close_after(mut response: Response) -> Response {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The socket, with the bytes already read from it served first: hyper reads the head again
/// (and any body after it) as if nothing had been taken.
struct Replayed {
    read: Bytes,
    stream: TcpStream,
}

impl AsyncRead for Replayed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.read.has_remaining() {
            let take = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..take]);
            self.read.advance(take);
            if !self.read.has_remaining() {
                // Free the head buffer: after an upgrade this IO lives as long as the WebSocket.
                self.read = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replayed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Every accepted client socket: frames go out as soon as they are written (no Nagle delay),
/// and a peer that stops reading for `stall_timeout` is disconnected by the kernel, the only
/// party that sees a send that makes no progress.
fn tune_client_socket(tcp: &TcpStream, stall_timeout: Duration) {
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on a client socket");
    }
    set_stall_timeout(tcp, stall_timeout);
}

#[cfg(target_os = "linux")]
fn set_stall_timeout(tcp: &TcpStream, stall_timeout: Duration) {
    if let Err(error) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(stall_timeout)) {
        tracing::debug!(%error, "cannot set TCP_USER_TIMEOUT on a client socket");
    }
}

/// Without `TCP_USER_TIMEOUT`, a client that stops reading is caught by its full queue instead
/// (`reset` `slow_client`) and, for WebSocket, by the ping watchdog.
#[cfg(not(target_os = "linux"))]
fn set_stall_timeout(_tcp: &TcpStream, _stall_timeout: Duration) {}
