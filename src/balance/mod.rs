//! Load balancers: one policy per file behind one trait.
//!
//! A [`Balancer`] is built over the **usable subset** of a cluster's endpoints (healthy, not
//! ejected, topology-preferred when any is; all of them under the panic threshold — the
//! registry decides, see `proxy::upstream`), once per change of that subset, never per
//! request. Each [`Target`] carries its index among the cluster's members, which is what
//! [`Balancer::pick`] returns.
//!
//! Each policy owns its fallback order: a pick is told the endpoints this request already
//! tried ([`PickContext::tried`]) and returns an untried one while any is left (the next in
//! the cycle for round robin, another pair for P2C, the next distinct endpoint clockwise on a
//! hash ring), and a tried one only when every target was tried.
//!
//! State is process-global: one balancer per cluster shared by every worker thread (atomics,
//! no per-worker copies), and live per-endpoint load in [`EndpointLoad`], owned by the
//! endpoint's runtime state so that it survives a rebuild of the balancer. Completions report
//! to [`EndpointLoad::complete`] (status and latency), which latency-aware policies read.
//!
//! The policies: [`round_robin`], [`random`], [`least_request`] (power of two choices),
//! [`peak_ewma`], and the consistent-hashing [`ring_hash`] and [`maglev`], which balance by
//! [`PickContext::hash`] (computed by the proxy from the cluster's hash key) and fall back
//! to weighted random for requests without one. [`slow_start`] wraps any non-hashing policy
//! to ramp new endpoints up. Randomness comes from a per-thread fast generator; everything
//! a pick reads or writes besides it is shared.

pub mod least_request;
pub mod maglev;
pub mod peak_ewma;
pub mod random;
pub mod ring_hash;
pub mod round_robin;
pub mod slow_start;

use std::cell::RefCell;
use std::hash::Hasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::snapshot::{LbPolicy, LoadBalancer};

/// What a balancer may know about the request it balances.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickContext<'a> {
    /// A hash of the request's affinity key (header, cookie, source IP, query parameter),
    /// for hashing policies. `None` when the policy hashes nothing or the request has no key.
    pub hash: Option<u64>,
    /// Attempt number of this pick (0: the first).
    pub attempt: u32,
    /// Member indices this request already tried.
    pub tried: &'a [usize],
}

impl PickContext<'_> {
    /// Whether member `i` was already tried.
    pub fn was_tried(&self, i: usize) -> bool {
        self.tried.contains(&i)
    }
}

/// One endpoint a balancer balances over.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its index among the cluster's members (what [`Balancer::pick`] returns).
    pub member: usize,
    /// Its address (hash rings place endpoints by address, so a ring is stable across
    /// rebuilds and proxies).
    pub address: SocketAddr,
    /// Relative weight (at least 1).
    pub weight: u32,
    /// Live load, shared with the endpoint's runtime state.
    pub load: Arc<EndpointLoad>,
    /// When it joined the cluster, for slow start (`None`: present from the start, full
    /// share at once).
    pub joined: Option<Instant>,
}

/// How one request to an endpoint ended, for [`EndpointLoad::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The response status (`None`: no response — connect failure, reset, timeout).
    pub status: Option<u16>,
    /// From sending the request to its response head (or the failure).
    pub latency: Duration,
}

impl Outcome {
    /// No response: connecting failed.
    pub fn failed() -> Self {
        Outcome {
            status: None,
            latency: Duration::ZERO,
        }
    }
}

/// Live load of one endpoint, shared between the registry and load-aware balancers.
#[derive(Debug, Default)]
pub struct EndpointLoad {
    /// Requests sent to the endpoint and not finished yet.
    pub in_flight: AtomicU64,
    /// Peak EWMA of response latency, in nanoseconds (0: no sample yet).
    pub ewma_ns: AtomicU64,
    /// When `ewma_ns` was last updated, in nanoseconds since [`EndpointLoad`]'s epoch.
    pub ewma_at_ns: AtomicU64,
    /// Decay time of the moving average in nanoseconds, set by the peak-EWMA balancer built
    /// over this endpoint (0: [`peak_ewma::DEFAULT_DECAY`]). An address shared by two
    /// clusters with different decays takes the last one built.
    pub decay_ns: AtomicU64,
}

/// The latency sample a request without a response counts as (at least): an endpoint that
/// fails fast must not look fast to a latency-aware balancer.
pub const FAILURE_PENALTY: Duration = Duration::from_secs(1);

impl EndpointLoad {
    /// Current number of requests in flight.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Records how a request ended (called once per attempt that reached the endpoint):
    /// folds its latency into the peak EWMA (Finagle/linkerd): a sample above the current
    /// estimate replaces it at once (peak); a lower one is blended in with weight
    /// `1 - e^(-Δt/decay)`, `Δt` the time since the previous update. A request without a
    /// response counts as at least [`FAILURE_PENALTY`].
    ///
    /// Lock-free: concurrent completions may interleave their read of the time and the
    /// value, which makes the average approximate, never wrong by more than one sample.
    pub fn complete(&self, outcome: &Outcome) {
        let mut sample = outcome.latency;
        if outcome.status.is_none() {
            sample = sample.max(FAILURE_PENALTY);
        }
        // At least 1 ns: 0 means "never sampled".
        let sample = (sample.as_nanos().min(u128::from(u64::MAX)) as u64).max(1);
        let now = now_ns();
        let before = self.ewma_at_ns.swap(now, Ordering::Relaxed);
        let decay = self.decay();
        let _ = self
            .ewma_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                if old == 0 || sample >= old {
                    return Some(sample);
                }
                let w = decay_weight(now.saturating_sub(before), decay);
                Some(((old as f64) * w + (sample as f64) * (1.0 - w)).max(1.0) as u64)
            });
    }

    /// The peak EWMA decayed to `now` (nanoseconds since the epoch, [`now_ns`]), as if
    /// samples of zero had arrived since the last update; `None` when never sampled.
    pub fn ewma_at(&self, now: u64) -> Option<f64> {
        let ewma = self.ewma_ns.load(Ordering::Relaxed);
        if ewma == 0 {
            return None;
        }
        let at = self.ewma_at_ns.load(Ordering::Relaxed);
        Some(ewma as f64 * decay_weight(now.saturating_sub(at), self.decay()))
    }

    fn decay(&self) -> u64 {
        match self.decay_ns.load(Ordering::Relaxed) {
            0 => peak_ewma::DEFAULT_DECAY.as_nanos() as u64,
            d => d,
        }
    }
}

/// `e^(-elapsed/decay)`: how much of the old average remains after `elapsed`.
fn decay_weight(elapsed_ns: u64, decay_ns: u64) -> f64 {
    (-(elapsed_ns as f64) / (decay_ns.max(1) as f64)).exp()
}

/// Nanoseconds since the process-wide epoch of [`EndpointLoad`]'s timestamps (never 0).
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    (epoch.elapsed().as_nanos() as u64).max(1)
}

/// Chooses endpoints for requests. Built per usable subset; shared by every request.
pub trait Balancer: Send + Sync + std::fmt::Debug {
    /// The member index to try for one attempt: an untried target while any is left, else
    /// the policy's choice among the tried. `None` only when there is no target.
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize>;
}

/// Builds the balancer of `lb` over `targets`. With a slow-start window, the balancer is
/// wrapped in [`slow_start::SlowStart`] while any target is younger than the window
/// (hashing policies excepted: see there).
pub fn build(lb: &LoadBalancer, targets: Vec<Target>) -> Box<dyn Balancer> {
    let ramp = slow_start::Ramp::of(lb, &targets);
    let inner: Box<dyn Balancer> = match &lb.policy {
        LbPolicy::RoundRobin => Box::new(round_robin::RoundRobin::new(targets)),
        LbPolicy::Random => Box::new(random::Random::new(targets)),
        LbPolicy::LeastRequest => Box::new(least_request::LeastRequest::new(targets)),
        LbPolicy::PeakEwma { decay } => Box::new(peak_ewma::PeakEwma::new(targets, *decay)),
        LbPolicy::RingHash { min_ring_size, .. } => {
            Box::new(ring_hash::RingHash::new(targets, *min_ring_size))
        }
        LbPolicy::Maglev { .. } => Box::new(maglev::Maglev::new(targets)),
    };
    match ramp {
        Some(ramp) => Box::new(slow_start::SlowStart::new(inner, ramp)),
        None => inner,
    }
}

/// A stable 64-bit hash of `bytes` (SipHash-1-3 with fixed keys): the same in every proxy
/// of one build, so hash rings, Maglev tables and affinity keys agree across replicas.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// A [`stable_hash`] state that has hashed an endpoint address as text (`10.0.0.1:8080`):
/// clone it and add a salt (a replica number, a seed) for each hash of that address.
fn address_hasher(address: SocketAddr) -> std::hash::DefaultHasher {
    let mut h = std::hash::DefaultHasher::new();
    h.write(address.to_string().as_bytes());
    h
}

/// The hash of an address state from [`address_hasher`] with `salt`.
fn salted(base: &std::hash::DefaultHasher, salt: u64) -> u64 {
    let mut h = base.clone();
    h.write_u64(salt);
    h.finish()
}

thread_local! {
    /// A fast per-thread generator (Xoshiro256++), seeded once from the OS-seeded thread
    /// RNG. Only the random stream is per thread; balancer state stays global.
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// Runs `f` with this thread's fast random generator.
pub(crate) fn with_rng<R>(f: impl FnOnce(&mut SmallRng) -> R) -> R {
    RNG.with(|r| f(&mut r.borrow_mut()))
}

/// Weighted random choice over a target set (cumulative weights + binary search, rand's
/// `WeightedIndex`), with draws that avoid some targets: what random, P2C and the hashing
/// policies (for requests without a key) share.
#[derive(Debug)]
pub(crate) struct Sampler {
    /// Member index of each target.
    pub(crate) members: Vec<usize>,
    /// `None` when there are no targets, or when every weight is equal (a uniform draw).
    weighted: Option<WeightedIndex<u64>>,
}

/// Weighted draws tried before falling back to a scan for an acceptable target.
const DRAWS: usize = 4;

impl Sampler {
    pub(crate) fn new(targets: &[Target]) -> Self {
        let weights: Vec<u64> = targets.iter().map(|t| u64::from(t.weight.max(1))).collect();
        let uniform = weights.windows(2).all(|w| w[0] == w[1]);
        Sampler {
            members: targets.iter().map(|t| t.member).collect(),
            weighted: if uniform {
                None
            } else {
                WeightedIndex::new(&weights).ok()
            },
        }
    }

    /// One weighted draw (a target position); `None` for no targets.
    pub(crate) fn draw(&self, rng: &mut SmallRng) -> Option<usize> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        Some(match &self.weighted {
            Some(w) => w.sample(rng),
            None => rng.random_range(0..n),
        })
    }

    /// A weighted draw whose position `ok` accepts: up to [`DRAWS`] draws, then the first
    /// acceptable position after a random start (so a request that tried most targets still
    /// gets a fresh one in bounded time). `None` when no position is acceptable.
    pub(crate) fn draw_where(
        &self,
        rng: &mut SmallRng,
        ok: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        for _ in 0..DRAWS {
            let p = self.draw(rng)?;
            if ok(p) {
                return Some(p);
            }
        }
        let n = self.members.len();
        let start = rng.random_range(0..n);
        (0..n).map(|k| (start + k) % n).find(|&p| ok(p))
    }

    /// A weighted draw among the targets `ctx` has not tried, or any target when it tried
    /// them all.
    pub(crate) fn pick_untried(&self, ctx: &PickContext<'_>) -> Option<usize> {
        with_rng(|rng| {
            self.draw_where(rng, |p| !ctx.was_tried(self.members[p]))
                .or_else(|| self.draw(rng))
        })
        .map(|p| self.members[p])
    }

    /// Power of two choices: two distinct untried targets by weighted draw, and of those
    /// the one with the lower `cost / weight` (the first drawn on a tie, so an idle set is
    /// balanced by weight). One untried target left: that one; none: any.
    pub(crate) fn p2c(
        &self,
        ctx: &PickContext<'_>,
        weights: &[u32],
        cost: impl Fn(usize) -> f64,
    ) -> Option<usize> {
        let (a, b) = with_rng(|rng| {
            let untried = |p: usize| !ctx.was_tried(self.members[p]);
            let a = match self.draw_where(rng, untried) {
                Some(a) => a,
                None => return (self.draw(rng), None),
            };
            let b = self.draw_where(rng, |p| p != a && untried(p));
            (Some(a), b)
        });
        let a = a?;
        let Some(b) = b else {
            return Some(self.members[a]);
        };
        // cost_a / w_a <= cost_b / w_b, without dividing.
        let better = cost(a) * f64::from(weights[b]) <= cost(b) * f64::from(weights[a]);
        Some(self.members[if better { a } else { b }])
    }
}

/// Member indices already tried by one request: a fixed array (a request tries a handful of
/// endpoints), allocation-free. Beyond its capacity, further tries are not remembered.
#[derive(Debug, Clone, Default)]
pub struct Tried {
    members: [usize; 8],
    len: usize,
    /// Distinct members pushed, remembered or not.
    count: usize,
}

impl Tried {
    /// Remembers member `i`.
    pub fn push(&mut self, i: usize) {
        if self.as_slice().contains(&i) {
            return;
        }
        self.count += 1;
        if self.len < self.members.len() {
            self.members[self.len] = i;
            self.len += 1;
        }
    }

    /// How many distinct members were pushed (beyond the capacity, some are not remembered
    /// but still counted).
    pub fn count(&self) -> usize {
        self.count
    }

    /// The members tried, in order.
    pub fn as_slice(&self) -> &[usize] {
        &self.members[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_ramps_young_endpoints_up_under_slow_start() {
        let mut t = testing::targets(&[1, 1]);
        t[1].joined = Some(Instant::now());
        let lb = LoadBalancer {
            policy: LbPolicy::Random,
            slow_start: Duration::from_secs(600),
            ..LoadBalancer::default()
        };
        // Just joined: factor 10% against 1, a share of 0.1 / 1.1.
        let c = testing::counts(&*build(&lb, t.clone()), 2, 20_000);
        testing::assert_binomial(c[1], 20_000, 0.1 / 1.1);
        // Without a window, equal shares.
        let lb = LoadBalancer {
            slow_start: Duration::ZERO,
            ..lb
        };
        let c = testing::counts(&*build(&lb, t), 2, 20_000);
        testing::assert_binomial(c[1], 20_000, 0.5);
    }

    #[test]
    fn tried_remembers_each_member_once_up_to_its_capacity() {
        let mut t = Tried::default();
        for i in [3, 1, 3] {
            t.push(i);
        }
        assert_eq!(t.as_slice(), &[3, 1]);
        for i in 10..20 {
            t.push(i);
        }
        assert_eq!(t.as_slice().len(), 8);
    }
}

/// Helpers shared by the policies' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The hash of test key `i` (`user-i`).
    pub(crate) fn key(i: u32) -> u64 {
        stable_hash(format!("user-{i}").as_bytes())
    }

    /// The endpoint address each of 10,000 test keys lands on, for hashing policies.
    pub(crate) fn placement(b: &dyn Balancer, t: &[Target]) -> Vec<SocketAddr> {
        (0..10_000)
            .map(|i| {
                let ctx = PickContext {
                    hash: Some(key(i)),
                    ..PickContext::default()
                };
                let m = b.pick(&ctx).expect("a target");
                t.iter().find(|t| t.member == m).expect("member").address
            })
            .collect()
    }

    /// Targets with these weights, members `0..n`, addresses `127.0.0.1:1000+i`, present
    /// from the start.
    pub(crate) fn targets(weights: &[u32]) -> Vec<Target> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Target {
                member: i,
                address: SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
                weight,
                load: Default::default(),
                joined: None,
            })
            .collect()
    }

    /// How many of `picks` first picks (no hash, nothing tried) went to each of `n` members.
    pub(crate) fn counts(b: &dyn Balancer, n: usize, picks: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for _ in 0..picks {
            counts[b.pick(&PickContext::default()).expect("a target")] += 1;
        }
        counts
    }

    /// `count` of `n` Bernoulli(`p`) trials lies within the mean ± 5σ (σ = √(n p (1-p)));
    /// a correct balancer fails this about once in 1.7 million runs.
    pub(crate) fn assert_binomial(count: usize, n: usize, p: f64) {
        let mean = n as f64 * p;
        let sigma = (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (count as f64 - mean).abs() <= 5.0 * sigma,
            "{count} of {n}: expected {mean:.0} ± {:.0} (5σ)",
            5.0 * sigma
        );
    }

    /// With every member but one tried, the pick is the remaining one (for each member, with
    /// and without a hash).
    pub(crate) fn fallback_returns_the_last_untried(b: &dyn Balancer, n: usize) {
        for left in 0..n {
            let tried: Vec<usize> = (0..n).filter(|&m| m != left).collect();
            for hash in [None, Some(0x9e37_79b9_7f4a_7c15u64), Some(left as u64)] {
                for attempt in 0..20 {
                    let ctx = PickContext {
                        hash,
                        attempt,
                        tried: &tried,
                    };
                    assert_eq!(b.pick(&ctx), Some(left), "tried {tried:?}, hash {hash:?}");
                }
            }
        }
    }
}
