//! What the run asks of every worker, one function per command: the command sent, every reply
//! checked to be the kind that command gets, and the replies added up into what the run acts on.

use std::time::Duration;

use super::coordinator::Workers;
use super::run::FleetError;
use super::wire::{Command, Reply, WorkerReport};

/// A delivery that has not arrived this long after the last one is presumed lost.
const QUIET: Duration = Duration::from_secs(5);
/// A reply may take this much longer than the command's own limit.
const REPLY_SLACK: Duration = Duration::from_secs(30);

/// Every reply of a kind, or an error naming what came instead.
fn expect<T>(
    command: &str,
    replies: Vec<Reply>,
    pick: impl Fn(Reply) -> Result<T, Reply>,
) -> Result<Vec<T>, FleetError> {
    replies
        .into_iter()
        .map(|reply| {
            pick(reply).map_err(|other| FleetError::Unexpected {
                command: command.to_owned(),
                reply: format!("{other:?}"),
            })
        })
        .collect()
}

/// Opens every client, in waves, within `limit`; how many are ready.
pub(super) async fn open(workers: &mut Workers, limit: Duration) -> Result<usize, FleetError> {
    let opened = workers
        .ask(
            &Command::Open {
                within_ms: limit.as_millis() as u64,
            },
            limit + REPLY_SLACK,
        )
        .await?;
    let ready = expect("open", opened, |reply| match reply {
        Reply::Opened { ready } => Ok(ready),
        other => Err(other),
    })?;
    Ok(ready.into_iter().sum())
}

/// Waits until every client holds events `0..count`, or nothing arrived for a while
/// ([`QUIET`]), or `limit` passed.
pub(super) async fn wait_marks(
    workers: &mut Workers,
    count: u64,
    limit: Duration,
) -> Result<(), FleetError> {
    let replies = workers
        .ask(
            &Command::WaitMarks {
                count,
                quiet_ms: QUIET.as_millis() as u64,
                limit_ms: limit.as_millis() as u64,
            },
            limit + REPLY_SLACK,
        )
        .await?;
    expect("wait_marks", replies, |reply| match reply {
        Reply::Marks { complete } => Ok(complete),
        other => Err(other),
    })?;
    Ok(())
}

/// The clients a gateway dropped, over every worker, and how many are back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Back {
    /// Clients that were streaming from the gateway at the moment asked about.
    pub(super) dropped: usize,
    pub(super) back: usize,
    /// When the last of them was live again (µs since the epoch).
    pub(super) last_back_us: Option<u64>,
}

impl Back {
    /// Seconds from `since_us` until the last dropped client was back; only once every one
    /// of them is back is there a recovery time to give.
    pub(super) fn recovered_s(&self, since_us: u64) -> Option<f64> {
        (self.back == self.dropped).then(|| {
            self.last_back_us
                .map_or(0.0, |last| last.saturating_sub(since_us) as f64 / 1e6)
        })
    }
}

/// Waits up to `limit` until every client that was on `gateway` at `since_us` is back.
pub(super) async fn wait_back(
    workers: &mut Workers,
    since_us: u64,
    gateway: usize,
    limit: Duration,
) -> Result<Back, FleetError> {
    let replies = workers
        .ask(
            &Command::WaitBack {
                since_us,
                gateway,
                limit_ms: limit.as_millis() as u64,
            },
            limit + REPLY_SLACK,
        )
        .await?;
    let backs = expect("wait_back", replies, |reply| match reply {
        Reply::Back {
            dropped,
            back,
            last_back_us,
        } => Ok(Back {
            dropped,
            back,
            last_back_us,
        }),
        other => Err(other),
    })?;
    Ok(Back {
        dropped: backs.iter().map(|back| back.dropped).sum(),
        back: backs.iter().map(|back| back.back).sum(),
        last_back_us: backs.iter().filter_map(|back| back.last_back_us).max(),
    })
}

/// The clients that saw a `reset`, over every worker, and how many finished their refetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Resets {
    pub(super) reset: usize,
    pub(super) refetched: usize,
    /// When the last refetch finished (µs since the epoch).
    pub(super) last_refetch_us: Option<u64>,
}

/// Waits up to `limit` until every client saw `count` resets and finished as many refetches.
pub(super) async fn wait_resets(
    workers: &mut Workers,
    count: usize,
    limit: Duration,
) -> Result<Resets, FleetError> {
    let replies = workers
        .ask(
            &Command::WaitResets {
                count,
                limit_ms: limit.as_millis() as u64,
            },
            limit + REPLY_SLACK,
        )
        .await?;
    let resets = expect("wait_resets", replies, |reply| match reply {
        Reply::Resets {
            reset,
            refetched,
            last_refetch_us,
        } => Ok(Resets {
            reset,
            refetched,
            last_refetch_us,
        }),
        other => Err(other),
    })?;
    Ok(Resets {
        reset: resets.iter().map(|resets| resets.reset).sum(),
        refetched: resets.iter().map(|resets| resets.refetched).sum(),
        last_refetch_us: resets
            .iter()
            .filter_map(|resets| resets.last_refetch_us)
            .max(),
    })
}

/// Puts `gateway` in every worker's rotation or takes it out; each answers within `limit`.
pub(super) async fn rotate(
    workers: &mut Workers,
    gateway: usize,
    serving: bool,
    limit: Duration,
) -> Result<(), FleetError> {
    let replies = workers
        .ask(&Command::Rotation { gateway, serving }, limit + REPLY_SLACK)
        .await?;
    expect("rotation", replies, |reply| match reply {
        Reply::Rotated => Ok(()),
        other => Err(other),
    })?;
    Ok(())
}

/// Every worker's audit of its clients against events `0..expected`, published from
/// `first_published_us` on (`published_us`: when each was); each answers within `limit`.
pub(super) async fn report(
    workers: &mut Workers,
    expected: u64,
    first_published_us: u64,
    published_us: Vec<u64>,
    limit: Duration,
) -> Result<Vec<WorkerReport>, FleetError> {
    let replies = workers
        .ask(
            &Command::Report {
                expected,
                first_published_us,
                published_us,
            },
            limit + REPLY_SLACK,
        )
        .await?;
    expect("report", replies, |reply| match reply {
        Reply::Report(report) => Ok(*report),
        other => Err(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recovery_time_is_given_only_once_every_dropped_client_is_back() {
        let back = |back, last_back_us| Back {
            dropped: 3,
            back,
            last_back_us,
        };
        assert_eq!(back(3, Some(2_500_000)).recovered_s(1_000_000), Some(1.5));
        assert_eq!(back(2, Some(2_500_000)).recovered_s(1_000_000), None);
        // Nobody was on the gateway: nothing to wait for.
        let none = Back {
            dropped: 0,
            back: 0,
            last_back_us: None,
        };
        assert_eq!(none.recovered_s(1_000_000), Some(0.0));
    }
}
