//! Request-path counters (plain atomics, resolved when a snapshot is published) and their
//! Prometheus text rendering.
//!
//! Label sets are bounded by configuration: route and cluster names come from the snapshot,
//! status classes and error kinds are fixed lists. Nothing a client sends becomes a label.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::retry::{ClusterTraffic, Limit, Reason};

/// Upper bounds (seconds) of the request duration histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Counters of one route (and the cluster it forwards to).
pub(crate) struct RouteStats {
    pub(crate) route: Arc<str>,
    /// Cluster name, or empty for routes that answer directly.
    pub(crate) cluster: Arc<str>,
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl RouteStats {
    pub(crate) fn new(route: Arc<str>, cluster: Arc<str>) -> Self {
        RouteStats {
            route,
            cluster,
            by_class: Default::default(),
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one finished request.
    pub(crate) fn record(&self, status: u16, elapsed: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Error kinds counted per cluster.
pub(crate) const ERROR_KINDS: [&str; 9] = [
    "connect",
    "connect_timeout",
    "upstream",
    "timeout",
    "no_endpoint",
    "refused",
    "queue_full",
    "queue_timeout",
    "total_timeout",
];

/// Why a mirrored copy was not sent (`RequestMirror`), counted per shadow cluster.
pub(crate) const MIRROR_SKIPS: [&str; 2] = ["in_flight_limit", "body"];

/// Counters of one cluster.
#[derive(Default)]
pub(crate) struct ClusterStats {
    errors: [AtomicU64; ERROR_KINDS.len()],
    /// Endpoints currently in the set.
    pub(crate) endpoints: AtomicU64,
    /// Mirrored copies on their way to this (shadow) cluster now; bounded by the mirror
    /// filter, which drops copies beyond its limit.
    pub(crate) mirrors_in_flight: std::sync::atomic::AtomicUsize,
    /// Copies not sent, by [`MIRROR_SKIPS`] reason.
    mirror_skips: [AtomicU64; MIRROR_SKIPS.len()],
    /// Endpoints ejected by outlier detection on this cluster's outcomes (shared with its
    /// `Members`, which count them).
    pub(crate) outlier_ejections: Arc<AtomicU64>,
    /// Requests and retries in flight now (the circuit breakers and the retry budget).
    pub(crate) traffic: Arc<ClusterTraffic>,
    /// Retries started, by [`Reason`].
    retries: [AtomicU64; Reason::ALL.len()],
    /// Retries not started because the retry budget was spent.
    budget_exhausted: AtomicU64,
    /// Requests or retries stopped by a circuit breaker, by [`Limit`].
    breaker_open: [AtomicU64; Limit::ALL.len()],
}

impl ClusterStats {
    /// Counts one upstream error of `kind` (ignored when not in [`ERROR_KINDS`]).
    pub(crate) fn error(&self, kind: &str) {
        if let Some(i) = ERROR_KINDS.iter().position(|k| *k == kind) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one retry started for `reason`.
    pub(crate) fn retried(&self, reason: Reason) {
        self.retries[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one retry not started because the retry budget was spent.
    pub(crate) fn budget_exhausted(&self) {
        self.budget_exhausted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one request or retry stopped by the circuit breaker `limit`.
    pub(crate) fn breaker_open(&self, limit: Limit) {
        self.breaker_open[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one mirrored copy not sent, for `reason` (one of [`MIRROR_SKIPS`]).
    pub(crate) fn mirror_skipped(&self, reason: &str) {
        if let Some(i) = MIRROR_SKIPS.iter().position(|k| *k == reason) {
            self.mirror_skips[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Downstream connection counters of one listener.
#[derive(Default)]
pub(crate) struct ListenerStats {
    pub(crate) active: AtomicU64,
    pub(crate) total: AtomicU64,
    /// Connections that have not sent a complete first request head yet (`admission`).
    pub(crate) half_received: AtomicU64,
    rejected: [AtomicU64; Rejection::ALL.len()],
}

impl ListenerStats {
    /// Counts one connection or request refused because of what the client sent (or did
    /// not send).
    pub(crate) fn rejected(&self, reason: Rejection) {
        self.rejected[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Why weir closed a client's connection or refused its request: the `reason` label of
/// `weir_downstream_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// No complete first request head within the header read timeout (connection closed).
    HeaderTimeout,
    /// Evicted as the oldest half-received connection at the listener's cap (closed).
    HalfReceivedLimit,
    /// A request line that is not HTTP/1.0 or HTTP/1.1 (closed without an answer).
    BadRequestLine,
    /// Content-Length with Transfer-Encoding (400, closed).
    AmbiguousFraming,
    /// A malformed chunked request body (400, closed).
    BadChunk,
    /// The request body failed while it was forwarded (400 and closed, if no response had
    /// started).
    RequestBody,
    /// A missing, repeated, invalid or mismatched host (400, closed).
    BadHost,
    /// Another unusable request (400, closed).
    BadRequest,
    /// A path weir refuses to normalize (400).
    BadPath,
    /// An upgrade or CONNECT weir does not tunnel (400, closed).
    UpgradeRefused,
}

impl Rejection {
    /// Every reason, in label order.
    pub(crate) const ALL: [Rejection; 10] = [
        Rejection::HeaderTimeout,
        Rejection::HalfReceivedLimit,
        Rejection::BadRequestLine,
        Rejection::AmbiguousFraming,
        Rejection::BadChunk,
        Rejection::RequestBody,
        Rejection::BadHost,
        Rejection::BadRequest,
        Rejection::BadPath,
        Rejection::UpgradeRefused,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Rejection::HeaderTimeout => "header_timeout",
            Rejection::HalfReceivedLimit => "half_received_limit",
            Rejection::BadRequestLine => "bad_request_line",
            Rejection::AmbiguousFraming => "ambiguous_framing",
            Rejection::BadChunk => "bad_chunk",
            Rejection::RequestBody => "request_body",
            Rejection::BadHost => "bad_host",
            Rejection::BadRequest => "bad_request",
            Rejection::BadPath => "bad_path",
            Rejection::UpgradeRefused => "upgrade_refused",
        }
    }
}

/// Requests that matched no route (and so have no route label).
#[derive(Default)]
pub(crate) struct Unrouted {
    pub(crate) by_class: [AtomicU64; 5],
}

impl Unrouted {
    pub(crate) fn record(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything `/metrics` shows, gathered by the proxy.
pub(crate) struct MetricsView<'a> {
    pub(crate) routes: &'a [Arc<RouteStats>],
    pub(crate) unrouted: &'a Unrouted,
    pub(crate) clusters: &'a [Arc<super::upstream::ClusterState>],
    pub(crate) listeners: &'a [(&'a str, &'a ListenerStats)],
    pub(crate) generation: u64,
    /// Access log lines dropped because the writer fell behind.
    pub(crate) access_log_dropped: u64,
}

pub(crate) fn render(view: &MetricsView<'_>, out: &mut String) {
    out.push_str("# HELP weir_requests_total Requests finished, by route, cluster and status class.\n# TYPE weir_requests_total counter\n");
    for r in view.routes {
        for (i, class) in CLASSES.iter().enumerate() {
            let n = r.by_class[i].load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "weir_requests_total{{route=\"{}\",cluster=\"{}\",code_class=\"{}\"}} {}",
                    esc(&r.route),
                    esc(&r.cluster),
                    class,
                    n
                );
            }
        }
    }
    for (i, class) in CLASSES.iter().enumerate() {
        let n = view.unrouted.by_class[i].load(Ordering::Relaxed);
        if n > 0 {
            let _ = writeln!(
                out,
                "weir_requests_total{{route=\"\",cluster=\"\",code_class=\"{class}\"}} {n}"
            );
        }
    }
    out.push_str("# HELP weir_request_duration_seconds Time from request head to response end.\n# TYPE weir_request_duration_seconds histogram\n");
    for r in view.routes {
        let labels = format!(
            "route=\"{}\",cluster=\"{}\"",
            esc(&r.route),
            esc(&r.cluster)
        );
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += r.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "weir_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cumulative}"
            );
        }
        let count = r.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "weir_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
        );
        let sum = r.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "weir_request_duration_seconds_sum{{{labels}}} {sum}");
        let _ = writeln!(
            out,
            "weir_request_duration_seconds_count{{{labels}}} {count}"
        );
    }
    out.push_str("# HELP weir_upstream_errors_total Upstream failures by cluster and kind.\n# TYPE weir_upstream_errors_total counter\n");
    for c in view.clusters {
        for (i, kind) in ERROR_KINDS.iter().enumerate() {
            let n = c.stats.errors[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "weir_upstream_errors_total{{cluster=\"{}\",kind=\"{kind}\"}} {n}",
                esc(&c.name)
            );
        }
    }
    let reasons = Reason::ALL.map(Reason::as_str);
    labelled_cluster_series(
        out,
        ("weir_upstream_retries_total", "counter"),
        "Retries started, by cluster and trigger.",
        ("reason", &reasons),
        view.clusters,
        |c, i| c.stats.retries[i].load(Ordering::Relaxed),
    );
    cluster_series(
        out,
        "weir_retry_budget_exhausted_total",
        "counter",
        "Retries not started because the cluster's retry budget was spent.",
        view.clusters,
        |c| c.stats.budget_exhausted.load(Ordering::Relaxed),
    );
    let limits = Limit::ALL.map(Limit::as_str);
    labelled_cluster_series(
        out,
        ("weir_circuit_breaker_open_total", "counter"),
        "Requests and retries stopped by a cluster limit, by cluster and limit.",
        ("limit", &limits),
        view.clusters,
        |c, i| c.stats.breaker_open[i].load(Ordering::Relaxed),
    );
    cluster_series(
        out,
        "weir_upstream_requests_active",
        "gauge",
        "Requests in flight to each cluster.",
        view.clusters,
        |c| c.stats.traffic.active(),
    );
    cluster_series(
        out,
        "weir_upstream_retries_active",
        "gauge",
        "Requests of each cluster in a retry now.",
        view.clusters,
        |c| c.stats.traffic.retries(),
    );
    out.push_str("# HELP weir_mirror_skipped_total Mirrored copies not sent, by shadow cluster and reason.\n# TYPE weir_mirror_skipped_total counter\n");
    for c in view.clusters {
        for (i, reason) in MIRROR_SKIPS.iter().enumerate() {
            let n = c.stats.mirror_skips[i].load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "weir_mirror_skipped_total{{cluster=\"{}\",reason=\"{reason}\"}} {n}",
                    esc(&c.name)
                );
            }
        }
    }
    cluster_series(
        out,
        "weir_endpoints",
        "gauge",
        "Endpoints in each cluster's current set.",
        view.clusters,
        |c| c.stats.endpoints.load(Ordering::Relaxed),
    );
    render_health(view.clusters, out);
    out.push_str("# HELP weir_downstream_connections_active Open client connections.\n# TYPE weir_downstream_connections_active gauge\n");
    for (name, l) in view.listeners {
        let _ = writeln!(
            out,
            "weir_downstream_connections_active{{listener=\"{}\"}} {}",
            esc(name),
            l.active.load(Ordering::Relaxed)
        );
    }
    out.push_str("# HELP weir_downstream_connections_total Accepted client connections.\n# TYPE weir_downstream_connections_total counter\n");
    for (name, l) in view.listeners {
        let _ = writeln!(
            out,
            "weir_downstream_connections_total{{listener=\"{}\"}} {}",
            esc(name),
            l.total.load(Ordering::Relaxed)
        );
    }
    out.push_str("# HELP weir_downstream_half_received Client connections that have not sent a complete first request head.\n# TYPE weir_downstream_half_received gauge\n");
    for (name, l) in view.listeners {
        let _ = writeln!(
            out,
            "weir_downstream_half_received{{listener=\"{}\"}} {}",
            esc(name),
            l.half_received.load(Ordering::Relaxed)
        );
    }
    out.push_str("# HELP weir_downstream_rejected_total Client connections closed and requests refused for what the client sent, by listener and reason.\n# TYPE weir_downstream_rejected_total counter\n");
    for (name, l) in view.listeners {
        for reason in Rejection::ALL {
            let _ = writeln!(
                out,
                "weir_downstream_rejected_total{{listener=\"{}\",reason=\"{}\"}} {}",
                esc(name),
                reason.as_str(),
                l.rejected[reason as usize].load(Ordering::Relaxed)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP weir_snapshot_generation Snapshots published so far.\n# TYPE weir_snapshot_generation gauge\nweir_snapshot_generation {}",
        view.generation
    );
    let _ = writeln!(
        out,
        "# HELP weir_access_log_dropped_total Access log lines dropped because the writer fell behind.\n# TYPE weir_access_log_dropped_total counter\nweir_access_log_dropped_total {}",
        view.access_log_dropped
    );
}

/// The health series: three per cluster.
fn render_health(clusters: &[Arc<super::upstream::ClusterState>], out: &mut String) {
    cluster_series(
        out,
        "weir_endpoints_healthy",
        "gauge",
        "Endpoints of each cluster that pass their checks and are not ejected.",
        clusters,
        |c| {
            let members = c.members();
            members
                .endpoints
                .iter()
                .filter(|e| e.state.health.usable())
                .count() as u64
        },
    );
    cluster_series(
        out,
        "weir_outlier_ejections_total",
        "counter",
        "Endpoints ejected by outlier detection, by the cluster whose answers ejected them.",
        clusters,
        |c| c.stats.outlier_ejections.load(Ordering::Relaxed),
    );
    cluster_series(
        out,
        "weir_active_check_failures_total",
        "counter",
        "Failed active health probes of each cluster's current endpoints (an endpoint leaving takes its count along).",
        clusters,
        |c| {
            let members = c.members();
            members
                .endpoints
                .iter()
                .map(|e| e.state.health.probe_failures())
                .sum()
        },
    );
}

/// One series per cluster: `name{cluster="..."} value`, with its HELP and TYPE lines.
fn cluster_series(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    clusters: &[Arc<super::upstream::ClusterState>],
    value: impl Fn(&super::upstream::ClusterState) -> u64,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for c in clusters {
        let _ = writeln!(out, "{name}{{cluster=\"{}\"}} {}", esc(&c.name), value(c));
    }
}

/// One series per cluster and label value: `name{cluster="...",label="value"} n`, where
/// `value(cluster, i)` is the count of `values[i]`.
fn labelled_cluster_series(
    out: &mut String,
    (name, kind): (&str, &str),
    help: &str,
    (label, values): (&str, &[&str]),
    clusters: &[Arc<super::upstream::ClusterState>],
    value: impl Fn(&super::upstream::ClusterState, usize) -> u64,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for c in clusters {
        for (i, v) in values.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}{{cluster=\"{}\",{label}=\"{v}\"}} {}",
                esc(&c.name),
                value(c, i)
            );
        }
    }
}

/// Escapes a Prometheus label value.
fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\\', '"', '\n']) {
        std::borrow::Cow::Owned(
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n"),
        )
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_into_cumulative_buckets() {
        let r = Arc::new(RouteStats::new(
            "default/web/0/0".into(),
            "default/web:80".into(),
        ));
        r.record(200, Duration::from_millis(3));
        r.record(503, Duration::from_secs(20));
        let mut out = String::new();
        render(
            &MetricsView {
                routes: &[r],
                unrouted: &Unrouted::default(),
                clusters: &[],
                listeners: &[
                    ("http", &ListenerStats::default()),
                    ("https", &ListenerStats::default()),
                ],
                generation: 7,
                access_log_dropped: 3,
            },
            &mut out,
        );
        assert!(out.contains("weir_requests_total{route=\"default/web/0/0\",cluster=\"default/web:80\",code_class=\"2xx\"} 1"));
        assert!(out.contains("code_class=\"5xx\"} 1"));
        assert!(out.contains("le=\"0.005\"} 1\n"));
        assert!(out.contains("le=\"10\"} 1\n"));
        assert!(out.contains("le=\"+Inf\"} 2\n"));
        assert!(out.contains("weir_snapshot_generation 7"));
        assert!(out.contains("\nweir_access_log_dropped_total 3\n"));
    }

    #[test]
    fn rejections_are_counted_per_listener_and_reason() {
        let http = ListenerStats::default();
        http.rejected(Rejection::BadChunk);
        http.rejected(Rejection::BadChunk);
        http.half_received.store(3, Ordering::Relaxed);
        let mut out = String::new();
        render(
            &MetricsView {
                routes: &[],
                unrouted: &Unrouted::default(),
                clusters: &[],
                listeners: &[("http", &http), ("https", &ListenerStats::default())],
                generation: 1,
                access_log_dropped: 0,
            },
            &mut out,
        );
        assert!(out.contains(
            "weir_downstream_rejected_total{listener=\"http\",reason=\"bad_chunk\"} 2\n"
        ));
        assert!(out.contains(
            "weir_downstream_rejected_total{listener=\"https\",reason=\"bad_chunk\"} 0\n"
        ));
        assert!(out.contains(
            "weir_downstream_rejected_total{listener=\"http\",reason=\"header_timeout\"} 0\n"
        ));
        assert!(out.contains("weir_downstream_half_received{listener=\"http\"} 3\n"));
        // Labels and array slots agree.
        for (i, r) in Rejection::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
