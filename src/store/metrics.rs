//! Metrics of the store's sources: errors, skipped objects and initial sync, per [`Source`].
//!
//! Written by the Kubernetes watchers ([`super::kube`]) and by the file-mode loop for the
//! manifests directory; plain atomics (no lock, no allocation on the write path), rendered as
//! Prometheus text by [`WatchMetrics::render_metrics`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::Source;

/// Per-source counters of the store's sources. Put it in an `Arc` shared by the sources and
/// the admin page.
pub struct WatchMetrics {
    errors: [AtomicU64; Source::COUNT],
    skipped_objects: [AtomicU64; Source::COUNT],
    synced: [AtomicBool; Source::COUNT],
}

impl Default for WatchMetrics {
    fn default() -> Self {
        WatchMetrics {
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            skipped_objects: std::array::from_fn(|_| AtomicU64::new(0)),
            synced: std::array::from_fn(|_| AtomicBool::new(false)),
        }
    }
}

impl WatchMetrics {
    /// Count a watch or load error (API unreachable, 410 handled by re-list, unreadable
    /// manifests directory, ...).
    pub fn watch_error(&self, source: Source) {
        self.errors[source.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Count an object that could not be decoded and was skipped.
    pub fn skipped_object(&self, source: Source) {
        self.skipped_objects[source.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Record that a source has completed a list.
    pub fn set_synced(&self, source: Source) {
        self.synced[source.index()].store(true, Ordering::Relaxed);
    }

    /// Errors of one source so far.
    pub fn watch_error_count(&self, source: Source) -> u64 {
        self.errors[source.index()].load(Ordering::Relaxed)
    }

    /// Append the metrics in Prometheus text format: one line per source in every family.
    pub fn render_metrics(&self, out: &mut String) {
        counter_per_source(
            out,
            "weir_watch_errors_total",
            "Watch and list errors per watched kind (retried with backoff).",
            &self.errors,
        );
        counter_per_source(
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
        for source in Source::all() {
            let v = u8::from(self.synced[source.index()].load(Ordering::Relaxed));
            let _ = writeln!(out, "weir_watch_synced{{kind=\"{}\"}} {v}", source.label());
        }
    }
}

fn counter_per_source(out: &mut String, name: &str, help: &str, values: &[AtomicU64]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for source in Source::all() {
        let v = values[source.index()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{kind=\"{}\"}} {v}", source.label());
    }
}
