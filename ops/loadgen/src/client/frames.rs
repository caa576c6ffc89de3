//! What a frame does to its subscriber's tally, whichever transport carried it: a heartbeat
//! makes the session ready, a `reset` is counted (and calls the target's hook), a load event
//! is recorded, and an `id` becomes the cursor to resume from.

use super::{lock, SharedTally, Target};
use crate::marker::events_in_frame_into;
use crate::tally::Tally;

/// Records a stream that opened on `gateway` (`resumed` with a cursor); how many `reset`s the
/// client had seen by then, for [`after_frames`].
pub(super) fn opened(tally: &SharedTally, gateway: usize, resumed: bool) -> usize {
    let mut tally = lock(tally);
    tally.connected_to(gateway, resumed);
    tally.resets.len()
}

/// Calls the target's reset hook if `reset`s arrived since `seen` was last updated.
pub(super) fn after_frames(target: &Target, url: &str, tally: &SharedTally, seen: &mut usize) {
    if let Some(hook) = &target.on_reset {
        let resets = lock(tally).resets.len();
        if resets > *seen {
            *seen = resets;
            (hook.0)(tally, url);
        }
    }
}

/// Handles one frame's `event` name, `id` and `data`, received at `received_us`.
pub(super) fn handle(
    tally: &mut Tally,
    event: &str,
    id: Option<&str>,
    data: &[u8],
    received_us: u64,
) {
    match event {
        "heartbeat" => {
            #[derive(serde::Deserialize)]
            struct Heartbeat {
                instance: String,
            }
            match serde_json::from_slice::<Heartbeat>(data) {
                Ok(heartbeat) => tally.saw_instance(&heartbeat.instance),
                Err(_) => tally.bad_frames += 1,
            }
        }
        "reset" => {
            #[derive(serde::Deserialize)]
            struct Reset {
                reason: String,
            }
            match serde_json::from_slice::<Reset>(data) {
                Ok(reset) => {
                    tally.resets.push(reset.reason);
                    tally.resets_after_marks.push(tally.marks.len());
                    tally.last_reset_us = Some(received_us);
                }
                Err(_) => tally.bad_frames += 1,
            }
        }
        "subscribed" | "pong" | "error" => {}
        _ => {
            let mut events = std::mem::take(&mut tally.scratch);
            match events_in_frame_into(data, &mut events) {
                Ok(represented) => {
                    tally.record_typed_frame(event, &events, represented, received_us)
                }
                Err(_) => tally.bad_frames += 1,
            }
            tally.scratch = events;
        }
    }
    if let Some(id) = id {
        match &mut tally.cursor {
            Some(cursor) if cursor == id => {}
            Some(cursor) => {
                cursor.clear();
                cursor.push_str(id);
            }
            None => tally.cursor = Some(id.to_owned()),
        }
    }
}
