//! Control-plane metrics: the reconcile loop's own (config propagation, reconciles), and the
//! bundle of every control-plane component's handle.
//!
//! Each component owns a small handle of plain atomics and renders it: [`ReconcileMetrics`]
//! here, [`WatchMetrics`] in the store, [`LeaseMetrics`] in the lease, [`StatusMetrics`] in the
//! status writer. No lower layer imports this module; [`ControlPlaneMetrics`] only bundles the
//! handles so that the wiring hands each component its own and the admin page renders all.
//! No lock, no allocation on the write path, except the served certificates' expiry list,
//! replaced under a mutex once per compile and read per scrape.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::lease::LeaseMetrics;
use crate::status::StatusMetrics;
use crate::store::WatchMetrics;

/// Every control-plane component's metrics handle. Cloning shares them.
#[derive(Clone, Default)]
pub struct ControlPlaneMetrics {
    /// The reconcile loop's.
    pub reconcile: Arc<ReconcileMetrics>,
    /// The store's sources' (the watchers, the manifests directory).
    pub watch: Arc<WatchMetrics>,
    /// Leader election's.
    pub lease: Arc<LeaseMetrics>,
    /// The status writer's.
    pub status: Arc<StatusMetrics>,
}

impl ControlPlaneMetrics {
    /// Append every component's metrics in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        self.reconcile.render_metrics(out);
        self.watch.render_metrics(out);
        self.status.render_metrics(out);
        self.lease.render_metrics(out);
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

/// The reconcile loop's metrics. Put it in an `Arc` and hand the same one to the admin page.
#[derive(Default)]
pub struct ReconcileMetrics {
    propagation_endpoints: Histogram,
    propagation_routes: Histogram,
    reconciles: AtomicU64,
    last_reconcile_millis: AtomicU64,
    /// The certificates the published snapshot serves, sorted.
    certificates: Mutex<Vec<CertificateExpiry>>,
    certificates_expired: AtomicU64,
}

/// One certificate a listener serves, for `weir_certificate_expiry_timestamp_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CertificateExpiry {
    /// The listener's name (`https`).
    pub listener: String,
    /// Where the certificate came from (`namespace/secret`).
    pub source: String,
    /// The leaf's `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
}

impl ReconcileMetrics {
    /// Record one propagation: from a change's arrival to its publication into the proxy.
    pub fn observe_propagation(&self, what: Propagation, d: Duration) {
        match what {
            Propagation::Endpoints => self.propagation_endpoints.observe(d),
            Propagation::Routes => self.propagation_routes.observe(d),
        }
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

    /// Record what the last compile said about certificates: the ones the published snapshot
    /// serves, and how many references it rejected because their certificate had expired.
    pub fn set_certificates(&self, mut served: Vec<CertificateExpiry>, expired: u64) {
        served.sort();
        *self
            .certificates
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = served;
        self.certificates_expired.store(expired, Ordering::Relaxed);
    }

    /// Number of published compiles so far.
    pub fn reconcile_count(&self) -> u64 {
        self.reconciles.load(Ordering::Relaxed)
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
        let name = "weir_certificate_expiry_timestamp_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Unix time at which a served certificate expires (the leaf's notAfter)."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        // Label values need no escaping: listener names are weir's own, sources are
        // Kubernetes object names (DNS labels and subdomains).
        for cert in self
            .certificates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "{name}{{listener=\"{}\",source=\"{}\"}} {}",
                cert.listener, cert.source, cert.not_after
            );
        }
        simple(
            out,
            "weir_certificates_expired",
            "gauge",
            "TLS certificate references the last compile rejected as expired (their hosts get the default certificate).",
            self.certificates_expired.load(Ordering::Relaxed) as f64,
        );
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
        let m = ReconcileMetrics::default();
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
        assert!(out.contains("weir_reconcile_total 0"));
    }

    #[test]
    fn certificates_render_one_sorted_series_each() {
        let m = ReconcileMetrics::default();
        let cert = |listener: &str, source: &str, not_after| CertificateExpiry {
            listener: listener.to_owned(),
            source: source.to_owned(),
            not_after,
        };
        m.set_certificates(
            vec![
                cert("https", "default/b", 2_000),
                cert("https", "default/a", 1_000),
            ],
            3,
        );
        let mut out = String::new();
        m.render_metrics(&mut out);
        let series: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("weir_certificate"))
            .collect();
        assert_eq!(
            series,
            [
                "weir_certificate_expiry_timestamp_seconds{listener=\"https\",source=\"default/a\"} 1000",
                "weir_certificate_expiry_timestamp_seconds{listener=\"https\",source=\"default/b\"} 2000",
                "weir_certificates_expired 3",
            ]
        );
        m.set_certificates(Vec::new(), 0);
        out.clear();
        m.render_metrics(&mut out);
        assert!(!out.contains("weir_certificate_expiry_timestamp_seconds{"));
        assert!(out.contains("weir_certificates_expired 0\n"));
    }

    #[test]
    fn the_bundle_renders_every_control_plane_family_once() {
        let mut out = String::new();
        ControlPlaneMetrics::default().render_metrics(&mut out);
        let families: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert_eq!(
            families,
            [
                "weir_config_propagation_seconds",
                "weir_reconcile_total",
                "weir_last_reconcile_timestamp_seconds",
                "weir_certificate_expiry_timestamp_seconds",
                "weir_certificates_expired",
                "weir_watch_errors_total",
                "weir_watch_skipped_objects_total",
                "weir_watch_synced",
                "weir_status_writes_total",
                "weir_events_total",
                "weir_leader",
            ]
        );
        assert!(out.contains("weir_leader 0\n"));
        assert!(out.contains("weir_status_writes_total 0\n"));
    }
}
