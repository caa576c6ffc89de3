//! The mapping between event types, Redis channels and NATS subjects.
//!
//! Everything that needs to know "which channel carries which type" reads [`CHANNELS`]; there is
//! no second `match` on event types anywhere, so adding a channel is one row here.

use crate::event::EventType;

/// Prefix of the Redis pub/sub channels workers publish on (`rakuda:realtime:inventory`, ...).
pub const DEFAULT_REDIS_CHANNEL_PREFIX: &str = "rakuda:realtime:";
/// Prefix of the NATS subjects the bridge publishes to (`rakuda.realtime.inventory`, ...).
pub const SUBJECT_PREFIX: &str = "rakuda.realtime.";
/// The subjects of the JetStream stream that holds every event.
pub const STREAM_SUBJECTS: &str = "rakuda.realtime.>";
/// Where the bridge sends messages it rejects, with header [`REJECT_REASON_HEADER`].
pub const DLQ_SUBJECT: &str = "rakuda.dlq.realtime";
/// The subjects of the stream that keeps rejected messages for inspection.
pub const DLQ_STREAM_SUBJECTS: &str = "rakuda.dlq.>";
/// Header that names why a message went to the DLQ (a [`crate::RejectReason`] string).
pub const REJECT_REASON_HEADER: &str = "Rakuda-Reject-Reason";
/// Header that carries the Redis channel a rejected message arrived on.
pub const SOURCE_CHANNEL_HEADER: &str = "Rakuda-Source-Channel";
/// Where bridges record, in the stream, that events may have been lost before this point
/// because no bridge was subscribed to Redis (a [`crate::SourceGap`]). Gateways answer it with
/// `reset` (`source_gap`).
pub const SOURCE_GAP_SUBJECT: &str = "rakuda.realtime.control.source_gap";
/// The Redis channel (after the prefix) the bridges' beacons travel on. Workers must not
/// publish here: deploy Redis with an ACL that lets them publish only on the event channels.
pub const BEACON_CHANNEL: &str = "control:beacon";

/// How a debounce batch folds several events of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coalesce {
    /// State-like events: the screen needs the current state, so the latest event per
    /// `payload.id` wins.
    LatestPerId,
    /// Every event matters (an order is never "replaced" by the next one).
    KeepAll,
}

/// One row of the channel table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// The channel's short name: the suffix of both the Redis channel and the NATS subject.
    pub name: &'static str,
    /// The only event type allowed on this channel.
    pub event_type: EventType,
    /// How debounce folds a batch of this type.
    pub coalesce: Coalesce,
    /// Internal channels (the canary) flow through the whole path but never reach clients.
    pub internal: bool,
}

/// Every channel, in the order of DESIGN.md.
pub const CHANNELS: [Channel; 5] = [
    Channel {
        name: "inventory",
        event_type: EventType::InventoryChange,
        coalesce: Coalesce::LatestPerId,
        internal: false,
    },
    Channel {
        name: "orders",
        event_type: EventType::OrderReceived,
        coalesce: Coalesce::KeepAll,
        internal: false,
    },
    Channel {
        name: "pricing",
        event_type: EventType::PriceChange,
        coalesce: Coalesce::LatestPerId,
        internal: false,
    },
    Channel {
        name: "listings",
        event_type: EventType::ListingUpdate,
        coalesce: Coalesce::LatestPerId,
        internal: false,
    },
    Channel {
        name: "canary",
        event_type: EventType::Canary,
        coalesce: Coalesce::LatestPerId,
        internal: true,
    },
];

impl Channel {
    /// The channel with this short name (`"inventory"`), if there is one.
    pub fn by_name(name: &str) -> Option<&'static Channel> {
        CHANNELS.iter().find(|channel| channel.name == name)
    }

    /// The channel that carries this event type.
    pub fn of(event_type: EventType) -> &'static Channel {
        // Every EventType has exactly one row; the table test below keeps that true.
        CHANNELS
            .iter()
            .find(|channel| channel.event_type == event_type)
            .unwrap_or(&CHANNELS[0])
    }

    /// The channel of a NATS subject (`rakuda.realtime.orders`), if it is one of ours.
    pub fn by_subject(subject: &str) -> Option<&'static Channel> {
        subject
            .strip_prefix(SUBJECT_PREFIX)
            .and_then(Channel::by_name)
    }

    /// The NATS subject events of this channel are published to.
    pub fn subject(&self) -> String {
        format!("{SUBJECT_PREFIX}{}", self.name)
    }

    /// The Redis channel workers publish this channel's events on, under `prefix`.
    pub fn redis_channel(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_exactly_one_channel() {
        for event_type in EventType::ALL {
            let rows = CHANNELS
                .iter()
                .filter(|channel| channel.event_type == event_type)
                .count();
            assert_eq!(rows, 1, "{event_type:?} must have exactly one channel row");
            assert_eq!(Channel::of(event_type).event_type, event_type);
        }
    }

    #[test]
    fn names_subjects_and_redis_channels_match_the_design() {
        let inventory = Channel::of(EventType::InventoryChange);
        assert_eq!(inventory.subject(), "rakuda.realtime.inventory");
        assert_eq!(
            inventory.redis_channel(DEFAULT_REDIS_CHANNEL_PREFIX),
            "rakuda:realtime:inventory"
        );
        assert_eq!(
            Channel::by_subject("rakuda.realtime.orders").map(|c| c.event_type),
            Some(EventType::OrderReceived)
        );
        assert_eq!(Channel::by_subject("rakuda.other.orders"), None);
        assert_eq!(
            Channel::by_name("pricing").map(|c| c.event_type),
            Some(EventType::PriceChange)
        );
        assert_eq!(
            Channel::by_name("listings").map(|c| c.coalesce),
            Some(Coalesce::LatestPerId)
        );
        assert_eq!(
            Channel::by_name("orders").map(|c| c.coalesce),
            Some(Coalesce::KeepAll)
        );
        assert!(Channel::of(EventType::Canary).internal);
    }
}
