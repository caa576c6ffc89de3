//! Refusals at the HTTP edge: a status and a JSON body that tells the caller what to fix,
//! counted by reason as they are made.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rakuda_schema::RequestRefusal;
use serde_json::json;

use crate::metrics::EdgeMetrics;

/// `{"error": "<reason>", "message": "<what to do>"}` with a status. Made by
/// [`Refusals::refuse`], which counts it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: RequestRefusal,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.reason.as_str(), "message": self.message })),
        )
            .into_response()
    }
}

/// Makes refusals, counting each in `gateway_requests_rejected_total{reason}`.
#[derive(Clone)]
pub struct Refusals {
    metrics: Arc<EdgeMetrics>,
}

impl Refusals {
    pub fn new(metrics: Arc<EdgeMetrics>) -> Refusals {
        Refusals { metrics }
    }

    pub fn refuse(
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
        }
    }
}
