//! Every path the gateway serves, in one table. The routers and the front door both read it:
//! the front door sends [`EVENTS`] down its own fast path (SSE on the socket), so a path
//! written twice could quietly send SSE through hyper instead.

/// SSE stream (`transport::sse`), served on its socket by `server::socket`.
pub(crate) const EVENTS: &str = "/api/realtime/events";
/// WebSocket upgrade (`transport::ws`).
pub(crate) const WS: &str = "/api/realtime/ws";
/// Today's totals per channel (`history::routes`).
pub(crate) const SUMMARY: &str = "/api/realtime/summary";
/// The latest state of every entity, paged (`history::routes`).
pub(crate) const SNAPSHOT: &str = "/api/realtime/snapshot";
/// The rejected messages, for administrators (`history::routes::dlq`).
pub(crate) const DLQ: &str = "/api/realtime/dlq";
/// Settings and health, for administrators (`status`).
pub(crate) const STATUS: &str = "/api/realtime/status";
/// The counters, this instance's or the cluster's, for administrators (`status`).
pub(crate) const STATS: &str = "/api/realtime/stats";
/// Mints a short-lived token for `EventSource` (`edge::routes`).
pub(crate) const TOKEN: &str = "/api/realtime/token";
/// Prometheus, no credential (`status`).
pub(crate) const METRICS: &str = "/metrics";
/// Liveness, no credential (`status`).
pub(crate) const HEALTHZ: &str = "/healthz";
/// Readiness, no credential (`status`).
pub(crate) const READYZ: &str = "/readyz";
