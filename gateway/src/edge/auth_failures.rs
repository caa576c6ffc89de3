//! A limit on failed authentications per client address, so credentials cannot be guessed at
//! network speed. Only failures count; once an address is over its limit every request it makes
//! is refused with 429 until its allowance refills, valid credential or not, so the answer does
//! not tell a guesser whether a guess was right. Clients that share an address (a NAT, one IPv6
//! /56) share its allowance, and its wait.
//!
//! Memory is bounded: the limiter (governor) holds one cell per address that failed recently,
//! pruned as it fills, and at most [`MAX_TRACKED`] of them. Past that, the failures of further
//! addresses share one overflow allowance, which only ever refuses a *failure*: it is never
//! checked before a credential, so valid credentials from any address not itself blocked get in
//! however many strangers failed. While the limiter overflows, guesses from untracked
//! addresses are answered 429 once the shared allowance is spent, but a right guess among them
//! gets in: an attacker needs more than [`MAX_TRACKED`] addresses failing within a minute for
//! that, and is logged when it starts and when it ends.
//! IPv6 clients are counted per /56, the smallest block an ISP usually hands a subscriber.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Addresses tracked at most, in the limiter and in the blocked list each.
pub(crate) const MAX_TRACKED: usize = 262_144;

/// What the limiter counts: an IPv4 address, or an IPv6 /56.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6Prefix(u64),
    /// The failures of every address beyond [`MAX_TRACKED`]: never a reason to refuse a
    /// credential, only a further failure.
    Overflow,
}

impl From<IpAddr> for Client {
    fn from(addr: IpAddr) -> Client {
        match addr {
            IpAddr::V4(v4) => Client::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(u32::from(v4)),
                None => Client::V6Prefix((u128::from(v6) >> 72) as u64),
            },
        }
    }
}

/// How often a full map may be pruned: pruning walks every entry, so a flood of new addresses
/// must not make every failure pay for it.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct AuthFailures {
    limiter: DefaultKeyedRateLimiter<Client>,
    clock: DefaultClock,
    /// Addresses over the limit, and until when. Never [`Client::Overflow`].
    blocked: Mutex<HashMap<Client, Instant>>,
    /// Addresses tracked at most ([`MAX_TRACKED`]; smaller in tests).
    max_tracked: usize,
    /// When the maps were last pruned.
    pruned: Mutex<Instant>,
    /// Whether failures are spilling into the overflow allowance: logged when it changes.
    overflowing: AtomicBool,
}

impl AuthFailures {
    /// `per_minute` failures as a burst, refilled evenly over the minute.
    pub(crate) fn new(per_minute: NonZeroU32) -> AuthFailures {
        AuthFailures::tracking(per_minute, MAX_TRACKED)
    }

    /// As [`AuthFailures::new`], remembering at most `max_tracked` addresses.
    pub(crate) fn tracking(per_minute: NonZeroU32, max_tracked: usize) -> AuthFailures {
        AuthFailures {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            clock: DefaultClock::default(),
            blocked: Mutex::new(HashMap::new()),
            max_tracked,
            pruned: Mutex::new(Instant::now()),
            overflowing: AtomicBool::new(false),
        }
    }

    /// Whether a full map may be pruned now (at most once per [`PRUNE_EVERY`]).
    fn may_prune(&self) -> bool {
        let mut pruned = self
            .pruned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pruned.elapsed() < PRUNE_EVERY {
            return false;
        }
        *pruned = Instant::now();
        true
    }

    /// How long `addr` must wait, if it is over its own limit. Checked before a credential is,
    /// so it never looks at the overflow allowance: what strangers did cannot refuse anyone.
    pub(crate) fn blocked(&self, addr: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        self.blocked_list()
            .get(&Client::from(addr))
            .filter(|until| **until > now)
            .map(|until| *until - now)
    }

    /// Counts a failure by `addr`; how long it must now wait, if this one put it (or, for an
    /// address the limiter has no room for, the shared overflow allowance) over.
    pub(crate) fn failed(&self, addr: IpAddr) -> Option<Duration> {
        let mut client = Client::from(addr);
        let full = self.limiter.len() >= self.max_tracked;
        if full && self.may_prune() {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
            self.blocked_list()
                .retain(|_, until| *until > Instant::now());
        }
        if self.limiter.len() < self.max_tracked {
            if self.overflowing.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    "the failed-authentication limiter has room again for every address"
                );
            }
        } else if !self.limiter_knows(client) {
            client = Client::Overflow;
            if !self.overflowing.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    tracked = self.max_tracked,
                    "failed authentications come from more addresses than the limiter tracks; \
                     further addresses share one allowance for their failures (valid \
                     credentials still get in): look for a credential-guessing attack"
                );
            }
        }
        let not_until = self.limiter.check_key(&client).err()?;
        // At least a second: Retry-After is in whole seconds.
        let wait = not_until
            .wait_time_from(self.clock.now())
            .max(Duration::from_secs(1));
        if client == Client::Overflow {
            // Only this failure is refused; nobody is blocked on the overflow's account.
            return Some(wait);
        }
        let mut blocked = self.blocked_list();
        // The list holds only addresses over the limit, each also in the limiter; should it
        // still be full, the address's further failures are refused by the limiter alone.
        if blocked.len() < self.max_tracked || blocked.contains_key(&client) {
            blocked.insert(client, Instant::now() + wait);
        }
        Some(wait)
    }

    /// Whether `client` was over its limit lately: its cell is then still in the limiter, so its
    /// failures go on counting there when the limiter is full (governor cannot look a key up
    /// without inserting it, and the blocked list is the part of the map we know).
    fn limiter_knows(&self, client: Client) -> bool {
        self.blocked_list().contains_key(&client)
    }

    fn blocked_list(&self) -> std::sync::MutexGuard<'_, HashMap<Client, Instant>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_minute: u32) -> AuthFailures {
        AuthFailures::new(NonZeroU32::new(per_minute).expect("nonzero"))
    }

    #[test]
    fn an_address_is_blocked_after_its_burst_and_others_are_not() {
        let failures = limit(3);
        let guesser: IpAddr = "192.0.2.1".parse().expect("ip");
        let bystander: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..3 {
            assert_eq!(failures.failed(guesser), None);
        }
        assert_eq!(failures.blocked(guesser), None, "not yet over");
        let wait = failures.failed(guesser).expect("over the limit");
        assert!(
            wait >= Duration::from_secs(1) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(failures.blocked(guesser).is_some());
        assert_eq!(failures.blocked(bystander), None);
    }

    #[test]
    fn ipv6_addresses_in_one_56_share_an_allowance() {
        let failures = limit(1);
        assert_eq!(failures.failed("2001:db8::1".parse().expect("ip")), None);
        assert!(failures
            .failed("2001:db8::2".parse().expect("ip"))
            .is_some());
        assert!(failures
            .blocked("2001:db8:0:ff::1".parse().expect("ip"))
            .is_some());
        assert_eq!(
            failures.blocked("2001:db8:0:100::1".parse().expect("ip")),
            None
        );
    }

    #[test]
    fn memory_stays_bounded_when_every_guess_comes_from_a_new_address() {
        const TRACKED: usize = 2_000;
        let failures = AuthFailures::tracking(NonZeroU32::new(1).expect("nonzero"), TRACKED);
        for n in 0..(TRACKED as u32 * 3) {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            failures.failed(addr);
            failures.failed(addr);
        }
        assert!(failures.limiter.len() <= TRACKED + 1);
        assert!(failures.blocked_list().len() <= TRACKED);
        // The first addresses are tracked, and blocked for their own failures.
        let first = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000));
        assert!(failures.blocked(first).is_some());
        // The addresses past the limit share one allowance for their failures, which they used
        // up: a new address's failure is refused, but the address itself is not blocked, so a
        // valid credential from it is still checked (and gets in).
        let late = IpAddr::from(std::net::Ipv4Addr::new(11, 0, 0, 1));
        assert_eq!(failures.blocked(late), None);
        assert!(failures.failed(late).is_some());
        assert_eq!(failures.blocked(late), None, "the overflow blocks nobody");
    }
}
