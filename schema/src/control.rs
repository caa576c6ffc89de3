//! What the bridges write into the stream besides events.

use serde::{Deserialize, Serialize};

use crate::event::Timestamp;

/// Why a bridge recorded a source gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// A bridge subscribed to Redis and found no record of any bridge before it: whatever was
    /// published before is unaccounted for (the first start, or Redis lost its state).
    Start,
    /// A bridge's subscription ended (restart, crash, Redis closed it, a message dropped on a
    /// full queue) and no other bridge was subscribed across that point.
    Departed,
    /// Redis is another process than the one the bridges' account was kept in (its `run_id`
    /// changed): it restarted, perhaps from an older snapshot that rewound the account, or a
    /// replica took over. Every subscription ended with the old process, and whatever was
    /// published before a bridge subscribed to the new one is unaccounted for.
    RedisRestarted,
}

/// The marker on [`crate::channel::SOURCE_GAP_SUBJECT`]: events published on Redis before this
/// point may never have reached the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceGap {
    pub reason: GapReason,
    /// The subscriptions whose end nobody covered (`<bridge>.<span>`), or the one that started.
    pub spans: Vec<String>,
    /// The bridge subscription that noticed.
    pub noticed_by: String,
    pub at: Timestamp,
}
