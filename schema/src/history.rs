//! What a page reads when it opens, besides the stream: `GET /api/realtime/summary` (today's
//! totals, [`Summary`]) and `GET /api/realtime/snapshot` (the latest event of every entity, in
//! pages, [`SnapshotPage`]). See docs/PROTOCOL.md, "Backfill, summary and snapshot".
//!
//! Some fields are optional in TypeScript although this gateway always sends them: older
//! gateways did not, and the web client takes their answers too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::frame::SequencedEvent;

/// The answer of `GET /api/realtime/summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The gateway's `SUMMARY_TIMEZONE`, e.g. "Asia/Tokyo".
    pub timezone: String,
    /// Local midnight in that timezone, RFC 3339: "today" starts here.
    pub today_since: String,
    pub last_hour_since: String,
    /// Events per type stored since `todaySince` (the types the credential may read), keyed by
    /// the type's wire name.
    #[ts(type = "Partial<Record<EventType, number>>")]
    pub today: BTreeMap<String, u64>,
    #[ts(type = "Partial<Record<EventType, number>>")]
    pub last_hour: BTreeMap<String, u64>,
    /// The counts cover the stream up to this sequence; add live events after it.
    #[ts(type = "number")]
    pub through_seq: u64,
    /// Whether the counts are the truth as of `throughSeq`: `false` when events kept arriving
    /// while the gateway counted (the counts may miss a few stored meanwhile: fetch a newer
    /// summary), or when a window is not complete.
    pub exact: bool,
    /// `false` when the stream no longer holds every event since `todaySince` (trimmed by
    /// `STREAM_MAX_MESSAGES`/`STREAM_MAX_AGE`): `today` counts from `firstHeldAt` only. Absent
    /// from older gateways.
    #[ts(as = "Option<bool>", optional)]
    pub today_complete: bool,
    /// The same for `lastHourSince`. Absent from older gateways.
    #[ts(as = "Option<bool>", optional)]
    pub last_hour_complete: bool,
    /// The oldest event the stream still holds: its sequence, and when it was stored (RFC
    /// 3339). Absent from older gateways.
    #[ts(as = "Option<f64>", optional)]
    pub first_held_seq: u64,
    #[ts(as = "Option<String>", optional)]
    pub first_held_at: String,
    pub computed_at: String,
}

/// One page of `GET /api/realtime/snapshot`.
///
/// The gateway writes a page as it takes it from memory, not through this type; its tests
/// check the bytes against this type's serialization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct SnapshotPage {
    /// The latest event of each entity, with its sequence in the event stream.
    pub events: Vec<SequencedEvent>,
    /// Pass as `after` for the next page; `null` at the end.
    #[ts(type = "number | null")]
    pub next: Option<u64>,
    /// `true` while the latest-state stream is at `LATEST_MAX_ENTITIES` and drops the least
    /// recently changed entities: the snapshot may miss some. Absent from older gateways.
    #[ts(as = "Option<bool>", optional)]
    pub partial: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_has_the_documented_keys_in_order() {
        let summary = Summary {
            timezone: "Asia/Tokyo".into(),
            today_since: "2026-11-30T15:00:00Z".into(),
            last_hour_since: "2026-12-01T04:12:00Z".into(),
            today: BTreeMap::from([
                ("ORDER_RECEIVED".into(), 96),
                ("INVENTORY_CHANGE".into(), 8120),
            ]),
            last_hour: BTreeMap::new(),
            through_seq: 1041,
            exact: true,
            today_complete: true,
            last_hour_complete: true,
            first_held_seq: 1,
            first_held_at: "2026-11-29T09:00:00.002Z".into(),
            computed_at: "2026-12-01T04:12:00.120Z".into(),
        };
        assert_eq!(
            serde_json::to_string(&summary).expect("json"),
            r#"{"timezone":"Asia/Tokyo","todaySince":"2026-11-30T15:00:00Z","lastHourSince":"2026-12-01T04:12:00Z","today":{"INVENTORY_CHANGE":8120,"ORDER_RECEIVED":96},"lastHour":{},"throughSeq":1041,"exact":true,"todayComplete":true,"lastHourComplete":true,"firstHeldSeq":1,"firstHeldAt":"2026-11-29T09:00:00.002Z","computedAt":"2026-12-01T04:12:00.120Z"}"#
        );
    }

    #[test]
    fn a_snapshot_page_is_events_next_and_partial() {
        let page = SnapshotPage {
            events: Vec::new(),
            next: None,
            partial: false,
        };
        assert_eq!(
            serde_json::to_string(&page).expect("json"),
            r#"{"events":[],"next":null,"partial":false}"#
        );
    }
}
