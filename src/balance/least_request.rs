//! Least request: power of two choices on requests in flight (linkerd2-proxy, Envoy).
//!
//! Each pick draws two distinct targets at random (by weight) and takes the one with fewer
//! requests in flight per unit of weight (`in_flight / weight`, Envoy's rule for weighted
//! hosts); on a tie, the first drawn, so an idle set is balanced by weight alone. Comparing
//! two random targets instead of scanning for the least loaded keeps a pick O(1) and avoids
//! the herd that a global minimum attracts when many pickers read the same counts.
//!
//! The counts are the endpoints' live [`EndpointLoad::in_flight`](super::EndpointLoad),
//! shared by every worker thread and every cluster reaching the address.

use std::sync::Arc;

use super::{Balancer, EndpointLoad, PickContext, Sampler, Target};

/// Power of two choices on in-flight requests over one endpoint set.
#[derive(Debug)]
pub struct LeastRequest {
    sampler: Sampler,
    weights: Vec<u32>,
    loads: Vec<Arc<EndpointLoad>>,
}

impl LeastRequest {
    /// A least-request balancer over `targets` (zero weights count as 1).
    pub fn new(targets: Vec<Target>) -> Self {
        LeastRequest {
            sampler: Sampler::new(&targets),
            weights: targets.iter().map(|t| t.weight.max(1)).collect(),
            loads: targets.into_iter().map(|t| t.load).collect(),
        }
    }
}

impl Balancer for LeastRequest {
    /// The less loaded of two distinct untried targets; the only untried one when one is
    /// left; any target once all were tried.
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        self.sampler
            .p2c(ctx, &self.weights, |p| self.loads[p].in_flight() as f64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::balance::testing::{
        assert_binomial, counts, fallback_returns_the_last_untried, targets,
    };

    #[test]
    fn idle_targets_share_by_weight() {
        let b = LeastRequest::new(targets(&[1, 1, 1, 1]));
        for c in counts(&b, 4, 40_000) {
            assert_binomial(c, 40_000, 0.25);
        }
        let b = LeastRequest::new(targets(&[1, 3, 6]));
        for (c, p) in counts(&b, 3, 40_000).into_iter().zip([0.1, 0.3, 0.6]) {
            assert_binomial(c, 40_000, p);
        }
    }

    #[test]
    fn a_busy_target_gets_clearly_less() {
        let t = targets(&[1, 1, 1, 1]);
        t[0].load.in_flight.store(10, Ordering::Relaxed);
        t[1].load.in_flight.store(1, Ordering::Relaxed);
        let b = LeastRequest::new(t);
        let c = counts(&b, 4, 40_000);
        // Target 0 is more loaded than every other: P2C never prefers it over another.
        assert_eq!(c[0], 0, "{c:?}");
        // Target 1 wins only against target 0: it is drawn in a pair with 0 with
        // probability 2 × (1/4 × 1/3) = 1/6, and never wins otherwise.
        assert_binomial(c[1], 40_000, 1.0 / 6.0);
    }

    #[test]
    fn load_is_compared_per_unit_of_weight() {
        // 4 in flight at weight 4 (1 per unit) beats 2 in flight at weight 1.
        let t = targets(&[4, 1]);
        t[0].load.in_flight.store(4, Ordering::Relaxed);
        t[1].load.in_flight.store(2, Ordering::Relaxed);
        let b = LeastRequest::new(t);
        assert_eq!(counts(&b, 2, 1000), vec![1000, 0]);
    }

    #[test]
    fn one_target_is_always_the_pick() {
        let b = LeastRequest::new(targets(&[5]));
        assert_eq!(counts(&b, 1, 100), vec![100]);
    }

    #[test]
    fn with_all_but_one_tried_the_remaining_one_is_picked() {
        let t = targets(&[1, 2, 3, 4, 5]);
        // Load the last member so that P2C would not prefer it.
        t[4].load.in_flight.store(100, Ordering::Relaxed);
        fallback_returns_the_last_untried(&LeastRequest::new(t), 5);
    }
}
