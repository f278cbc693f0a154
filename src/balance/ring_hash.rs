//! Ketama-style consistent hash ring.
//!
//! Every target places `weight × V` points (virtual nodes) on a 64-bit ring, each at the
//! hash of its address and replica number (`10.0.0.1:8080`, 3), so two proxies, or one
//! proxy before and after a rebuild, place an endpoint at the same points. A request goes to
//! the owner of the first point at or after its key's hash (clockwise, binary search).
//!
//! `V`, the points per unit of weight, is `min_ring_size / total weight` rounded **up to a
//! power of two**: the ring has at least `min_ring_size` points (at most [`MAX_RING_SIZE`]),
//! and because `V` moves only when the total weight crosses a power of two, adding or
//! removing an endpoint usually leaves every other endpoint's points exactly where they
//! were — only the keys of the endpoint that left (or the share the new one takes) move.
//!
//! Fallback: the next distinct untried endpoint clockwise from the key. A request without a
//! key gets a weighted random target.

use super::{Balancer, PickContext, Sampler, Target, address_hasher, salted};

/// Most points on a ring (Envoy's default maximum).
pub const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;

/// Ring size used when a policy says 0.
pub const DEFAULT_MIN_RING_SIZE: u32 = 1024;

/// A consistent hash ring over one endpoint set.
#[derive(Debug)]
pub struct RingHash {
    /// Point hashes, ascending.
    points: Vec<u64>,
    /// Owner (target position) of each point.
    owners: Vec<u32>,
    sampler: Sampler,
}

impl RingHash {
    /// A ring over `targets` with at least `min_ring_size` points (see the module docs).
    pub fn new(targets: Vec<Target>, min_ring_size: u32) -> Self {
        let min = match min_ring_size {
            0 => DEFAULT_MIN_RING_SIZE,
            n => n,
        };
        let weights: Vec<u64> = targets.iter().map(|t| u64::from(t.weight.max(1))).collect();
        let total: u64 = weights.iter().sum::<u64>().max(1);
        let mut per_weight = u64::from(min).div_ceil(total).next_power_of_two();
        // Cap the ring, keeping at least one point per target.
        while per_weight > 1 && per_weight * total > MAX_RING_SIZE {
            per_weight /= 2;
        }
        let mut ring: Vec<(u64, u32)> = Vec::with_capacity((per_weight * total) as usize);
        for (p, t) in targets.iter().enumerate() {
            let base = address_hasher(t.address);
            let replicas = (weights[p] * per_weight).min(MAX_RING_SIZE);
            for r in 0..replicas {
                ring.push((salted(&base, r), p as u32));
            }
        }
        // Ties (a 64-bit collision) go to the lower address, not to the input order.
        ring.sort_unstable_by_key(|&(h, p)| (h, targets[p as usize].address));
        RingHash {
            points: ring.iter().map(|&(h, _)| h).collect(),
            owners: ring.iter().map(|&(_, p)| p).collect(),
            sampler: Sampler::new(&targets),
        }
    }

    /// The ring index owning `hash`: the first point at or after it, wrapping.
    fn index(&self, hash: u64) -> usize {
        let i = self.points.partition_point(|&p| p < hash);
        if i == self.points.len() { 0 } else { i }
    }
}

impl Balancer for RingHash {
    /// The key's owner; on a retry the next distinct untried owner clockwise; without a key
    /// a weighted random untried target.
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        let Some(hash) = ctx.hash else {
            return self.sampler.pick_untried(ctx);
        };
        if self.points.is_empty() {
            return None;
        }
        let start = self.index(hash);
        let members = &self.sampler.members;
        let owner = members[self.owners[start] as usize];
        if !ctx.was_tried(owner) {
            return Some(owner);
        }
        let untried_left = members.iter().any(|&m| !ctx.was_tried(m));
        if !untried_left {
            return Some(owner);
        }
        let n = self.points.len();
        (1..n)
            .map(|k| members[self.owners[(start + k) % n] as usize])
            .find(|&m| !ctx.was_tried(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{
        assert_binomial, counts, fallback_returns_the_last_untried, key, placement, targets,
    };

    #[test]
    fn the_same_key_always_lands_on_the_same_endpoint() {
        let t = targets(&[1, 1, 1, 1, 1]);
        let a = RingHash::new(t.clone(), 1024);
        let b = RingHash::new(t.clone(), 1024);
        assert_eq!(placement(&a, &t), placement(&a, &t));
        assert_eq!(placement(&a, &t), placement(&b, &t), "rebuilt: same ring");
    }

    #[test]
    fn keys_spread_by_weight() {
        // 1024 points per unit of weight here (min ring 4096 over weight 4, then rounded up).
        // Each endpoint's share of the ring is a sum of arcs with relative spread
        // ≈ 1/√points ≈ 3% (for 1024 points) — far inside the bounds below.
        let t = targets(&[1, 1, 2]);
        let b = RingHash::new(t.clone(), 4096);
        let mut c = [0usize; 3];
        for a in placement(&b, &t) {
            c[t.iter().position(|t| t.address == a).expect("target")] += 1;
        }
        for (c, share) in c.into_iter().zip([0.25, 0.25, 0.5]) {
            let got = c as f64 / 10_000.0;
            assert!((got - share).abs() < 0.05, "{c:?} vs {share}");
        }
    }

    #[test]
    fn removing_or_adding_one_endpoint_moves_only_its_keys() {
        // 10 endpoints, min ring 1024 → 128 points each (1024/10 rounded up to 128), also
        // for 9 or 11 endpoints: the survivors' points are unchanged, so a key moves iff
        // its owner left (or the new endpoint took it). The removed endpoint's share is
        // 1/10 with relative spread 1/√128 ≈ 9%: bound 1/N + 5 points.
        let all = targets(&[1; 11]);
        let ten = all[..10].to_vec();
        let before = placement(&RingHash::new(ten.clone(), 1024), &ten);
        let nine: Vec<Target> = ten.iter().filter(|t| t.member != 3).cloned().collect();
        let after = placement(&RingHash::new(nine.clone(), 1024), &nine);
        let gone = ten[3].address;
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                moved += 1;
                assert_eq!(*b, gone, "a key of an untouched endpoint moved");
            }
        }
        assert!(moved as f64 / 10_000.0 <= 0.10 + 0.05, "{moved} moved");
        assert!(moved > 0);

        let eleven = placement(&RingHash::new(all.clone(), 1024), &all);
        let added = all[10].address;
        let mut moved = 0;
        for (b, a) in before.iter().zip(&eleven) {
            if b != a {
                moved += 1;
                assert_eq!(*a, added, "a key moved between untouched endpoints");
            }
        }
        assert!(
            moved as f64 / 10_000.0 <= 1.0 / 11.0 + 0.05,
            "{moved} moved"
        );
        assert!(moved > 0);
    }

    #[test]
    fn the_ring_is_at_least_min_size() {
        let b = RingHash::new(targets(&[1, 1, 1]), 1000);
        assert!(b.points.len() >= 1000);
        assert_eq!(
            b.points.len(),
            3 * 512,
            "1000/3 rounded up to a power of two"
        );
    }

    #[test]
    fn without_a_key_targets_are_random_by_weight() {
        let b = RingHash::new(targets(&[1, 3]), 64);
        let c = counts(&b, 2, 20_000);
        assert_binomial(c[0], 20_000, 0.25);
    }

    #[test]
    fn retries_walk_clockwise_to_distinct_endpoints() {
        let t = targets(&[1, 1, 1, 1]);
        let b = RingHash::new(t, 64);
        let mut tried = crate::balance::Tried::default();
        for _ in 0..4 {
            let ctx = PickContext {
                hash: Some(key(7)),
                attempt: 0,
                tried: tried.as_slice(),
            };
            tried.push(b.pick(&ctx).expect("pick"));
        }
        let mut all = tried.as_slice().to_vec();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
    }

    #[test]
    fn with_all_but_one_tried_the_remaining_one_is_picked() {
        fallback_returns_the_last_untried(&RingHash::new(targets(&[1, 2, 3, 4, 5]), 256), 5);
    }
}
