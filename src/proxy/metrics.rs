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

/// Request counters and the latency histogram of one label set (a cluster, or a route).
#[derive(Default)]
pub(crate) struct TrafficStats {
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl TrafficStats {
    /// Records one finished request.
    pub(crate) fn record(&self, status: u16, elapsed: Duration) {
        self.by_class[class_index(status)].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// No request recorded yet: its series are not exported.
    pub(crate) fn idle(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }
}

fn class_index(status: u16) -> usize {
    (status / 100).clamp(1, 5) as usize - 1
}

/// Per-route counters, kept only for routes with per-route metrics on (`--metrics-per-route`
/// or the `weir.dev/metrics-per-route` annotation).
pub(crate) struct RouteStats {
    pub(crate) route: Arc<str>,
    /// Cluster name, or empty for answers weir gives itself.
    pub(crate) cluster: Arc<str>,
    pub(crate) traffic: TrafficStats,
}

impl RouteStats {
    pub(crate) fn new(route: Arc<str>, cluster: Arc<str>) -> Self {
        RouteStats {
            route,
            cluster,
            traffic: TrafficStats::default(),
        }
    }
}

/// Where one request is counted: its cluster's counters (or the no-cluster counters of
/// answers weir gives itself) and, for a route with per-route metrics, the route's.
pub(crate) struct Accounting {
    pub(crate) cluster: Arc<TrafficStats>,
    pub(crate) route: Option<Arc<RouteStats>>,
}

impl Accounting {
    /// Records one finished request.
    pub(crate) fn record(&self, status: u16, elapsed: Duration) {
        self.cluster.record(status, elapsed);
        if let Some(r) = &self.route {
            r.traffic.record(status, elapsed);
        }
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
    /// Requests this cluster answered (or weir answered for it), by class, and their latency.
    pub(crate) requests: Arc<TrafficStats>,
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
    /// Requests answered on this listener, by status class (counted when the answer's head
    /// is sent, or as 499 when the client left first).
    requests: [AtomicU64; 5],
}

impl ListenerStats {
    /// Counts one request answered with `status`.
    pub(crate) fn answered(&self, status: u16) {
        self.requests[class_index(status)].fetch_add(1, Ordering::Relaxed);
    }

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

/// Everything `/metrics` shows, gathered by the proxy.
pub(crate) struct MetricsView<'a> {
    /// Per-route counters (routes with per-route metrics on), sorted.
    pub(crate) routes: &'a [Arc<RouteStats>],
    /// Requests answered without a cluster (no route, redirects, direct responses).
    pub(crate) no_cluster: &'a TrafficStats,
    pub(crate) clusters: &'a [Arc<super::upstream::ClusterState>],
    pub(crate) listeners: &'a [(&'a str, &'a ListenerStats)],
    pub(crate) generation: u64,
    /// Access log lines dropped because the writer fell behind.
    pub(crate) access_log_dropped: u64,
}

/// How a cluster's endpoints stand, for `weir_clusters{state}` and for whether its per-cluster
/// series are exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClusterHealth {
    /// Endpoints, every one usable.
    Healthy,
    /// Some endpoints not usable (failing checks, ejected, draining).
    Degraded,
    /// Endpoints, none usable.
    Unavailable,
    /// No endpoints.
    Empty,
}

impl ClusterHealth {
    const ALL: [ClusterHealth; 4] = [
        ClusterHealth::Healthy,
        ClusterHealth::Degraded,
        ClusterHealth::Unavailable,
        ClusterHealth::Empty,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ClusterHealth::Healthy => "healthy",
            ClusterHealth::Degraded => "degraded",
            ClusterHealth::Unavailable => "unavailable",
            ClusterHealth::Empty => "empty",
        }
    }

    fn of(endpoints: u64, usable: u64) -> Self {
        match (endpoints, usable) {
            (0, _) => ClusterHealth::Empty,
            (_, 0) => ClusterHealth::Unavailable,
            (n, u) if u < n => ClusterHealth::Degraded,
            _ => ClusterHealth::Healthy,
        }
    }
}

/// One cluster as a scrape sees it.
struct ClusterRow<'a> {
    state: &'a super::upstream::ClusterState,
    endpoints: u64,
    usable: u64,
    probe_failures: u64,
    health: ClusterHealth,
}

impl ClusterRow<'_> {
    /// Whether its per-cluster series are exported: once it has seen a request or an error,
    /// or while its endpoints are not all healthy. Idle healthy clusters are only counted in
    /// `weir_clusters`, so that a scrape stays small with thousands of Services.
    fn reported(&self) -> bool {
        let s = &self.state.stats;
        self.health != ClusterHealth::Healthy
            || !s.requests.idle()
            || s.errors.iter().any(|e| e.load(Ordering::Relaxed) > 0)
            || s.outlier_ejections.load(Ordering::Relaxed) > 0
            || self.probe_failures > 0
    }
}

/// Renders the data plane's series. Nothing is pre-created for idle routes or clusters:
/// request series appear with the first request, per-cluster series as
/// [`ClusterRow::reported`] says, counters by kind or reason once they are non-zero.
pub(crate) fn render(view: &MetricsView<'_>, out: &mut String) {
    let rows: Vec<ClusterRow<'_>> = view
        .clusters
        .iter()
        .map(|c| {
            let members = c.members();
            let endpoints = c.stats.endpoints.load(Ordering::Relaxed);
            let usable = members
                .endpoints
                .iter()
                .filter(|e| e.state.health.usable())
                .count() as u64;
            let probe_failures = members
                .endpoints
                .iter()
                .map(|e| e.state.health.probe_failures())
                .sum();
            ClusterRow {
                state: c,
                endpoints,
                usable,
                probe_failures,
                health: ClusterHealth::of(endpoints, usable),
            }
        })
        .collect();
    let reported: Vec<&ClusterRow<'_>> = rows.iter().filter(|r| r.reported()).collect();
    let traffic: Vec<(&str, &TrafficStats)> = reported
        .iter()
        .map(|r| (&*r.state.name, &*r.state.stats.requests))
        .chain(std::iter::once(("", view.no_cluster)))
        .filter(|(_, t)| !t.idle())
        .collect();

    header(
        out,
        "weir_requests_total",
        "counter",
        "Requests finished, by cluster (empty: answered by weir itself) and status class.",
    );
    for (cluster, t) in &traffic {
        let labels = format!("cluster=\"{}\"", esc(cluster));
        class_lines(out, "weir_requests_total", &labels, &t.by_class);
    }
    header(
        out,
        "weir_request_duration_seconds",
        "histogram",
        "Time from request head to response end, by cluster.",
    );
    for (cluster, t) in &traffic {
        let labels = format!("cluster=\"{}\"", esc(cluster));
        histogram_lines(out, "weir_request_duration_seconds", &labels, t);
    }
    if !view.routes.is_empty() {
        header(
            out,
            "weir_route_requests_total",
            "counter",
            "Requests finished on routes with per-route metrics, by route, cluster and status class.",
        );
        for r in view.routes.iter().filter(|r| !r.traffic.idle()) {
            let labels = format!(
                "route=\"{}\",cluster=\"{}\"",
                esc(&r.route),
                esc(&r.cluster)
            );
            class_lines(
                out,
                "weir_route_requests_total",
                &labels,
                &r.traffic.by_class,
            );
        }
        header(
            out,
            "weir_route_request_duration_seconds",
            "histogram",
            "Time from request head to response end on routes with per-route metrics.",
        );
        for r in view.routes.iter().filter(|r| !r.traffic.idle()) {
            let labels = format!(
                "route=\"{}\",cluster=\"{}\"",
                esc(&r.route),
                esc(&r.cluster)
            );
            histogram_lines(
                out,
                "weir_route_request_duration_seconds",
                &labels,
                &r.traffic,
            );
        }
    }
    header(
        out,
        "weir_clusters",
        "gauge",
        "Clusters of the current snapshot, by the state of their endpoints.",
    );
    for state in ClusterHealth::ALL {
        let n = rows.iter().filter(|r| r.health == state).count();
        let _ = writeln!(out, "weir_clusters{{state=\"{}\"}} {n}", state.as_str());
    }
    let endpoints: u64 = rows.iter().map(|r| r.endpoints).sum();
    let usable: u64 = rows.iter().map(|r| r.usable).sum();
    let _ = writeln!(
        out,
        "# HELP weir_endpoints_all Endpoints of every cluster, by whether they are usable.\n# TYPE weir_endpoints_all gauge\nweir_endpoints_all{{usable=\"true\"}} {usable}\nweir_endpoints_all{{usable=\"false\"}} {}",
        endpoints.saturating_sub(usable)
    );
    labelled_cluster_series(
        out,
        ("weir_upstream_errors_total", "counter"),
        "Upstream failures by cluster and kind.",
        ("kind", &ERROR_KINDS),
        &reported,
        |c, i| c.stats.errors[i].load(Ordering::Relaxed),
    );
    let reasons = Reason::ALL.map(Reason::as_str);
    labelled_cluster_series(
        out,
        ("weir_upstream_retries_total", "counter"),
        "Retries started, by cluster and trigger.",
        ("reason", &reasons),
        &reported,
        |c, i| c.stats.retries[i].load(Ordering::Relaxed),
    );
    cluster_series(
        out,
        ("weir_retry_budget_exhausted_total", "counter"),
        "Retries not started because the cluster's retry budget was spent.",
        &reported,
        |r| r.state.stats.budget_exhausted.load(Ordering::Relaxed),
    );
    let limits = Limit::ALL.map(Limit::as_str);
    labelled_cluster_series(
        out,
        ("weir_circuit_breaker_open_total", "counter"),
        "Requests and retries stopped by a cluster limit, by cluster and limit.",
        ("limit", &limits),
        &reported,
        |c, i| c.stats.breaker_open[i].load(Ordering::Relaxed),
    );
    cluster_series(
        out,
        ("weir_upstream_requests_active", "gauge"),
        "Requests in flight to each cluster.",
        &reported,
        |r| r.state.stats.traffic.active(),
    );
    cluster_series(
        out,
        ("weir_upstream_retries_active", "gauge"),
        "Requests of each cluster in a retry now.",
        &reported,
        |r| r.state.stats.traffic.retries(),
    );
    labelled_cluster_series(
        out,
        ("weir_mirror_skipped_total", "counter"),
        "Mirrored copies not sent, by shadow cluster and reason.",
        ("reason", &MIRROR_SKIPS),
        &reported,
        |c, i| c.stats.mirror_skips[i].load(Ordering::Relaxed),
    );
    cluster_series(
        out,
        ("weir_endpoints", "gauge"),
        "Endpoints in each reported cluster's current set.",
        &reported,
        |r| r.endpoints,
    );
    cluster_series(
        out,
        ("weir_endpoints_healthy", "gauge"),
        "Endpoints of each reported cluster that pass their checks and are not ejected.",
        &reported,
        |r| r.usable,
    );
    cluster_series(
        out,
        ("weir_outlier_ejections_total", "counter"),
        "Endpoints ejected by outlier detection, by the cluster whose answers ejected them.",
        &reported,
        |r| r.state.stats.outlier_ejections.load(Ordering::Relaxed),
    );
    cluster_series(
        out,
        ("weir_active_check_failures_total", "counter"),
        "Failed active health probes of each reported cluster's current endpoints (an endpoint leaving takes its count along).",
        &reported,
        |r| r.probe_failures,
    );
    header(
        out,
        "weir_downstream_requests_total",
        "counter",
        "Requests answered, by listener and status class.",
    );
    for (name, l) in view.listeners {
        let labels = format!("listener=\"{}\"", esc(name));
        class_lines(out, "weir_downstream_requests_total", &labels, &l.requests);
    }
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

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `name{labels,code_class="Nxx"} n` for each class with requests.
fn class_lines(out: &mut String, name: &str, labels: &str, by_class: &[AtomicU64; 5]) {
    for (class, n) in CLASSES.iter().zip(by_class) {
        let n = n.load(Ordering::Relaxed);
        if n > 0 {
            let _ = writeln!(out, "{name}{{{labels},code_class=\"{class}\"}} {n}");
        }
    }
}

/// The bucket, sum and count lines of one histogram.
fn histogram_lines(out: &mut String, name: &str, labels: &str, t: &TrafficStats) {
    let mut cumulative = 0;
    for (b, n) in BUCKETS.iter().zip(&t.buckets) {
        cumulative += n.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
    }
    let count = t.count.load(Ordering::Relaxed);
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let sum = t.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// One series per reported cluster: `name{cluster="..."} value`, with its HELP and TYPE lines
/// (a counter only once it is non-zero).
fn cluster_series(
    out: &mut String,
    (name, kind): (&str, &str),
    help: &str,
    clusters: &[&ClusterRow<'_>],
    value: impl Fn(&ClusterRow<'_>) -> u64,
) {
    header(out, name, kind, help);
    for c in clusters {
        let v = value(c);
        if v > 0 || kind != "counter" {
            let _ = writeln!(out, "{name}{{cluster=\"{}\"}} {v}", esc(&c.state.name));
        }
    }
}

/// One series per reported cluster and label value with a non-zero count:
/// `name{cluster="...",label="value"} n`, where `value(cluster, i)` is the count of
/// `values[i]`.
fn labelled_cluster_series(
    out: &mut String,
    (name, kind): (&str, &str),
    help: &str,
    (label, values): (&str, &[&str]),
    clusters: &[&ClusterRow<'_>],
    value: impl Fn(&super::upstream::ClusterState, usize) -> u64,
) {
    header(out, name, kind, help);
    for c in clusters {
        for (i, v) in values.iter().enumerate() {
            let n = value(c.state, i);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "{name}{{cluster=\"{}\",{label}=\"{v}\"}} {n}",
                    esc(&c.state.name)
                );
            }
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
        r.traffic.record(200, Duration::from_millis(3));
        r.traffic.record(503, Duration::from_secs(20));
        let no_cluster = TrafficStats::default();
        no_cluster.record(404, Duration::from_millis(1));
        let http = ListenerStats::default();
        http.answered(404);
        let mut out = String::new();
        render(
            &MetricsView {
                routes: &[r],
                no_cluster: &no_cluster,
                clusters: &[],
                listeners: &[("http", &http), ("https", &ListenerStats::default())],
                generation: 7,
                access_log_dropped: 3,
            },
            &mut out,
        );
        assert!(out.contains("weir_route_requests_total{route=\"default/web/0/0\",cluster=\"default/web:80\",code_class=\"2xx\"} 1"));
        assert!(out.contains("code_class=\"5xx\"} 1"));
        assert!(out.contains("le=\"0.005\"} 1\n"));
        assert!(out.contains("le=\"10\"} 1\n"));
        assert!(out.contains("le=\"+Inf\"} 2\n"));
        assert!(out.contains("weir_requests_total{cluster=\"\",code_class=\"4xx\"} 1\n"));
        assert!(
            out.contains(
                "weir_downstream_requests_total{listener=\"http\",code_class=\"4xx\"} 1\n"
            )
        );
        assert!(
            !out.contains("weir_downstream_requests_total{listener=\"https\""),
            "no series for an idle listener's classes"
        );
        assert!(out.contains("weir_snapshot_generation 7"));
        assert!(out.contains("\nweir_access_log_dropped_total 3\n"));
    }

    #[test]
    fn idle_routes_have_no_series() {
        let idle = Arc::new(RouteStats::new("default/idle/0/0".into(), "".into()));
        let mut out = String::new();
        render(
            &MetricsView {
                routes: &[idle],
                no_cluster: &TrafficStats::default(),
                clusters: &[],
                listeners: &[],
                generation: 1,
                access_log_dropped: 0,
            },
            &mut out,
        );
        assert!(!out.contains("default/idle"), "{out}");
        assert!(out.contains("weir_clusters{state=\"healthy\"} 0\n"));
    }

    #[test]
    fn cluster_health_states() {
        assert_eq!(ClusterHealth::of(0, 0), ClusterHealth::Empty);
        assert_eq!(ClusterHealth::of(3, 0), ClusterHealth::Unavailable);
        assert_eq!(ClusterHealth::of(3, 2), ClusterHealth::Degraded);
        assert_eq!(ClusterHealth::of(3, 3), ClusterHealth::Healthy);
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
                no_cluster: &TrafficStats::default(),
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
