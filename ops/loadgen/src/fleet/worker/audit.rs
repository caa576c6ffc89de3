//! A worker's audit of its clients: whether a client dropped by a gateway is back, and what each
//! client received against every event published, told apart as the tail still on its way, holes
//! a `reset` told of, and holes nobody told of (the losses that must not happen).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::Client;
use crate::client::lock;
use crate::fleet::wire::{Audit, HistoryStats, WorkerConfig, WorkerReport};
use crate::tally::{SessionInfo, Tally};
use crate::unpoisoned;

/// What every client of a worker saw, audited against events `0..expected` published from
/// `first_published_us` on (`published_us`: when each was): by the gateway each started on,
/// with its resets, refusals, reconnects and history requests.
pub(super) fn report(
    config: &WorkerConfig,
    clients: &[Client],
    history: &Mutex<HistoryStats>,
    expected: u64,
    first_published_us: u64,
    published_us: &[u64],
) -> WorkerReport {
    let mut report = WorkerReport {
        worker: config.worker,
        clients: clients.len(),
        by_gateway: vec![Audit::default(); config.gateways.len().max(1)],
        ..WorkerReport::default()
    };
    let mut per_second: BTreeMap<(usize, u64), u64> = BTreeMap::new();
    for (index, client) in clients.iter().enumerate() {
        if config.speaks_ws(index) {
            report.ws += 1;
        } else {
            report.sse += 1;
        }
        let tally = lock(&client.tally);
        report.live += usize::from(tally.is_ready());
        let audit = &mut report.by_gateway[client.home];
        audit.clients += 1;
        let first_ready = tally.session_info.iter().find_map(|s| s.ready_us);
        if first_ready.is_some_and(|ready| ready > first_published_us) {
            audit.late += 1;
        } else {
            audit_client(audit, &tally, expected, published_us);
        }
        if !tally.resets.is_empty() {
            report.clients_reset += 1;
        }
        for reason in &tally.resets {
            *report.resets.entry(reason.clone()).or_default() += 1;
        }
        for (what, count) in &tally.refusals {
            *report.refusals.entry(what.to_string()).or_default() += count;
        }
        report.failed_connects += tally.failed_connects;
        report.passed_on += tally.passed_on;
        if tally.last_error.is_some() {
            report.last_error.clone_from(&tally.last_error);
        }
        for info in tally.session_info.iter().filter(|info| info.resumed) {
            report.reconnects += 1;
            *per_second
                .entry((info.gateway, info.opened_us / 1_000_000))
                .or_default() += 1;
        }
        for session in &tally.sessions {
            if let Some(end) = &session.end {
                *report.session_ends.entry(end.clone()).or_default() += 1;
            }
        }
        report.bad_frames += tally.bad_frames;
    }
    report.reconnects_per_second = per_second
        .into_iter()
        .map(|((gateway, second), count)| (gateway, second, count))
        .collect();
    for audit in &mut report.by_gateway {
        audit.latency.compact();
    }
    let mut history = unpoisoned(history).clone();
    history.answer.compact();
    history.refetch.compact();
    report.history = history;
    report
}

/// For a client that was streaming from `gateway` at `since_us`: `Some(when a later session
/// had its first heartbeat)`, `Some(None)` while none has. `None` for any other client.
pub(super) fn back_after(
    sessions: &[SessionInfo],
    since_us: u64,
    gateway: usize,
) -> Option<Option<u64>> {
    let at = sessions.iter().rposition(|session| {
        session.opened_us <= since_us && session.ended_us.is_none_or(|ended| ended >= since_us)
    })?;
    (sessions[at].gateway == gateway).then(|| {
        sessions[at + 1..]
            .iter()
            .find_map(|session| session.ready_us)
    })
}

/// Adds one client's deliveries of events `0..expected` to `audit`. Events reach a client in
/// the order they were published, so a missing event is either a hole (a later one arrived) or
/// the tail (none later arrived yet). A hole published (`published_us`) after the client's last
/// `reset`, or in the stream of a client never reset, is lost unsignalled.
fn audit_client(audit: &mut Audit, tally: &Tally, expected: u64, published_us: &[u64]) {
    let received = (0..expected).filter(|n| tally.marks.contains(n)).count() as u64;
    let told_before = tally.last_reset_us.unwrap_or(0);
    let after_last = (0..expected)
        .rev()
        .find(|n| tally.marks.contains(n))
        .map_or(0, |last| last + 1);
    audit.lost_tail += expected - after_last;
    let unsignalled = (0..after_last)
        .filter(|n| !tally.marks.contains(n))
        .filter(|n| {
            // Unknown publish time (an older coordinator): counted as untold.
            published_us
                .get(*n as usize)
                .is_none_or(|published| *published >= told_before)
        })
        .count() as u64;
    audit.expected += expected;
    audit.received += received;
    audit.lost += expected - received;
    audit.lost_unsignalled += unsignalled;
    audit.clients_lost_unsignalled += usize::from(unsignalled > 0);
    audit.duplicates += tally.duplicates;
    audit.out_of_order += tally.out_of_order;
    for latency in &tally.latencies_us {
        audit.latency.record(*latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marker::Delivered;

    #[test]
    fn a_client_is_back_once_a_session_after_the_one_it_lost_had_its_heartbeat() {
        let session = |gateway, opened_us, ready_us, ended_us| SessionInfo {
            gateway,
            resumed: true,
            opened_us,
            ready_us,
            ended_us,
        };
        // On gateway 0 at 100, dropped at 150, back on gateway 2 at 420.
        let moved = [
            session(0, 10, Some(11), Some(150)),
            session(2, 400, Some(420), None),
        ];
        assert_eq!(back_after(&moved, 100, 0), Some(Some(420)));
        // Not yet noticed the loss: still counted, not back.
        assert_eq!(back_after(&moved[..1], 100, 0), Some(None));
        let reconnecting = [
            session(0, 10, Some(11), Some(150)),
            session(1, 400, None, None),
        ];
        assert_eq!(back_after(&reconnecting, 100, 0), Some(None));
        // On another gateway at that moment: not one of its clients.
        assert_eq!(back_after(&moved, 100, 1), None);
        assert_eq!(back_after(&moved, 5, 0), None);
    }

    #[test]
    fn a_client_is_audited_against_every_expected_event() {
        let mut tally = Tally::default();
        let event = |seq, n| Delivered {
            seq,
            n: Some(n),
            sent_us: Some(0),
        };
        tally.record_typed_frame("ORDER_RECEIVED", &[event(10, 0), event(11, 1)], 2, 2_000);
        tally.record_typed_frame("ORDER_RECEIVED", &[event(11, 1), event(13, 3)], 2, 4_000);
        let mut audit = Audit::default();
        audit_client(&mut audit, &tally, 4, &[0, 0, 0, 0]);
        assert_eq!(audit.expected, 4);
        assert_eq!(audit.received, 3);
        assert_eq!(audit.lost, 1);
        assert_eq!(audit.lost_unsignalled, 1, "no reset told of event 2");
        assert_eq!(audit.duplicates, 1);
        assert_eq!(audit.out_of_order, 0);
        audit.latency.compact();
        assert_eq!(audit.latency.count, 3);
        assert_eq!(audit.latency.max_us, 4_000);
    }

    #[test]
    fn a_loss_is_signalled_only_by_a_reset_that_came_after_the_event_was_published() {
        let mut tally = Tally::default();
        let event = |seq, n| Delivered {
            seq,
            n: Some(n),
            sent_us: Some(0),
        };
        tally.record_typed_frame("ORDER_RECEIVED", &[event(10, 0), event(11, 1)], 2, 2_000);
        tally.last_reset_us = Some(5_000);
        tally.record_typed_frame("ORDER_RECEIVED", &[event(20, 4)], 1, 7_000);
        // Events 2 and 3 never arrived: 2 was published before the reset (told of), 3 after;
        // 5 and 6 are still on their way (nothing after them arrived): the tail, not holes.
        let mut audit = Audit::default();
        let published = [1_000, 1_500, 4_000, 6_000, 6_500, 7_000, 7_500];
        audit_client(&mut audit, &tally, 7, &published);
        assert_eq!(audit.lost, 4);
        assert_eq!(audit.lost_tail, 2);
        assert_eq!(audit.lost_unsignalled, 1);
        assert_eq!(audit.clients_lost_unsignalled, 1);
        let mut told = Audit::default();
        audit_client(&mut told, &tally, 5, &[1_000, 1_500, 4_000, 4_500, 6_500]);
        assert_eq!(
            (
                told.lost,
                told.lost_unsignalled,
                told.clients_lost_unsignalled
            ),
            (2, 0, 0)
        );
    }
}
