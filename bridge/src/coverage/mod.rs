//! Knowing when events may have been lost before they reached the stream, and saying so.
//!
//! Redis pub/sub keeps nothing for an absent subscriber: whatever a worker publishes while no
//! bridge is subscribed is gone, and so is what a bridge read but had not stored when it
//! crashed. With two bridges, one restarting loses nothing: the other stored everything. The
//! bridges therefore keep a shared account, in Redis, of who was subscribed when, and write a
//! marker into the stream ([`rakuda_schema::SourceGap`]) whenever nobody was; gateways answer
//! it with `reset` (`source_gap`), live and on resume.
//!
//! The account is kept in **beacon numbers**: every interval each bridge runs a script that
//! takes the next number of a counter and publishes it on the beacon channel in the same
//! atomic step, so the numbers follow Redis's order of publication. Each subscription ("span")
//! knows the first beacon it read (it received everything published after) and, once the
//! publisher has every earlier message acknowledged, up to which beacon everything it read is
//! in the stream. A span that ended (restart, crash, a connection Redis closed, a message
//! dropped on a full queue) or went silent is covered if another span received and stored
//! across its end point; otherwise, once some span reads beacons again, a gap marker is
//! written, exactly once (the deciding script runs atomically and claims it).
//!
//! Numbers compare only within one chain, and a chain is numbered by one Redis process (its
//! `run_id`). Redis restarted, perhaps from an older snapshot whose counter is behind numbers
//! the bridges already read, or replaced by a replica, starts a new chain, and the gap is marked
//! as such ([`rakuda_schema::GapReason::RedisRestarted`]) instead of judged from numbers that
//! may come round again.
//!
//! # Layout
//! - [`spans`] — this process's spans, shared by the subscriber, publisher and task.
//! - [`registry`] — the Redis side: `beacon.lua`, `refresh.lua` (the rules), `confirm.lua`.
//! - [`task`] — the periodic round: beacon, report, markers.

pub mod registry;
pub mod spans;
pub mod task;

pub use spans::{Checkpoint, Coverage, Record};
pub use task::{stale_after, CoverageTask};
