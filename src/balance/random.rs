//! Weighted random: each pick draws a target with probability proportional to its weight
//! (cumulative weights and a binary search; a uniform draw when every weight is equal).
//!
//! Stateless, so nothing is shared between picks but the per-thread random generator. On a
//! retry it draws again among the targets the request has not tried.

use super::{Balancer, PickContext, Sampler, Target};

/// Weighted random choice over one endpoint set.
#[derive(Debug)]
pub struct Random {
    sampler: Sampler,
}

impl Random {
    /// A random balancer over `targets` (zero weights count as 1).
    pub fn new(targets: Vec<Target>) -> Self {
        Random {
            sampler: Sampler::new(&targets),
        }
    }
}

impl Balancer for Random {
    /// A weighted draw among the untried targets (any target once all were tried).
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        self.sampler.pick_untried(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{assert_binomial, targets};

    #[test]
    fn equal_weights_spread_evenly() {
        let b = Random::new(targets(&[1, 1, 1, 1]));
        let counts = crate::balance::testing::counts(&b, 4, 40_000);
        for c in counts {
            assert_binomial(c, 40_000, 0.25);
        }
    }

    #[test]
    fn weights_are_honoured_in_proportion() {
        let b = Random::new(targets(&[1, 3, 6]));
        let counts = crate::balance::testing::counts(&b, 3, 40_000);
        for (c, p) in counts.into_iter().zip([0.1, 0.3, 0.6]) {
            assert_binomial(c, 40_000, p);
        }
    }

    #[test]
    fn with_all_but_one_tried_the_remaining_one_is_picked() {
        let b = Random::new(targets(&[1, 2, 3, 4, 5]));
        crate::balance::testing::fallback_returns_the_last_untried(&b, 5);
    }

    #[test]
    fn empty_set_picks_nothing() {
        assert!(
            Random::new(Vec::new())
                .pick(&PickContext::default())
                .is_none()
        );
    }
}
