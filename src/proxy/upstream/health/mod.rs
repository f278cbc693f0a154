//! Whether an endpoint is online, beyond Kubernetes readiness: active checks ([`active`])
//! and passive outlier detection ([`Health::observe`]). **One health state per endpoint
//! address** ([`Health`], inside the address's shared `EndpointState`), whichever clusters
//! and routes reach it.
//!
//! A change of any endpoint's usability bumps a process-wide [`epoch`]; each cluster compares
//! the epoch its balancer was built at on its next pick and rebuilds over the new usable
//! subset (`Registry` and `ClusterState::members`), so the request path reads one atomic.
//!
//! # Passive outlier detection
//!
//! Every attempt's outcome is counted per address (atomics, no lock): a status ≥ 500 extends
//! the consecutive-5xx streak, no response (connect failure, reset, timeout) or 502/503/504
//! extends both streaks (as Envoy, which counts local failures as 503 unless told to split
//! them), another 5xx breaks the gateway streak, and anything below 500 resets both. A
//! streak reaching `consecutive_5xx` / `consecutive_gateway_errors` (zero: not counted)
//! ejects the endpoint for `base_ejection_time × n`, where n is its number of consecutive
//! ejections, capped at [`MAX_EJECTION`] (or one base time, when longer). n starts again
//! at 1 for an ejection that comes at least one base ejection time after the previous one
//! ended. An ejection needs room under the cluster's `max_ejection_percent` (one endpoint
//! may always be ejected); an endpoint already ejected is not ejected again, but keeps
//! counting while the panic threshold sends it traffic. An ejection ends by time: a timer
//! armed at ejection bumps the epoch when it expires, so the balancer takes the endpoint
//! back within milliseconds rather than at the next periodic sweep.
//!
//! # Active checks
//!
//! See [`active`]: one prober task per (address, check), whose verdict is counted here; the
//! address is unhealthy while any of its probers says so.

pub(crate) mod active;

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::client::now_ms;
use crate::balance::Outcome;
use crate::snapshot::OutlierDetection;

static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Told of every [`bump`]: each proxy's server loop then rebuilds, under its publish lock,
/// the balancers whose usable subset changed (`Registry::refresh_health`), so no request
/// ever builds a balancer. A watch (not a `Notify`): every proxy of the process hears every
/// change, and one that was busy still sees it on its next wait.
static CHANGED: std::sync::LazyLock<tokio::sync::watch::Sender<u64>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::Sender::new(0));

/// Longest ejection (Envoy's default `max_ejection_time`), unless the base time is longer.
pub(crate) const MAX_EJECTION: Duration = Duration::from_secs(300);

/// The current health epoch.
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Marks that some endpoint's usability changed.
pub(crate) fn bump() {
    let epoch = EPOCH.fetch_add(1, Ordering::AcqRel) + 1;
    CHANGED.send_modify(|e| *e = epoch);
}

/// A receiver that sees every later [`bump`].
pub(crate) fn subscribe() -> tokio::sync::watch::Receiver<u64> {
    CHANGED.subscribe()
}

/// The health of one endpoint address.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// How many of the address's active checks currently say it is down (failed
    /// `unhealthy_threshold` times in a row, and not passed `healthy_threshold` times since).
    active_down: AtomicU32,
    /// Ejected by outlier detection until this [`now_ms`] (0: never ejected). Kept after the
    /// ejection ends: the next ejection reads it to decide whether it is consecutive.
    ejected_until_ms: AtomicU64,
    /// Consecutive answers ≥ 500 (or no answer).
    consecutive_5xx: AtomicU32,
    /// Consecutive gateway errors (no answer, 502, 503, 504).
    consecutive_gateway: AtomicU32,
    /// Consecutive ejections (the n of `base_ejection_time × n`).
    streak: AtomicU32,
    /// Ejections ever.
    ejections: AtomicU64,
    /// Last active probe: 0 none yet, 1 passed, 2 failed.
    last_probe: AtomicU8,
    /// Active probes that passed / failed, ever (all checks of the address).
    probe_passes: AtomicU64,
    probe_failures: AtomicU64,
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

/// Counters of one address for `/clusters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthCounters {
    /// Outlier ejections ever.
    pub(crate) ejections: u64,
    /// The current consecutive-5xx streak.
    pub(crate) consecutive_5xx: u32,
    /// The current consecutive-gateway-error streak.
    pub(crate) consecutive_gateway_errors: u32,
    /// Last active probe: `None` before the first.
    pub(crate) last_probe_passed: Option<bool>,
    /// Active probes passed, ever.
    pub(crate) probe_passes: u64,
    /// Active probes failed, ever.
    pub(crate) probe_failures: u64,
    /// Active checks that say the address is down now.
    pub(crate) checks_down: u32,
}

impl Health {
    /// Whether requests may go to it.
    pub(crate) fn usable(&self) -> bool {
        self.state() == HealthState::Healthy
    }

    /// Its state now.
    pub(crate) fn state(&self) -> HealthState {
        if self.active_down.load(Ordering::Relaxed) > 0 {
            HealthState::Unhealthy
        } else if self.ejected_until_ms.load(Ordering::Relaxed) > now_ms() {
            HealthState::Ejected
        } else {
            HealthState::Healthy
        }
    }

    /// Its counters now.
    pub(crate) fn counters(&self) -> HealthCounters {
        HealthCounters {
            ejections: self.ejections.load(Ordering::Relaxed),
            consecutive_5xx: self.consecutive_5xx.load(Ordering::Relaxed),
            consecutive_gateway_errors: self.consecutive_gateway.load(Ordering::Relaxed),
            last_probe_passed: match self.last_probe.load(Ordering::Relaxed) {
                1 => Some(true),
                2 => Some(false),
                _ => None,
            },
            probe_passes: self.probe_passes.load(Ordering::Relaxed),
            probe_failures: self.probe_failures.load(Ordering::Relaxed),
            checks_down: self.active_down.load(Ordering::Relaxed),
        }
    }

    /// Active probe failures ever (for the cluster metric).
    pub(crate) fn probe_failures(&self) -> u64 {
        self.probe_failures.load(Ordering::Relaxed)
    }

    /// Records one attempt's outcome for passive outlier detection under `policy`.
    /// `may_eject` says whether the cluster's `max_ejection_percent` leaves room for one
    /// more ejection. Returns whether this outcome ejected the endpoint.
    pub(crate) fn observe(
        &self,
        policy: Option<&OutlierDetection>,
        outcome: &Outcome,
        may_eject: impl FnOnce() -> bool,
    ) -> bool {
        let Some(policy) = policy else {
            return false;
        };
        let (server_error, gateway) = match outcome.status {
            None => (true, true),
            Some(s) => (s >= 500, matches!(s, 502..=504)),
        };
        if !server_error {
            // Loads first: a healthy endpoint's request path only reads.
            if self.consecutive_5xx.load(Ordering::Relaxed) != 0 {
                self.consecutive_5xx.store(0, Ordering::Relaxed);
            }
            if self.consecutive_gateway.load(Ordering::Relaxed) != 0 {
                self.consecutive_gateway.store(0, Ordering::Relaxed);
            }
            return false;
        }
        let n5 = self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
        let ng = if gateway {
            self.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.consecutive_gateway.store(0, Ordering::Relaxed);
            0
        };
        let tripped = (policy.consecutive_5xx > 0 && n5 >= policy.consecutive_5xx)
            || (policy.consecutive_gateway_errors > 0 && ng >= policy.consecutive_gateway_errors);
        if !tripped || self.state() == HealthState::Ejected || !may_eject() {
            return false;
        }
        self.eject(policy.base_ejection_time)
    }

    /// Ejects the endpoint for `base × n` (see the module docs); false when a concurrent
    /// outcome ejected it first.
    fn eject(&self, base: Duration) -> bool {
        let now = now_ms();
        let previous = self.ejected_until_ms.load(Ordering::Relaxed);
        if previous > now {
            return false;
        }
        let base_ms = base.as_millis().max(1) as u64;
        let consecutive = previous != 0 && now < previous.saturating_add(base_ms);
        let n = if consecutive {
            self.streak.load(Ordering::Relaxed).saturating_add(1)
        } else {
            1
        };
        let cap = (MAX_EJECTION.as_millis() as u64).max(base_ms);
        let length = base_ms.saturating_mul(u64::from(n)).min(cap);
        let until = now + length;
        // One winner among concurrent trips.
        if self
            .ejected_until_ms
            .compare_exchange(previous, until, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.streak.store(n, Ordering::Relaxed);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
        bump();
        // The ejection ends by time: bump again once it has, so every cluster takes the
        // endpoint back (the millisecond of slack makes `now_ms() > until` certain).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::time::sleep(Duration::from_millis(length + 1)).await;
                bump();
            });
        }
        true
    }

    /// The ejection's length in milliseconds, if ejected now.
    #[cfg(test)]
    fn ejected_for(&self) -> Option<u64> {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        let now = now_ms();
        (until > now).then(|| until - now)
    }

    /// One active probe's result.
    fn probed(&self, passed: bool) {
        self.last_probe
            .store(if passed { 1 } else { 2 }, Ordering::Relaxed);
        if passed {
            self.probe_passes.fetch_add(1, Ordering::Relaxed);
        } else {
            self.probe_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One active check turned down (`true`) or back up.
    fn check_down(&self, down: bool) {
        if down {
            self.active_down.fetch_add(1, Ordering::Relaxed);
        } else {
            // Never below zero: each prober takes back only what it added.
            let _ = self
                .active_down
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(c5: u32, gw: u32, base_ms: u64) -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: c5,
            consecutive_gateway_errors: gw,
            interval: Duration::from_secs(1),
            base_ejection_time: Duration::from_millis(base_ms),
            max_ejection_percent: 100,
        }
    }

    fn status(s: u16) -> Outcome {
        Outcome {
            status: Some(s),
            latency: Duration::ZERO,
        }
    }

    fn feed(h: &Health, p: &OutlierDetection, statuses: &[Option<u16>]) -> usize {
        statuses
            .iter()
            .filter(|s| {
                let o = match s {
                    Some(s) => status(*s),
                    None => Outcome::failed(),
                };
                h.observe(Some(p), &o, || true)
            })
            .count()
    }

    #[test]
    fn consecutive_5xx_ejects_at_the_threshold_and_a_success_resets() {
        let h = Health::default();
        let p = policy(3, 0, 10_000);
        assert_eq!(feed(&h, &p, &[Some(500), Some(503), Some(200)]), 0);
        assert_eq!(h.counters().consecutive_5xx, 0);
        assert_eq!(h.counters().consecutive_gateway_errors, 0);
        assert_eq!(feed(&h, &p, &[Some(500), Some(599), Some(404)]), 0);
        assert!(h.usable());
        assert_eq!(feed(&h, &p, &[Some(500), None]), 0);
        assert_eq!(h.counters().consecutive_5xx, 2);
        assert_eq!(feed(&h, &p, &[Some(501)]), 1);
        assert_eq!(h.state(), HealthState::Ejected);
        assert_eq!(h.counters().ejections, 1);
        // The streaks start again after an ejection.
        assert_eq!(h.counters().consecutive_5xx, 0);
    }

    #[test]
    fn gateway_errors_are_counted_apart_and_broken_by_other_5xx() {
        let h = Health::default();
        let p = policy(0, 3, 10_000);
        // A 500 is a 5xx but not a gateway error: it breaks the gateway streak.
        assert_eq!(feed(&h, &p, &[Some(502), None, Some(500), Some(504)]), 0);
        assert_eq!(h.counters().consecutive_gateway_errors, 1);
        assert_eq!(feed(&h, &p, &[Some(503)]), 0);
        assert_eq!(feed(&h, &p, &[None]), 1);
        assert_eq!(h.state(), HealthState::Ejected);
    }

    #[test]
    fn zero_thresholds_and_no_policy_never_eject() {
        let h = Health::default();
        let p = policy(0, 0, 10_000);
        assert_eq!(feed(&h, &p, &[None; 50]), 0);
        for _ in 0..50 {
            assert!(!h.observe(None, &Outcome::failed(), || true));
        }
        assert!(h.usable());
    }

    #[test]
    fn no_room_under_max_ejection_percent_keeps_it() {
        let h = Health::default();
        let p = policy(1, 0, 10_000);
        assert!(!h.observe(Some(&p), &status(500), || false));
        assert!(h.usable());
        // Still counting: the next failure with room ejects.
        assert!(h.observe(Some(&p), &status(500), || true));
    }

    #[test]
    fn an_ejected_endpoint_keeps_counting_but_is_not_ejected_again() {
        let h = Health::default();
        let p = policy(2, 0, 10_000);
        assert_eq!(feed(&h, &p, &[Some(500), Some(500)]), 1);
        assert_eq!(feed(&h, &p, &[Some(500), Some(500), Some(500)]), 0);
        assert_eq!(h.counters().consecutive_5xx, 3);
        assert_eq!(h.counters().ejections, 1);
    }

    #[test]
    fn consecutive_ejections_grow_and_a_quiet_spell_resets_them() {
        let h = Health::default();
        let base = 40;
        // `now_ms` counts from its first call, and 0 means "never ejected": be past it.
        now_ms();
        std::thread::sleep(Duration::from_millis(2));
        // Simulate the passage of time by moving the previous ejection's end.
        assert!(h.eject(Duration::from_millis(base)));
        let first = h.ejected_for().expect("ejected");
        assert!(first <= base && first + 5 >= base, "first {first}");
        // Ended just now: the next ejection is consecutive, twice as long.
        h.ejected_until_ms.store(now_ms(), Ordering::Relaxed);
        assert!(h.eject(Duration::from_millis(base)));
        let second = h.ejected_for().expect("ejected");
        assert!(
            second <= 2 * base && second + 5 >= 2 * base,
            "second {second}"
        );
        h.ejected_until_ms.store(now_ms(), Ordering::Relaxed);
        assert!(h.eject(Duration::from_millis(base)));
        assert_eq!(h.streak.load(Ordering::Relaxed), 3);
        // Back for at least one base time: n starts again at 1.
        h.ejected_until_ms
            .store(now_ms().saturating_sub(base), Ordering::Relaxed);
        assert!(h.eject(Duration::from_millis(base)));
        assert_eq!(h.streak.load(Ordering::Relaxed), 1);
        assert_eq!(h.counters().ejections, 4);
    }

    #[test]
    fn ejection_time_is_capped() {
        let h = Health::default();
        now_ms();
        std::thread::sleep(Duration::from_millis(2));
        h.streak.store(1000, Ordering::Relaxed);
        h.ejected_until_ms.store(now_ms(), Ordering::Relaxed);
        assert!(h.eject(Duration::from_secs(1)));
        let len = h.ejected_for().expect("ejected");
        assert!(len <= MAX_EJECTION.as_millis() as u64);
        assert!(len + 1000 >= MAX_EJECTION.as_millis() as u64);
    }

    #[test]
    fn ejection_ends_by_time() {
        let h = Health::default();
        assert!(h.eject(Duration::from_millis(20)));
        assert_eq!(h.state(), HealthState::Ejected);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(h.state(), HealthState::Healthy);
    }

    #[test]
    fn any_down_check_makes_the_address_unhealthy() {
        let h = Health::default();
        h.check_down(true);
        h.check_down(true);
        h.check_down(false);
        assert_eq!(h.state(), HealthState::Unhealthy);
        h.check_down(false);
        assert_eq!(h.state(), HealthState::Healthy);
        // Never below zero.
        h.check_down(false);
        assert_eq!(h.counters().checks_down, 0);
    }
}
