//! The single source of truth for RAKUDA real-time events.
//!
//! Workers publish a [`RealTimeEvent`] as JSON on a Redis channel `rakuda:realtime:<channel>`;
//! the bridge checks it with [`Validator`] and mirrors it to the NATS subject
//! `rakuda.realtime.<channel>`; gateways deliver it to browsers as a [`SequencedEvent`] or, when
//! debounced, inside a [`BatchFrame`]. The TypeScript types of `web/` are generated from these
//! types by [`typescript::definitions`], never written by hand.
//!
//! # Layout
//! - [`channel`] — the one table of event type ↔ Redis channel ↔ NATS subject.
//! - [`event`] — the event a worker publishes.
//! - [`json`] — strict JSON reading: no repeated keys, raw values kept as written.
//! - [`validate`] — checks raw bytes against the contract and names the reason for a reject.
//! - [`reject`] — the closed set of reject reasons.
//! - [`dlq`] — what the gateway's DLQ route answers (rejected messages, counts per reason).
//! - [`control`] — what bridges write into the stream besides events (source gaps).
//! - [`frame`] — what a gateway sends to clients (event with `seq`, batch, heartbeat, reset).
//! - [`vocabulary`] — the gateway's closed sets: refusals, resets, replay sources, close codes.
//! - [`ws`] — the WebSocket envelope: client ops and every server message.
//! - [`history`] — what the gateway's summary and snapshot routes answer.
//! - [`status`] — what the gateway's `/status` answers.
//! - [`typescript`] — the generated TypeScript definitions.

pub mod channel;
pub mod control;
pub mod dlq;
pub mod event;
pub mod frame;
pub mod history;
pub mod json;
pub mod reject;
pub mod status;
pub mod typescript;
pub mod validate;
pub mod vocabulary;
pub mod ws;

pub use channel::{Channel, Coalesce, CHANNELS};
pub use control::{GapReason, SourceGap};
pub use dlq::{DlqPage, RejectCounts, RejectedMessage};
pub use event::{Action, EventType, Payload, RealTimeEvent, Timestamp};
pub use frame::{BatchFrame, Frame, Heartbeat, ResetNotice, SequencedEvent};
pub use history::{SnapshotPage, Summary};
pub use reject::{Reject, RejectReason};
pub use status::{
    CanaryStatus, ConnectionsNow, GatewayStatus, Health, NatsStatus, StatusSettings, StreamStatus,
};
pub use validate::{validate, ValidEvent, Validator, DEFAULT_MAX_EVENT_BYTES};
pub use vocabulary::{ClientResetReason, CloseCode, ReplaySource, RequestRefusal, ResetReason};
pub use ws::{
    ClientOp, Pong, ServerMessage, ServerReply, StreamMessage, Subscribed, WsErrorKind,
    WsErrorNotice,
};
