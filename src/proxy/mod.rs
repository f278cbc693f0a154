//! The data plane: listeners, connections, the request pipeline, upstream pools.
//!
//! The control plane talks to the proxy only through [`Proxy::publish_snapshot`],
//! [`Proxy::publish_endpoints`] and [`Proxy::update_endpoints`]; the admin listener reads
//! [`Proxy::render_metrics`], [`Proxy::clusters_json`], [`Proxy::snapshot`],
//! [`Proxy::generation`], [`Proxy::listeners`] and [`Proxy::publish_history`] (the control
//! plane adds its diagnostics with [`Proxy::report_diagnostics`]); `main` runs [`Proxy::serve`]. Everything
//! else is the request path:
//!
//! - `server`: the listeners of the snapshot, bound, kept and closed by diffing snapshots;
//!   accept, TLS (`tls`), HTTP/1.1 + HTTP/2, graceful shutdown;
//! - `pipeline`: one request, as documented phases (normalize, route, filters, backend,
//!   endpoint, upstream, response filters, accounting) and the one local-reply path;
//! - `filter`: filter kinds and their phase order; `redirect`; `headers`: header rules;
//! - `upstream`: clusters, endpoint state shared by address, pools; hyper's client behind
//!   `upstream::client`; `body`: weir's own body type;
//! - `error`: failures, where they came from, and the one mapping to answers;
//! - `metrics`, `access_log`: accounting.
//!
//! Publishing resolves every route of the snapshot, by [`crate::snapshot::RouteId`], to its
//! counters, backend picker and cluster states (its backends', and those its filters send
//! to) once, and hands each listener a view of the
//! result: a request loads its listener's view (one `ArcSwap` load), routes, and follows
//! `Arc`s — no map lookup by name beyond the listener's route table.
//!
//! # Behaviour users can rely on
//!
//! - **Listeners** come from the snapshot: a new one is bound when a snapshot adds it and
//!   serves at once; one a snapshot removes stops accepting and its connections drain (HTTP/2
//!   GOAWAY, HTTP/1 closes after the current response), while the others carry on untouched.
//!   A listener that cannot bind is logged and retried.
//! - **Failures → answers** (one function, `error::Failure::reply`): no route 404;
//!   `Respond` routes their own status; no endpoint 503; every backend weighted 0: 500;
//!   connect failure or a request that came back unsent → the next endpoint (each endpoint
//!   once, in balancer order; a stale pooled connection is retried once on the same
//!   endpoint), 502 when none is left; failure after the request was sent 502, never
//!   retried; no response headers within the request timeout (or connect timeout on the last
//!   endpoint) 504; malformed request 400. A client that goes away before the response is
//!   counted and logged as 499.
//! - **Local replies** (direct responses, redirects, failures, filters that answer) carry
//!   `X-Request-Id` and run the route's response filters, like forwarded responses.
//! - **Timeouts**: per cluster from the snapshot (connect 2 s, request-to-response-headers
//!   60 s, upstream idle 60 s by default); downstream: request head 30 s (also the idle
//!   keep-alive timeout of HTTP/1 client connections), TLS handshake 10 s, drain 30 s
//!   ([`ProxyConfig`]).
//! - **Limits**: request head 64 KiB and 100 header fields (431 above; HTTP/2 advertises the
//!   same as `SETTINGS_MAX_HEADER_LIST_SIZE`); 200 concurrent streams per client HTTP/2
//!   connection (hyper's default); upstream HTTP/2 streams per connection capped at the
//!   peer's `SETTINGS_MAX_CONCURRENT_STREAMS` and [`ProxyConfig::upstream_h2_max_streams`].
//! - **Forwarded headers** ([`ForwardedHeaders`]): by default weir is the edge: it drops
//!   the client's `Forwarded`, `X-Real-IP` and `X-Forwarded-*` and sets `X-Forwarded-For`
//!   and `X-Real-IP` (peer IP), `X-Forwarded-Proto` (`http`/`https`) and `X-Forwarded-Host`
//!   (request host). From a peer in a trusted network it appends the peer IP to every
//!   incoming `X-Forwarded-For` line, keeps the other forwarding headers, and sets
//!   `X-Real-IP` to the first untrusted address of the chain.
//! - **Request id** ([`RequestIdMode`]): a well-formed incoming `X-Request-Id` is kept,
//!   otherwise a UUID v4 is generated; it is sent upstream, echoed on the response, and
//!   logged.
//! - **Hop-by-hop headers** are removed both ways; `TE: trailers` is kept (gRPC).
//!   HTTP/1.1 `Upgrade` (WebSocket) is tunnelled over a dedicated upstream HTTP/1.1
//!   connection; so is WebSocket over HTTP/2 (extended CONNECT, RFC 8441), translated to an
//!   HTTP/1.1 upgrade upstream.
//! - **Hostile HTTP/1 input**: ambiguous framing (`Content-Length` with
//!   `Transfer-Encoding`) and malformed chunked bodies are refused with 400 and the
//!   connection closed (`framing`), as are a missing, repeated or mismatched `Host` (`host`);
//!   a request line that is not HTTP/1.0/1.1 closes the connection without an answer
//!   (`framing`); slow request heads and floods of idle connections are cut (`admission`).
//! - **Upstream TLS** does not verify certificates (as Envoy/Contour by default); see
//!   `upstream::client`.

mod access_log;
mod admission;
mod affinity;
mod body;
mod config;
mod error;
pub mod explain;
mod filter;
mod framing;
mod h2_conn;
mod headers;
pub mod history;
mod host;
mod metrics;
mod normalize;
mod pipeline;
mod redirect;
mod retry;
mod server;
mod tls;
mod tunnel;
mod upstream;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::watch;

pub use config::{
    AccessLogConfig, AccessLogFormat, AccessLogTarget, Cidr, CidrError, EscapedSlashes,
    ForwardedHeaders, ProxyConfig, RequestIdMode,
};
pub use error::{ProxyError, Source};
/// Runs a route's filter phases outside a server (for `benches/filters.rs`; not an API).
#[doc(hidden)]
pub use filter::bench::FilterChainBench;

use crate::balance::round_robin::WeightedCycle;
use crate::snapshot::{
    BackendTarget, ClusterKey, EndpointSet, EndpointSets, ListenerProtocol, RouteAction,
    RouteTable, Snapshot,
};
use metrics::{Accounting, ListenerStats, RouteStats, TrafficStats};
use upstream::{ClusterState, Registry};

/// A socket bound before [`Proxy::serve`] starts (so `main` can report bind errors itself and
/// tests can use port 0). It serves at once, as the listener `name`, and is kept when the
/// snapshot has a listener of that name, address and protocol; otherwise it is closed.
#[derive(Debug)]
pub struct BoundListener {
    /// Listener name (as in the snapshot: `http`, `https` for Ingress).
    pub name: String,
    /// Cleartext or TLS.
    pub protocol: ListenerProtocol,
    /// The socket.
    pub socket: tokio::net::TcpListener,
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
    generation: AtomicU64,
    /// Serializes publishers; never touched by requests.
    publish: Mutex<PublishState>,
    /// Bumped on every snapshot publish; the server re-diffs its listeners.
    listeners_changed: watch::Sender<u64>,
    /// The listeners the server serves now, with their local addresses.
    bound: Mutex<Vec<(String, SocketAddr)>>,
    access_log: access_log::AccessLog,
    /// Counters of requests answered without a cluster (no route, redirects, direct
    /// responses): `weir_requests_total{cluster=""}`.
    no_cluster: Arc<TrafficStats>,
    /// The last publishes and diagnostics, for the debug listener's status page; written
    /// under the publish lock, never read by requests.
    history: Mutex<history::History>,
}

struct PublishState {
    registry: Registry,
    /// The endpoint sets of every cluster, as last published. Only this state holds the
    /// `Arc` (apart from a rebuild's borrow), so the fast path changes one entry in place
    /// instead of copying a map of 5,000 clusters per EndpointSlice change.
    endpoints: Arc<EndpointSets>,
    /// Per-route counters by (route name, cluster name), for routes with per-route metrics
    /// on; kept across snapshots so counters stay monotonic, dropped with their route.
    route_stats: HashMap<(String, String), Arc<RouteStats>>,
    /// One slot per listener of the current snapshot, plus those still served that it does
    /// not have (pre-bound sockets before the first snapshot, removed listeners until the
    /// server closed them).
    slots: BTreeMap<String, Arc<ListenerSlot>>,
    /// Runtime state of the routes' filters, carried into the next publish where the filter
    /// is unchanged (rate-limit buckets, basic-auth caches).
    filter_state: filter::StateCarry,
}

/// A listener's link to the published state: what its connections route with, and its
/// counters. A listener removed from the snapshot keeps its last view, so its draining
/// connections finish with the configuration they started on.
pub(crate) struct ListenerSlot {
    pub(crate) name: Arc<str>,
    pub(crate) view: ArcSwap<ListenerView>,
    pub(crate) stats: ListenerStats,
}

/// The published state as one listener sees it.
pub(crate) struct ListenerView {
    pub(crate) runtime: Arc<Runtime>,
    /// Index of the listener in `runtime.snapshot.listeners` (`None`: not in the snapshot,
    /// every request gets 404).
    pub(crate) listener: Option<usize>,
}

impl ListenerView {
    /// The route table the listener serves.
    pub(crate) fn table(&self) -> Option<&RouteTable> {
        let snapshot = &self.runtime.snapshot;
        let listener = snapshot.listeners.get(self.listener?)?;
        snapshot.route_tables.get(&listener.route_table)
    }

    /// The listener's certificates.
    pub(crate) fn tls(&self) -> Option<&crate::snapshot::TlsConfig> {
        let snapshot = &self.runtime.snapshot;
        snapshot.listeners.get(self.listener?)?.tls.as_ref()
    }
}

/// The published state a request reads: the snapshot and its resolved routes.
pub(crate) struct Runtime {
    snapshot: Arc<Snapshot>,
    /// Runtime of each route, indexed by [`crate::snapshot::RouteId`].
    routes: Vec<Arc<RouteRt>>,
}

/// A route resolved against the registry: per-route runtime state.
pub(crate) struct RouteRt {
    /// Where answers given before a backend is chosen are counted.
    local: Arc<Accounting>,
    /// One per backend of a `Forward` route, in the route's order.
    backends: Vec<BackendRt>,
    picker: Picker,
    /// The clusters its filters (the route's and its backends') send to, each once.
    filter_clusters: Vec<filter::FilterCluster>,
    /// State of the route's (and its backends') filters.
    filters: filter::RouteFilterState,
}

/// A backend of a route, resolved.
pub(crate) struct BackendRt {
    stats: Arc<Accounting>,
    /// The cluster state (`None` for a backend that answers directly).
    cluster: Option<Arc<ClusterState>>,
}

/// How a route picks its backend.
pub(crate) enum Picker {
    /// One backend (or a route that does not forward).
    Only,
    /// Every weight is 0.
    None,
    /// Smooth weighted round robin over the backends of non-zero weight (their indices).
    Weighted(WeightedCycle, Vec<usize>),
}

impl Runtime {
    fn empty() -> Self {
        Runtime {
            snapshot: Arc::new(Snapshot::default()),
            routes: Vec::new(),
        }
    }
}

impl Proxy {
    /// A proxy with `config`, serving nothing until a snapshot is published (every request
    /// gets 404 before that).
    pub fn new(config: ProxyConfig) -> Proxy {
        let access_log = access_log::AccessLog::start(&config.access_log);
        let registry = Registry::new(config.upstream_h2_max_streams);
        Proxy {
            inner: Arc::new(Inner {
                config,
                runtime: ArcSwap::from_pointee(Runtime::empty()),
                generation: AtomicU64::new(0),
                publish: Mutex::new(PublishState {
                    registry,
                    endpoints: Arc::default(),
                    route_stats: HashMap::new(),
                    slots: BTreeMap::new(),
                    filter_state: filter::StateCarry::default(),
                }),
                listeners_changed: watch::Sender::new(0),
                bound: Mutex::new(Vec::new()),
                access_log,
                no_cluster: Arc::default(),
                history: Mutex::default(),
            }),
        }
    }

    /// The configuration the proxy was built with.
    pub fn config(&self) -> &ProxyConfig {
        &self.inner.config
    }

    /// Swap in a new snapshot. Requests in flight keep the snapshot they started with.
    /// Clusters that remain keep their endpoints, pools and balancer state; listeners the
    /// snapshot adds are bound and those it removes drain (when [`Proxy::serve`] runs).
    pub fn publish_snapshot(&self, snapshot: Arc<Snapshot>) {
        let mut state = self.publish_lock();
        let sets = state.endpoints.clone();
        let old = self.snapshot();
        self.rebuild(&mut state, snapshot.clone(), &sets);
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.history().snapshot(generation, &old, &snapshot);
        drop(state);
        self.inner.listeners_changed.send_modify(|g| *g += 1);
    }

    /// Replace the endpoint sets of every cluster.
    pub fn publish_endpoints(&self, endpoints: Arc<EndpointSets>) {
        let mut state = self.publish_lock();
        state.endpoints = endpoints.clone();
        let snapshot = self.inner.runtime.load().snapshot.clone();
        self.rebuild(&mut state, snapshot, &endpoints);
    }

    /// Replace (`Some`) or remove (`None`) the endpoint set of one cluster; the fast path
    /// for EndpointSlice changes (the route table is not rebuilt).
    pub fn update_endpoints(&self, cluster: &ClusterKey, set: Option<Arc<EndpointSet>>) {
        let mut state = self.publish_lock();
        let sets = Arc::make_mut(&mut state.endpoints);
        let before = sets.get(cluster).map(|s| s.endpoints.len());
        match &set {
            Some(set) => sets.insert(cluster.clone(), set.clone()),
            None => sets.remove(cluster),
        };
        state.registry.update_endpoints(cluster, set.as_deref());
        let after = set.as_ref().map(|s| s.endpoints.len());
        self.history()
            .endpoints(self.generation(), &self.snapshot(), cluster, before, after);
    }

    /// The control plane's diagnostics (conditions) of the compile it published last, for
    /// the debug listener's status page.
    pub fn report_diagnostics(&self, diagnostics: Vec<history::Diagnostic>) {
        self.history().diagnostics(diagnostics);
    }

    /// The last publishes, newest first, and the last compile's diagnostics.
    pub fn publish_history(&self) -> history::HistoryView {
        self.history().view()
    }

    fn history(&self) -> std::sync::MutexGuard<'_, history::History> {
        // A panic mid-record leaves at worst one odd record; keep serving the page.
        self.inner.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of snapshots published so far; `0` means not ready.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Relaxed)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.runtime.load().snapshot.clone()
    }

    /// The listeners being served now and their local addresses (after [`Proxy::serve`]
    /// bound them; a listener asked for port 0 shows the port it got).
    pub fn listeners(&self) -> Vec<(String, SocketAddr)> {
        server::bound_addresses(&self.inner)
    }

    /// Serves `prebound` sockets at once and the snapshot's listeners as they are published,
    /// until `shutdown` resolves; then stops accepting, asks every connection to finish
    /// (GOAWAY on HTTP/2), waits for in-flight requests and tunnels up to
    /// [`ProxyConfig::drain_timeout`], and returns.
    pub async fn serve(
        &self,
        prebound: Vec<BoundListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ProxyError> {
        server::serve(self.inner.clone(), prebound, shutdown).await
    }

    /// Appends the Prometheus text exposition of the data plane's metrics to `out`:
    /// `weir_requests_total{cluster,code_class}`, `weir_request_duration_seconds{cluster}`
    /// (histogram), `weir_route_requests_total{route,cluster,code_class}` and its histogram
    /// for routes with per-route metrics, `weir_upstream_errors_total{cluster,kind}`,
    /// `weir_clusters{state}`, `weir_endpoints{cluster}`,
    /// `weir_downstream_requests_total{listener,code_class}`,
    /// `weir_downstream_connections_active/total{listener}`, `weir_snapshot_generation`,
    /// `weir_access_log_dropped_total` and more (docs/metrics.md). Series are bounded by
    /// configuration and created by traffic: idle routes and clusters add none.
    pub fn render_metrics(&self, out: &mut String) {
        let (routes, clusters, slots) = {
            let state = self.publish_lock();
            let mut routes: Vec<Arc<RouteStats>> = state.route_stats.values().cloned().collect();
            routes.sort_by(|a, b| (&a.route, &a.cluster).cmp(&(&b.route, &b.cluster)));
            let slots: Vec<Arc<ListenerSlot>> = state.slots.values().cloned().collect();
            (routes, state.registry.clusters(), slots)
        };
        let listeners: Vec<(&str, &ListenerStats)> =
            slots.iter().map(|s| (&*s.name, &s.stats)).collect();
        metrics::render(
            &metrics::MetricsView {
                routes: &routes,
                no_cluster: &self.inner.no_cluster,
                clusters: &clusters,
                listeners: &listeners,
                generation: self.generation(),
                access_log_dropped: self.inner.access_log.dropped(),
            },
            out,
        );
    }

    /// What the proxy does with `req` now, and why (see [`explain`]): the current snapshot,
    /// with each endpoint's health and load (the debug listener's `/explain`).
    pub fn explain(&self, req: &explain::ExplainRequest) -> explain::Explanation {
        let live = self.clusters_json();
        explain::explain(
            &self.snapshot(),
            explain::Endpoints::Live(&live),
            self.inner.config.escaped_slashes,
            req,
        )
    }

    /// Every cluster with its endpoints: address, weight, in-flight and total requests,
    /// pooled connections, and whether it is draining (for the admin `/clusters`).
    pub fn clusters_json(&self) -> serde_json::Value {
        let clusters = self.publish_lock().registry.clusters();
        let list: Vec<serde_json::Value> = clusters
            .iter()
            .map(|c| {
                let cfg = c.config.load();
                let members = c.members();
                let endpoints: Vec<serde_json::Value> = members
                    .endpoints
                    .iter()
                    .map(|m| {
                        let e = &m.state;
                        let (open_h1, pending) = e.h1_load();
                        let h = e.health.counters();
                        serde_json::json!({
                            "address": e.address.to_string(),
                            "weight": m.weight,
                            "in_flight": e.load.in_flight(),
                            "total": e.total.load(Ordering::Relaxed),
                            "pooled_connections": e.pooled_connections(),
                            "open_h1_connections": open_h1,
                            "pending": pending,
                            "health": if e.is_draining() { "draining" } else { e.health.state().as_str() },
                            "preferred": m.preferred,
                            "ejections": h.ejections,
                            "consecutive_5xx": h.consecutive_5xx,
                            "consecutive_gateway_errors": h.consecutive_gateway_errors,
                            "active_check": cfg.health.active.as_ref().map(|_| serde_json::json!({
                                "last": h.last_probe_passed.map(|p| if p { "pass" } else { "fail" }),
                                "passes": h.probe_passes,
                                "failures": h.probe_failures,
                                "checks_down": h.checks_down,
                            })),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": c.name.as_ref(),
                    "protocol": cfg.protocol,
                    "lb": cfg.lb,
                    "panic": members.panic,
                    "usable": members.usable.len(),
                    "endpoints": endpoints,
                })
            })
            .collect();
        serde_json::json!({ "clusters": list })
    }

    fn publish_lock(&self) -> std::sync::MutexGuard<'_, PublishState> {
        self.inner.publish_lock()
    }

    /// Reconciles the registry with `snapshot` and `sets`, resolves every route, and hands
    /// each listener its view.
    fn rebuild(&self, state: &mut PublishState, snapshot: Arc<Snapshot>, sets: &EndpointSets) {
        let PublishState {
            registry,
            route_stats,
            slots,
            filter_state,
            ..
        } = state;
        let mut next_filter_state = filter::StateCarry::default();
        let clusters = registry.reconcile(&snapshot, sets);
        let mut routes = Vec::new();
        let mut seen = HashMap::new();
        let no_cluster = &self.inner.no_cluster;
        let per_route_everywhere = self.inner.config.metrics_per_route;
        // Where a route's requests to `cluster` (`None`: answered by weir) are counted.
        let mut stats_for = |route: &crate::snapshot::Route, cluster: Option<&ClusterState>| {
            let counters = cluster.map_or_else(|| no_cluster.clone(), |c| c.stats.requests.clone());
            let per_route = (per_route_everywhere || route.metrics_per_route).then(|| {
                let cluster_name = cluster.map_or("", |c| &*c.name);
                let key = (route.name.clone(), cluster_name.to_owned());
                let stats = route_stats.get(&key).cloned().unwrap_or_else(|| {
                    Arc::new(RouteStats::new(
                        Arc::from(route.name.as_str()),
                        Arc::from(cluster_name),
                    ))
                });
                seen.insert(key, stats.clone());
                stats
            });
            Arc::new(Accounting {
                cluster: counters,
                route: per_route,
            })
        };
        // Routes with nothing of their own (one cluster backend, no filters, no per-route
        // series) resolve to the same runtime as every other such route to that cluster, so
        // they share one: 50,000 Ingress paths over 5,000 Services make 5,000 runtimes.
        let mut plain_routes: HashMap<&ClusterKey, Arc<RouteRt>> = HashMap::new();
        for r in snapshot.routes() {
            let plain = match &r.action {
                RouteAction::Forward(f)
                    if r.filters.is_empty() && !(per_route_everywhere || r.metrics_per_route) =>
                {
                    match f.backends.as_slice() {
                        [b] if b.filters.is_empty() && b.weight > 0 => match &b.target {
                            BackendTarget::Cluster(key) => Some(key),
                            BackendTarget::Respond(_) => None,
                        },
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some(rt) = plain.and_then(|key| plain_routes.get(key)) {
                routes.push(rt.clone());
                continue;
            }
            let mut backends = Vec::new();
            let mut picker = Picker::Only;
            if let RouteAction::Forward(f) = &r.action {
                for b in &f.backends {
                    let cluster = match &b.target {
                        BackendTarget::Cluster(key) => clusters.get(key).cloned(),
                        BackendTarget::Respond(_) => None,
                    };
                    backends.push(BackendRt {
                        stats: stats_for(r, cluster.as_deref()),
                        cluster,
                    });
                }
                let weighted: Vec<(usize, u64)> = f
                    .backends
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.weight > 0)
                    .map(|(i, b)| (i, u64::from(b.weight)))
                    .collect();
                picker = match weighted.as_slice() {
                    [] => Picker::None,
                    [(0, _)] if f.backends.len() == 1 => Picker::Only,
                    _ => {
                        let weights: Vec<u64> = weighted.iter().map(|(_, w)| *w).collect();
                        let indices = weighted.iter().map(|(i, _)| *i).collect();
                        match WeightedCycle::new(&weights) {
                            Some(cycle) => Picker::Weighted(cycle, indices),
                            None => Picker::None,
                        }
                    }
                };
            }
            // A forwarding route with one backend accounts its local answers (503, 502) under
            // that backend's cluster, as it always has; other routes under no cluster.
            let local = match backends.as_slice() {
                [only] => only.stats.clone(),
                _ => stats_for(r, None),
            };
            let mut filter_clusters: Vec<filter::FilterCluster> = Vec::new();
            let backend_filters = match &r.action {
                RouteAction::Forward(f) => f.backends.as_slice(),
                _ => &[],
            };
            let filters = r
                .filters
                .iter()
                .chain(backend_filters.iter().flat_map(|b| &b.filters));
            for key in filters.filter_map(crate::snapshot::Filter::cluster) {
                // Compile keeps every filter cluster in the snapshot; a miss leaves the
                // filter to fail closed (ExternalAuth) or skip (RequestMirror).
                let Some(state) = clusters.get(key) else {
                    continue;
                };
                if filter_clusters.iter().any(|c| c.state.key == *key) {
                    continue;
                }
                filter_clusters.push(filter::FilterCluster {
                    stats: stats_for(r, Some(state)),
                    state: state.clone(),
                });
            }
            debug_assert_eq!(r.id.0 as usize, routes.len(), "route ids are dense");
            let rt = Arc::new(RouteRt {
                local,
                backends,
                picker,
                filter_clusters,
                filters: filter_state.route(&mut next_filter_state, r),
            });
            if let Some(key) = plain {
                plain_routes.insert(key, rt.clone());
            }
            routes.push(rt);
        }
        *route_stats = seen;
        *filter_state = next_filter_state;
        let runtime = Arc::new(Runtime {
            snapshot: snapshot.clone(),
            routes,
        });
        self.inner.runtime.store(runtime.clone());
        // Views: every listener of the snapshot gets one (a new slot when it is new). Slots of
        // listeners the snapshot does not have keep their last view, so connections draining
        // on them finish with it; the server forgets a slot when it closes its listener.
        for (i, l) in snapshot.listeners.iter().enumerate() {
            let slot = slots
                .entry(l.name.clone())
                .or_insert_with(|| ListenerSlot::new(&l.name));
            slot.view.store(Arc::new(ListenerView {
                runtime: runtime.clone(),
                listener: Some(i),
            }));
        }
    }
}

impl Inner {
    fn publish_lock(&self) -> std::sync::MutexGuard<'_, PublishState> {
        // Publishing state stays consistent even if a publisher panicked mid-way: the next
        // publish rebuilds everything from its inputs.
        self.publish.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The slot of listener `name`: the snapshot's, or a new one with an empty view (a
    /// pre-bound socket the snapshot does not know yet).
    fn slot(&self, name: &str) -> Arc<ListenerSlot> {
        let mut state = self.publish_lock();
        if let Some(slot) = state.slots.get(name) {
            return slot.clone();
        }
        let slot = ListenerSlot::new(name);
        slot.view.store(Arc::new(ListenerView {
            runtime: self.runtime.load_full(),
            listener: None,
        }));
        state.slots.insert(name.to_owned(), slot.clone());
        slot
    }
}

impl Inner {
    /// Drops the slot of a listener the server closed (unless the snapshot has it again).
    fn forget_slot(&self, slot: &Arc<ListenerSlot>) {
        let runtime = self.runtime.load();
        if runtime.snapshot.listener(&slot.name).is_some() {
            return;
        }
        let mut state = self.publish_lock();
        if state
            .slots
            .get(&*slot.name)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
        {
            state.slots.remove(&*slot.name);
        }
    }
}

impl ListenerSlot {
    fn new(name: &str) -> Arc<Self> {
        Arc::new(ListenerSlot {
            name: Arc::from(name),
            view: ArcSwap::from_pointee(ListenerView {
                runtime: Arc::new(Runtime::empty()),
                listener: None,
            }),
            stats: ListenerStats::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{
        Cluster, PathMatch, Route, RouteId, RouteMatch, RouteTable, UpstreamProtocol, VirtualHost,
    };

    fn route(name: &str, cluster: &ClusterKey, per_route: bool) -> Route {
        Route {
            id: RouteId::default(),
            name: name.to_owned(),
            matches: RouteMatch::path(PathMatch::Prefix(format!("/{name}").into())),
            filters: Vec::new(),
            action: RouteAction::forward(cluster.clone()),
            metrics_per_route: per_route,
        }
    }

    #[test]
    fn plain_routes_to_one_cluster_share_a_runtime_and_the_others_have_their_own() {
        let a = ClusterKey::new("ns", "a", 80);
        let b = ClusterKey::new("ns", "b", 80);
        let mut table = RouteTable::default();
        table.virtual_hosts.any = Some(VirtualHost {
            host: "*".into(),
            routes: vec![
                route("a1", &a, false),
                route("a2", &a, false),
                route("a3", &a, true),
                route("b1", &b, false),
            ],
        });
        let mut snapshot = Snapshot::default();
        snapshot.route_tables.insert("t".into(), table);
        for key in [&a, &b] {
            snapshot.clusters.insert(
                key.clone(),
                Cluster::new(key.clone(), "", UpstreamProtocol::Http1).into(),
            );
        }
        snapshot.assign_route_ids();
        let proxy = Proxy::default();
        proxy.publish_snapshot(Arc::new(snapshot));
        let runtime = proxy.inner.runtime.load();
        let rt = &runtime.routes;
        assert_eq!(rt.len(), 4);
        assert!(Arc::ptr_eq(&rt[0], &rt[1]), "a1 and a2 share");
        assert!(!Arc::ptr_eq(&rt[0], &rt[2]), "a3 counts its own series");
        assert!(!Arc::ptr_eq(&rt[0], &rt[3]), "b1 goes elsewhere");
        assert!(rt[2].backends[0].stats.route.is_some());
        assert!(rt[0].backends[0].stats.route.is_none());
    }
}
