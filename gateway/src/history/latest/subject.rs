//! Which subjects `<STREAM_NAME>_LATEST` holds and in which class of entries each goes, and the
//! subject names the state keys its entries by (inline when short).

use rakuda_schema::channel::SUBJECT_PREFIX;
use rakuda_schema::CHANNELS;

/// Classes of entries: one per channel (those with a latest state carry events), and one for
/// the entries that only count.
pub(super) const CLASSES: usize = CHANNELS.len() + 1;
pub(super) const COUNT_ONLY: usize = CHANNELS.len();

/// Where `subject` goes, if `<STREAM_NAME>_LATEST` holds it: it takes
/// `rakuda.realtime.*.*` (see [`rakuda_schema::channel::ENTITY_SUBJECTS`]). The class of the
/// channel when the channel keeps a latest state, else [`COUNT_ONLY`]; and the subject after
/// the prefix all share (`<channel>.<token>`).
pub(super) fn class_of(subject: &str) -> Option<(usize, &str)> {
    let rest = subject.strip_prefix(SUBJECT_PREFIX)?;
    let (channel, token) = rest.split_once('.')?;
    if channel.is_empty() || token.is_empty() || token.contains('.') {
        return None;
    }
    let class = CHANNELS
        .iter()
        .position(|c| c.name == channel && c.keeps_latest())
        .unwrap_or(COUNT_ONLY);
    Some((class, rest))
}

/// Bytes of a [`Name`] kept inline: `inventory.` and a 20-byte token (a [`Name`] is then 32
/// bytes, as large as a pointer to a longer one with its length and tag).
pub(super) const NAME_INLINE: usize = 30;

/// A subject after its common prefix (`inventory.prod_123`), inline when short (nearly all
/// are): the feed's lookup of it then reads no memory beside the map's own.
#[derive(Clone)]
pub(super) enum Name {
    Inline { len: u8, bytes: [u8; NAME_INLINE] },
    Long(Box<[u8]>),
}

impl Name {
    pub(super) fn new(name: &[u8]) -> Name {
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= NAME_INLINE => {
                let mut bytes = [0u8; NAME_INLINE];
                bytes[..name.len()].copy_from_slice(name);
                Name::Inline { len, bytes }
            }
            _ => Name::Long(name.into()),
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Name::Long(bytes) => bytes,
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl std::hash::Hash for Name {
    // As `[u8]` hashes: a lookup by the bytes alone finds the name.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::borrow::Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}
