//! The data plane: listeners, connections, routing, forwarding, upstream pools.
//!
//! The control plane talks to the proxy only through [`Proxy::publish_snapshot`],
//! [`Proxy::publish_endpoints`] and [`Proxy::update_endpoints`]; the admin listener reads
//! [`Proxy::render_metrics`], [`Proxy::clusters_json`], [`Proxy::snapshot`] and
//! [`Proxy::generation`]; `main` runs [`Proxy::serve`]. Everything else is the request path:
//!
//! - `server`: accept, TLS (`tls`), HTTP/1.1 + HTTP/2, graceful shutdown;
//! - `forward`: one request: route ([`Snapshot::route`]), balance ([`crate::balance`]), rewrite
//!   headers, forward over a pooled connection (`upstream`), stream the response (`body`);
//! - `error`: the one place failures become responses;
//! - `metrics`, `access_log`: accounting.
//!
//! Publishing builds a route table that resolves every route of the snapshot to its
//! counters and cluster state once, so a request does no map lookup by name: it loads the
//! current `Runtime` (one `ArcSwap` load), routes, and follows `Arc`s.
//!
//! # Behaviour users can rely on
//!
//! - **Failures → responses** (one function, `error::Failure::into_response`): no route 404;
//!   `Respond` routes their own status; no endpoint 503; connect failure or a request that
//!   came back unsent → the next endpoint (each endpoint once, in balancer order; a stale
//!   pooled connection is retried once on the same endpoint), 502 when none is left;
//!   failure after the request was sent 502, never retried; no response headers within the
//!   request timeout (or connect timeout on the last endpoint) 504; malformed request 400.
//!   A client that goes away before the response is counted and logged as 499.
//! - **Timeouts**: per cluster from the snapshot (connect 2 s, request-to-response-headers
//!   60 s, upstream idle 60 s by default); downstream: request head 30 s (also the idle
//!   keep-alive timeout of HTTP/1 client connections), TLS handshake 10 s, drain 30 s
//!   ([`ProxyConfig`]).
//! - **Limits**: request head 64 KiB and 100 header fields (431 above; HTTP/2 advertises the
//!   same as `SETTINGS_MAX_HEADER_LIST_SIZE`); 200 concurrent streams per client HTTP/2
//!   connection (hyper's default); upstream HTTP/2 streams per connection capped at the
//!   peer's `SETTINGS_MAX_CONCURRENT_STREAMS` and [`ProxyConfig::upstream_h2_max_streams`].
//! - **Forwarded headers** ([`ForwardedHeaders`]): by default weir is the edge and
//!   overwrites `X-Forwarded-For` (peer IP), `X-Forwarded-Proto` (`http`/`https`) and
//!   `X-Forwarded-Host` (request host); with `Trust` it appends the peer IP to an incoming
//!   `X-Forwarded-For` and keeps incoming `-Proto`/`-Host`.
//! - **Request id** ([`RequestIdMode`]): a well-formed incoming `X-Request-Id` is kept,
//!   otherwise a UUID v4 is generated; it is sent upstream, echoed on the response, and
//!   logged.
//! - **Hop-by-hop headers** are removed both ways; `TE: trailers` is kept (gRPC).
//!   HTTP/1.1 `Upgrade` (WebSocket) is tunnelled over a dedicated upstream HTTP/1.1
//!   connection; so is WebSocket over HTTP/2 (extended CONNECT, RFC 8441), translated to an
//!   HTTP/1.1 upgrade upstream. Tunnels are not waited for on shutdown.
//! - **Ambiguous framing** (`Content-Length` with `Transfer-Encoding`) is refused with 400
//!   and the connection closed (`framing`).
//! - **Upstream TLS** does not verify certificates (as Envoy/Contour by default); see
//!   `upstream`.

mod access_log;
mod body;
mod config;
mod error;
mod forward;
mod framing;
mod metrics;
mod normalize;
mod server;
mod tls;
mod tunnel;
mod upstream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

pub use body::ProxyBody;
pub use config::{
    AccessLogConfig, AccessLogFormat, AccessLogTarget, ForwardedHeaders, ProxyConfig, RequestIdMode,
};
pub use error::ProxyError;

use crate::snapshot::{
    BackendTarget, ClusterKey, EndpointSet, EndpointSets, Route, RouteAction, Snapshot,
};
use metrics::{ListenerStats, RouteStats, Unrouted};
use upstream::{ClusterState, Registry};

/// Already-bound listening sockets for [`Proxy::serve`] (the caller binds, so tests can use
/// port 0 and `main` can report bind errors itself).
#[derive(Debug, Default)]
pub struct Listeners {
    /// Cleartext HTTP/1.1 and HTTP/2 (prior knowledge).
    pub http: Option<tokio::net::TcpListener>,
    /// TLS with ALPN `h2` / `http/1.1`; certificates from the snapshot by SNI.
    pub https: Option<tokio::net::TcpListener>,
}

/// Handle to the data plane. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy::new(ProxyConfig::default())
    }
}

pub(crate) struct Inner {
    config: ProxyConfig,
    runtime: ArcSwap<Runtime>,
    endpoints: ArcSwap<EndpointSets>,
    generation: AtomicU64,
    /// Serializes publishers; never touched by requests.
    publish: Mutex<PublishState>,
    access_log: access_log::AccessLog,
    unrouted: Unrouted,
    /// `[http, https]`.
    listener_stats: [ListenerStats; 2],
}

#[derive(Default)]
struct PublishState {
    registry: Registry,
    /// Route counters by (route name, cluster name), kept across snapshots so counters stay
    /// monotonic; routes that disappear are dropped.
    route_stats: HashMap<(String, String), Arc<RouteStats>>,
}

/// The published state a request reads: the snapshot and its resolved route table.
pub(crate) struct Runtime {
    snapshot: Arc<Snapshot>,
    /// Runtime of each route, indexed by [`crate::snapshot::RouteId`].
    routes: Vec<Arc<RouteRt>>,
}

/// A route resolved against the registry.
pub(crate) struct RouteRt {
    stats: Arc<RouteStats>,
    /// The cluster state for `Forward` routes.
    cluster: Option<Arc<ClusterState>>,
}

impl Runtime {
    fn empty() -> Self {
        Runtime {
            snapshot: Arc::new(Snapshot::default()),
            routes: Vec::new(),
        }
    }

    /// The runtime of `route`, a route of `self.snapshot`.
    fn route_for(&self, route: &Route) -> Option<Arc<RouteRt>> {
        self.routes.get(route.id.0 as usize).cloned()
    }
}

impl Proxy {
    /// A proxy with `config`, serving nothing until a snapshot is published (every request
    /// gets 404 before that).
    pub fn new(config: ProxyConfig) -> Proxy {
        let access_log = access_log::AccessLog::start(&config.access_log);
        Proxy {
            inner: Arc::new(Inner {
                config,
                runtime: ArcSwap::from_pointee(Runtime::empty()),
                endpoints: ArcSwap::from_pointee(EndpointSets::new()),
                generation: AtomicU64::new(0),
                publish: Mutex::new(PublishState::default()),
                access_log,
                unrouted: Unrouted::default(),
                listener_stats: Default::default(),
            }),
        }
    }

    /// The configuration the proxy was built with.
    pub fn config(&self) -> &ProxyConfig {
        &self.inner.config
    }

    /// Swap in a new snapshot. Requests in flight keep the snapshot they started with.
    /// Clusters whose protocol is unchanged keep their endpoints, pools and balancer state.
    pub fn publish_snapshot(&self, snapshot: Arc<Snapshot>) {
        let mut state = self.publish_lock();
        let sets = self.inner.endpoints.load_full();
        self.rebuild(&mut state, snapshot, &sets);
        self.inner.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Replace the endpoint sets of every cluster.
    pub fn publish_endpoints(&self, endpoints: Arc<EndpointSets>) {
        let mut state = self.publish_lock();
        self.inner.endpoints.store(endpoints.clone());
        let snapshot = self.inner.runtime.load().snapshot.clone();
        self.rebuild(&mut state, snapshot, &endpoints);
    }

    /// Replace (`Some`) or remove (`None`) the endpoint set of one cluster; the fast path
    /// for EndpointSlice changes (the route table is not rebuilt).
    pub fn update_endpoints(&self, cluster: &ClusterKey, set: Option<Arc<EndpointSet>>) {
        let state = self.publish_lock();
        self.inner.endpoints.rcu(|current| {
            let mut next = EndpointSets::clone(current);
            match &set {
                Some(set) => next.insert(cluster.clone(), set.clone()),
                None => next.remove(cluster),
            };
            next
        });
        state.registry.update_endpoints(cluster, set.as_deref());
    }

    /// Number of snapshots published so far; `0` means not ready.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Relaxed)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.runtime.load().snapshot.clone()
    }

    /// Serves `listeners` until `shutdown` resolves, then stops accepting, asks every
    /// connection to finish (GOAWAY on HTTP/2), waits for in-flight requests up to
    /// [`ProxyConfig::drain_timeout`], and returns.
    pub async fn serve(
        &self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ProxyError> {
        server::serve(self.inner.clone(), listeners, shutdown).await
    }

    /// Appends the Prometheus text exposition of the data plane's metrics to `out`:
    /// `weir_requests_total{route,cluster,code_class}`,
    /// `weir_request_duration_seconds{route,cluster}` (histogram),
    /// `weir_upstream_errors_total{cluster,kind}`, `weir_endpoints{cluster}`,
    /// `weir_downstream_connections_active/total{listener}`, `weir_snapshot_generation`.
    pub fn render_metrics(&self, out: &mut String) {
        let (routes, clusters) = {
            let state = self.publish_lock();
            let mut routes: Vec<Arc<RouteStats>> = state.route_stats.values().cloned().collect();
            routes.sort_by(|a, b| (&a.route, &a.cluster).cmp(&(&b.route, &b.cluster)));
            (routes, state.registry.clusters())
        };
        metrics::render(
            &metrics::MetricsView {
                routes: &routes,
                unrouted: &self.inner.unrouted,
                clusters: &clusters,
                listeners: [
                    ("http", &self.inner.listener_stats[0]),
                    ("https", &self.inner.listener_stats[1]),
                ],
                generation: self.generation(),
            },
            out,
        );
    }

    /// Every cluster with its endpoints: address, weight, in-flight and total requests,
    /// pooled connections, and whether it is draining (for the admin `/clusters`).
    pub fn clusters_json(&self) -> serde_json::Value {
        let clusters = self.publish_lock().registry.clusters();
        let list: Vec<serde_json::Value> = clusters
            .iter()
            .map(|c| {
                let cfg = c.config.load();
                let members = c.members.load();
                let endpoints: Vec<serde_json::Value> = members
                    .endpoints
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "address": e.address.to_string(),
                            "weight": e.weight.load(Ordering::Relaxed),
                            "in_flight": e.load.in_flight(),
                            "total": e.total.load(Ordering::Relaxed),
                            "pooled_connections": e.pooled_connections(),
                            "health": if e.is_draining() { "draining" } else { "healthy" },
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": c.name.as_ref(),
                    "protocol": cfg.protocol,
                    "lb_policy": cfg.lb_policy,
                    "endpoints": endpoints,
                })
            })
            .collect();
        serde_json::json!({ "clusters": list })
    }

    fn publish_lock(&self) -> std::sync::MutexGuard<'_, PublishState> {
        // Publishing state stays consistent even if a publisher panicked mid-way: the next
        // publish rebuilds everything from its inputs.
        self.inner.publish.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reconciles the registry with `snapshot` and `sets` and publishes a new route table.
    fn rebuild(&self, state: &mut PublishState, snapshot: Arc<Snapshot>, sets: &EndpointSets) {
        let PublishState {
            registry,
            route_stats,
        } = state;
        let clusters =
            registry.reconcile(&snapshot, sets, self.inner.config.upstream_h2_max_streams);
        let mut routes = Vec::new();
        let mut seen = HashMap::new();
        for r in snapshot.routes() {
            let cluster = match &r.action {
                RouteAction::Forward(f) => f.backends.first().and_then(|b| match &b.target {
                    BackendTarget::Cluster(key) => clusters.get(key).cloned(),
                    BackendTarget::Respond(_) => None,
                }),
                RouteAction::Redirect(_) | RouteAction::Respond(_) => None,
            };
            let cluster_name = cluster
                .as_ref()
                .map(|c| c.name.to_string())
                .unwrap_or_default();
            let key = (r.name.clone(), cluster_name);
            let stats = route_stats.get(&key).cloned().unwrap_or_else(|| {
                Arc::new(RouteStats::new(
                    Arc::from(key.0.as_str()),
                    Arc::from(key.1.as_str()),
                ))
            });
            seen.insert(key, stats.clone());
            debug_assert_eq!(r.id.0 as usize, routes.len(), "route ids are dense");
            routes.push(Arc::new(RouteRt { stats, cluster }));
        }
        *route_stats = seen;
        self.inner
            .runtime
            .store(Arc::new(Runtime { snapshot, routes }));
    }
}
