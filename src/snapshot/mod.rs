//! The compiled model the proxy serves: validated data only, no Kubernetes types.
//!
//! `compile` produces a [`Snapshot`]; `endpoints` produces [`EndpointSet`]s apart from it
//! (they change far more often). The proxy loads the current `Arc<Snapshot>` once per request
//! and keeps it to the end of the request, so a swap never tears a request.
//!
//! Everything here is `Serialize` so `weir validate` and the admin `/config` endpoint can dump
//! it. Key material is never serialized: only certificate metadata is.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Serialize, Serializer};

pub mod router;

pub use router::RouteMatch;

/// The whole routing configuration at one instant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Listeners the proxy binds (addresses come from the command line, not from objects).
    pub listeners: Vec<Listener>,
    /// Virtual hosts, looked up by the request's host.
    pub virtual_hosts: VirtualHosts,
    /// What serves a request that matched no route of any virtual host: an Ingress's
    /// `spec.defaultBackend`, else the controller-wide default backend, else `None` (404).
    pub default_backend: Option<RouteAction>,
    /// Upstream clusters, keyed by Service and port.
    pub clusters: BTreeMap<ClusterKey, Cluster>,
    /// Certificates for the HTTPS listener, selected by SNI.
    pub tls: TlsConfig,
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    /// `http` or `https`.
    pub name: String,
    /// Bind address.
    pub address: SocketAddr,
    /// Whether connections are TLS (certificates from [`Snapshot::tls`]).
    pub tls: bool,
}

/// Virtual hosts by kind of host match. Lookup order: exact, then wildcard, then `any`;
/// the first virtual host that has a route matching the path serves the request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VirtualHosts {
    /// Exact hosts, lower-cased, without port.
    pub exact: BTreeMap<String, VirtualHost>,
    /// Wildcard hosts keyed by their suffix including the dot (`*.example.com` →
    /// `.example.com`); a wildcard matches exactly one extra DNS label.
    pub wildcard: BTreeMap<String, VirtualHost>,
    /// Routes from rules without a host: they match every host.
    pub any: Option<VirtualHost>,
}

/// The routes of one host, in precedence order (best first).
#[derive(Debug, Clone, Default, Serialize)]
pub struct VirtualHost {
    /// The host as written in the Ingress (`a.example.com`, `*.example.com`, or `*`).
    pub host: String,
    /// Routes sorted by precedence: longest path first; at equal length Exact before Prefix.
    pub routes: Vec<Route>,
}

/// One path rule with what to do with a matching request.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    /// Stable, human-readable name (`namespace/ingress/rule-index/path-index`), used in
    /// logs and metric labels.
    pub name: String,
    /// Path match.
    pub path: PathMatch,
    /// What a matching request gets.
    pub action: RouteAction,
}

/// How a route matches the request path (never the query string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum PathMatch {
    /// The whole path equals this string (case-sensitive).
    Exact(String),
    /// Path-element prefix: `/foo` matches `/foo`, `/foo/`, `/foo/bar`, never `/foobar`.
    /// Stored without trailing slash, except the root prefix `/`.
    Prefix(String),
}

/// What a route does with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum RouteAction {
    /// Balance the request over the ready endpoints of a cluster (503 when there are none).
    Forward {
        /// The cluster.
        cluster: ClusterKey,
    },
    /// Answer directly, without an upstream (for example 503 for a missing Service).
    Respond {
        /// HTTP status code.
        status: u16,
        /// Short plain-text body.
        body: String,
    },
}

/// Identifies a cluster: a Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterKey {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub service: String,
    /// Service port number (a named port is resolved at compile time).
    pub port: u16,
}

impl fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.service, self.port)
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
    /// Whether the port's appProtocol declares WebSocket (`kubernetes.io/ws` or `wss`).
    /// Upgrades are tunnelled on every cluster; this is informational.
    pub websocket: bool,
    /// Load-balancing policy.
    pub lb_policy: LbPolicy,
    /// Timeouts.
    pub timeouts: Timeouts,
}

/// Protocol to the upstream, from the Service port's `appProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive (no appProtocol, `http`, `kubernetes.io/ws`).
    Http1,
    /// HTTP/2 cleartext with prior knowledge (`kubernetes.io/h2c`).
    H2c,
    /// TLS with ALPN `h2`, `http/1.1` (`https`, `kubernetes.io/wss`).
    Tls,
}

/// Load-balancing policy of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Smooth weighted round robin, per request.
    #[default]
    RoundRobin,
}

/// Timeouts of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    /// TCP (and TLS) connect timeout.
    #[serde(with = "duration_ms")]
    pub connect: Duration,
    /// From the request being sent to the response headers arriving. Zero disables.
    #[serde(with = "duration_ms")]
    pub request: Duration,
    /// A pooled upstream connection idle this long is closed.
    #[serde(with = "duration_ms")]
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        }
    }
}

mod duration_ms {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }
}

/// Certificates of the HTTPS listener.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsConfig {
    /// Certificates by SNI host: exact hosts lower-cased, wildcards as `*.example.com`.
    pub sni: BTreeMap<String, Arc<Certificate>>,
    /// The certificate served when SNI is absent or unknown (`None`: the proxy generates a
    /// self-signed one at start-up).
    pub default: Option<Arc<Certificate>>,
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
    /// The chain and signing key, ready for rustls.
    #[serde(skip)]
    pub key: Arc<rustls::sign::CertifiedKey>,
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
}

/// Endpoint sets of every cluster that has a Service (a cluster without an entry has no
/// endpoints, so its requests get 503).
pub type EndpointSets = BTreeMap<ClusterKey, Arc<EndpointSet>>;
