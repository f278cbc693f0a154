//! Slow start: a new endpoint's share ramps up linearly over `LoadBalancer::slow_start`.
//!
//! One mechanism for every non-hashing policy: [`SlowStart`] wraps the policy's balancer
//! and **thins its picks**. An endpoint that joined `age` ago has the factor
//! `f = max(age / window, 10%)` (Envoy's `min_weight_percent` default); a pick of it is
//! accepted with probability `f / f_max` — `f_max` being the largest factor in the set (1
//! when any endpoint is at full share) — and otherwise the inner balancer picks again (at
//! most [`REPICKS`] times, then the last pick stands). Accepted picks therefore follow
//! `share × f`, normalised: with one new endpoint among old ones its share at half the
//! window is half its steady share (a little more, as the others' shares shrink
//! correspondingly less), and when every endpoint is new their shares follow their own
//! ramps (joined at 20%, 40% and 80% of the window: shares 1:2:4).
//!
//! Balancers are rebuilt only when the endpoint set or its health changes, so the ramp is
//! computed at pick time: one clock read per pick while some endpoint is ramping, nothing
//! once the last ramp ended (a flag flips, and the wrapper is not built at all when no
//! endpoint is young at build time).
//!
//! Hashing policies (ring hash, Maglev) have no slow start: thinning would move a key's
//! requests off its endpoint and back, breaking affinity (Envoy, too, offers slow start
//! only for round robin and least request). A pick the request already tried (the fallback
//! once every endpoint was tried) is not thinned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;

use super::{Balancer, PickContext, Target, with_rng};
use crate::snapshot::{LbPolicy, LoadBalancer};

/// Smallest share factor of a ramping endpoint.
pub const MIN_FACTOR: f64 = 0.1;

/// Extra picks at most per request when picks are refused.
pub const REPICKS: usize = 8;

/// The ramp of one endpoint set: when each member joined, and when the last ramp ends.
#[derive(Debug, Clone)]
pub struct Ramp {
    window: Duration,
    /// When each member (by member index) joined; `None`: full share.
    joined: Vec<Option<Instant>>,
    /// The earliest join among the targets (`None`: some target is at full share from the
    /// start), whose factor is the largest.
    oldest: Option<Instant>,
    /// When every ramp is over.
    ends: Instant,
}

impl Ramp {
    /// The ramp of `targets` under `lb`, when slow start is on, the policy is not a hashing
    /// one, and some target is younger than the window now.
    pub fn of(lb: &LoadBalancer, targets: &[Target]) -> Option<Ramp> {
        if lb.slow_start.is_zero()
            || matches!(
                lb.policy,
                LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. }
            )
        {
            return None;
        }
        Ramp::new(lb.slow_start, targets, Instant::now())
    }

    /// The ramp of `targets` over `window` as of `now` (`None` when no target ramps).
    pub fn new(window: Duration, targets: &[Target], now: Instant) -> Option<Ramp> {
        let latest = targets.iter().filter_map(|t| t.joined).max()?;
        let ends = latest + window;
        if ends <= now {
            return None;
        }
        let size = targets.iter().map(|t| t.member + 1).max().unwrap_or(0);
        let mut joined = vec![None; size];
        for t in targets {
            joined[t.member] = t.joined;
        }
        let oldest = if targets.iter().any(|t| t.joined.is_none()) {
            None
        } else {
            targets.iter().filter_map(|t| t.joined).min()
        };
        Some(Ramp {
            window,
            joined,
            oldest,
            ends,
        })
    }

    /// The share factor of an endpoint that joined at `joined`, at `now`.
    fn factor(&self, joined: Option<Instant>, now: Instant) -> f64 {
        let Some(joined) = joined else { return 1.0 };
        let age = now.saturating_duration_since(joined).as_secs_f64();
        (age / self.window.as_secs_f64()).clamp(MIN_FACTOR, 1.0)
    }
}

/// A balancer whose picks of young endpoints are thinned by their ramp.
#[derive(Debug)]
pub struct SlowStart {
    inner: Box<dyn Balancer>,
    ramp: Ramp,
    /// Set once every ramp is over: picks go straight to the inner balancer.
    done: AtomicBool,
}

impl SlowStart {
    /// Wraps `inner` with `ramp`.
    pub fn new(inner: Box<dyn Balancer>, ramp: Ramp) -> Self {
        SlowStart {
            inner,
            ramp,
            done: AtomicBool::new(false),
        }
    }

    /// A pick as of `now` (the clock is a parameter for the tests).
    fn pick_at(&self, ctx: &PickContext<'_>, now: Instant) -> Option<usize> {
        if now >= self.ramp.ends {
            self.done.store(true, Ordering::Relaxed);
            return self.inner.pick(ctx);
        }
        let top = self.ramp.factor(self.ramp.oldest, now);
        let mut last = self.inner.pick(ctx)?;
        for _ in 0..REPICKS {
            if ctx.was_tried(last) {
                return Some(last);
            }
            let joined = self.ramp.joined.get(last).copied().flatten();
            let keep = self.ramp.factor(joined, now) / top;
            if keep >= 1.0 || with_rng(|r| r.random::<f64>()) < keep {
                return Some(last);
            }
            last = self.inner.pick(ctx)?;
        }
        Some(last)
    }
}

impl Balancer for SlowStart {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        if self.done.load(Ordering::Relaxed) {
            return self.inner.pick(ctx);
        }
        self.pick_at(ctx, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::random::Random;
    use crate::balance::round_robin::RoundRobin;
    use crate::balance::testing::{assert_binomial, fallback_returns_the_last_untried, targets};

    const WINDOW: Duration = Duration::from_secs(100);

    /// Targets of equal weight, joined this long ago (`None`: from the start).
    fn aged(now: Instant, ages: &[Option<f64>]) -> Vec<Target> {
        let mut t = targets(&vec![1; ages.len()]);
        for (t, age) in t.iter_mut().zip(ages) {
            t.joined = age.map(|a| now - WINDOW.mul_f64(a));
        }
        t
    }

    fn shares(b: &SlowStart, n: usize, picks: usize, now: Instant) -> Vec<usize> {
        let mut c = vec![0; n];
        for _ in 0..picks {
            c[b.pick_at(&PickContext::default(), now).expect("pick")] += 1;
        }
        c
    }

    #[test]
    fn at_half_the_window_a_new_endpoint_gets_half_its_steady_share() {
        // 3 old endpoints and one at half its ramp (factor 0.5): weights 1,1,1,0.5, so the
        // new one's share is 0.5/3.5 = 1/7 (steady: 1/4), and each old one's 1/3.5 = 2/7.
        let now = Instant::now() + WINDOW;
        let t = aged(now, &[None, None, None, Some(0.5)]);
        let ramp = Ramp::new(WINDOW, &t, now).expect("ramping");
        for inner in [
            Box::new(Random::new(t.clone())) as Box<dyn Balancer>,
            Box::new(RoundRobin::new(t.clone())),
        ] {
            let b = SlowStart::new(inner, ramp.clone());
            let c = shares(&b, 4, 40_000, now);
            assert_binomial(c[3], 40_000, 1.0 / 7.0);
            // Half of an old endpoint's count, within the same 5σ bound (±0.9 points).
            let ratio = c[3] as f64 / c[0] as f64;
            assert!((ratio - 0.5).abs() < 0.06, "{c:?}");
        }
    }

    #[test]
    fn after_the_window_the_share_is_full() {
        let now = Instant::now() + WINDOW * 3;
        let t = aged(now, &[None, Some(1.5)]);
        assert!(
            Ramp::new(WINDOW, &t, now).is_none(),
            "no wrapper once ramped"
        );
        // A wrapper built during the ramp stops thinning at its end.
        let t = aged(now, &[None, Some(0.5)]);
        let ramp = Ramp::new(WINDOW, &t, now).expect("ramping");
        let b = SlowStart::new(Box::new(Random::new(t)), ramp);
        let c = shares(&b, 2, 20_000, now + WINDOW);
        assert_binomial(c[1], 20_000, 0.5);
        assert!(b.done.load(Ordering::Relaxed));
    }

    #[test]
    fn when_every_endpoint_is_new_shares_follow_their_own_ramps() {
        // Factors 0.2, 0.4, 0.8: shares 1/7, 2/7, 4/7 (each accepted with f / 0.8).
        let now = Instant::now() + WINDOW;
        let t = aged(now, &[Some(0.2), Some(0.4), Some(0.8)]);
        let ramp = Ramp::new(WINDOW, &t, now).expect("ramping");
        let b = SlowStart::new(Box::new(Random::new(t)), ramp);
        let c = shares(&b, 3, 40_000, now);
        for (c, p) in c.into_iter().zip([1.0 / 7.0, 2.0 / 7.0, 4.0 / 7.0]) {
            assert_binomial(c, 40_000, p);
        }
        // The same age for all: no thinning at all, equal shares.
        let t = aged(now, &[Some(0.3), Some(0.3)]);
        let ramp = Ramp::new(WINDOW, &t, now).expect("ramping");
        let b = SlowStart::new(Box::new(RoundRobin::new(t)), ramp);
        assert_eq!(shares(&b, 2, 1000, now), vec![500, 500]);
    }

    #[test]
    fn a_brand_new_endpoint_gets_the_minimum_share() {
        // Factor 0.1 against 1: share 0.1 / 1.1 with one old endpoint.
        let now = Instant::now() + WINDOW;
        let t = aged(now, &[None, Some(0.0)]);
        let ramp = Ramp::new(WINDOW, &t, now).expect("ramping");
        let b = SlowStart::new(Box::new(Random::new(t)), ramp);
        let c = shares(&b, 2, 40_000, now);
        // With at most 8 re-picks, a pick of the new endpoint survives all nine rounds of
        // refusals with probability ≈ (0.45)^9 ≈ 0.0008: negligible against 5σ.
        assert_binomial(c[1], 40_000, 0.1 / 1.1);
    }

    #[test]
    fn hashing_policies_have_no_slow_start() {
        let mut lb = LoadBalancer {
            slow_start: WINDOW,
            ..LoadBalancer::default()
        };
        let now = Instant::now();
        let t = aged(now, &[None, Some(0.1)]);
        assert!(Ramp::of(&lb, &t).is_some());
        lb.policy = LbPolicy::Maglev {
            key: crate::snapshot::HashKey::SourceIp,
        };
        assert!(Ramp::of(&lb, &t).is_none());
    }

    #[test]
    fn with_all_but_one_tried_the_remaining_one_is_picked() {
        let now = Instant::now();
        let t = aged(now, &[None, Some(0.0), Some(0.0), Some(0.5), None]);
        let ramp = Ramp::new(WINDOW, &t, now).expect("ramping");
        let b = SlowStart::new(Box::new(Random::new(t)), ramp);
        fallback_returns_the_last_untried(&b, 5);
    }
}
