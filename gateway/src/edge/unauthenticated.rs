//! Sockets that hold no authenticated request yet: accepted, still sending a head, or on their
//! way to a refusal. They are counted and capped apart from the connection limit, which only
//! counts streams, so a crowd of silent or refused sockets cannot take the gateway's descriptors
//! or memory: in total (`MAX_UNAUTHENTICATED_CONNECTIONS`; past it a new socket is refused at
//! once) and per client address (`MAX_UNAUTHENTICATED_PER_ADDRESS`), so that one host cannot
//! take them all and leave the gateway refusing everyone, its health checks included.
//!
//! The address is the socket's peer, the only one known at accept time: an IPv4 address, or an
//! IPv6 /64 (what one host usually holds). A peer in `TRUSTED_PROXIES` speaks for many clients
//! and has no cap of its own, only the total. When an address is at its cap, a new socket from
//! it is not refused: the address's *oldest* socket still waiting for its request head is closed
//! instead (429 `too_many_unauthenticated_for_address`). A silent flood thus recycles its own
//! sockets, and a request from the same address (a health check behind a shared address) that
//! sends its head promptly is still served. Only when every socket of the address has sent its
//! head (and is being answered) is the new one refused.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rakuda_service::metric::ReadableGauge;
use tokio_util::sync::CancellationToken;

use super::client_addr::TrustedProxies;

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// `MAX_UNAUTHENTICATED_CONNECTIONS` are held.
    Total { max: usize },
    /// The address holds `MAX_UNAUTHENTICATED_PER_ADDRESS`, every one past its head.
    Address { max: usize },
}

pub(crate) struct Unauthenticated {
    held: Arc<AtomicUsize>,
    max: usize,
    gauge: ReadableGauge,
    addresses: Arc<Addresses>,
}

impl Unauthenticated {
    /// `max` in total, `per_address` for each address but the `exempt` proxies.
    pub(crate) fn new(
        max: usize,
        per_address: usize,
        exempt: TrustedProxies,
        gauge: ReadableGauge,
    ) -> Unauthenticated {
        Unauthenticated {
            held: Arc::new(AtomicUsize::new(0)),
            max,
            gauge,
            addresses: Arc::new(Addresses {
                max: per_address,
                exempt,
                held: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A slot for a socket just accepted from `peer`, or why there is none.
    pub(crate) fn hold(&self, peer: IpAddr) -> Result<Slot, Full> {
        let Some(key) = self.addresses.key(peer) else {
            self.take_one()?;
            self.gauge.increment();
            return Ok(self.slot(None));
        };
        let mut addresses = self.addresses.lock();
        let entry = addresses.entry(key).or_default();
        if entry.count >= self.addresses.max {
            let Some(oldest) = entry.waiting.pop_front() else {
                return Err(Full::Address {
                    max: self.addresses.max,
                });
            };
            // The newcomer takes over the oldest's places, in its address's count and in the
            // total, at once: the total must not fill with sockets on their way out. The
            // oldest's task answers it and closes it.
            oldest.counted_out.store(true, Ordering::Release);
            oldest.evict.cancel();
            let waiting = entry.push();
            drop(addresses);
            return Ok(self.slot(Some(self.share(key, waiting))));
        }
        if let Err(full) = self.take_one() {
            if entry.count == 0 {
                addresses.remove(&key);
            }
            return Err(full);
        }
        entry.count += 1;
        let waiting = entry.push();
        drop(addresses);
        self.gauge.increment();
        Ok(self.slot(Some(self.share(key, waiting))))
    }

    /// One more of the total (the caller counts it in the gauge).
    fn take_one(&self) -> Result<(), Full> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max).then_some(held + 1)
            })
            .map_err(|_| Full::Total { max: self.max })?;
        Ok(())
    }

    fn share(&self, key: Key, waiting: Arc<Waiting>) -> Share {
        Share {
            key,
            waiting,
            addresses: self.addresses.clone(),
        }
    }

    fn slot(&self, share: Option<Share>) -> Slot {
        Slot(Arc::new(SlotInner {
            released: AtomicBool::new(false),
            held: self.held.clone(),
            gauge: self.gauge.clone(),
            share: Mutex::new(share),
        }))
    }
}

/// What an address is counted as: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    V4(u32),
    V6Prefix(u64),
}

/// Each address's sockets. Bounded: an entry exists only while its address holds a slot, so
/// there are at most `MAX_UNAUTHENTICATED_CONNECTIONS` entries of at most `max` sockets each.
struct Addresses {
    max: usize,
    exempt: TrustedProxies,
    held: Mutex<HashMap<Key, Held>>,
}

#[derive(Default)]
struct Held {
    count: usize,
    /// The sockets still waiting for their request head, oldest first: the ones that may be
    /// closed to make room.
    waiting: VecDeque<Arc<Waiting>>,
}

impl Held {
    /// A new socket, waiting for its head.
    fn push(&mut self) -> Arc<Waiting> {
        let waiting = Arc::new(Waiting {
            evict: CancellationToken::new(),
            counted_out: AtomicBool::new(false),
        });
        self.waiting.push_back(waiting.clone());
        waiting
    }
}

/// A socket still waiting for its head, as its address's list knows it.
struct Waiting {
    evict: CancellationToken,
    /// Its places (in its address's count and in the total) are given back, or were taken over
    /// by a newer socket of its address.
    counted_out: AtomicBool,
}

impl Addresses {
    fn key(&self, peer: IpAddr) -> Option<Key> {
        if self.exempt.trusts(peer) {
            return None;
        }
        Some(match peer {
            IpAddr::V4(v4) => Key::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::V4(u32::from(v4)),
                None => Key::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        })
    }

    /// `waiting` sent its head: it may no longer be closed to make room.
    fn heard(&self, key: Key, waiting: &Arc<Waiting>) {
        if let Some(entry) = self.lock().get_mut(&key) {
            entry.waiting.retain(|other| !Arc::ptr_eq(other, waiting));
        }
    }

    /// Gives `waiting`'s place back; `false` when a newer socket had taken it over already.
    fn release(&self, key: Key, waiting: &Arc<Waiting>) -> bool {
        let mut held = self.lock();
        // Under the lock: a socket is either still in its address's list, or taken over.
        if waiting.counted_out.swap(true, Ordering::AcqRel) {
            return false;
        }
        if let Some(entry) = held.get_mut(&key) {
            entry.count = entry.count.saturating_sub(1);
            entry.waiting.retain(|other| !Arc::ptr_eq(other, waiting));
            if entry.count == 0 {
                held.remove(&key);
            }
        }
        true
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Held>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One socket's place among the unauthenticated. The listener keeps it for the socket's life
/// and puts a copy on the request; authentication releases it early. Released once, however
/// many copies exist.
#[derive(Clone)]
pub(crate) struct Slot(Arc<SlotInner>);

struct SlotInner {
    released: AtomicBool,
    held: Arc<AtomicUsize>,
    gauge: ReadableGauge,
    /// Its address's count, unless the peer is a trusted proxy; dropped when the slot is
    /// released, so a connection that lives on after authenticating keeps none of it.
    share: Mutex<Option<Share>>,
}

struct Share {
    key: Key,
    waiting: Arc<Waiting>,
    addresses: Arc<Addresses>,
}

impl Slot {
    pub(crate) fn release(&self) {
        self.0.release();
    }

    /// The request head arrived: this socket is no longer one its address's newer sockets may
    /// push out.
    pub(crate) fn heard(&self) {
        let share = self
            .0
            .share()
            .as_ref()
            .map(|share| (share.key, share.waiting.clone(), share.addresses.clone()));
        if let Some((key, waiting, addresses)) = share {
            addresses.heard(key, &waiting);
        }
    }

    /// Resolves when the socket is to be closed to make room for a newer one of its address
    /// (never, for a trusted proxy's).
    pub(crate) async fn pushed_out(&self) {
        let evict = self
            .0
            .share()
            .as_ref()
            .map(|share| share.waiting.evict.clone());
        match evict {
            Some(evict) => evict.cancelled().await,
            None => std::future::pending().await,
        }
    }
}

impl SlotInner {
    fn share(&self) -> MutexGuard<'_, Option<Share>> {
        // Only ever set once and taken once: a panic cannot leave it half-changed.
        self.share.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let share = self.share().take();
        let still_counted = share
            .as_ref()
            .is_none_or(|share| share.addresses.release(share.key, &share.waiting));
        if still_counted {
            self.held.fetch_sub(1, Ordering::AcqRel);
            self.gauge.decrement();
        }
    }
}

impl Drop for SlotInner {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge() -> ReadableGauge {
        let recorder = rakuda_service::metric::recorder();
        rakuda_service::metric::readable_gauge(&recorder, "test_unauthenticated", &[])
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn slots_are_capped_and_released_once() {
        let gauge = gauge();
        let pending = Unauthenticated::new(2, 2, TrustedProxies::default(), gauge.clone());
        let first = pending.hold(ip("192.0.2.1")).expect("first");
        let second = pending.hold(ip("192.0.2.2")).expect("second");
        assert_eq!(
            pending.hold(ip("192.0.2.3")).err(),
            Some(Full::Total { max: 2 })
        );
        assert_eq!(gauge.get(), 2);
        let copy = first.clone();
        first.release();
        copy.release();
        drop(copy);
        drop(first);
        assert_eq!(gauge.get(), 1, "released once across copies");
        assert!(
            pending.hold(ip("192.0.2.3")).is_ok(),
            "the slot is free again"
        );
        drop(second);
        assert_eq!(gauge.get(), 0);
    }

    #[tokio::test]
    async fn an_address_at_its_cap_pushes_out_its_oldest_waiting_socket() {
        let gauge = gauge();
        let pending = Unauthenticated::new(100, 2, TrustedProxies::default(), gauge.clone());
        let oldest = pending.hold(ip("192.0.2.1")).expect("1");
        let next = pending.hold(ip("192.0.2.1")).expect("2");
        // The third pushes out the oldest, not the newer one.
        let third = pending.hold(ip("192.0.2.1")).expect("3");
        tokio::time::timeout(std::time::Duration::from_secs(5), oldest.pushed_out())
            .await
            .expect("the oldest is pushed out");
        drop(oldest);
        assert_eq!(
            gauge.get(),
            2,
            "the pushed-out socket's slot is freed when it goes"
        );
        // Sockets that sent their head are not pushed out: with both heard, a new one is refused.
        next.heard();
        third.heard();
        assert_eq!(
            pending.hold(ip("192.0.2.1")).err(),
            Some(Full::Address { max: 2 })
        );
        // Another address, an IPv6 /64, and a trusted proxy have their own counts.
        assert!(pending.hold(ip("192.0.2.2")).is_ok());
        let v6 = pending.hold(ip("2001:db8::1")).expect("v6");
        let _v6_again = pending.hold(ip("2001:db8::ffff")).expect("same /64");
        let _v6_third = pending
            .hold(ip("2001:db8::2"))
            .expect("pushes out the first");
        v6.pushed_out().await;
        assert!(pending.hold(ip("2001:db8:0:1::1")).is_ok(), "another /64");
        drop(next);
        assert!(
            pending.hold(ip("192.0.2.1")).is_ok(),
            "room again once one goes"
        );
    }

    #[test]
    fn a_trusted_proxy_is_capped_only_by_the_total() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("net")]);
        let pending = Unauthenticated::new(10, 1, proxies, gauge());
        let held: Vec<Slot> = (0..10)
            .map(|_| pending.hold(ip("10.0.0.2")).expect("a proxy's socket"))
            .collect();
        assert_eq!(
            pending.hold(ip("10.0.0.2")).err(),
            Some(Full::Total { max: 10 })
        );
        drop(held);
        // The per-address map holds nothing once every slot is gone.
        let one = pending.hold(ip("192.0.2.9")).expect("one");
        drop(one);
        assert!(pending.addresses.lock().is_empty());
    }
}
