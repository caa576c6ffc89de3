//! Errors at the HTTP edge: a status and a JSON body that tells the caller what to fix.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// `{"error": "<reason>", "message": "<what to do>"}` with a status. Build it with
/// [`crate::app::App::reject`], which also counts it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.reason, "message": self.message })),
        )
            .into_response()
    }
}
