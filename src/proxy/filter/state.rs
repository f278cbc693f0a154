//! Runtime state of the filters that keep some: rate-limit buckets, concurrency-limit
//! counters and basic-auth caches.
//!
//! The snapshot's filters are immutable configuration; their state lives beside the route in
//! the proxy runtime ([`RouteFilterState`], one per route, rebuilt on every publish) and is
//! found by the filter's `Arc` (the runtime is built from the same snapshot as the routes, so
//! pointer identity is exact and costs one comparison).
//!
//! State **survives snapshot swaps** while its filter is unchanged ([`StateCarry`], kept by
//! the publisher): rate-limit buckets are carried over by route name and equal
//! configuration — a new snapshot that keeps a route and its limit keeps its buckets, a
//! changed limit starts with full buckets. Concurrency-limit counters are carried the same
//! way (the requests in flight keep their counts across a swap; a changed limit starts
//! counting from zero, as the old counts go with the old counters). Basic-auth caches are carried by equal user list
//! alone and shared by every route using it (a credential verified on one route is verified
//! for all; a changed list starts empty, so a changed password is never served from cache).

use std::collections::HashMap;
use std::sync::Arc;

use super::basic_auth::AuthCache;
use super::concurrency_limit::Counters;
use super::rate_limit::Limiter;
use crate::snapshot::{BasicAuth, ConcurrencyLimit, Filter, RateLimit, Route, RouteAction};

/// A rate-limit filter and its buckets.
type LimiterEntry = (Arc<RateLimit>, Arc<Limiter>);

/// A concurrency-limit filter and its counters.
type CountersEntry = (Arc<ConcurrencyLimit>, Arc<Counters>);

/// The state of one route's filters (route and backend filters alike).
#[derive(Debug, Default)]
pub(crate) struct RouteFilterState {
    limiters: Vec<LimiterEntry>,
    concurrency: Vec<CountersEntry>,
    auth: Vec<(Arc<BasicAuth>, Arc<AuthCache>)>,
}

impl RouteFilterState {
    /// The counters of `cfg` on this route.
    pub(crate) fn concurrency(&self, cfg: &Arc<ConcurrencyLimit>) -> Option<&Arc<Counters>> {
        self.concurrency
            .iter()
            .find(|(c, _)| Arc::ptr_eq(c, cfg))
            .map(|(_, c)| c)
    }

    /// The buckets of `cfg` on this route.
    pub(crate) fn limiter(&self, cfg: &Arc<RateLimit>) -> Option<&Limiter> {
        self.limiters
            .iter()
            .find(|(c, _)| Arc::ptr_eq(c, cfg))
            .map(|(_, l)| &**l)
    }

    /// The verification cache of `cfg`.
    pub(crate) fn auth_cache(&self, cfg: &Arc<BasicAuth>) -> Option<&AuthCache> {
        self.auth
            .iter()
            .find(|(c, _)| Arc::ptr_eq(c, cfg))
            .map(|(_, a)| &**a)
    }
}

/// Filter state of the published snapshot, to carry into the next one.
#[derive(Debug, Default)]
pub(crate) struct StateCarry {
    /// By route name.
    limiters: HashMap<String, Vec<LimiterEntry>>,
    /// By route name.
    concurrency: HashMap<String, Vec<CountersEntry>>,
    auth: Vec<(Arc<BasicAuth>, Arc<AuthCache>)>,
}

impl StateCarry {
    /// The state of `route`'s filters: taken from `self` (the previous publish) where the
    /// filter is unchanged, new otherwise, and recorded in `next`.
    pub(crate) fn route(&mut self, next: &mut StateCarry, route: &Route) -> RouteFilterState {
        let mut state = RouteFilterState::default();
        let backend_filters = match &route.action {
            RouteAction::Forward(f) => f.backends.iter().flat_map(|b| b.filters.iter()).collect(),
            _ => Vec::new(),
        };
        for filter in route.filters.iter().chain(backend_filters) {
            match filter {
                Filter::RateLimit(cfg) if state.limiter(cfg).is_none() => {
                    let old = self.limiters.get_mut(&route.name).and_then(|list| {
                        let i = list.iter().position(|(c, _)| **c == **cfg)?;
                        Some(list.swap_remove(i).1)
                    });
                    let limiter = old.unwrap_or_else(|| Arc::new(Limiter::new(cfg)));
                    next.limiters
                        .entry(route.name.clone())
                        .or_default()
                        .push((cfg.clone(), limiter.clone()));
                    state.limiters.push((cfg.clone(), limiter));
                }
                Filter::ConcurrencyLimit(cfg) if state.concurrency(cfg).is_none() => {
                    let old = self.concurrency.get_mut(&route.name).and_then(|list| {
                        let i = list.iter().position(|(c, _)| **c == **cfg)?;
                        Some(list.swap_remove(i).1)
                    });
                    let counters = old.unwrap_or_default();
                    next.concurrency
                        .entry(route.name.clone())
                        .or_default()
                        .push((cfg.clone(), counters.clone()));
                    state.concurrency.push((cfg.clone(), counters));
                }
                Filter::BasicAuth(cfg) if state.auth_cache(cfg).is_none() => {
                    let same = |(c, _): &&(Arc<BasicAuth>, Arc<AuthCache>)| {
                        Arc::ptr_eq(c, cfg) || **c == **cfg
                    };
                    let cache = match next.auth.iter().find(same) {
                        Some((_, cache)) => cache.clone(),
                        None => {
                            let cache = self
                                .auth
                                .iter()
                                .find(same)
                                .map(|(_, c)| c.clone())
                                .unwrap_or_default();
                            next.auth.push((cfg.clone(), cache.clone()));
                            cache
                        }
                    };
                    state.auth.push((cfg.clone(), cache));
                }
                _ => {}
            }
        }
        state
    }
}
