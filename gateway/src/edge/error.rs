//! Refusals at the HTTP edge: a status and a JSON body that tells the caller what to fix,
//! counted by reason as they are made.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rakuda_schema::RequestRefusal;
use serde_json::json;

use super::connection_rate::OverRate;
use super::limits::Refusal;
use crate::metrics::EdgeMetrics;

/// `{"error": "<reason>", "message": "<what to do>"}` with a status. Made by
/// [`Refusals::refuse`], which counts it.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub reason: RequestRefusal,
    pub message: String,
    /// `Retry-After`, in whole seconds (rounded up), when waiting helps.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub(crate) fn retry_after(mut self, wait: Duration) -> ApiError {
        self.retry_after = Some(wait);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "error": self.reason.as_str(), "message": self.message })),
        )
            .into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// Makes refusals, counting each in `gateway_requests_rejected_total{reason}`.
#[derive(Clone)]
pub(crate) struct Refusals {
    metrics: Arc<EdgeMetrics>,
}

impl Refusals {
    pub(crate) fn new(metrics: Arc<EdgeMetrics>) -> Refusals {
        Refusals { metrics }
    }

    pub(crate) fn refuse(
        &self,
        status: StatusCode,
        reason: RequestRefusal,
        message: impl Into<String>,
    ) -> ApiError {
        self.metrics.request_rejected(reason);
        ApiError {
            status,
            reason,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A connection slot refused: streams and history requests share the same limits.
    pub(crate) fn connection_refused(&self, refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::Instance { max } => self.refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                RequestRefusal::TooManyConnections,
                format!("this gateway holds its maximum of {max} connections (MAX_CONNECTIONS); try another instance"),
            ),
            Refusal::Key { max } => self.refuse(
                StatusCode::TOO_MANY_REQUESTS,
                RequestRefusal::TooManyConnectionsForKey,
                format!("this API key already holds {max} connections and history requests on this gateway (MAX_CONNECTIONS_PER_KEY)"),
            ),
        }
    }

    /// A new stream past `CONNECTION_RATE_LIMIT`: 503 with its random `Retry-After`.
    pub(crate) fn over_connection_rate(&self, over: OverRate) -> ApiError {
        let OverRate {
            per_second,
            retry_after,
        } = over;
        self.refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            RequestRefusal::ConnectionRate,
            format!(
                "this gateway admits {per_second} new connections a second (CONNECTION_RATE_LIMIT) \
                 and is taking a burst of them; reconnect after Retry-After seconds, with your cursor"
            ),
        )
        .retry_after(retry_after)
    }
}
