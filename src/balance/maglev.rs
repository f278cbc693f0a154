//! Maglev consistent hashing (Google's Maglev paper, §3.4; weighted the way Envoy does).
//!
//! A lookup table of [`TABLE_SIZE`] entries (a prime) is filled from per-endpoint
//! preference lists: each endpoint's list is the permutation `offset + j × skip (mod M)`,
//! with `offset` and `skip` hashed from its **address**, so every proxy and every rebuild
//! computes the same table for the same endpoint set. Endpoints take turns claiming their
//! next preferred free entry; weights are honoured by turns, as Envoy does: on iteration
//! `i`, an endpoint of weight `w` takes a turn when `i × w` has reached its running target
//! (which grows by the largest weight per turn), so an endpoint of half the largest weight
//! takes every other turn. A request goes to `table[hash mod M]`: one array read.
//!
//! When an endpoint is added or removed, about `1/N` of the keys move, plus a small
//! disruption of others (the paper's trade-off for an even spread; see the tests for the
//! bound). Fallback: probe onward in the table to the first untried member. A request
//! without a key gets a weighted random target.

use super::{Balancer, PickContext, Sampler, Target, address_hasher, salted};

/// Entries in the lookup table (Envoy's default; a prime, so every `skip` is a full
/// permutation).
pub const TABLE_SIZE: usize = 65537;

/// A Maglev lookup table over one endpoint set.
#[derive(Debug)]
pub struct Maglev {
    /// Target position of each entry (empty when there are no targets).
    table: Vec<u32>,
    sampler: Sampler,
}

impl Maglev {
    /// A table over `targets` (zero weights count as 1).
    pub fn new(targets: Vec<Target>) -> Self {
        Maglev {
            table: build_table(&targets, TABLE_SIZE),
            sampler: Sampler::new(&targets),
        }
    }
}

/// Fills a table of `m` entries (`m` prime) from the targets' preference lists.
fn build_table(targets: &[Target], m: usize) -> Vec<u32> {
    if targets.is_empty() {
        return Vec::new();
    }
    let m64 = m as u64;
    struct Entry {
        offset: u64,
        skip: u64,
        next: u64,
        weight: u64,
        target: u64,
    }
    let mut entries: Vec<Entry> = targets
        .iter()
        .map(|t| {
            let base = address_hasher(t.address);
            Entry {
                offset: salted(&base, 0) % m64,
                skip: salted(&base, 1) % (m64 - 1) + 1,
                next: 0,
                weight: u64::from(t.weight.max(1)),
                target: 0,
            }
        })
        .collect();
    let max_weight = entries.iter().map(|e| e.weight).max().unwrap_or(1);
    let mut table = vec![u32::MAX; m];
    let mut filled = 0;
    let mut iteration: u64 = 1;
    while filled < m {
        for (p, e) in entries.iter_mut().enumerate() {
            if filled == m {
                break;
            }
            if iteration * e.weight < e.target {
                continue;
            }
            e.target += max_weight;
            // The next free entry in this target's preference list (`m` prime and
            // `skip` in 1..m: the list visits every entry, so one is found).
            loop {
                let c = ((e.offset + e.next * e.skip) % m64) as usize;
                e.next += 1;
                if table[c] == u32::MAX {
                    table[c] = p as u32;
                    filled += 1;
                    break;
                }
            }
        }
        iteration += 1;
    }
    table
}

impl Balancer for Maglev {
    /// `table[hash mod M]`; on a retry, the first entry onward whose member is untried;
    /// without a key a weighted random untried target.
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        let Some(hash) = ctx.hash else {
            return self.sampler.pick_untried(ctx);
        };
        if self.table.is_empty() {
            return None;
        }
        let m = self.table.len();
        let start = (hash % m as u64) as usize;
        let members = &self.sampler.members;
        let owner = members[self.table[start] as usize];
        if !ctx.was_tried(owner) || members.iter().all(|&x| ctx.was_tried(x)) {
            return Some(owner);
        }
        (1..m)
            .map(|k| members[self.table[(start + k) % m] as usize])
            .find(|&x| !ctx.was_tried(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{
        assert_binomial, counts, fallback_returns_the_last_untried, placement, targets,
    };

    #[test]
    fn the_same_key_always_lands_on_the_same_endpoint() {
        let t = targets(&[1, 1, 1, 1, 1]);
        let a = Maglev::new(t.clone());
        assert_eq!(placement(&a, &t), placement(&a, &t));
        assert_eq!(
            placement(&a, &t),
            placement(&Maglev::new(t.clone()), &t),
            "rebuilt: same table"
        );
    }

    #[test]
    fn entries_follow_weights() {
        // Turns are proportional to weight, so entry counts are within a few turns of
        // M × w / Σw (weights 1, 2, 3: ideal 10923, 21846, 32768).
        let table = build_table(&targets(&[1, 2, 3]), TABLE_SIZE);
        let mut c = [0usize; 3];
        for p in table {
            c[p as usize] += 1;
        }
        for (c, w) in c.into_iter().zip([1.0, 2.0, 3.0]) {
            let ideal = TABLE_SIZE as f64 * w / 6.0;
            assert!((c as f64 - ideal).abs() <= 3.0, "{c} vs {ideal}");
        }
        let table = build_table(&targets(&[1, 1, 1, 1]), TABLE_SIZE);
        let mut c = [0usize; 4];
        for p in table {
            c[p as usize] += 1;
        }
        assert!(c.iter().all(|&c| c.abs_diff(TABLE_SIZE / 4) <= 1), "{c:?}");
    }

    #[test]
    fn removing_or_adding_one_endpoint_moves_about_one_nth_of_the_keys() {
        // Maglev trades a little disruption for an even table: beyond the keys of the
        // endpoint removed (1/N = 10% here) a few keys of others move. Bounds: at most
        // 1/N + 5 points move, and at most 3% of the keys of untouched endpoints (the
        // paper's figure 11 shows a few percent for small N).
        let all = targets(&[1; 11]);
        let ten = all[..10].to_vec();
        let before = placement(&Maglev::new(ten.clone()), &ten);
        let nine: Vec<Target> = ten.iter().filter(|t| t.member != 3).cloned().collect();
        let after = placement(&Maglev::new(nine.clone()), &nine);
        let gone = ten[3].address;
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let untouched = before.iter().filter(|b| **b != gone).count();
        let untouched_moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| **b != gone && b != a)
            .count();
        eprintln!("maglev remove: {moved} moved, {untouched_moved} of {untouched} untouched");
        assert!(moved as f64 / 10_000.0 <= 0.10 + 0.05, "{moved} moved");
        assert!(
            untouched_moved as f64 <= 0.03 * untouched as f64,
            "{untouched_moved} of {untouched}"
        );

        let eleven = placement(&Maglev::new(all.clone()), &all);
        let added = all[10].address;
        let moved = before.iter().zip(&eleven).filter(|(b, a)| b != a).count();
        let stolen = before
            .iter()
            .zip(&eleven)
            .filter(|(b, a)| b != a && **a != added)
            .count();
        eprintln!("maglev add: {moved} moved, {stolen} between untouched endpoints");
        assert!(
            moved as f64 / 10_000.0 <= 1.0 / 11.0 + 0.05,
            "{moved} moved"
        );
        assert!(stolen as f64 <= 0.03 * 10_000.0, "{stolen}");
    }

    #[test]
    fn without_a_key_targets_are_random_by_weight() {
        let b = Maglev::new(targets(&[1, 3]));
        let c = counts(&b, 2, 20_000);
        assert_binomial(c[0], 20_000, 0.25);
    }

    #[test]
    fn keys_spread_over_every_endpoint() {
        // 10,000 keys over 5 equal endpoints (each 1/5 of the table ± 1 entry): a
        // binomial(10000, 0.2) count per endpoint.
        let t = targets(&[1; 5]);
        let b = Maglev::new(t.clone());
        let p = placement(&b, &t);
        for t in &t {
            assert_binomial(p.iter().filter(|a| **a == t.address).count(), 10_000, 0.2);
        }
    }

    #[test]
    fn with_all_but_one_tried_the_remaining_one_is_picked() {
        fallback_returns_the_last_untried(&Maglev::new(targets(&[1, 2, 3, 4, 5])), 5);
    }
}
