//! SSE streams served straight on the client socket, without hyper's connection.
//!
//! hyper keeps a read buffer (grown to 16 KiB) and an 8 KiB write buffer for the whole life of
//! an HTTP/1 connection. An SSE stream lives for hours, writes a few hundred bytes now and then
//! and never reads again, so those buffers were most of a dashboard's cost (19 KiB of the 26
//! KiB per idle connection, measured with massif and `just bench`). Here the request, whose head
//! the listener already read and checked, goes through the same axum router as every other
//! request (auth, limits, CORS, metrics, errors: nothing is duplicated), and the response is
//! written by hand: the head, then each body chunk in one write.

use axum::body::Body;
use axum::http::{Method, Request, Version};
use axum::response::Response;
use axum::Router;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::respond::write_response;

/// Whether `request` is an SSE stream request, served on its socket.
pub(crate) fn is_sse(request: &Request<Body>) -> bool {
    request.method() == Method::GET && request.uri().path() == crate::paths::EVENTS
}

/// Runs `request` through the router (auth, limits, admission, resume).
pub(crate) async fn route(request: Request<Body>, router: Router) -> Response {
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Writes `response` and streams its body until it ends or the client goes away.
pub(crate) async fn stream(mut stream: TcpStream, response: Response, version: Version) {
    if let Err(error) = write_response(&mut stream, response, version).await {
        tracing::debug!(%error, "SSE client connection ended");
    }
    let _ = stream.shutdown().await;
}
