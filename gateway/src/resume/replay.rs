//! What a resuming connection sends before the live feed: nothing, a `reset`, or the missed
//! events, coalesced and serialized one frame at a time.

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use rakuda_schema::ResetReason;

use super::budget::Reservation;
use crate::fanout::coalesce::Folded;
use crate::fanout::frame::{sse_folded, ws_folded};
use crate::fanout::Cursor;

/// What a connection sends before the live feed.
pub(crate) enum Start {
    Nothing,
    /// `reset` with this reason and the cursor to continue from.
    Reset(ResetReason, Cursor),
    /// Missed events, coalesced.
    Replay(Replay),
}

/// Missed events, coalesced, serialized one frame at a time in the form the connection speaks
/// (never both), while their bytes are reserved in the replay budget; only the last frame
/// announces the cursor, so a client cut off mid-replay keeps its old one.
pub(crate) struct Replay {
    frames: Vec<Folded>,
    cursor: Cursor,
    _reservation: Reservation,
}

impl Replay {
    pub(super) fn new(frames: Vec<Folded>, cursor: Cursor, reservation: Reservation) -> Replay {
        Replay {
            frames,
            cursor,
            _reservation: reservation,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// The cursor the frame at `index` announces, if it does.
    fn id(&self, index: usize) -> Option<Cursor> {
        (index + 1 == self.frames.len()).then_some(self.cursor)
    }

    /// The frames as SSE records, each made when it is asked for.
    pub(crate) fn sse_records(&self) -> impl Iterator<Item = Bytes> + '_ {
        (0..self.frames.len()).map(|index| sse_folded(&self.frames[index], self.id(index)))
    }

    /// The frames as WebSocket messages, each made when it is asked for.
    pub(crate) fn ws_messages(&self) -> impl Iterator<Item = Utf8Bytes> + '_ {
        (0..self.frames.len()).map(|index| ws_folded(&self.frames[index], self.id(index)))
    }
}
