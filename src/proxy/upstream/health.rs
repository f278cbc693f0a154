//! Whether an endpoint is online, beyond Kubernetes readiness: active checks and passive
//! outlier detection. **One health state per endpoint address** ([`Health`], inside the
//! address's shared `EndpointState`), whichever clusters and routes reach it.
//!
//! A change of any endpoint's usability bumps a process-wide [`epoch`]; each cluster compares
//! the epoch its balancer was built at on its next pick and rebuilds over the new usable
//! subset (`Registry` and `ClusterState::members`), so the request path reads one atomic.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::client::now_ms;
use crate::balance::Outcome;
use crate::snapshot::OutlierDetection;

static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The current health epoch.
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Marks that some endpoint's usability changed.
pub(crate) fn bump() {
    EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// The health of one endpoint address.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// An active check failed `unhealthy_threshold` times in a row (and has not passed
    /// `healthy_threshold` times since).
    active_down: AtomicBool,
    /// Ejected by outlier detection until this [`now_ms`] (0: not ejected).
    ejected_until_ms: AtomicU64,
}

/// What `/clusters` shows for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HealthState {
    Healthy,
    /// Failing its active check.
    Unhealthy,
    /// Ejected by outlier detection.
    Ejected,
}

impl HealthState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
            HealthState::Ejected => "ejected",
        }
    }
}

impl Health {
    /// Whether requests may go to it.
    pub(crate) fn usable(&self) -> bool {
        self.state() == HealthState::Healthy
    }

    /// Its state now.
    pub(crate) fn state(&self) -> HealthState {
        if self.active_down.load(Ordering::Relaxed) {
            HealthState::Unhealthy
        } else if self.ejected_until_ms.load(Ordering::Relaxed) > now_ms() {
            HealthState::Ejected
        } else {
            HealthState::Healthy
        }
    }

    /// Records one attempt's outcome for passive outlier detection under `policy`.
    /// `may_eject` says whether the cluster's `max_ejection_percent` leaves room for one
    /// more ejection.
    pub(crate) fn observe(
        &self,
        policy: Option<&OutlierDetection>,
        outcome: &Outcome,
        may_eject: impl FnOnce() -> bool,
    ) {
        let _ = (policy, outcome, may_eject);
    }
}
