//! The compiled model the proxy serves: validated data only, no Kubernetes types.
//!
//! Every front end (Ingress today; weir's CRDs, ingress-nginx annotations and the Gateway API
//! next) compiles into this one model, shaped on the richest of them, the Gateway API:
//!
//! ```text
//! Snapshot
//!  ├─ Listener (name, address, HTTP | HTTPS + SNI certificates) → a RouteTable by name
//!  ├─ RouteTable: VirtualHosts (exact | wildcard | any) → Routes, plus a default route
//!  │    Route: match (path Exact/Prefix/Regex, method, headers, query; precedence as `Ord`)
//!  │           filters [typed, validated] → action: weighted backends | redirect | respond
//!  └─ Cluster (Service + port + policy variant): protocol, load balancer, timeouts, limits
//! EndpointSet per cluster, published apart (`endpoints`)
//! ```
//!
//! `compile` produces a [`Snapshot`]; `endpoints` produces [`EndpointSet`]s apart from it
//! (they change far more often). The proxy loads the current snapshot once per request and
//! keeps it to the end of the request, so a swap never tears a request.
//!
//! Everything here is `Serialize` so `weir validate` and the admin `/config` endpoint can dump
//! it. Key material and credentials are never serialized: only certificate metadata is.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use serde::{Serialize, Serializer};

pub mod filter;
pub mod policy;
pub mod router;

pub use filter::*;
pub use policy::*;

pub use router::RequestHead;

/// The whole routing configuration at one instant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Listening sockets; the proxy binds, keeps and closes them by diffing snapshots.
    pub listeners: Vec<Listener>,
    /// Route tables by name; each listener serves one (several listeners may share one).
    pub route_tables: BTreeMap<String, RouteTable>,
    /// Upstream clusters.
    pub clusters: BTreeMap<ClusterKey, Arc<Cluster>>,
}

impl Snapshot {
    /// The listener called `name`.
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }

    /// The route table of the listener called `name`.
    pub fn route_table(&self, listener: &str) -> Option<&RouteTable> {
        self.route_tables.get(&self.listener(listener)?.route_table)
    }

    /// Every route of every table (each once, tables in name order), default routes included.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.route_tables.values().flat_map(RouteTable::routes)
    }

    /// Number every route densely in [`Snapshot::routes`] order (compile's last step; the
    /// proxy indexes per-route state by [`RouteId`]).
    pub fn assign_route_ids(&mut self) {
        let mut next = 0u32;
        for table in self.route_tables.values_mut() {
            let v = &mut table.virtual_hosts;
            let routes = v
                .exact
                .values_mut()
                .chain(v.wildcard.values_mut())
                .chain(v.any.iter_mut())
                .flat_map(|vhost| vhost.routes.iter_mut())
                .chain(table.default_route.iter_mut());
            for route in routes {
                route.id = RouteId(next);
                next += 1;
            }
        }
    }
}

/// One listening socket and what it serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listener {
    /// Stable name (`http`, `https` for Ingress), used in logs and metric labels.
    pub name: String,
    /// Bind address.
    pub address: SocketAddr,
    /// Cleartext or TLS.
    pub protocol: ListenerProtocol,
    /// Name of the [`RouteTable`] (in [`Snapshot::route_tables`]) this listener serves.
    pub route_table: String,
    /// Certificates by SNI (HTTPS listeners only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ListenerProtocol {
    /// HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one cleartext port.
    Http,
    /// TLS 1.2/1.3; ALPN `h2` then `http/1.1`.
    Https,
}

/// The routes one or more listeners serve.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouteTable {
    /// Virtual hosts, looked up by the request's host.
    pub virtual_hosts: VirtualHosts,
    /// What serves a request that matched no route of any virtual host (an Ingress's
    /// `spec.defaultBackend`, the controller-wide default backend); `None`: 404.
    pub default_route: Option<Route>,
}

impl RouteTable {
    /// Every route of the table: virtual hosts in lookup order, then the default route.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        let v = &self.virtual_hosts;
        v.exact
            .values()
            .chain(v.wildcard.values())
            .chain(v.any.iter())
            .flat_map(|vhost| vhost.routes.iter())
            .chain(self.default_route.iter())
    }
}

/// Virtual hosts by kind of host match. Lookup order: exact, then wildcard, then `any`;
/// the first virtual host that has a route matching the request serves it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VirtualHosts {
    /// Exact hosts, lower-cased, without port.
    pub exact: BTreeMap<String, VirtualHost>,
    /// Wildcard hosts keyed by their suffix including the dot (`*.example.com` →
    /// `.example.com`); a wildcard matches exactly one extra DNS label, or with
    /// [`VirtualHosts::deep_wildcards`] one or more.
    pub wildcard: BTreeMap<String, VirtualHost>,
    /// Routes that match every host.
    pub any: Option<VirtualHost>,
    /// Wildcards match one or more extra labels, the longest suffix first (the Gateway
    /// API's `*.example.com` matches `a.b.example.com`); otherwise exactly one (Ingress).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deep_wildcards: bool,
}

/// The routes of one host, in precedence order (best first).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VirtualHost {
    /// The host as written (`a.example.com`, `*.example.com`, or `*`).
    pub host: String,
    /// Routes sorted by [`RouteMatch::precedence`] (then by source order, oldest first):
    /// the first route that matches a request is the best one.
    pub routes: Vec<Route>,
}

/// Index of a route in its snapshot, assigned by compile: dense (`0..n` over
/// [`Snapshot::routes`]), so the proxy keeps per-route runtime state in a `Vec`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteId(pub u32);

/// One rule: what it matches, the filters a matching request runs through, and the action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// Dense index in the snapshot (not serialized: it changes whenever routes are added).
    #[serde(skip)]
    pub id: RouteId,
    /// Stable, human-readable name (`namespace/ingress/rule-index/path-index`), used in
    /// logs and metric labels.
    pub name: String,
    /// What the request must look like.
    #[serde(rename = "match")]
    pub matches: RouteMatch,
    /// Filters run on every matching request (request phase in order, response phase in
    /// reverse order).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    /// What a matching request gets.
    pub action: RouteAction,
    /// Count this route's requests in the per-route series (the `weir.dev/metrics-per-route`
    /// annotation on the object the route comes from).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub metrics_per_route: bool,
}

/// Conditions a request must meet, all of them (a Gateway API `HTTPRouteMatch`; Ingress uses
/// the path only).
///
/// The conditions beyond the path live behind one pointer, absent when there are none (every
/// Ingress route): a route table of 50,000 Ingress paths holds 8 bytes per route for them,
/// not 72.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteMatch {
    /// Path match (on the normalized path, never the query string).
    pub path: PathMatch,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    more: Option<Box<MoreConditions>>,
}

/// The method, header and query conditions of a [`RouteMatch`], at least one of them set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct MoreConditions {
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_method"
    )]
    method: Option<Method>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<HeaderMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    query: Vec<QueryMatch>,
}

impl RouteMatch {
    /// A match on the path alone.
    pub fn path(path: PathMatch) -> Self {
        RouteMatch { path, more: None }
    }

    /// A match on the path and, when given, the request method, header matches (names
    /// compared case-insensitively; a header repeated in the request matches when any of
    /// its values does) and query parameter matches (names case-sensitive; the first
    /// occurrence of a parameter is compared, after percent-decoding).
    pub fn new(
        path: PathMatch,
        method: Option<Method>,
        headers: Vec<HeaderMatch>,
        query: Vec<QueryMatch>,
    ) -> Self {
        let more = (method.is_some() || !headers.is_empty() || !query.is_empty()).then(|| {
            Box::new(MoreConditions {
                method,
                headers,
                query,
            })
        });
        RouteMatch { path, more }
    }

    /// The request method, when the route requires one.
    pub fn method(&self) -> Option<&Method> {
        self.more.as_ref().and_then(|m| m.method.as_ref())
    }

    /// Header matches.
    pub fn headers(&self) -> &[HeaderMatch] {
        self.more.as_ref().map_or(&[], |m| &m.headers)
    }

    /// Query parameter matches.
    pub fn query(&self) -> &[QueryMatch] {
        self.more.as_ref().map_or(&[], |m| &m.query)
    }

    /// Whether the path is the only condition.
    pub fn path_only(&self) -> bool {
        self.more.is_none()
    }

    /// The same match with `headers` in place of its header matches.
    pub fn with_headers(&self, headers: Vec<HeaderMatch>) -> Self {
        RouteMatch::new(
            self.path.clone(),
            self.method().cloned(),
            headers,
            self.query().to_vec(),
        )
    }

    /// Requires `method` too.
    pub fn set_method(&mut self, method: Method) {
        self.more.get_or_insert_default().method = Some(method);
    }

    /// Adds a header match.
    pub fn push_header(&mut self, header: HeaderMatch) {
        self.more.get_or_insert_default().headers.push(header);
    }

    /// Adds a query parameter match.
    pub fn push_query(&mut self, query: QueryMatch) {
        self.more.get_or_insert_default().query.push(query);
    }
}

/// How a route matches the request path.
///
/// 24 bytes: the strings are boxed slices and the rare expression is behind a pointer (every
/// route holds one; 50,000 of them are 0.8 MiB fewer than with `String` and an inline
/// [`Pattern`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum PathMatch {
    /// The whole path equals this string (case-sensitive).
    Exact(Box<str>),
    /// Path-element prefix: `/foo` matches `/foo`, `/foo/`, `/foo/bar`, never `/foobar`.
    /// Stored without trailing slash, except the root prefix `/`.
    Prefix(Box<str>),
    /// The path matches this regular expression (the `regex` crate: linear time, no
    /// backtracking). Front ends anchor it as their semantics require.
    #[serde(rename = "RegularExpression")]
    Regex(Box<Pattern>),
}

/// A header the request must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderMatch {
    /// Header name (lower-case, as `http` keeps it).
    #[serde(serialize_with = "serialize_header_name")]
    pub name: HeaderName,
    /// Value match.
    pub value: StringMatch,
}

/// A query parameter the request must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueryMatch {
    /// Parameter name (case-sensitive).
    pub name: String,
    /// Value match (against the percent-decoded value).
    pub value: StringMatch,
}

/// How a string value is matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum StringMatch {
    /// Equal, case-sensitively.
    Exact(String),
    /// The regular expression matches somewhere in the value (front ends anchor it).
    #[serde(rename = "RegularExpression")]
    Regex(Pattern),
}

impl StringMatch {
    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(exact) => value == exact,
            StringMatch::Regex(pattern) => pattern.is_match(value),
        }
    }
}

/// A compiled regular expression (the `regex` crate: linear-time matching). Compared and
/// serialized by its source text.
#[derive(Clone)]
pub struct Pattern(regex::Regex);

/// Largest compiled program a pattern may produce (the `regex` crate's default is 10 MiB; a
/// route table holds thousands of patterns).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

impl Pattern {
    /// Compile `source`; the error says why it is not a valid (or is too large a) pattern.
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        regex::RegexBuilder::new(source)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map(Pattern)
    }

    /// Whether the pattern matches somewhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }

    /// The compiled expression (for capture groups, e.g. rewrites).
    pub fn regex(&self) -> &regex::Regex {
        &self.0
    }

    /// The source text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.as_str())
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a route does with a matching request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum RouteAction {
    /// Forward to one of the backends, chosen per request by weight.
    Forward(Forward),
    /// Answer with a redirect built from the request.
    Redirect(Box<Redirect>),
    /// Answer directly, without an upstream (for example 503 for a missing Service).
    Respond(DirectResponse),
}

impl RouteAction {
    /// Forward everything to one cluster.
    pub fn forward(cluster: ClusterKey) -> RouteAction {
        RouteAction::Forward(Forward {
            backends: vec![Backend::cluster(cluster, 1)],
            timeouts: None,
        })
    }

    /// Answer `status` with a plain-text `body`.
    pub fn respond(status: u16, body: impl Into<String>) -> RouteAction {
        RouteAction::Respond(DirectResponse {
            status,
            body: body.into(),
        })
    }
}

/// Weighted backends of a route. A request picks one with probability weight / total
/// weight; when every weight is 0 the request gets 500 (Gateway API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forward {
    /// The backends, at least one.
    pub backends: Vec<Backend>,
    /// The route's own timeouts (an HTTPRoute's `timeouts`), over its clusters'; `None`
    /// (most routes: 8 bytes, not 32) when it has none ([`Forward::timeouts`] reads it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Box<RouteTimeouts>>,
}

impl Forward {
    /// The route's own timeouts (unset when it has none).
    pub fn timeouts(&self) -> RouteTimeouts {
        self.timeouts.as_deref().copied().unwrap_or_default()
    }

    /// `timeouts` as a [`Forward`] keeps them: `None` when unset.
    pub fn own_timeouts(timeouts: RouteTimeouts) -> Option<Box<RouteTimeouts>> {
        (!timeouts.is_unset()).then(|| Box::new(timeouts))
    }
}

/// A route's own timeouts (the Gateway API's HTTPRoute `timeouts`); zero: the cluster's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RouteTimeouts {
    /// The whole request, every attempt included (`timeouts.request`): replaces the
    /// cluster's total timeout.
    #[serde(with = "duration_ms")]
    pub request: Duration,
    /// One attempt's wait for the response headers (`timeouts.backendRequest`): replaces
    /// the cluster's request (per-try) timeout.
    #[serde(with = "duration_ms")]
    pub backend_request: Duration,
}

impl RouteTimeouts {
    /// Neither is set.
    pub fn is_unset(&self) -> bool {
        self.request.is_zero() && self.backend_request.is_zero()
    }
}

/// One backend of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    /// Where the request goes.
    #[serde(flatten)]
    pub target: BackendTarget,
    /// Relative weight (0: never chosen).
    pub weight: u32,
    /// Filters run only for requests sent to this backend, after the route's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
}

impl Backend {
    /// A cluster backend without filters.
    pub fn cluster(cluster: ClusterKey, weight: u32) -> Backend {
        Backend {
            target: BackendTarget::Cluster(cluster),
            weight,
            filters: Vec::new(),
        }
    }
}

/// Where a backend's share of requests goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendTarget {
    /// Balanced over the endpoints of this cluster (503 when it has none).
    Cluster(ClusterKey),
    /// Answered directly: a backend reference that does not resolve (the Gateway API sends
    /// its share of requests a 500).
    Respond(DirectResponse),
}

/// An answer weir makes itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectResponse {
    /// HTTP status code.
    pub status: u16,
    /// Short plain-text body.
    pub body: String,
}

/// A redirect, built from the request (Gateway API `HTTPRequestRedirectFilter`): every part
/// left `None` is kept from the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redirect {
    /// `http` or `https`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Host name (without port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Port. When `None` and the scheme changes, the new scheme's well-known port is used
    /// (and, being well known, not written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Path rewrite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    /// The query of the `Location` instead of the request's (`Some("")`: none). `None` keeps
    /// the request's query (Gateway API); ingress-nginx's `permanent-redirect` answers exactly
    /// its URL, query included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

/// How a redirect (or, later, a URL rewrite) changes the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum PathRewrite {
    /// Replace the whole path.
    ReplaceFullPath(String),
    /// Replace the part the route's `Prefix` path matched.
    ReplacePrefixMatch(String),
    /// Replace every match of `pattern` in the path by `substitution` (Envoy Gateway's
    /// `ReplaceRegexMatch`); the result gets a leading `/` if it lacks one.
    ReplaceRegexMatch {
        /// The expression.
        pattern: Pattern,
        /// The replacement in the `regex` crate's expansion syntax (`${1}` for capture
        /// group 1, `$$` for `$`), converted by compile from the manifest's `$1` form.
        substitution: String,
    },
}

/// Identifies a cluster: a Service port, and a policy variant when routes reach the same
/// Service port with different cluster settings.
///
/// One pointer to shared parts: every route to a cluster (50,000 of them for 5,000 Services),
/// the endpoint sets and the proxy's tables hold a key, so a key is 8 bytes and a clone
/// allocates nothing. Keys compare, order and hash by their parts.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterKey(Arc<KeyParts>);

#[derive(PartialEq, Eq, PartialOrd, Ord, Hash)]
struct KeyParts {
    namespace: Box<str>,
    service: Box<str>,
    port: u16,
    variant: Box<str>,
}

impl ClusterKey {
    /// The default-variant cluster of a Service port.
    pub fn new(namespace: &str, service: &str, port: u16) -> Self {
        ClusterKey(Arc::new(KeyParts {
            namespace: namespace.into(),
            service: service.into(),
            port,
            variant: Box::default(),
        }))
    }

    /// The same Service port under policy variant `variant`.
    pub fn with_variant(&self, variant: &str) -> Self {
        ClusterKey(Arc::new(KeyParts {
            namespace: self.0.namespace.clone(),
            service: self.0.service.clone(),
            port: self.0.port,
            variant: variant.into(),
        }))
    }

    /// Namespace of the Service.
    pub fn namespace(&self) -> &str {
        &self.0.namespace
    }

    /// Name of the Service.
    pub fn service(&self) -> &str {
        &self.0.service
    }

    /// Service port number (a named port is resolved at compile time).
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// Policy variant (empty: the Service port's default settings). Clusters that differ
    /// only in variant share endpoint runtime state by address.
    pub fn variant(&self) -> &str {
        &self.0.variant
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterKey({self})")
    }
}

impl fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.0;
        write!(f, "{}/{}:{}", k.namespace, k.service, k.port)?;
        if !k.variant.is_empty() {
            write!(f, "#{}", k.variant)?;
        }
        Ok(())
    }
}

impl Serialize for ClusterKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An upstream cluster: how to reach the endpoints of one Service port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cluster {
    /// The key.
    pub key: ClusterKey,
    /// Name of the Service port (empty when unnamed). EndpointSlice ports carry the same
    /// name, which is how the endpoint port is resolved per slice.
    pub port_name: String,
    /// Protocol spoken to the endpoints.
    pub protocol: UpstreamProtocol,
    /// Service `spec.trafficDistribution: PreferClose`: prefer endpoints of the proxy's own
    /// zone (`--zone`) when any is usable. EndpointSlice zone hints are followed either way.
    pub prefer_close: bool,
    /// How a request picks an endpoint.
    pub lb: LoadBalancer,
    /// Which endpoints are online beyond Kubernetes readiness.
    pub health: HealthPolicy,
    /// When a request is sent again.
    pub retry: RetryPolicy,
    /// What the cluster takes at once.
    pub breakers: CircuitBreakers,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// How much work one endpoint is given at a time.
    pub limits: Limits,
    /// Forward to the Service's ClusterIP instead of its endpoints (set by policy; compile
    /// then fills [`Cluster::cluster_ip`] or makes the backend unavailable).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub via_cluster_ip: bool,
    /// The Service's ClusterIP when [`Cluster::via_cluster_ip`]: the cluster's one endpoint
    /// is this address and the Service port, whatever its EndpointSlices say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<std::net::IpAddr>,
    /// How TLS to the endpoints is authenticated (`BackendPolicy` `tls`; `None`: not
    /// verified, no client certificate). Used only when [`Cluster::protocol`] is TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<std::sync::Arc<UpstreamTls>>,
}

impl Cluster {
    /// A cluster of `key` with every setting at its default (what a Service port without
    /// any `BackendPolicy` gets).
    pub fn new(key: ClusterKey, port_name: impl Into<String>, protocol: UpstreamProtocol) -> Self {
        Cluster {
            key,
            port_name: port_name.into(),
            protocol,
            prefer_close: false,
            lb: LoadBalancer::default(),
            health: HealthPolicy::default(),
            retry: RetryPolicy::default(),
            breakers: CircuitBreakers::default(),
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            via_cluster_ip: false,
            cluster_ip: None,
            tls: None,
        }
    }
}

/// Protocol to the upstream, from the Service port's `appProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive (no appProtocol, `http`, `kubernetes.io/ws`).
    Http1,
    /// HTTP/2 cleartext with prior knowledge (`kubernetes.io/h2c`).
    H2c,
    /// TLS with ALPN `h2`, `http/1.1` (`https`, `kubernetes.io/wss`).
    Tls,
}

/// Timeouts of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    /// Connecting, per attempt: the TCP (and TLS) handshake, and on a new connection the
    /// peer acknowledging the request's first bytes (a listener whose accept queue is full
    /// completes handshakes in the kernel and then drops what is sent). An attempt over it is
    /// abandoned and the next endpoint tried.
    #[serde(with = "duration_ms")]
    pub connect: Duration,
    /// From the request being sent to the response headers arriving, per attempt. Zero
    /// disables.
    #[serde(with = "duration_ms")]
    pub request: Duration,
    /// A pooled upstream connection idle this long is closed.
    #[serde(with = "duration_ms")]
    pub idle: Duration,
    /// The whole request, from its arrival to the end of the response body: queueing,
    /// every attempt, and the body. Zero (the default) disables: streams, downloads and
    /// long polls have no natural bound (see the README's timeouts table).
    #[serde(with = "duration_ms")]
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::ZERO,
        }
    }
}

/// How much work one endpoint of a cluster is given at a time (HAProxy's server `maxconn`
/// and `timeout queue`, Envoy's circuit-breaker thresholds, but per endpoint).
///
/// The limits count per endpoint address and upstream protocol, shared by every cluster
/// that reaches the address; each request is held to the limits of its own cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Most HTTP/1.1 connections open to one endpoint at once, idle or busy (each carries
    /// one request at a time; keep-alive reuses them). A request finding them all busy waits
    /// in the endpoint's pending queue. Zero disables the cap.
    pub max_connections: u32,
    /// Most requests waiting in one endpoint's pending queue; a request finding it full is
    /// answered 503 at once.
    pub max_pending: u32,
    /// Longest a request waits in a pending queue before it is answered 503.
    #[serde(with = "duration_ms")]
    pub queue_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 32,
            max_pending: 1024,
            queue_timeout: Duration::from_secs(10),
        }
    }
}

pub(crate) mod duration_ms {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }
}

fn serialize_method<S: Serializer>(m: &Option<Method>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(m.as_str()),
        None => s.serialize_none(),
    }
}

pub(crate) fn serialize_header_name<S: Serializer>(
    n: &HeaderName,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(n.as_str())
}

pub(crate) fn serialize_header_names<S: Serializer>(
    n: &[HeaderName],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(n.iter().map(HeaderName::as_str))
}

pub(crate) fn serialize_header_value<S: Serializer>(
    v: &HeaderValue,
    s: S,
) -> Result<S::Ok, S::Error> {
    if v.is_sensitive() {
        // Credentials (e.g. an Authorization value set by a filter) never leave the process.
        return s.serialize_str("<redacted>");
    }
    s.serialize_str(&String::from_utf8_lossy(v.as_bytes()))
}

/// Certificates of an HTTPS listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TlsConfig {
    /// Certificates by SNI host: exact hosts lower-cased, wildcards as `*.example.com`.
    pub sni: BTreeMap<String, Arc<Certificate>>,
    /// The certificate served when SNI is absent or unknown (`None`: the proxy generates a
    /// self-signed one at start-up, and a dump says so).
    #[serde(serialize_with = "serialize_default_certificate")]
    pub default: Option<Arc<Certificate>>,
}

impl TlsConfig {
    /// The certificate a handshake naming `sni` gets, and by which rule: the exact name
    /// (lower-cased), the wildcard `*.parent` covering one extra label, then the default.
    /// `None`: the self-signed certificate the proxy generates at start-up.
    pub fn select(&self, sni: Option<&str>) -> Option<(&Arc<Certificate>, CertificateChoice)> {
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(c) = self.sni.get(&name) {
                return Some((c, CertificateChoice::Exact));
            }
            if let Some(dot) = name.find('.')
                && let Some(c) = self.sni.get(&format!("*{}", &name[dot..]))
            {
                return Some((c, CertificateChoice::Wildcard));
            }
        }
        self.default
            .as_ref()
            .map(|c| (c, CertificateChoice::Default))
    }
}

/// Which rule of [`TlsConfig::select`] chose a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateChoice {
    /// Its name is the SNI.
    Exact,
    /// A wildcard covering the SNI.
    Wildcard,
    /// The listener's default (no SNI, or none matched).
    Default,
}

/// What a dump shows for [`TlsConfig::default`]: the certificate, or what is served instead.
fn serialize_default_certificate<S: serde::Serializer>(
    cert: &Option<Arc<Certificate>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match cert {
        Some(cert) => cert.serialize(s),
        None => s.serialize_str("self-signed, generated at start-up"),
    }
}

/// A parsed, checked certificate chain and key.
#[derive(Clone, Serialize)]
pub struct Certificate {
    /// Where it came from (`namespace/secret`).
    pub source: String,
    /// DNS names and IPs of the leaf certificate.
    pub subject_alt_names: Vec<String>,
    /// Expiry of the leaf, RFC 3339.
    pub not_after: String,
    /// The chain and signing key, ready for rustls (never serialized).
    #[serde(skip)]
    pub key: Arc<rustls::sign::CertifiedKey>,
}

impl PartialEq for Certificate {
    /// Certificates are equal when they come from the same source with the same metadata
    /// and the same chain (the key is derived from the same Secret bytes).
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
            && self.subject_alt_names == other.subject_alt_names
            && self.not_after == other.not_after
            && self.key.cert == other.key.cert
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("source", &self.source)
            .field("subject_alt_names", &self.subject_alt_names)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The usable endpoints of one cluster, as published by `endpoints`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EndpointSet {
    /// Endpoints, sorted by address, deduplicated. When any endpoint is ready only ready
    /// endpoints are listed; otherwise serving-but-terminating ones are (Kubernetes rules).
    pub endpoints: Vec<Endpoint>,
}

/// One upstream address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Pod IP and endpoint port.
    pub address: SocketAddr,
    /// Relative weight for weighted balancers (1 by default).
    pub weight: u32,
    /// Topology prefers it: it is in the proxy's zone (`--zone`) by EndpointSlice zone
    /// hints, or by its zone under Service `trafficDistribution: PreferClose`. When any
    /// usable endpoint of a set is preferred, requests go to the preferred ones only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preferred: bool,
}

impl Endpoint {
    /// An endpoint of weight 1 that topology does not prefer.
    pub fn new(address: SocketAddr) -> Self {
        Endpoint {
            address,
            weight: 1,
            preferred: false,
        }
    }
}

/// Endpoint sets of every cluster that has a Service (a cluster without an entry has no
/// endpoints, so its requests get 503).
pub type EndpointSets = BTreeMap<ClusterKey, Arc<EndpointSet>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_match_serializes_only_the_conditions_it_has() {
        let path = || PathMatch::Prefix("/api".into());
        let plain = serde_json::to_value(RouteMatch::path(path())).expect("json");
        assert_eq!(
            plain,
            serde_json::json!({"path": {"type": "Prefix", "value": "/api"}})
        );
        let header = HeaderMatch {
            name: HeaderName::from_static("x-user"),
            value: StringMatch::Exact("a".into()),
        };
        let rich = RouteMatch::new(path(), Some(Method::POST), vec![header.clone()], vec![]);
        assert_eq!(
            serde_json::to_value(&rich).expect("json"),
            serde_json::json!({
                "path": {"type": "Prefix", "value": "/api"},
                "method": "POST",
                "headers": [{"name": "x-user", "value": {"type": "Exact", "value": "a"}}],
            })
        );
        // No conditions beyond the path is the path-only match, however it was built.
        assert_eq!(
            RouteMatch::new(path(), None, vec![], vec![]),
            RouteMatch::path(path())
        );
        assert!(rich.with_headers(vec![]).method().is_some());
        let mut built = RouteMatch::path(path());
        built.set_method(Method::POST);
        built.push_header(header);
        assert_eq!(built, rich);
    }

    #[test]
    fn dumps_never_carry_key_material_or_credentials() {
        let generated =
            rcgen::generate_simple_self_signed(vec!["a.example".to_owned()]).expect("rcgen");
        let key_pem = generated.signing_key.serialize_pem();
        let der =
            rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
        let signer = rustls::crypto::ring::sign::any_supported_type(&der).expect("key");
        let cert = Arc::new(Certificate {
            source: "default/a".into(),
            subject_alt_names: vec!["a.example".into()],
            not_after: "2126-01-01T00:00:00Z".into(),
            key: Arc::new(rustls::sign::CertifiedKey::new(
                vec![generated.cert.der().clone()],
                signer,
            )),
        });
        let mut secret = HeaderValue::from_static("Basic dXNlcjpwYXNz");
        secret.set_sensitive(true);
        let table = RouteTable {
            virtual_hosts: VirtualHosts::default(),
            default_route: Some(Route {
                id: RouteId(0),
                name: "default-backend".into(),
                matches: RouteMatch::path(PathMatch::Prefix("/".into())),
                filters: vec![Filter::RequestHeaderModifier(HeaderModifier {
                    set: vec![HeaderPair {
                        name: http::header::AUTHORIZATION,
                        value: secret,
                    }],
                    ..HeaderModifier::default()
                })],
                action: RouteAction::respond(200, "ok"),
                metrics_per_route: false,
            }),
        };
        let snapshot = Snapshot {
            listeners: vec![Listener {
                name: "https".into(),
                address: "127.0.0.1:8443".parse().expect("addr"),
                protocol: ListenerProtocol::Https,
                route_table: "t".into(),
                tls: Some(TlsConfig {
                    sni: [("a.example".to_owned(), cert.clone())].into(),
                    default: Some(cert),
                }),
            }],
            route_tables: [("t".to_owned(), table)].into(),
            clusters: BTreeMap::new(),
        };
        let dump = serde_json::to_string(&snapshot).expect("serializes");
        assert!(
            dump.contains("default/a") && dump.contains("<redacted>"),
            "{dump}"
        );
        assert!(
            !dump.contains("PRIVATE KEY") && !dump.contains("dXNlcjpwYXNz"),
            "{dump}"
        );
        let key_body: String = key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(!dump.contains(&key_body[..32]), "key bytes leaked");
    }
}
