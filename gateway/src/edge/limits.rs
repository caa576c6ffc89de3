//! What one instance takes on: streaming connections in total (`MAX_CONNECTIONS`) and per API
//! key (`MAX_CONNECTIONS_PER_KEY`). A slot is a [`Permit`], held for the connection's life.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Open client connections, in total and per key.
pub(crate) struct Connections {
    max_total: usize,
    max_per_key: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_key: HashMap<String, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Instance { max: usize },
    Key { max: usize },
}

/// A held connection slot; released on drop, when the connection ends.
pub(crate) struct Permit {
    registry: Arc<Connections>,
    key: String,
}

impl Connections {
    pub(crate) fn new(max_total: usize, max_per_key: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max_total,
            max_per_key,
            open: Mutex::new(Open::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // Counts stay consistent under a panic (each update is one statement).
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for one more connection of `key`, if the limits allow it.
    pub(crate) fn acquire(self: &Arc<Self>, key: &str) -> Result<Permit, Refusal> {
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(Refusal::Instance {
                max: self.max_total,
            });
        }
        let for_key = open.per_key.get(key).copied().unwrap_or(0);
        if for_key >= self.max_per_key {
            return Err(Refusal::Key {
                max: self.max_per_key,
            });
        }
        open.total += 1;
        open.per_key.insert(key.to_owned(), for_key + 1);
        Ok(Permit {
            registry: self.clone(),
            key: key.to_owned(),
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn total(&self) -> usize {
        self.lock().total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.registry.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_key.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.per_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_and_release() {
        let registry = Connections::new(3, 2);
        let a1 = registry.acquire("a").expect("first");
        let _a2 = registry.acquire("a").expect("second");
        assert_eq!(registry.acquire("a").err(), Some(Refusal::Key { max: 2 }));
        let _b1 = registry.acquire("b").expect("other key");
        assert_eq!(
            registry.acquire("c").err(),
            Some(Refusal::Instance { max: 3 })
        );
        drop(a1);
        assert_eq!(registry.total(), 2);
        assert!(registry.acquire("a").is_ok());
    }
}
