//! A fleet's clients spread over its gateways by the clients themselves, as the shipped nginx
//! would spread them (the fleet runs without it: it would need its own open-files budget).

/// How many gateways one attempt tries at most: the shipped nginx passes a request on to the
/// next gateway up to `proxy_next_upstream_tries 3` times (ops/nginx/realtime.conf).
pub const NEXT_GATEWAY_TRIES: usize = 3;

/// Spreads a fleet's clients over its gateways as the shipped nginx does
/// (ops/nginx/nginx.conf): `least_conn`, and a gateway that cannot be reached or answers 502
/// or 503 skipped within the same attempt (`proxy_next_upstream`), so that a reconnecting
/// client lands on a live gateway with room at its first try. It counts the clients of this
/// process only (connecting or connected): the fleet's workers hold equal, interleaved shares
/// of the clients, so each sees the fleet's spread in small.
#[derive(Debug)]
pub struct Balancer {
    held: Vec<std::sync::atomic::AtomicUsize>,
    /// Gateways taken out of rotation (as an orchestrator takes an instance out of its load
    /// balancer before stopping it, and puts it back once `/readyz` answers).
    out: Vec<std::sync::atomic::AtomicBool>,
}

/// One client counted on one gateway while it connects and streams there.
pub(super) struct Held<'a> {
    balancer: &'a Balancer,
    gateway: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(count) = self.balancer.held.get(self.gateway) {
            count.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Balancer {
    pub fn new(gateways: usize) -> Balancer {
        Balancer {
            held: (0..gateways)
                .map(|_| std::sync::atomic::AtomicUsize::new(0))
                .collect(),
            out: (0..gateways)
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
        }
    }

    /// Puts `gateway` in rotation or takes it out.
    pub fn set_serving(&self, gateway: usize, serving: bool) {
        if let Some(out) = self.out.get(gateway) {
            out.store(!serving, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Clients of this process on each gateway now.
    pub fn held(&self) -> Vec<usize> {
        self.held
            .iter()
            .map(|count| count.load(std::sync::atomic::Ordering::Relaxed))
            .collect()
    }

    /// Every gateway in rotation, from the fewest clients to the most, ties in random order
    /// (all of them if none is in rotation).
    pub fn order(&self) -> Vec<usize> {
        let serving =
            |gateway: &usize| !self.out[*gateway].load(std::sync::atomic::Ordering::Relaxed);
        let mut order: Vec<(usize, u64, usize)> = self
            .held()
            .into_iter()
            .enumerate()
            .map(|(gateway, held)| (held, rand::random::<u64>(), gateway))
            .collect();
        order.sort_unstable();
        let order: Vec<usize> = order.into_iter().map(|(_, _, gateway)| gateway).collect();
        if order.iter().any(serving) {
            order.into_iter().filter(serving).collect()
        } else {
            order
        }
    }

    pub(super) fn hold(&self, gateway: usize) -> Held<'_> {
        if let Some(count) = self.held.get(gateway) {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Held {
            balancer: self,
            gateway,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_balancer_orders_gateways_by_the_clients_it_holds_on_each() {
        let balancer = Balancer::new(3);
        let _a = balancer.hold(0);
        let _b = balancer.hold(0);
        {
            let _c = balancer.hold(2);
            assert_eq!(balancer.held(), vec![2, 0, 1]);
            assert_eq!(balancer.order(), vec![1, 2, 0]);
        }
        // A client that leaves is no longer counted.
        assert_eq!(balancer.held(), vec![2, 0, 0]);
        assert_eq!(balancer.order()[2], 0);
        // Out of rotation: not offered, unless nothing else is.
        balancer.set_serving(1, false);
        let order = balancer.order();
        assert_eq!(order.len(), 2);
        assert_eq!(order[1], 0);
        for gateway in 0..3 {
            balancer.set_serving(gateway, false);
        }
        assert_eq!(balancer.order().len(), 3);
    }
}
