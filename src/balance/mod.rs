//! Load balancers: one policy per file behind one trait.
//!
//! A [`Balancer`] is built once per endpoint set (when the set or its weights change, never
//! per request) and answers, for each request, the endpoints to try in preference order
//! ([`Candidates`]). The forwarder takes the first, and moves to the next only when
//! connecting failed before anything was sent. Health is a separate concern: the caller
//! skips candidates it knows to be unusable.
//!
//! Policies to come fit the same shape:
//! - least-request (power of two choices) and EWMA read per-endpoint load through the
//!   [`EndpointLoad`] handles given to [`build`]; the registry owns those handles, so the
//!   counts survive a rebuild of the balancer;
//! - ring hash and Maglev read [`PickContext::hash`] and precompute their table in `build`;
//! - random needs nothing but a fast RNG.

pub mod round_robin;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::snapshot::{Endpoint, LbPolicy};

/// What a balancer may know about the request it balances.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickContext {
    /// A hash of the request's affinity key (header, cookie, source IP), for hashing
    /// policies. `None` when the route asks for no affinity.
    pub hash: Option<u64>,
}

/// Live load of one endpoint, shared between the registry and load-aware balancers.
#[derive(Debug, Default)]
pub struct EndpointLoad {
    /// Requests sent to the endpoint and not finished yet.
    pub in_flight: AtomicU64,
}

impl EndpointLoad {
    /// Current number of requests in flight.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Chooses endpoints for requests. Built per endpoint set; shared by every request.
pub trait Balancer: Send + Sync + std::fmt::Debug {
    /// The endpoints (indices into the set given to [`build`]) to try for one request, in
    /// preference order. `None` when the set is empty.
    fn pick(&self, ctx: &PickContext) -> Option<Candidates>;
}

/// Endpoint indices in preference order: the balancer's choice, then every other endpoint
/// once, in index order after it. Allocation-free.
#[derive(Debug, Clone)]
pub struct Candidates {
    first: usize,
    len: usize,
    yielded: usize,
}

impl Candidates {
    /// Candidates starting with `first` among `len` endpoints (`first < len`).
    pub fn starting_at(first: usize, len: usize) -> Self {
        Candidates {
            first,
            len,
            yielded: 0,
        }
    }
}

impl Iterator for Candidates {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.yielded >= self.len {
            return None;
        }
        let i = (self.first + self.yielded) % self.len;
        self.yielded += 1;
        Some(i)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.len - self.yielded;
        (left, Some(left))
    }
}

/// Builds the balancer of `policy` over `endpoints`. `loads[i]` is the live load of
/// `endpoints[i]` (same length).
pub fn build(
    policy: &LbPolicy,
    endpoints: &[Endpoint],
    loads: &[Arc<EndpointLoad>],
) -> Box<dyn Balancer> {
    debug_assert_eq!(endpoints.len(), loads.len());
    match policy {
        LbPolicy::RoundRobin => Box::new(round_robin::RoundRobin::new(endpoints)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_visit_every_endpoint_once_starting_with_the_choice() {
        let got: Vec<usize> = Candidates::starting_at(2, 4).collect();
        assert_eq!(got, vec![2, 3, 0, 1]);
    }
}
