//! `POST /api/realtime/publish`: producers outside Redis publish events over HTTP and learn
//! what became of each (docs/PROTOCOL.md, "Publishing over HTTP").
//!
//! Each event goes through the same [`route_posted`] checks as a Redis message and, when valid,
//! to the same subject with the same headers; the answer waits for JetStream's ack (at most
//! `PUBLISH_TIMEOUT`). Refused events get their `RejectReason` and a copy on the DLQ. This path
//! has its own JetStream context: it never waits behind, or reorders, the Redis path's queue.

pub mod body;
pub mod settings;
mod store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use rakuda_schema::Validator;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::timeout_at;
use tokio_util::sync::CancellationToken;

use crate::metrics::BridgeMetrics;
use crate::reject_log::{RejectLog, REJECT_LOG_INTERVAL};
use crate::route::route_posted;
use body::{BatchAnswer, BodyError, Outcome};
use settings::PublishKeys;

pub const PUBLISH_PATH: &str = "/api/realtime/publish";
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// On DLQ copies of events posted over HTTP: the id of the publish key that sent it (the
/// gateway's DLQ page reads it as `producer`).
pub use rakuda_schema::dlq::PRODUCER_HEADER;

/// What the publish API reads of the bridge's settings, taken from them by
/// [`crate::Config::publish_api`]: its keys (checked), its limits and the channel prefix; no
/// server addresses, no Redis or NATS credentials.
pub struct ApiSettings {
    pub keys: PublishKeys,
    /// `REDIS_CHANNEL_PREFIX`: a posted event goes where the same event read on Redis would.
    pub redis_channel_prefix: String,
    /// `EVENT_MAX_BYTES`, as on the Redis path.
    pub event_max_bytes: usize,
    /// `PUBLISH_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `PUBLISH_MAX_BATCH`.
    pub max_batch: usize,
    /// `PUBLISH_MAX_CONCURRENT`.
    pub max_concurrent: usize,
    /// `PUBLISH_TIMEOUT`: for the body to arrive and JetStream to acknowledge its events.
    pub timeout: Duration,
}

pub struct PublishApi {
    jetstream: jetstream::Context,
    validator: Validator,
    prefix: String,
    keys: PublishKeys,
    max_body_bytes: usize,
    max_batch: usize,
    timeout: Duration,
    metrics: Arc<BridgeMetrics>,
    permits: Arc<Semaphore>,
    logs: Mutex<(RejectLog, RejectLog<&'static str>)>,
}

impl PublishApi {
    pub fn new(
        jetstream: jetstream::Context,
        settings: ApiSettings,
        metrics: Arc<BridgeMetrics>,
    ) -> PublishApi {
        PublishApi {
            jetstream,
            validator: Validator::new(settings.event_max_bytes),
            prefix: settings.redis_channel_prefix,
            keys: settings.keys,
            max_body_bytes: settings.max_body_bytes,
            max_batch: settings.max_batch,
            timeout: settings.timeout,
            metrics,
            permits: Arc::new(Semaphore::new(settings.max_concurrent)),
            logs: Mutex::new((
                RejectLog::new(REJECT_LOG_INTERVAL),
                RejectLog::new(REJECT_LOG_INTERVAL),
            )),
        }
    }
}

pub fn router(api: Arc<PublishApi>) -> Router {
    Router::new()
        .route(PUBLISH_PATH, post(publish))
        .with_state(api)
}

/// Serves until `shutdown`; requests under way finish (each within `PUBLISH_TIMEOUT`).
pub async fn serve(listener: TcpListener, api: Arc<PublishApi>, shutdown: CancellationToken) {
    let result = axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "publish API server failed");
    }
}

/// A request refused as a whole: nothing of it was stored.
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.reason, "message": self.message }));
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

async fn publish(State(api): State<Arc<PublishApi>>, request: Request) -> Response {
    match api.handle(request).await {
        Ok(response) => response,
        Err(refusal) => {
            api.refused(refusal.reason, &refusal.message);
            refusal.into_response()
        }
    }
}

impl PublishApi {
    async fn handle(&self, request: Request) -> Result<Response, Refusal> {
        let (parts, body) = request.into_parts();
        let producer = self.authenticate(&parts.headers)?;
        if !is_json(&parts.headers) {
            return Err(refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the event as Content-Type: application/json",
            ));
        }
        // Held until the answer: bounds the bodies in memory and the acks awaited at once.
        let _permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many publish requests at once (PUBLISH_MAX_CONCURRENT); retry after a second",
            )
        })?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let bytes = self.read_body(body, deadline).await?;
        let header_key = match parts.headers.get(IDEMPOTENCY_KEY_HEADER) {
            Some(value) => Some(value.to_str().map_err(|_| {
                refusal(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    "the Idempotency-Key header is not visible ASCII",
                )
            })?),
            None => None,
        };
        let parsed =
            body::parse(&bytes, header_key, self.max_batch).map_err(|error| match error {
                BodyError::Malformed(message) => {
                    refusal(StatusCode::BAD_REQUEST, "malformed", message)
                }
                BodyError::TooManyItems { .. } => refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_many_items",
                    error.to_string(),
                ),
            })?;
        let routed = parsed
            .events
            .into_iter()
            .map(|posted| {
                route_posted(
                    &self.validator,
                    &self.prefix,
                    posted.event,
                    posted.idempotency_key.as_deref(),
                )
            })
            .collect();
        let outcomes = self.store(routed, &producer, deadline).await;
        let unacknowledged = count(&outcomes, |o| matches!(o, Outcome::Unacknowledged { .. }));
        if unacknowledged > 0 {
            self.refused("ack_timeout", &format!("{unacknowledged} event(s) not acknowledged by JetStream in time (PUBLISH_TIMEOUT); answered 503 with the stored ones"));
        }
        if !parsed.batch {
            let outcome = outcomes
                .into_iter()
                .next()
                .unwrap_or(Outcome::Unacknowledged {
                    message: "nothing was published".into(),
                });
            let status = match &outcome {
                Outcome::Stored { .. } => StatusCode::OK,
                Outcome::Rejected { message, .. } => {
                    self.refused("event_rejected", message);
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                Outcome::Unacknowledged { .. } => StatusCode::SERVICE_UNAVAILABLE,
            };
            return Ok((status, Json(outcome)).into_response());
        }
        let answer = BatchAnswer {
            stored: count(&outcomes, |o| matches!(o, Outcome::Stored { .. })),
            rejected: count(&outcomes, |o| matches!(o, Outcome::Rejected { .. })),
            unacknowledged,
            results: outcomes,
        };
        let status = if answer.unacknowledged > 0 {
            StatusCode::SERVICE_UNAVAILABLE
        } else if answer.rejected > 0 {
            StatusCode::MULTI_STATUS
        } else {
            StatusCode::OK
        };
        Ok((status, Json(answer)).into_response())
    }

    /// The id of the publish key presented as `Authorization: Bearer <key>`.
    fn authenticate(&self, headers: &HeaderMap) -> Result<String, Refusal> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if let Some(key) = bearer {
            return match self.keys.check(key.trim()) {
                Some(id) => Ok(id.to_owned()),
                None => Err(refusal(
                    StatusCode::UNAUTHORIZED,
                    "invalid_key",
                    "the bearer key is not one of PUBLISH_API_KEYS",
                )),
            };
        }
        if headers.contains_key("x-api-key") || headers.contains_key(header::AUTHORIZATION) {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "read_credential",
                "publishing takes a publish key (PUBLISH_API_KEYS) as Authorization: Bearer <key>; \
                 the gateways' API keys and tokens only read",
            ));
        }
        Err(refusal(
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
            "send a publish key (PUBLISH_API_KEYS) as Authorization: Bearer <key>",
        ))
    }

    /// The whole body, at most `PUBLISH_MAX_BODY_BYTES`, by the deadline.
    async fn read_body(
        &self,
        body: Body,
        deadline: tokio::time::Instant,
    ) -> Result<Bytes, Refusal> {
        let max = self.max_body_bytes;
        let too_large = || {
            refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is over {max} bytes (PUBLISH_MAX_BODY_BYTES); send fewer events per request"),
            )
        };
        let mut stream = body.into_data_stream();
        let mut buffer = BytesMut::new();
        let read = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|error| {
                    refusal(
                        StatusCode::BAD_REQUEST,
                        "malformed",
                        format!("the body could not be read: {error}"),
                    )
                })?;
                if buffer.len() + chunk.len() > max {
                    return Err(too_large());
                }
                buffer.extend_from_slice(&chunk);
            }
            Ok(())
        };
        match timeout_at(deadline, read).await {
            Ok(Ok(())) => Ok(buffer.freeze()),
            Ok(Err(refusal)) => Err(refusal),
            Err(_) => Err(refusal(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the body did not arrive within PUBLISH_TIMEOUT",
            )),
        }
    }

    /// Counts and logs (at most once per reason per interval) a refused request.
    fn refused(&self, reason: &'static str, message: &str) {
        self.metrics.http_refused(reason);
        let admitted = self
            .logs
            .lock()
            .ok()
            .and_then(|mut logs| logs.1.admit(reason, std::time::Instant::now()));
        if let Some(suppressed) = admitted {
            tracing::warn!(
                reason,
                suppressed,
                message = message.escape_debug().to_string(),
                "publish request refused"
            );
        }
    }
}

fn refusal(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason,
        message: message.into(),
    }
}

fn unacknowledged(message: &str) -> Outcome {
    Outcome::Unacknowledged {
        message: format!("{message}; publish it again with the same idempotency key"),
    }
}

fn count(outcomes: &[Outcome], which: impl Fn(&Outcome) -> bool) -> usize {
    outcomes.iter().filter(|outcome| which(outcome)).count()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}
