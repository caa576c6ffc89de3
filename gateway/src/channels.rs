//! A set of client-visible channels: what a connection asked for, or what a token allows.

use rakuda_schema::{Channel, CHANNELS};

/// A set of channels of [`CHANNELS`], as a bit per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelSet(u8);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel `{0}`: use one or more of {all}", all = ChannelSet::names_of_all())]
pub struct UnknownChannel(pub String);

impl ChannelSet {
    /// Every channel a client may receive (internal ones excluded).
    pub fn all() -> ChannelSet {
        let mut set = ChannelSet(0);
        for (index, channel) in CHANNELS.iter().enumerate() {
            if !channel.internal {
                set.0 |= 1 << index;
            }
        }
        set
    }

    /// The client channels that keep a latest state per entity (what `/snapshot` serves).
    pub fn keeping_latest() -> ChannelSet {
        let mut set = ChannelSet(0);
        for (index, channel) in CHANNELS.iter().enumerate() {
            if channel.keeps_latest() {
                set.0 |= 1 << index;
            }
        }
        set
    }

    /// Parses `inventory,orders`; names must be client-visible channels.
    pub fn parse(list: &str) -> Result<ChannelSet, UnknownChannel> {
        Self::from_names(
            list.split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty()),
        )
    }

    pub fn from_names<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<ChannelSet, UnknownChannel> {
        let mut set = ChannelSet(0);
        for name in names {
            let index = CHANNELS
                .iter()
                .position(|c| c.name == name && !c.internal)
                .ok_or_else(|| UnknownChannel(name.chars().take(64).collect()))?;
            set.0 |= 1 << index;
        }
        Ok(set)
    }

    pub fn contains(&self, channel: &Channel) -> bool {
        CHANNELS
            .iter()
            .position(|c| c.name == channel.name)
            .is_some_and(|index| self.0 & (1 << index) != 0)
    }

    pub fn union(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 | other.0)
    }

    pub fn minus(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 & !other.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn is_subset_of(&self, other: ChannelSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The channels of the set, in table order.
    pub fn iter(&self) -> impl Iterator<Item = &'static Channel> + '_ {
        CHANNELS
            .iter()
            .enumerate()
            .filter(|(index, _)| self.0 & (1 << index) != 0)
            .map(|(_, c)| c)
    }

    pub fn names(&self) -> Vec<&'static str> {
        CHANNELS
            .iter()
            .enumerate()
            .filter(|(index, _)| self.0 & (1 << index) != 0)
            .map(|(_, c)| c.name)
            .collect()
    }

    fn names_of_all() -> String {
        ChannelSet::all().names().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_membership() {
        let set = ChannelSet::parse("inventory, orders").expect("valid");
        assert!(set.contains(Channel::by_name("orders").expect("row")));
        assert!(!set.contains(Channel::by_name("pricing").expect("row")));
        assert!(set.is_subset_of(ChannelSet::all()));
        assert_eq!(set.names(), vec!["inventory", "orders"]);
        assert_eq!(
            ChannelSet::all().names(),
            vec!["inventory", "orders", "pricing", "listings"]
        );
    }

    #[test]
    fn unknown_and_internal_channels_are_named() {
        let error = ChannelSet::parse("orders,warehouse").expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "unknown channel `warehouse`: use one or more of inventory, orders, pricing, listings"
        );
        assert!(ChannelSet::parse("canary").is_err());
    }
}
