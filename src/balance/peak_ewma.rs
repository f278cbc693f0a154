//! Peak EWMA (Finagle, linkerd): power of two choices on a latency-aware cost.
//!
//! Each endpoint keeps a peak exponentially weighted moving average of its response
//! latency ([`EndpointLoad::complete`]): a slower response raises it at once, faster ones
//! lower it gradually, so an endpoint that starts to slow down loses traffic immediately
//! and regains it as it recovers. At pick time the average is decayed towards zero for the
//! time since its last sample (an endpoint that stopped getting traffic because it was slow
//! is tried again eventually), and multiplied by the requests in flight plus one:
//!
//! `cost = ewma × (in_flight + 1)`
//!
//! Two distinct targets are drawn by weight and the one with the lower `cost / weight`
//! wins. An endpoint never sampled costs [`DEFAULT_RTT`] (linkerd's default RTT), so a new
//! endpoint is tried as soon as the others are slower or busier than that, without
//! attracting every request at once as a zero cost would.
//!
//! The decay time comes from the policy; the balancer stores it in its endpoints' loads
//! (where `complete` reads it), [`DEFAULT_DECAY`] until then.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Balancer, EndpointLoad, PickContext, Sampler, Target, now_ns};

/// The cost basis of an endpoint without a latency sample yet.
pub const DEFAULT_RTT: Duration = Duration::from_millis(30);

/// The decay time used before a peak-EWMA balancer set the policy's.
pub const DEFAULT_DECAY: Duration = Duration::from_secs(10);

/// Peak EWMA over one endpoint set.
#[derive(Debug)]
pub struct PeakEwma {
    sampler: Sampler,
    weights: Vec<u32>,
    loads: Vec<Arc<EndpointLoad>>,
}

impl PeakEwma {
    /// A peak-EWMA balancer over `targets` whose averages decay over `decay` (zero: the
    /// default, 10 s).
    pub fn new(targets: Vec<Target>, decay: Duration) -> Self {
        let decay = if decay.is_zero() {
            DEFAULT_DECAY
        } else {
            decay
        };
        for t in &targets {
            t.load.decay_ns.store(
                decay.as_nanos().min(u128::from(u64::MAX)) as u64,
                Ordering::Relaxed,
            );
        }
        PeakEwma {
            sampler: Sampler::new(&targets),
            weights: targets.iter().map(|t| t.weight.max(1)).collect(),
            loads: targets.into_iter().map(|t| t.load).collect(),
        }
    }

    fn cost(&self, p: usize, now: u64) -> f64 {
        let load = &self.loads[p];
        let ewma = load.ewma_at(now).unwrap_or(DEFAULT_RTT.as_nanos() as f64);
        ewma * (load.in_flight() + 1) as f64
    }
}

impl Balancer for PeakEwma {
    /// The cheaper of two distinct untried targets; the only untried one when one is left;
    /// any target once all were tried.
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        let now = now_ns();
        self.sampler.p2c(ctx, &self.weights, |p| self.cost(p, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::Outcome;
    use crate::balance::testing::{
        assert_binomial, counts, fallback_returns_the_last_untried, targets,
    };

    fn ok(ms: u64) -> Outcome {
        Outcome {
            status: Some(200),
            latency: Duration::from_millis(ms),
        }
    }

    #[test]
    fn the_low_latency_target_is_preferred() {
        let t = targets(&[1, 1, 1]);
        for _ in 0..5 {
            t[0].load.complete(&ok(5));
            t[1].load.complete(&ok(50));
            t[2].load.complete(&ok(50));
        }
        let b = PeakEwma::new(t, Duration::from_secs(10));
        let c = counts(&b, 3, 30_000);
        // Target 0 wins every pair it is in: 2/3 of the pairs (the two others tie and split
        // the rest by first draw).
        assert_binomial(c[0], 30_000, 2.0 / 3.0);
    }

    #[test]
    fn a_peak_raises_the_average_at_once_and_fast_samples_lower_it_gradually() {
        let load = EndpointLoad::default();
        load.complete(&ok(10));
        let now = now_ns();
        let first = load.ewma_at(now).expect("sampled");
        assert!((first - 10e6).abs() < 1e5, "{first}");
        load.complete(&ok(100));
        let peak = load.ewma_at(now_ns()).expect("sampled");
        assert!(peak > 99e6, "peak taken at once: {peak}");
        // A fast sample right after barely moves it (Δt ≈ 0, the old average's weight ≈ 1).
        load.complete(&ok(1));
        let after = load.ewma_at(now_ns()).expect("sampled");
        assert!(after > 90e6, "{after}");
    }

    #[test]
    fn the_average_decays_at_read() {
        let load = EndpointLoad::default();
        load.decay_ns.store(1_000_000_000, Ordering::Relaxed);
        load.complete(&ok(100));
        let at = load.ewma_at_ns.load(Ordering::Relaxed);
        // One decay time later: e^-1 of it.
        let later = load.ewma_at(at + 1_000_000_000).expect("sampled");
        assert!((later - 100e6 / std::f64::consts::E).abs() < 1e5, "{later}");
    }

    #[test]
    fn failures_count_as_slow() {
        let load = EndpointLoad::default();
        load.complete(&Outcome::failed());
        assert!(load.ewma_at(now_ns()).expect("sampled") >= 0.99e9);
    }

    #[test]
    fn an_unsampled_target_is_tried_when_the_others_are_slower() {
        let t = targets(&[1, 1]);
        t[0].load.complete(&ok(200));
        let b = PeakEwma::new(t, Duration::from_secs(10));
        // 30 ms default beats 200 ms.
        assert_eq!(counts(&b, 2, 1000), vec![0, 1000]);
    }

    #[test]
    fn with_all_but_one_tried_the_remaining_one_is_picked() {
        let t = targets(&[1, 2, 3, 4, 5]);
        t[4].load.complete(&ok(500));
        fallback_returns_the_last_untried(&PeakEwma::new(t, Duration::ZERO), 5);
    }
}
