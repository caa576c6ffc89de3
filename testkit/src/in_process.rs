//! A service (`bridge::run`, `gateway::run`) running inside the test process on an ephemeral
//! port, with its `/metrics` at hand.

use std::fmt::Debug;
use std::future::Future;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::wait::{bounded, eventually, sample_value};

pub struct InProcess<E> {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), E>>,
}

impl<E: Debug + Send + 'static> InProcess<E> {
    /// Binds `127.0.0.1:0` and spawns `run(listener, shutdown)`.
    pub async fn start<F, Fut>(run: F) -> InProcess<E>
    where
        F: FnOnce(TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(run(listener, shutdown.clone()));
        InProcess {
            url,
            shutdown,
            handle,
        }
    }

    /// Waits until `GET path` answers 2xx.
    pub async fn wait_until_ok(&self, path: &str) {
        eventually(&format!("{path} answers 2xx"), || async {
            let response = reqwest::get(format!("{}{path}", self.url)).await.ok()?;
            response.status().is_success().then_some(())
        })
        .await
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// One sample's value; 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        sample_value(&self.metrics().await, sample).unwrap_or(0.0)
    }

    pub async fn wait_for_metric(&self, sample: &str, expected: f64) {
        eventually(&format!("{sample} == {expected}"), || async {
            (self.metric(sample).await == expected).then_some(())
        })
        .await
    }

    /// Cancels it and waits for a clean return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        bounded("service shutdown", self.handle)
            .await
            .expect("service task")
            .expect("service run");
    }
}
