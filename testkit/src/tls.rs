//! Clients for the secured fleet: TLS that trusts only the fleet's CA (over a connection of its
//! own or one already open, e.g. for a WebSocket), HTTP/2 requests through nginx (an SSE stream
//! read as it arrives), and a blocking probe for "does this TLS server answer yet". The load
//! generator's subscribers (`rakuda_loadgen::client`) speak SSE over HTTP/2 and WebSocket over
//! TLS with these.
//!
//! TLS is rustls on ring, set up here explicitly, so nothing depends on a process-wide default
//! provider.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::client::TlsStream;

/// How long connecting and the TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA {path}: {message}")]
    Ca { path: String, message: String },
    #[error("TLS setup: {0}")]
    Setup(#[from] rustls::Error),
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out connecting")]
    Timeout,
    #[error("HTTP/2: {0}")]
    H2(#[from] h2::Error),
    #[error("bad request: {0}")]
    Request(String),
}

/// Which application protocol to offer in the TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `h2` only: the server must speak HTTP/2.
    H2,
    /// `http/1.1` only (a WebSocket upgrade).
    Http1,
}

/// TLS client settings that trust one CA (a PEM bundle).
#[derive(Clone)]
pub struct TlsClient {
    h2: Arc<rustls::ClientConfig>,
    http1: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

impl TlsClient {
    pub fn new(ca_pem: &Path) -> Result<TlsClient, TlsError> {
        let ca_error = |message: String| TlsError::Ca {
            path: ca_pem.display().to_string(),
            message,
        };
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca_pem).map_err(|e| ca_error(e.to_string()))?;
        for cert in certs {
            roots
                .add(cert.map_err(|e| ca_error(e.to_string()))?)
                .map_err(|e| ca_error(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = |alpn: &[u8]| -> Result<Arc<rustls::ClientConfig>, TlsError> {
            let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(config))
        };
        Ok(TlsClient {
            h2: config(b"h2")?,
            http1: config(b"http/1.1")?,
        })
    }

    fn config(&self, alpn: Alpn) -> Arc<rustls::ClientConfig> {
        match alpn {
            Alpn::H2 => self.h2.clone(),
            Alpn::Http1 => self.http1.clone(),
        }
    }

    /// A TLS connection to `addr`, the server's certificate checked for its IP address.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        alpn: Alpn,
    ) -> Result<TlsStream<tokio::net::TcpStream>, TlsError> {
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            self.handshake(tcp, alpn).await
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| TlsError::Timeout)?
    }

    /// TLS over a connection already open (from a chosen source address, say), the server's
    /// certificate checked for the IP address it is connected to.
    pub async fn handshake(
        &self,
        tcp: tokio::net::TcpStream,
        alpn: Alpn,
    ) -> Result<TlsStream<tokio::net::TcpStream>, TlsError> {
        let server = ServerName::IpAddress(tcp.peer_addr()?.ip().into());
        let connector = tokio_rustls::TlsConnector::from(self.config(alpn));
        tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(server, tcp))
            .await
            .map_err(|_| TlsError::Timeout)?
            .map_err(TlsError::from)
    }

    /// Blocking: writes `request` over TLS to `addr` and returns the first bytes of the answer,
    /// or `None` when no TLS server answers there (yet). For readiness checks.
    pub fn probe(&self, addr: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
        tcp.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let connection = rustls::ClientConnection::new(
            self.config(Alpn::Http1),
            ServerName::IpAddress(addr.ip().into()),
        )
        .ok()?;
        let mut stream = rustls::StreamOwned::new(connection, tcp);
        stream.write_all(request).ok()?;
        let mut answer = [0u8; 64];
        let read = stream.read(&mut answer).ok()?;
        (read > 0).then(|| answer[..read].to_vec())
    }
}

/// An HTTP/2 response whose body is read as it arrives.
pub struct H2Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    body: h2::RecvStream,
}

impl H2Response {
    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, TlsError>> {
        let chunk = self.body.data().await?;
        Some(match chunk {
            Ok(bytes) => {
                // Hand the window back, or the server stops sending after 64 KiB.
                let _ = self.body.flow_control().release_capacity(bytes.len());
                Ok(bytes)
            }
            Err(error) => Err(error.into()),
        })
    }

    /// The whole body as text (for short answers).
    pub async fn text(mut self) -> Result<String, TlsError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk().await {
            body.extend_from_slice(&chunk?);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// `GET https://<addr><path_and_query>` over HTTP/2, on a connection of its own (closed when
/// the response is dropped), with `headers`.
pub async fn h2_get(
    tls: &TlsClient,
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<H2Response, TlsError> {
    h2_request(tls, addr, http::Method::GET, path_and_query, headers, None).await
}

/// `POST https://<addr><path_and_query>` over HTTP/2 with `body`, like [`h2_get`].
pub async fn h2_post(
    tls: &TlsClient,
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<H2Response, TlsError> {
    h2_request(
        tls,
        addr,
        http::Method::POST,
        path_and_query,
        headers,
        Some(body),
    )
    .await
}

/// `GET https://<peer><path_and_query>` over HTTP/2 on `stream` (a TLS connection made with
/// [`Alpn::H2`], closed when the response is dropped), with `headers`.
pub async fn h2_get_over(
    stream: TlsStream<tokio::net::TcpStream>,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<H2Response, TlsError> {
    h2_exchange(stream, http::Method::GET, path_and_query, headers, None).await
}

async fn h2_request(
    tls: &TlsClient,
    addr: SocketAddr,
    method: http::Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
) -> Result<H2Response, TlsError> {
    let stream = tls.connect(addr, Alpn::H2).await?;
    h2_exchange(stream, method, path_and_query, headers, body).await
}

async fn h2_exchange(
    stream: TlsStream<tokio::net::TcpStream>,
    method: http::Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
) -> Result<H2Response, TlsError> {
    let addr = stream.get_ref().0.peer_addr()?;
    let (client, connection) = h2::client::handshake(stream).await?;
    // The connection is driven by its own task; it ends when the client side and every stream
    // of it are dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("https://{addr}{path_and_query}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(())
        .map_err(|error| TlsError::Request(error.to_string()))?;
    let mut client = client.ready().await?;
    let (response, mut send) = client.send_request(request, body.is_none())?;
    if let Some(body) = body {
        send.send_data(body, true)?;
    }
    let response = response.await?;
    let (head, body) = response.into_parts();
    Ok(H2Response {
        status: head.status.as_u16(),
        headers: head.headers,
        body,
    })
}
