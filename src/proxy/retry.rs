//! When a request is sent again, and how much a cluster takes at once: the retry triggers
//! of a cluster's [`RetryPolicy`], the jittered backoff, the retry budget, and the
//! cluster-wide circuit breakers ([`CircuitBreakers`]). The attempts themselves are
//! `pipeline::Attempts`; this module holds the rules and the counters they read.
//!
//! **Counters.** Each cluster counts the requests in flight to it and the retries in flight
//! ([`ClusterTraffic`], lock-free atomics). A request is admitted while fewer than
//! `max_requests` are in flight (else it is answered 503 with `x-weir-overloaded:
//! max_requests`); a retry may start only while the retries in flight are fewer than
//! `max(budget_min, budget_percent × active requests / 100)` (the retry budget, Envoy's
//! `retry_budget` and linkerd's) and fewer than `max_retries` when that is set. Over either,
//! the attempt's failure or response stands. Both counts last until the response body ends
//! (guards held with the response), since that is how long the upstream works on them.
//!
//! The budget and `max_retries` bound the *extra work* retries give the upstreams, so they
//! apply to retries after the upstream may have processed the request (reset, timeout,
//! statuses). A retry of a request nothing processed — a connect failure, a refused stream —
//! adds no work and takes no budget; `num_retries` bounds it like every retry. (Otherwise the
//! default policy would fail requests when an endpoint dies under load: every request that
//! meets the dead endpoint at once competes for the budget's floor of 3.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::Method;

use crate::snapshot::{CircuitBreakers, RetryPolicy};

/// Why an attempt was retried: the `reason` label of `weir_upstream_retries_total` (the
/// `BackendPolicy` trigger names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Connecting failed (refused, timed out, a new connection never acknowledged).
    ConnectFailure,
    /// HTTP/2 `REFUSED_STREAM` or a graceful GOAWAY left the stream unprocessed.
    RefusedStream,
    /// The connection failed after the request was sent, before a response head.
    Reset,
    /// No response head within the per-try timeout.
    Timeout,
    /// A 5xx answer (`5xx`).
    ServerError,
    /// A 502, 503 or 504 answer (`gateway-error`).
    GatewayError,
    /// An answer whose status is in the policy's `statuses`.
    Status,
}

impl Reason {
    /// Every reason, in label order.
    pub(crate) const ALL: [Reason; 7] = [
        Reason::ConnectFailure,
        Reason::RefusedStream,
        Reason::Reset,
        Reason::Timeout,
        Reason::ServerError,
        Reason::GatewayError,
        Reason::Status,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::ConnectFailure => "connect-failure",
            Reason::RefusedStream => "refused-stream",
            Reason::Reset => "reset",
            Reason::Timeout => "timeout",
            Reason::ServerError => "5xx",
            Reason::GatewayError => "gateway-error",
            Reason::Status => "retriable-status-codes",
        }
    }

    /// Whether the upstream may have processed the request (so only an idempotent one may
    /// be sent again). Connect failures and refused streams were provably not processed.
    pub(crate) fn after_processing(self) -> bool {
        !matches!(self, Reason::ConnectFailure | Reason::RefusedStream)
    }

    /// Whether `policy` retries on this trigger.
    pub(crate) fn enabled(self, policy: &RetryPolicy) -> bool {
        let on = &policy.on;
        match self {
            Reason::ConnectFailure => on.connect_failure,
            Reason::RefusedStream => on.refused_stream,
            Reason::Reset => on.reset,
            Reason::Timeout => on.timeout,
            Reason::ServerError => on.server_error,
            Reason::GatewayError => on.gateway_error,
            // Matched against the list by `status_reason`.
            Reason::Status => !policy.statuses.is_empty(),
        }
    }
}

/// The trigger a response status sets off under `policy`, if any.
pub(crate) fn status_reason(policy: &RetryPolicy, status: u16) -> Option<Reason> {
    if policy.statuses.contains(&status) {
        Some(Reason::Status)
    } else if policy.on.gateway_error && matches!(status, 502..=504) {
        Some(Reason::GatewayError)
    } else if policy.on.server_error && (500..=599).contains(&status) {
        Some(Reason::ServerError)
    } else {
        None
    }
}

/// Whether `policy` could retry a request after it was sent (a reset, a timeout, a status):
/// only then is a copy of every request worth keeping.
pub(crate) fn retries_after_sending(policy: &RetryPolicy) -> bool {
    policy.num_retries > 0
        && (policy.on.reset
            || policy.on.timeout
            || policy.on.server_error
            || policy.on.gateway_error
            || !policy.statuses.is_empty())
}

/// Idempotent methods (RFC 9110 §9.2.2): sending one again has the effect of sending it once.
pub(crate) fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The wait before retry number `n` (1: the first): uniformly random in
/// `[0, min(backoff_max, backoff_base × 2^(n-1)))` ("full jitter"), so that requests failed
/// together do not come back together.
pub(crate) fn backoff(policy: &RetryPolicy, n: u32) -> Duration {
    let doubled = policy
        .backoff_base
        .saturating_mul(1u32 << n.saturating_sub(1).min(20));
    let cap = doubled.min(policy.backoff_max);
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::random_range(0..nanos))
}

/// Which cluster-wide limit stopped a request or a retry: the `limit` label of
/// `weir_circuit_breaker_open_total`, and the value of `x-weir-overloaded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Requests in flight to the cluster (`max_requests`).
    Requests,
    /// Retries in flight to the cluster (`max_retries`).
    Retries,
    /// An endpoint's pending queue was full (the per-endpoint `Limits::max_pending`).
    Pending,
}

impl Limit {
    /// Every limit, in label order.
    pub(crate) const ALL: [Limit; 3] = [Limit::Requests, Limit::Retries, Limit::Pending];

    /// The label and header value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Limit::Requests => "max_requests",
            Limit::Retries => "max_retries",
            Limit::Pending => "max_pending",
        }
    }
}

/// Why a retry may not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The retry budget is spent.
    Budget,
    /// A circuit breaker is open.
    Breaker(Limit),
}

/// A cluster's requests and retries in flight (shared by every worker).
#[derive(Debug, Default)]
pub(crate) struct ClusterTraffic {
    active: AtomicU64,
    retries: AtomicU64,
}

impl ClusterTraffic {
    /// Requests in flight to the cluster now.
    pub(crate) fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Retries in flight to the cluster now.
    pub(crate) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Admits one request, unless `max_requests` are in flight already.
    pub(crate) fn admit(self: &Arc<Self>, breakers: &CircuitBreakers) -> Option<ActiveRequest> {
        let before = self.active.fetch_add(1, Ordering::Relaxed);
        let guard = ActiveRequest(self.clone());
        let max = u64::from(breakers.max_requests);
        // The guard gives the slot back when refused.
        (max == 0 || before < max).then_some(guard)
    }

    /// Starts one retry, unless the budget or `max_retries` says no. Counting first and
    /// checking after makes concurrent retries race for the last places without overshoot.
    pub(crate) fn start_retry(
        self: &Arc<Self>,
        policy: &RetryPolicy,
        breakers: &CircuitBreakers,
    ) -> Result<ActiveRetry, Refusal> {
        let before = self.retries.fetch_add(1, Ordering::Relaxed);
        let guard = ActiveRetry(self.clone());
        let max = u64::from(breakers.max_retries);
        if max > 0 && before >= max {
            return Err(Refusal::Breaker(Limit::Retries));
        }
        let budget = (u64::from(policy.budget_percent) * self.active() / 100)
            .max(u64::from(policy.budget_min));
        if before >= budget {
            return Err(Refusal::Budget);
        }
        Ok(guard)
    }
}

/// One request in flight to a cluster, until dropped.
#[derive(Debug)]
pub(crate) struct ActiveRequest(Arc<ClusterTraffic>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One request in its retries, until dropped (a request holds one however often it retries).
#[derive(Debug)]
pub(crate) struct ActiveRetry(Arc<ClusterTraffic>);

impl Drop for ActiveRetry {
    fn drop(&mut self) {
        self.0.retries.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a request holds of its cluster's counters until its response ends.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) _request: ActiveRequest,
    pub(crate) _retry: Option<ActiveRetry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn backoff_stays_below_the_doubled_base_and_the_cap() {
        let p = RetryPolicy {
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(35),
            ..policy()
        };
        for _ in 0..200 {
            assert!(backoff(&p, 1) < Duration::from_millis(10));
            assert!(backoff(&p, 2) < Duration::from_millis(20));
            assert!(backoff(&p, 3) < Duration::from_millis(35));
            assert!(backoff(&p, 40) < Duration::from_millis(35));
        }
        // Jittered, not constant: 200 draws in [0, 10 ms) at nanosecond resolution are not
        // all equal (the chance they are is 10^-7 per draw pair, i.e. nil).
        let draws: Vec<_> = (0..200).map(|_| backoff(&p, 1)).collect();
        assert!(draws.iter().any(|d| *d != draws[0]));
        let none = RetryPolicy {
            backoff_base: Duration::ZERO,
            ..policy()
        };
        assert_eq!(backoff(&none, 3), Duration::ZERO);
    }

    #[test]
    fn statuses_then_gateway_errors_then_any_5xx() {
        let mut p = policy();
        assert_eq!(status_reason(&p, 503), None);
        p.on.server_error = true;
        assert_eq!(status_reason(&p, 500), Some(Reason::ServerError));
        assert_eq!(status_reason(&p, 404), None);
        p.on.gateway_error = true;
        assert_eq!(status_reason(&p, 503), Some(Reason::GatewayError));
        p.statuses = vec![503, 409];
        assert_eq!(status_reason(&p, 503), Some(Reason::Status));
        assert_eq!(status_reason(&p, 409), Some(Reason::Status));
        assert!(!retries_after_sending(&policy()));
        assert!(retries_after_sending(&p));
    }

    #[test]
    fn idempotent_methods_per_rfc_9110() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(idempotent(&m.parse().expect("method")), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT"] {
            assert!(!idempotent(&m.parse().expect("method")), "{m}");
        }
    }

    #[test]
    fn max_requests_admits_up_to_the_limit_and_frees_on_drop() {
        let t = Arc::new(ClusterTraffic::default());
        let b = CircuitBreakers {
            max_requests: 2,
            max_retries: 0,
        };
        let one = t.admit(&b).expect("first");
        let two = t.admit(&b).expect("second");
        assert!(t.admit(&b).is_none());
        assert_eq!(t.active(), 2);
        drop(one);
        let three = t.admit(&b).expect("room again");
        drop((two, three));
        assert_eq!(t.active(), 0);
        let unlimited = CircuitBreakers::default();
        let many: Vec<_> = (0..100).filter_map(|_| t.admit(&unlimited)).collect();
        assert_eq!(many.len(), 100);
    }

    #[test]
    fn the_budget_is_a_share_of_active_requests_with_a_floor() {
        let t = Arc::new(ClusterTraffic::default());
        let b = CircuitBreakers::default();
        let p = policy(); // 20 %, at least 3
        let active: Vec<_> = (0..50).filter_map(|_| t.admit(&b)).collect();
        // 20 % of 50 = 10 retries in flight at most.
        let retries: Vec<_> = (0..20).filter_map(|_| t.start_retry(&p, &b).ok()).collect();
        assert_eq!(retries.len(), 10);
        assert_eq!(t.start_retry(&p, &b).err(), Some(Refusal::Budget));
        assert_eq!(t.retries(), 10);
        drop(retries);
        drop(active);
        // No active request: the floor.
        let retries: Vec<_> = (0..20).filter_map(|_| t.start_retry(&p, &b).ok()).collect();
        assert_eq!(retries.len(), 3);
        drop(retries);
        // max_retries is tighter still.
        let b = CircuitBreakers {
            max_requests: 0,
            max_retries: 2,
        };
        let retries: Vec<_> = (0..20).filter_map(|_| t.start_retry(&p, &b).ok()).collect();
        assert_eq!(retries.len(), 2);
        assert_eq!(
            t.start_retry(&p, &b).err(),
            Some(Refusal::Breaker(Limit::Retries))
        );
    }
}
