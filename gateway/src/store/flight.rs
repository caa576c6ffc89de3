//! One computation per distinct request, whatever the number of requests: a summary or a
//! backfill's counts cost JetStream consumers, and after a reset every dashboard asks for the
//! same one at the same moment. The first request for a key computes (`miss`); those that
//! arrive while it runs wait for it and take its result (`joined`), failure included, so a
//! herd against a failing JetStream makes one attempt, not one per request in turn; those that
//! arrive within `ttl` of a success take it from the cache (`hit`). A failure is not cached:
//! the next request after it tries again.
//!
//! The computation runs as a task of its own, so the request that started it may go away (its
//! client closed) without failing the others. Every wait has a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rakuda_service::metric::ReadableCounter;
use tokio::sync::watch;

use crate::metrics::{CacheResult, CacheRoute, HistoryMetrics};

/// Why a request got no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grounded<E> {
    /// The computation failed; every request that shared it gets this.
    Failed(E),
    /// Nothing came within the request's deadline.
    TimedOut(Duration),
    /// The computation ended without a result (its task was cancelled at shutdown).
    Abandoned,
}

/// A cache of computations by key, each shared by every request for it while it runs.
pub(crate) struct Flights<K, V, E> {
    slots: Arc<Mutex<Slots<K, V, E>>>,
    /// How long a result is served after it was computed.
    ttl: Duration,
    /// Keys held at most (results and computations in flight); past it a computation is not
    /// shared, so the map stays bounded whatever keys clients ask for.
    max_keys: usize,
    counters: Counters,
}

struct Slots<K, V, E> {
    by_key: HashMap<K, Slot<V, E>>,
    /// Tells a finished computation from a newer one for the same key.
    next_flight: u64,
}

enum Slot<V, E> {
    Ready { at: Instant, value: V },
    Flying { flight: u64, result: Landing<V, E> },
}

type Landing<V, E> = watch::Receiver<Option<Result<V, E>>>;

/// The `hit`, `miss` and `joined` counters of one route.
#[derive(Clone)]
struct Counters {
    hit: ReadableCounter,
    miss: ReadableCounter,
    joined: ReadableCounter,
}

impl<K, V, E> Flights<K, V, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// Results kept for `ttl`, at most `max_keys` keys, counted under `route`.
    pub(crate) fn new(
        ttl: Duration,
        max_keys: usize,
        metrics: &HistoryMetrics,
        route: CacheRoute,
    ) -> Flights<K, V, E> {
        Flights {
            slots: Arc::new(Mutex::new(Slots {
                by_key: HashMap::new(),
                next_flight: 0,
            })),
            ttl,
            max_keys: max_keys.max(1),
            counters: Counters {
                hit: metrics.cache(route, CacheResult::Hit).clone(),
                miss: metrics.cache(route, CacheResult::Miss).clone(),
                joined: metrics.cache(route, CacheResult::Joined).clone(),
            },
        }
    }

    /// The result for `key`: cached, shared with a computation in flight, or computed by
    /// `compute` (which should end within `wait`; this request waits no longer than that).
    pub(crate) async fn get<F, Fut>(
        &self,
        key: K,
        wait: Duration,
        compute: F,
    ) -> Result<V, Grounded<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let mut landing = {
            let mut slots = lock(&self.slots);
            match slots.by_key.get(&key) {
                Some(Slot::Ready { at, value }) if at.elapsed() < self.ttl => {
                    self.counters.hit.increment(1);
                    return Ok(value.clone());
                }
                Some(Slot::Flying { result, .. }) => {
                    self.counters.joined.increment(1);
                    result.clone()
                }
                _ => {
                    self.counters.miss.increment(1);
                    self.launch(&mut slots, key, compute())
                }
            }
        };
        let landed = tokio::time::timeout(wait, landing.wait_for(Option::is_some)).await;
        match landed {
            Err(_) => Err(Grounded::TimedOut(wait)),
            Ok(Err(_)) => Err(Grounded::Abandoned),
            Ok(Ok(result)) => match &*result {
                Some(Ok(value)) => Ok(value.clone()),
                Some(Err(error)) => Err(Grounded::Failed(error.clone())),
                None => Err(Grounded::Abandoned),
            },
        }
    }

    /// Starts `computation` as a task and, room allowing, registers it under `key` so that
    /// other requests join it.
    fn launch(
        &self,
        slots: &mut Slots<K, V, E>,
        key: K,
        computation: impl Future<Output = Result<V, E>> + Send + 'static,
    ) -> Landing<V, E> {
        let (tell, landing) = watch::channel(None);
        slots.next_flight += 1;
        let flight = slots.next_flight;
        let now = Instant::now();
        let ttl = self.ttl;
        slots.by_key.retain(|_, slot| match slot {
            Slot::Ready { at, .. } => now.duration_since(*at) < ttl,
            Slot::Flying { .. } => true,
        });
        if slots.by_key.len() >= self.max_keys {
            // Full of fresh results: they give way to the computation asked for now.
            slots
                .by_key
                .retain(|_, slot| matches!(slot, Slot::Flying { .. }));
        }
        let shared = slots.by_key.len() < self.max_keys;
        if shared {
            slots.by_key.insert(
                key.clone(),
                Slot::Flying {
                    flight,
                    result: landing.clone(),
                },
            );
        }
        let registry = shared.then(|| Arc::downgrade(&self.slots));
        tokio::spawn(async move {
            // Removes the slot if the task ends without a result (cancelled at shutdown), so
            // later requests do not wait on a computation that is gone.
            let mut clear = ClearOnDrop {
                slots: registry.clone(),
                key: Some(key),
                flight,
            };
            let result = computation.await;
            if let (Some(registry), Some(key)) =
                (registry.and_then(|r| r.upgrade()), clear.key.take())
            {
                let mut slots = lock(&registry);
                let ours = matches!(
                    slots.by_key.get(&key),
                    Some(Slot::Flying { flight: f, .. }) if *f == flight
                );
                if ours {
                    match &result {
                        Ok(value) => {
                            slots.by_key.insert(
                                key,
                                Slot::Ready {
                                    at: Instant::now(),
                                    value: value.clone(),
                                },
                            );
                        }
                        Err(_) => {
                            slots.by_key.remove(&key);
                        }
                    }
                }
            }
            tell.send_replace(Some(result));
        });
        landing
    }
}

/// See [`Flights::launch`].
struct ClearOnDrop<K: Hash + Eq, V, E> {
    slots: Option<std::sync::Weak<Mutex<Slots<K, V, E>>>>,
    key: Option<K>,
    flight: u64,
}

impl<K: Hash + Eq, V, E> Drop for ClearOnDrop<K, V, E> {
    fn drop(&mut self) {
        let (Some(slots), Some(key)) = (self.slots.as_ref().and_then(|s| s.upgrade()), &self.key)
        else {
            return;
        };
        let mut slots = lock(&slots);
        let ours = matches!(
            slots.by_key.get(key),
            Some(Slot::Flying { flight, .. }) if *flight == self.flight
        );
        if ours {
            slots.by_key.remove(key);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under the lock is one insert or removal: a panic leaves the map usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::GatewayMetrics;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn flights(ttl: Duration, max_keys: usize) -> (Flights<u32, u32, String>, GatewayMetrics) {
        let metrics = GatewayMetrics::new();
        let flights = Flights::new(ttl, max_keys, &metrics.history, CacheRoute::Summary);
        (flights, metrics)
    }

    fn count(metrics: &GatewayMetrics, result: CacheResult) -> u64 {
        metrics.history.cache(CacheRoute::Summary, result).get()
    }

    #[tokio::test]
    async fn a_herd_of_identical_requests_runs_one_computation() {
        let (flights, metrics) = flights(Duration::from_secs(60), 8);
        let flights = Arc::new(flights);
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let herd: Vec<_> = (0..1_000)
            .map(|_| {
                let (flights, runs, mut released) =
                    (flights.clone(), runs.clone(), released.clone());
                tokio::spawn(async move {
                    flights
                        .get(7, Duration::from_secs(10), move || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            let _ = released.wait_for(|go| *go).await;
                            Ok::<u32, String>(42)
                        })
                        .await
                })
            })
            .collect();
        // Every request has asked before the computation ends: all of them share it.
        rakuda_testkit::wait::eventually("every request asked", || async {
            (count(&metrics, CacheResult::Miss) + count(&metrics, CacheResult::Joined) == 1_000)
                .then_some(())
        })
        .await;
        release.send_replace(true);
        for request in herd {
            assert_eq!(request.await.expect("join"), Ok(42));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one computation");
        assert_eq!(count(&metrics, CacheResult::Miss), 1);
        assert_eq!(count(&metrics, CacheResult::Joined), 999);
        // Then it is served from the cache.
        let cached = flights
            .get(7, Duration::from_secs(1), || async { Ok(0) })
            .await;
        assert_eq!(cached, Ok(42));
        assert_eq!(count(&metrics, CacheResult::Hit), 1);
    }

    #[tokio::test]
    async fn a_failure_is_shared_by_its_herd_and_not_cached() {
        let (flights, metrics) = flights(Duration::from_secs(60), 8);
        let flights = Arc::new(flights);
        let (release, released) = watch::channel(false);
        let herd: Vec<_> = (0..50)
            .map(|_| {
                let (flights, mut released) = (flights.clone(), released.clone());
                tokio::spawn(async move {
                    flights
                        .get(1, Duration::from_secs(10), move || async move {
                            let _ = released.wait_for(|go| *go).await;
                            Err::<u32, _>("JetStream is away".to_owned())
                        })
                        .await
                })
            })
            .collect();
        rakuda_testkit::wait::eventually("every request asked", || async {
            (count(&metrics, CacheResult::Miss) + count(&metrics, CacheResult::Joined) == 50)
                .then_some(())
        })
        .await;
        release.send_replace(true);
        for request in herd {
            assert_eq!(
                request.await.expect("join"),
                Err(Grounded::Failed("JetStream is away".into()))
            );
        }
        assert_eq!(count(&metrics, CacheResult::Miss), 1, "one attempt for all");
        // The next request tries again.
        let again = flights
            .get(1, Duration::from_secs(1), || async { Ok(5) })
            .await;
        assert_eq!(again, Ok(5));
        assert_eq!(count(&metrics, CacheResult::Miss), 2);
    }

    #[tokio::test]
    async fn results_expire_keys_stay_bounded_and_waits_end() {
        let (flights, _metrics) = flights(Duration::from_millis(1), 2);
        for key in 0..10 {
            assert_eq!(
                flights
                    .get(key, Duration::from_secs(1), move || async move { Ok(key) })
                    .await,
                Ok(key)
            );
        }
        assert!(lock(&flights.slots).by_key.len() <= 2);
        // A computation that never ends: the request's own deadline ends its wait.
        let stuck = flights
            .get(99, Duration::from_millis(20), std::future::pending)
            .await;
        assert_eq!(stuck, Err(Grounded::TimedOut(Duration::from_millis(20))));
        tokio::time::sleep(Duration::from_millis(5)).await;
        let fresh = flights
            .get(3, Duration::from_secs(1), || async { Ok(33) })
            .await;
        assert_eq!(fresh, Ok(33), "expired: computed again");
    }
}
