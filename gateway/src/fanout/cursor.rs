//! The resume cursor `<stream epoch>-<seq>`: every event with a sequence at or below `seq` has
//! been sent. The epoch (the stream's creation time, unix milliseconds) makes a cursor from a stream
//! that was since deleted and recreated detectably stale instead of silently wrong.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: u64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resume cursor `{0}` is not `<epoch>-<seq>` with two whole numbers")]
pub struct MalformedCursor(pub String);

impl FromStr for Cursor {
    type Err = MalformedCursor;

    fn from_str(text: &str) -> Result<Cursor, MalformedCursor> {
        let malformed = || MalformedCursor(text.chars().take(64).collect());
        let (epoch, seq) = text.trim().split_once('-').ok_or_else(malformed)?;
        Ok(Cursor {
            epoch: epoch.parse().map_err(|_| malformed())?,
            seq: seq.parse().map_err(|_| malformed())?,
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.epoch, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let cursor: Cursor = "1732270000-1041".parse().expect("valid");
        assert_eq!(
            cursor,
            Cursor {
                epoch: 1_732_270_000,
                seq: 1041
            }
        );
        assert_eq!(cursor.to_string(), "1732270000-1041");
        for bad in ["", "1041", "abc-1", "1-abc", "1-2-3", "-5", "1--5"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }
}
