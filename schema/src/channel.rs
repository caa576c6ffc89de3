//! The mapping between event types, Redis channels and NATS subjects.
//!
//! Everything that needs to know "which channel carries which type" reads [`CHANNELS`]; there is
//! no second `match` on event types anywhere, so adding a channel is one row here.

use crate::event::EventType;

/// Prefix of the Redis pub/sub channels workers publish on (`rakuda:realtime:inventory`, ...).
pub const DEFAULT_REDIS_CHANNEL_PREFIX: &str = "rakuda:realtime:";
/// Prefix of the NATS subjects the bridge publishes to: `rakuda.realtime.<channel>.<entity>`
/// (see [`Channel::entity_subject`]).
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
/// The stream that keeps the latest event of every entity is named after the event stream with
/// this suffix (`RAKUDA_REALTIME_LATEST`): it sources the event stream and keeps one message per
/// subject, and subjects are per entity.
pub const LATEST_STREAM_NAME_SUFFIX: &str = "_LATEST";
/// What the latest-state stream sources, and every client event's subject:
/// `rakuda.realtime.<channel>.<token>`. The token is the entity on channels that keep a latest
/// state ([`Channel::keeps_latest`]) and [`KEEP_ALL_TOKEN`] on the others (orders), so the
/// latest-state stream holds one message per entity of a state-like channel and one message in
/// all for each of the others, however many orders arrive. The source gap marker
/// ([`SOURCE_GAP_SUBJECT`]) matches too (one message); readers skip it as they skip every
/// internal subject.
///
/// Why the choice lives in the subject and not in the latest-state stream's sources: NATS 2.9
/// (what Debian ships, and `ops/bootstrap.sh` installs) takes one filter per source and ignores,
/// without an error, a second source from the same stream (nats-io/nats-server#1306; 2.10
/// allows it), so "inventory, pricing and listings but not orders" cannot be a source filter.
pub const ENTITY_SUBJECTS: &str = "rakuda.realtime.*.*";
/// The last token of every event of a channel that keeps no latest state
/// (`rakuda.realtime.orders.~all`): never an entity token (plain tokens have no `~`, digests are
/// 23 characters).
pub const KEEP_ALL_TOKEN: &str = "~all";

/// The name of the latest-state stream of the event stream `stream_name`.
pub fn latest_stream_name(stream_name: &str) -> String {
    format!("{stream_name}{LATEST_STREAM_NAME_SUFFIX}")
}
/// Longest entity id used as is in a subject; longer ones, or ones with other characters, are
/// replaced by a digest.
pub const MAX_PLAIN_ENTITY_TOKEN: usize = 64;
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

    /// The channel of a NATS subject (`rakuda.realtime.orders.o-17`, or the older
    /// per-channel `rakuda.realtime.orders`), if it is one of ours.
    pub fn by_subject(subject: &str) -> Option<&'static Channel> {
        let rest = subject.strip_prefix(SUBJECT_PREFIX)?;
        let name = rest.split_once('.').map_or(rest, |(name, _)| name);
        Channel::by_name(name)
    }

    /// Every subject of this channel: `rakuda.realtime.<channel>.>` (a consumer filter).
    pub fn subjects(&self) -> String {
        format!("{SUBJECT_PREFIX}{}.>", self.name)
    }

    /// The subject of one entity's events: `rakuda.realtime.<channel>.<token>`. One subject
    /// per entity lets JetStream keep the latest event of each (a stream with one message per
    /// subject) and count a channel's events by subject filter.
    pub fn entity_subject(&self, id: &str) -> String {
        format!("{SUBJECT_PREFIX}{}.{}", self.name, entity_token(id))
    }

    /// Whether the channel has a state per entity that a newer event replaces (inventory,
    /// pricing, listings): what the latest-state stream keeps and `/snapshot` serves. Orders
    /// have none (each is its own event); internal channels are never served.
    pub fn keeps_latest(&self) -> bool {
        self.coalesce == Coalesce::LatestPerId && !self.internal
    }

    /// The subject an event of entity `id` is stored under: its entity subject on channels
    /// that keep a latest state; `rakuda.realtime.<channel>.~all` on the other client channels
    /// (orders), so that they take one place in the latest-state stream, not one per order;
    /// `rakuda.realtime.<channel>` on internal channels (the canary), which take none.
    pub fn event_subject(&self, id: &str) -> String {
        if self.internal {
            format!("{SUBJECT_PREFIX}{}", self.name)
        } else if self.keeps_latest() {
            self.entity_subject(id)
        } else {
            format!("{SUBJECT_PREFIX}{}.{KEEP_ALL_TOKEN}", self.name)
        }
    }

    /// The Redis channel workers publish this channel's events on, under `prefix`.
    pub fn redis_channel(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.name)
    }
}

/// An entity id as one subject token: the id itself when it is letters, digits, `-` and `_`
/// (at most [`MAX_PLAIN_ENTITY_TOKEN`] bytes), else `~` and the base64url of the first 16 bytes
/// of its SHA-256 (`~` never starts a plain token, so the two forms cannot collide). The event
/// itself always carries the full id.
pub fn entity_token(id: &str) -> std::borrow::Cow<'_, str> {
    let plain = !id.is_empty()
        && id.len() <= MAX_PLAIN_ENTITY_TOKEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        return std::borrow::Cow::Borrowed(id);
    }
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    std::borrow::Cow::Owned(format!("~{token}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_subjects_are_one_token_per_entity() {
        let inventory = Channel::of(EventType::InventoryChange);
        assert_eq!(
            inventory.entity_subject("prod_123"),
            "rakuda.realtime.inventory.prod_123"
        );
        for awkward in ["a.b", "a b", "*", ">", "ünï", "", &"x".repeat(65)] {
            let subject = inventory.entity_subject(awkward);
            let token = subject.rsplit('.').next().unwrap_or_default();
            assert!(
                token.starts_with('~') && token.len() == 23,
                "{awkward:?} -> {subject}"
            );
            assert!(!token.contains(['.', '*', '>', ' ']), "{subject}");
        }
        assert_ne!(
            inventory.entity_subject("a.b"),
            inventory.entity_subject("a_b")
        );
        assert_eq!(
            Channel::by_subject("rakuda.realtime.inventory.~abc").map(|c| c.name),
            Some("inventory")
        );
        assert_eq!(
            Channel::by_subject("rakuda.realtime.orders").map(|c| c.name),
            Some("orders")
        );
        assert_eq!(Channel::by_subject("rakuda.realtime.nope.x"), None);
        assert_eq!(inventory.subjects(), "rakuda.realtime.inventory.>");
        assert_eq!(
            inventory.event_subject("p1"),
            "rakuda.realtime.inventory.p1"
        );
        let canary = Channel::of(EventType::Canary);
        assert_eq!(canary.event_subject("probe-1"), "rakuda.realtime.canary");
        // Orders keep no latest state: all of them share one subject, inside the filter.
        let orders = Channel::of(EventType::OrderReceived);
        assert_eq!(orders.event_subject("o-17"), "rakuda.realtime.orders.~all");
        assert_eq!(
            Channel::by_subject(&orders.event_subject("o-17")),
            Some(orders)
        );
    }

    #[test]
    fn the_channels_that_keep_a_latest_state_are_the_state_like_client_channels() {
        let keeping: Vec<&str> = CHANNELS
            .iter()
            .filter(|channel| channel.keeps_latest())
            .map(|channel| channel.name)
            .collect();
        assert_eq!(keeping, ["inventory", "pricing", "listings"]);
        // The latest-state stream's filter takes each client event's subject (one token after
        // the channel), and no canary probe.
        let matches = |subject: &str| {
            let tokens: Vec<&str> = subject.split('.').collect();
            tokens.len() == 4 && subject.starts_with(SUBJECT_PREFIX)
        };
        assert_eq!(ENTITY_SUBJECTS, "rakuda.realtime.*.*");
        for channel in CHANNELS {
            assert_eq!(matches(&channel.event_subject("x1")), !channel.internal);
        }
    }

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
        assert_eq!(
            inventory.entity_subject("p1"),
            "rakuda.realtime.inventory.p1"
        );
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
