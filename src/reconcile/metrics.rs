//! Control-plane metrics: config propagation, watch errors, reconciles, leadership.
//!
//! Plain atomics written by the reconcile loop, the watchers and the lease task, rendered as
//! Prometheus text by [`ControlPlaneMetrics::render_metrics`] for the admin page. No lock, no
//! allocation on the write path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of changes: one watched kind (plus the publish Service and the manifests
/// directory), as labelled in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchKind {
    /// networking.k8s.io/v1 Ingress.
    Ingress,
    /// networking.k8s.io/v1 IngressClass.
    IngressClass,
    /// v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// v1 Secret (TLS only).
    Secret,
    /// The `--publish-service` Service, watched on its own.
    PublishService,
    /// The manifests directory (file mode).
    Manifests,
}

impl WatchKind {
    /// Every kind, in label order.
    pub const ALL: [WatchKind; 7] = [
        WatchKind::Ingress,
        WatchKind::IngressClass,
        WatchKind::Service,
        WatchKind::EndpointSlice,
        WatchKind::Secret,
        WatchKind::PublishService,
        WatchKind::Manifests,
    ];

    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WatchKind::Ingress => "ingress",
            WatchKind::IngressClass => "ingressclass",
            WatchKind::Service => "service",
            WatchKind::EndpointSlice => "endpointslice",
            WatchKind::Secret => "secret",
            WatchKind::PublishService => "publish_service",
            WatchKind::Manifests => "manifests",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The kind of object in the store this source fills (`None` for the manifests
    /// directory; the publish Service is a Service kept apart from the store).
    pub fn store_kind(self) -> Option<crate::store::Kind> {
        use crate::store::Kind;
        match self {
            WatchKind::Ingress => Some(Kind::Ingress),
            WatchKind::IngressClass => Some(Kind::IngressClass),
            WatchKind::Service => Some(Kind::Service),
            WatchKind::EndpointSlice => Some(Kind::EndpointSlice),
            WatchKind::Secret => Some(Kind::Secret),
            WatchKind::PublishService | WatchKind::Manifests => None,
        }
    }
}

/// What a propagation sample measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// An EndpointSlice change, through the fast path into the proxy's endpoint sets.
    Endpoints,
    /// Any other change, through debounce and compile into a new snapshot.
    Routes,
}

/// Upper bounds (seconds) of the propagation histogram buckets.
const BUCKETS: [f64; 20] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1,
    0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, label: &str) {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{label},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{label},le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{label}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{label}}} {count}");
    }
}

/// Control-plane metrics shared by reconcile, the watchers and the lease task. Put it in an
/// `Arc` and hand the same one to the admin server.
#[derive(Default)]
pub struct ControlPlaneMetrics {
    propagation_endpoints: Histogram,
    propagation_routes: Histogram,
    watch_errors: [AtomicU64; WatchKind::ALL.len()],
    skipped_objects: [AtomicU64; WatchKind::ALL.len()],
    synced: [AtomicBool; WatchKind::ALL.len()],
    reconciles: AtomicU64,
    last_reconcile_millis: AtomicU64,
    status_writes: AtomicU64,
    events_published: AtomicU64,
    leader: AtomicBool,
}

impl ControlPlaneMetrics {
    /// Record one propagation: from a change's arrival to its publication into the proxy.
    pub fn observe_propagation(&self, what: Propagation, d: Duration) {
        match what {
            Propagation::Endpoints => self.propagation_endpoints.observe(d),
            Propagation::Routes => self.propagation_routes.observe(d),
        }
    }

    /// Count a watch error (API unreachable, 410 handled by re-list, decode error, ...).
    pub fn watch_error(&self, kind: WatchKind) {
        self.watch_errors[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Count an object that could not be decoded and was skipped.
    pub fn skipped_object(&self, kind: WatchKind) {
        self.skipped_objects[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Record that a kind has completed a list.
    pub fn set_synced(&self, kind: WatchKind) {
        self.synced[kind.index()].store(true, Ordering::Relaxed);
    }

    /// Count a compile that was published.
    pub fn reconciled(&self) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.last_reconcile_millis.store(now, Ordering::Relaxed);
    }

    /// Count a status patch that the API server accepted.
    pub fn status_written(&self) {
        self.status_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a Kubernetes Event that was published.
    pub fn event_published(&self) {
        self.events_published.fetch_add(1, Ordering::Relaxed);
    }

    /// Set whether this replica holds the leader lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Number of published compiles so far.
    pub fn reconcile_count(&self) -> u64 {
        self.reconciles.load(Ordering::Relaxed)
    }

    /// Number of status patches written so far.
    pub fn status_write_count(&self) -> u64 {
        self.status_writes.load(Ordering::Relaxed)
    }

    /// Watch errors of one kind so far.
    pub fn watch_error_count(&self, kind: WatchKind) -> u64 {
        self.watch_errors[kind.index()].load(Ordering::Relaxed)
    }

    /// Append the metrics in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let name = "weir_config_propagation_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From a watch event's arrival to the proxy serving with it."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        self.propagation_endpoints
            .render(out, name, "kind=\"endpoints\"");
        self.propagation_routes.render(out, name, "kind=\"routes\"");

        counter_per_kind(
            out,
            "weir_watch_errors_total",
            "Watch and list errors per watched kind (retried with backoff).",
            &self.watch_errors,
        );
        counter_per_kind(
            out,
            "weir_watch_skipped_objects_total",
            "Objects skipped because they could not be decoded.",
            &self.skipped_objects,
        );
        let _ = writeln!(
            out,
            "# HELP weir_watch_synced Whether the kind has completed its initial list."
        );
        let _ = writeln!(out, "# TYPE weir_watch_synced gauge");
        for kind in WatchKind::ALL {
            let v = u8::from(self.synced[kind.index()].load(Ordering::Relaxed));
            let _ = writeln!(out, "weir_watch_synced{{kind=\"{}\"}} {v}", kind.as_str());
        }
        simple(
            out,
            "weir_reconcile_total",
            "counter",
            "Snapshots compiled and published.",
            self.reconciles.load(Ordering::Relaxed) as f64,
        );
        simple(
            out,
            "weir_last_reconcile_timestamp_seconds",
            "gauge",
            "Unix time of the last published snapshot.",
            self.last_reconcile_millis.load(Ordering::Relaxed) as f64 / 1000.0,
        );
        simple(
            out,
            "weir_status_writes_total",
            "counter",
            "Ingress status patches accepted by the API server.",
            self.status_writes.load(Ordering::Relaxed) as f64,
        );
        simple(
            out,
            "weir_events_total",
            "counter",
            "Kubernetes Events published.",
            self.events_published.load(Ordering::Relaxed) as f64,
        );
        simple(
            out,
            "weir_leader",
            "gauge",
            "1 when this replica holds the leader lease.",
            f64::from(u8::from(self.leader.load(Ordering::Relaxed))),
        );
    }
}

fn counter_per_kind(out: &mut String, name: &str, help: &str, values: &[AtomicU64]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for kind in WatchKind::ALL {
        let v = values[kind.index()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{kind=\"{}\"}} {v}", kind.as_str());
    }
}

fn simple(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = ControlPlaneMetrics::default();
        m.observe_propagation(Propagation::Endpoints, Duration::from_micros(800));
        m.observe_propagation(Propagation::Endpoints, Duration::from_millis(4));
        m.observe_propagation(Propagation::Routes, Duration::from_millis(120));
        let mut out = String::new();
        m.render_metrics(&mut out);
        assert!(out.contains(
            "weir_config_propagation_seconds_bucket{kind=\"endpoints\",le=\"0.0005\"} 0"
        ));
        assert!(
            out.contains(
                "weir_config_propagation_seconds_bucket{kind=\"endpoints\",le=\"0.001\"} 1"
            )
        );
        assert!(
            out.contains(
                "weir_config_propagation_seconds_bucket{kind=\"endpoints\",le=\"0.005\"} 2"
            )
        );
        assert!(out.contains("weir_config_propagation_seconds_count{kind=\"endpoints\"} 2"));
        assert!(
            out.contains("weir_config_propagation_seconds_bucket{kind=\"routes\",le=\"0.1\"} 0")
        );
        assert!(
            out.contains("weir_config_propagation_seconds_bucket{kind=\"routes\",le=\"0.15\"} 1")
        );
        assert!(out.contains("weir_leader 0"));
    }
}
