//! The accept loop. Every socket's request head is read here, into a bounded buffer, within
//! `REQUEST_READ_TIMEOUT`, and refused here when it is too large, malformed or late, so every
//! request gets one answer whichever path then serves it: SSE streams straight on the socket
//! ([`super::socket`]), everything else by hyper, one request per connection, from the head
//! already read. Until its request authenticates, a socket holds one of the
//! `MAX_UNAUTHENTICATED_CONNECTIONS` slots; past them, new sockets are answered 503 at once.
//! One client address holds at most `MAX_UNAUTHENTICATED_PER_ADDRESS` of them: a newer socket
//! from it closes its oldest still waiting for a head ([`crate::edge::unauthenticated`]).
//! Nothing here polls: every wait is a read, an accept or a timer.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::{Buf, Bytes};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rakuda_schema::RequestRefusal;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::head::{read_head, Head, HeadLimits};
use super::respond::write_response;
use super::socket;
use crate::edge::client_addr::PeerAddr;
use crate::edge::unauthenticated::{Full, Slot, Unauthenticated};
use crate::edge::Refusals;

/// How long a refusal may take to write to a socket that does not read.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the accept loop needs.
pub(crate) struct Listener {
    pub router: Router,
    pub limits: HeadLimits,
    /// `REQUEST_READ_TIMEOUT`: the head, and a request's body, must arrive within it.
    pub read_timeout: Duration,
    pub unauthenticated: Unauthenticated,
    pub refusals: Refusals,
    /// `CLIENT_STALL_TIMEOUT`: the kernel drops a peer that accepts nothing for this long.
    pub stall_timeout: Duration,
    /// Owns every connection task; the caller waits for it when shutting down.
    pub connections: TaskTracker,
}

impl Listener {
    /// Accepts on `listener` until `stop`.
    pub(crate) async fn run(self, listener: TcpListener, stop: CancellationToken) {
        // What hyper serves ends its connection after the response (an upgrade goes on as a
        // WebSocket): every request head is read, and limited, by this loop. Its body, if any,
        // must arrive within the same deadline.
        let deadline = Deadline {
            timeout: self.read_timeout,
            refusals: self.refusals.clone(),
        };
        let one_request = self
            .router
            .clone()
            .layer(axum::middleware::from_fn_with_state(
                std::sync::Arc::new(deadline),
                request_deadline,
            ))
            .layer(axum::middleware::map_response(close_after));
        loop {
            let (mut stream, peer) = tokio::select! {
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
            let slot = match self.unauthenticated.hold(peer.ip()) {
                Ok(slot) => slot,
                Err(full) => {
                    let response = match full {
                        Full::Total { .. } => self.refusals.refuse(
                            StatusCode::SERVICE_UNAVAILABLE,
                            RequestRefusal::TooManyUnauthenticated,
                            "too many connections are waiting to authenticate; retry shortly",
                        ),
                        Full::Address { max } => self.refusals.refuse(
                            StatusCode::TOO_MANY_REQUESTS,
                            RequestRefusal::TooManyUnauthenticatedForAddress,
                            format!("this address already has {max} requests being answered (MAX_UNAUTHENTICATED_PER_ADDRESS); retry shortly"),
                        ),
                    };
                    tracing::debug!(%peer, ?full, "socket refused at accept");
                    let response = response.retry_after(Duration::from_secs(1)).into_response();
                    // Answered from its own task, so a peer that does not read cannot stall
                    // the loop.
                    self.connections.spawn(async move {
                        let _ = tokio::time::timeout(
                            REFUSAL_WRITE_TIMEOUT,
                            write_response(&mut stream, response, Version::HTTP_11),
                        )
                        .await;
                    });
                    continue;
                }
            };
            let connection = Connection {
                peer,
                slot,
                limits: self.limits,
                read_timeout: self.read_timeout,
                refusals: self.refusals.clone(),
                tracker: self.connections.clone(),
            };
            let routers = (self.router.clone(), one_request.clone());
            self.connections.spawn(connection.serve(stream, routers));
        }
    }
}

/// One accepted socket and what its connection needs.
struct Connection {
    peer: SocketAddr,
    /// Held until the socket closes, or its request authenticates.
    slot: Slot,
    limits: HeadLimits,
    read_timeout: Duration,
    refusals: Refusals,
    /// Where an SSE stream's own task goes.
    tracker: TaskTracker,
}

impl Connection {
    /// Its head, then the path that serves it.
    async fn serve(self, mut stream: TcpStream, (router, one_request): (Router, Router)) {
        let Connection {
            peer,
            slot,
            limits,
            read_timeout,
            refusals,
            tracker,
        } = self;
        let read = tokio::select! {
            // The head first: a socket pushed out before its task ran, whose head has arrived
            // meanwhile, is served (its places went to the newer socket; it holds none).
            biased;
            read = tokio::time::timeout(read_timeout, read_head(&mut stream, limits)) => read,
            () = slot.pushed_out() => {
                tracing::debug!(%peer, "a newer socket from the same address took this one's place");
                let response = refusals.refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    RequestRefusal::TooManyUnauthenticatedForAddress,
                    "this address opened too many sockets that sent no request \
                     (MAX_UNAUTHENTICATED_PER_ADDRESS); this, its oldest, is closed",
                );
                let response = response.retry_after(Duration::from_secs(1));
                refuse(&mut stream, response.into_response()).await;
                return;
            }
        };
        slot.heard();
        let head = match read {
            Ok(Ok(head)) => head,
            Err(_) => {
                tracing::debug!(%peer, "no complete request head in time");
                let response = refusals.refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    RequestRefusal::RequestTimeout,
                    "the request head did not arrive in time (REQUEST_READ_TIMEOUT)",
                );
                refuse(&mut stream, response.into_response()).await;
                return;
            }
            Ok(Err(error)) => {
                if let Some((status, reason)) = error.refusal() {
                    tracing::debug!(%peer, %error, "request refused before routing");
                    let response = refusals.refuse(status, reason, error.to_string());
                    refuse(&mut stream, response.into_response()).await;
                }
                return;
            }
        };
        let Head { mut request, read } = head;
        request.extensions_mut().insert(PeerAddr(peer));
        request.extensions_mut().insert(slot.clone());
        if socket::is_sse(&request) {
            // The request holds copies of what it needs: the bytes read go now, not when the
            // stream ends hours later.
            drop(read);
            drop(slot);
            let version = request.version();
            let response = socket::route(request, router).await;
            // The stream gets a task of its own: this one's future is sized for reading and
            // routing the request too, and a stream lives for hours.
            tracker.spawn(socket::stream(stream, response, version));
            return;
        }
        // Boxed: this task's future is as large as its largest await; held inline, hyper's
        // connection state would be in every connection's allocation.
        let hyper = Hyper {
            peer,
            slot,
            read_timeout,
            limits,
        };
        Box::pin(hyper.serve(stream, read, one_request)).await;
    }
}

/// What hyper needs to serve one request (or a WebSocket upgrade) from the head already read.
struct Hyper {
    peer: SocketAddr,
    slot: Slot,
    read_timeout: Duration,
    limits: HeadLimits,
}

impl Hyper {
    async fn serve(self, stream: TcpStream, read: Bytes, one_request: Router) {
        let Hyper {
            peer,
            slot,
            read_timeout,
            limits,
        } = self;
        let io = TokioIo::new(Replayed { read, stream });
        // hyper parses the head again from the bytes already read; the copy of the slot and
        // the peer go on its request.
        let service = tower::ServiceExt::map_request(
            one_request,
            move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(PeerAddr(peer));
                request.extensions_mut().insert(slot.clone());
                request
            },
        );
        let served = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(read_timeout)
            .max_buf_size(limits.buffer_bytes().max(8192))
            .serve_connection(io, TowerToHyperService::new(service))
            .with_upgrades()
            .await;
        if let Err(error) = served {
            tracing::debug!(%peer, %error, "HTTP connection ended with an error");
        }
    }
}

/// Writes a refusal, but gives up on a peer that does not read.
async fn refuse(stream: &mut TcpStream, response: Response) {
    let _ = tokio::time::timeout(
        REFUSAL_WRITE_TIMEOUT,
        write_response(stream, response, Version::HTTP_11),
    )
    .await;
}

/// What [`request_deadline`] needs.
struct Deadline {
    timeout: Duration,
    refusals: Refusals,
}

/// A request served by hyper, its body included, must be read and answered in time: a client
/// trickling a body holds nothing past `REQUEST_READ_TIMEOUT`. A WebSocket's response is the
/// 101, so the session after it is not bound by this.
async fn request_deadline(
    axum::extract::State(deadline): axum::extract::State<std::sync::Arc<Deadline>>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(deadline.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => deadline
            .refusals
            .refuse(
                StatusCode::REQUEST_TIMEOUT,
                RequestRefusal::RequestTimeout,
                "the request was not complete in time (REQUEST_READ_TIMEOUT)",
            )
            .into_response(),
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
