//! Smooth weighted round robin (nginx's algorithm), precomputed.
//!
//! nginx's smooth WRR spreads heavier endpoints evenly through the cycle (weights 5,1,1 give
//! `a a b a c a a`, not `a a a a a b c`). Running it per request needs a lock; instead the
//! whole cycle (one entry per unit of weight) is computed once when the endpoint set changes,
//! and each request takes the next entry with one relaxed atomic increment.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Balancer, PickContext, Target};

/// Longest precomputed cycle; larger total weights are scaled down to fit.
const MAX_CYCLE: u64 = 4096;

/// Smooth weighted round robin over one endpoint set.
#[derive(Debug)]
pub struct RoundRobin {
    cycle: Option<WeightedCycle>,
    /// Member index of each target.
    members: Vec<usize>,
}

impl RoundRobin {
    /// Builds the cycle for `targets` (zero weights count as 1). The starting point is
    /// random so that many proxies restarted together do not hit the same endpoint first.
    pub fn new(targets: Vec<Target>) -> Self {
        let weights: Vec<u64> = targets.iter().map(|t| u64::from(t.weight.max(1))).collect();
        RoundRobin {
            cycle: WeightedCycle::new(&weights),
            members: targets.iter().map(|t| t.member).collect(),
        }
    }
}

impl Balancer for RoundRobin {
    /// The next entry of the cycle; on a retry, the first untried target after it in
    /// target order (so a retry never waits a whole cycle for a fresh endpoint).
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        let first = self.cycle.as_ref()?.next();
        let n = self.members.len();
        (0..n)
            .map(|k| self.members[(first + k) % n])
            .find(|&m| !ctx.was_tried(m))
            .or(Some(self.members[first]))
    }
}

/// One precomputed smooth-WRR cycle over weighted items; shared by every thread, one relaxed
/// atomic increment per pick. Also what picks a route's backend by weight.
#[derive(Debug)]
pub struct WeightedCycle {
    /// Item indices, one full cycle.
    schedule: Vec<u32>,
    next: AtomicUsize,
}

impl WeightedCycle {
    /// A cycle over items with these weights (each at least 1; reduced and scaled to keep the
    /// cycle at most [`MAX_CYCLE`] long), starting at a random point. `None` for no items.
    pub fn new(weights: &[u64]) -> Option<Self> {
        if weights.is_empty() {
            return None;
        }
        let schedule = smooth_cycle(&scaled_weights(weights));
        let start = rand::random_range(0..schedule.len());
        Some(WeightedCycle {
            schedule,
            next: AtomicUsize::new(start),
        })
    }

    /// The next item's index.
    pub fn next(&self) -> usize {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.schedule[n % self.schedule.len()] as usize
    }
}

/// Weights reduced by their GCD, then scaled down (keeping every weight ≥ 1) so that the
/// cycle stays at most [`MAX_CYCLE`] long.
fn scaled_weights(raw: &[u64]) -> Vec<u64> {
    let raw: Vec<u64> = raw.iter().map(|&w| w.max(1)).collect();
    let g = raw.iter().copied().fold(0, gcd).max(1);
    let reduced: Vec<u64> = raw.iter().map(|w| w / g).collect();
    let total: u64 = reduced.iter().sum();
    if total <= MAX_CYCLE {
        return reduced;
    }
    reduced
        .iter()
        .map(|w| (w * MAX_CYCLE / total).max(1))
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One cycle of nginx's smooth weighted round robin: each step adds every weight to its
/// current value, picks the largest (first on ties), and subtracts the total from it.
fn smooth_cycle(weights: &[u64]) -> Vec<u32> {
    let total: i64 = weights.iter().map(|&w| w as i64).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += *w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(weights: &[u32]) -> Vec<Target> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Target {
                member: i,
                address: format!("127.0.0.1:{}", 1000 + i).parse().expect("addr"),
                weight,
                load: Default::default(),
                joined: None,
            })
            .collect()
    }

    #[test]
    fn smooth_cycle_interleaves_heavy_endpoints_like_nginx() {
        assert_eq!(smooth_cycle(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn equal_weights_alternate_exactly() {
        let rr = RoundRobin::new(eps(&[1, 1, 1, 1]));
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[rr.pick(&PickContext::default()).expect("non-empty")] += 1;
        }
        assert_eq!(counts, [1000; 4]);
    }

    #[test]
    fn weights_are_honoured_in_proportion() {
        let rr = RoundRobin::new(eps(&[3, 1]));
        let mut counts = [0usize; 2];
        for _ in 0..400 {
            let first = rr.pick(&PickContext::default()).expect("first");
            counts[first] += 1;
        }
        assert_eq!(counts, [300, 100]);
    }

    #[test]
    fn huge_weights_are_scaled_into_a_bounded_cycle() {
        let w = scaled_weights(&[1_000_000, 3, 999_999]);
        assert!(w.iter().sum::<u64>() <= MAX_CYCLE + 3);
        assert!(w.iter().all(|&x| x >= 1));
    }

    #[test]
    fn empty_set_picks_nothing() {
        assert!(
            RoundRobin::new(Vec::new())
                .pick(&PickContext::default())
                .is_none()
        );
    }

    #[test]
    fn with_all_but_one_tried_the_remaining_one_is_picked() {
        crate::balance::testing::fallback_returns_the_last_untried(
            &RoundRobin::new(eps(&[1, 2, 3, 4, 5])),
            5,
        );
    }

    #[test]
    fn retries_get_an_untried_endpoint_while_one_is_left() {
        let rr = RoundRobin::new(eps(&[1, 1, 1]));
        let mut tried = crate::balance::Tried::default();
        for _ in 0..3 {
            let ctx = PickContext {
                tried: tried.as_slice(),
                ..PickContext::default()
            };
            tried.push(rr.pick(&ctx).expect("pick"));
        }
        let mut all = tried.as_slice().to_vec();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2]);
        let ctx = PickContext {
            tried: tried.as_slice(),
            ..PickContext::default()
        };
        assert!(rr.pick(&ctx).is_some(), "all tried: still a choice");
    }
}
