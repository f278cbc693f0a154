//! The intermediate form every front end produces and the shared passes consume.
//!
//! A front end (Ingress today; weir's CRDs, ingress-nginx annotations and the Gateway API
//! next) reads its objects and writes an [`Ir`]: listeners, and per route table the routes
//! grouped by host, the default-route candidates, and the certificate references of each
//! listener. Everything a shared pass needs to know about where a piece came from travels
//! with it as data — the [`Source`] object, a [`FieldPath`] for messages, a [`SourceOrder`]
//! for precedence — so the passes never look at a front end's Kubernetes types.
//!
//! Backends are *references* (namespace, Service, port, weight), resolved by the backends
//! pass: a front end may reference a Service in another namespace (the Gateway API with a
//! ReferenceGrant), so nothing here assumes the referencing object's namespace.
//!
//! Redirects and direct responses join [`IrAction`] when a front end produces them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::api::backendpolicy::BackendPolicySpec;
use crate::snapshot::{DirectResponse, Filter, ListenerProtocol, RouteMatch, UpstreamProtocol};
use crate::store::ObjectKey;

use super::ObjectRef;

/// What a front end hands to the shared passes.
#[derive(Debug, Default)]
pub struct Ir<'a> {
    /// The objects routes, certificates and default backends come from, indexed by
    /// [`SourceId`]. Sources a front end ranks by precedence come first, best first, so
    /// that [`SourceOrder`] (which compares the id first) is the precedence order.
    pub sources: Vec<Source<'a>>,
    /// Listening sockets, in the order the snapshot lists them.
    pub listeners: Vec<IrListener>,
    /// Route tables by name; listeners name the one they serve.
    pub route_tables: BTreeMap<String, IrRouteTable<'a>>,
    /// Certificate references by set name; HTTPS listeners name the set they serve. A set no
    /// listener names is still checked (its objects get their TLS conditions).
    pub certificate_sets: BTreeMap<String, Vec<CertificateRef<'a>>>,
}

impl<'a> Ir<'a> {
    /// Register a source object; its id is its rank in precedence order.
    pub fn add_source(&mut self, source: Source<'a>) -> SourceId {
        self.sources.push(source);
        SourceId(self.sources.len() - 1)
    }

    /// The source object behind `id`.
    pub fn source(&self, id: SourceId) -> &Source<'a> {
        &self.sources[id.0]
    }
}

/// An object the IR's pieces come from: conditions about those pieces are reported on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    /// Kubernetes kind (`Ingress`; `Service` for the controller-wide default backend).
    pub kind: &'static str,
    /// Namespace and name.
    pub key: &'a ObjectKey,
    /// `metadata.generation`, when the object has one (becomes `observedGeneration`).
    pub generation: Option<i64>,
    /// Its routes get per-route metrics (the `weir.dev/metrics-per-route` annotation).
    pub metrics_per_route: bool,
}

impl Source<'_> {
    /// Reads the `weir.dev/metrics-per-route` annotation of the object into
    /// [`Source::metrics_per_route`]; a value other than `"true"` or `"false"` is warned about
    /// on the object and reads as `false`.
    pub fn read_metrics_annotation(
        &mut self,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        status: &mut super::status::Status,
    ) {
        let key = crate::api::annotations::METRICS_PER_ROUTE;
        let value = meta.annotations.as_ref().and_then(|a| a.get(key));
        self.metrics_per_route = match value.map(|v| v.trim()) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                status.warning(
                    self,
                    crate::api::condition_types::ACCEPTED,
                    crate::api::reasons::INVALID_ANNOTATION,
                    format!(
                        "annotation {key}: {other:?} is not \"true\" or \"false\"; its routes get \
                         no per-route metrics (the default)"
                    ),
                );
                false
            }
        };
    }

    /// The object as conditions name it.
    pub fn object(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind,
            key: self.key.clone(),
        }
    }
}

/// Index of a [`Source`] in [`Ir::sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub usize);

/// Where a piece stands in precedence among equal matches: its object's rank, then its
/// position inside the object (for Ingress: rule index, then path index). Smaller wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceOrder {
    /// The object (its id is its rank).
    pub source: SourceId,
    /// First index inside the object (Ingress: `spec.rules[i]`).
    pub rule: usize,
    /// Second index inside the object (Ingress: `paths[j]`).
    pub index: usize,
}

/// A field of the source object, for messages: a template whose `{}` are replaced by the
/// indices in order (`spec.rules[{}].http.paths[{}]` with `[0, 1]` →
/// `spec.rules[0].http.paths[1]`). `Copy` and formatted only when a message is written, so
/// 50,000 routes carry their field for free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPath {
    template: &'static str,
    indices: [usize; 2],
}

impl FieldPath {
    /// A field without indices (`spec.defaultBackend`).
    pub const fn new(template: &'static str) -> Self {
        FieldPath {
            template,
            indices: [0; 2],
        }
    }

    /// A field with up to two indices, filled into the template's `{}` in order.
    pub const fn indexed(template: &'static str, indices: [usize; 2]) -> Self {
        FieldPath { template, indices }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut indices = self.indices.iter();
        let mut parts = self.template.split("{}");
        if let Some(first) = parts.next() {
            f.write_str(first)?;
        }
        for part in parts {
            match indices.next() {
                Some(index) => write!(f, "{index}")?,
                None => f.write_str("{}")?,
            }
            f.write_str(part)?;
        }
        Ok(())
    }
}

/// A listening socket.
#[derive(Debug, Clone, PartialEq)]
pub struct IrListener {
    /// Stable name (logs, metric labels).
    pub name: String,
    /// Bind address.
    pub address: SocketAddr,
    /// Cleartext or TLS.
    pub protocol: ListenerProtocol,
    /// The route table it serves (a key of [`Ir::route_tables`]).
    pub route_table: String,
    /// The certificate set it serves (a key of [`Ir::certificate_sets`]; HTTPS only).
    pub certificates: Option<String>,
}

/// The routes one or more listeners serve.
#[derive(Debug, Default)]
pub struct IrRouteTable<'a> {
    /// Routes by host, in any order (the conflicts pass sorts them).
    pub hosts: BTreeMap<HostMatch, Vec<IrRoute<'a>>>,
    /// What serves requests no route matches.
    pub default_route: IrDefaultRoute<'a>,
    /// Wildcard hosts match one or more labels (the Gateway API), not exactly one (Ingress).
    pub deep_wildcards: bool,
}

/// Which requests a group of routes serves, by host. Ordered as the router looks hosts up
/// (exact, wildcard, any), which is also the order conditions are reported in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostMatch {
    /// An exact host, lower-cased, without port.
    Exact(String),
    /// A wildcard, by its suffix with the dot (`*.example.com` → `.example.com`).
    Wildcard(String),
    /// Every host.
    Any,
}

impl HostMatch {
    /// The host as the snapshot and messages show it.
    pub fn display(&self) -> String {
        match self {
            HostMatch::Exact(host) => host.clone(),
            HostMatch::Wildcard(suffix) => format!("*{suffix}"),
            HostMatch::Any => "*".to_owned(),
        }
    }
}

/// Candidates for a route table's default route.
#[derive(Debug, Default)]
pub struct IrDefaultRoute<'a> {
    /// Default routes objects declare (Ingress `spec.defaultBackend`), in source order: one
    /// wins (conflicts pass), the others are reported.
    pub candidates: Vec<IrRoute<'a>>,
    /// Used only when no candidate is usable (`--default-backend`).
    pub fallback: Option<IrRoute<'a>>,
}

/// One route, before its backends are resolved.
#[derive(Debug)]
pub struct IrRoute<'a> {
    /// Stable name for logs and metrics (Ingress: `namespace/name/rule/path`).
    pub name: String,
    /// What the request must look like.
    pub matches: RouteMatch,
    /// Filters of the route (validated by the front end).
    pub filters: Vec<Filter>,
    /// What a matching request gets.
    pub action: IrAction<'a>,
    /// The field that declared the route, for messages.
    pub field: FieldPath,
    /// Its object and position, for precedence among equal matches.
    pub order: SourceOrder,
}

/// What a route does.
#[derive(Debug)]
pub enum IrAction<'a> {
    /// Forward to weighted backends.
    Forward(IrForward<'a>),
    /// The front end could not turn the object's action into one weir serves (Ingress: a
    /// `resource` backend). The route is never served and never takes part in conflicts;
    /// the rejection is reported in route order, with the other routes' diagnostics.
    Reject(Rejection),
}

/// Weighted backend references.
#[derive(Debug)]
pub struct IrForward<'a> {
    /// None: every request gets `unresolved` (unless a filter answers first).
    pub backends: Vec<BackendRef<'a>>,
    /// What requests sent to a backend that did not resolve get (Ingress: 503).
    pub unresolved: Unresolved,
    /// The route's own timeouts (HTTPRoute `timeouts`).
    pub timeouts: crate::snapshot::RouteTimeouts,
}

/// The answer for requests sent to a backend that did not resolve. A static body, so that
/// 50,000 routes do not each allocate a copy of an answer most never give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unresolved {
    /// HTTP status code.
    pub status: u16,
    /// Short plain-text body.
    pub body: &'static str,
}

impl Unresolved {
    /// The answer as the snapshot holds it.
    pub fn response(&self) -> DirectResponse {
        DirectResponse {
            status: self.status,
            body: self.body.to_owned(),
        }
    }
}

/// A reference to a Service port, resolved by the backends pass.
#[derive(Debug, Clone)]
pub struct BackendRef<'a> {
    /// Namespace of the Service (not necessarily the referencing object's).
    pub namespace: &'a str,
    /// Name of the Service.
    pub service: &'a str,
    /// The port, by number or by name.
    pub port: PortRef<'a>,
    /// Relative weight.
    pub weight: u32,
    /// Filters run only for requests sent to this backend.
    pub filters: Vec<Filter>,
    /// Cluster settings of this reference's own (ingress-nginx annotations of its Ingress),
    /// on top of its Service port's `BackendPolicy`: it resolves to a cluster of its own
    /// variant. `None`: the Service port's default cluster.
    pub variant: Option<Arc<Variant>>,
    /// Set when the front end already knows the reference cannot resolve (Gateway API: a
    /// kind weir does not serve, another namespace without a ReferenceGrant): reason and
    /// message. The backends pass records it as this reference's outcome without a lookup,
    /// so its share answers `unresolved` and assemble reports it with the route's others.
    pub refused: Option<(&'static str, String)>,
    /// Filled in by the backends pass: index of the resolution of this reference.
    pub(super) outcome: Option<usize>,
}

impl<'a> BackendRef<'a> {
    /// A reference with weight 1 and no filters.
    pub fn new(namespace: &'a str, service: &'a str, port: PortRef<'a>) -> Self {
        BackendRef {
            namespace,
            service,
            port,
            weight: 1,
            filters: Vec::new(),
            variant: None,
            refused: None,
            outcome: None,
        }
    }
}

/// Cluster settings some references ask for beyond their Service port's defaults and
/// `BackendPolicy`: a [`crate::snapshot::ClusterKey`] variant. References with the same
/// variant name share one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The variant's name, in the cluster key (`nginx-1a2b3c4d`).
    pub name: String,
    /// Settings applied after the Service port's `BackendPolicy` (set fields win).
    pub policy: BackendPolicySpec,
    /// Upstream protocol over the port's `appProtocol`.
    pub protocol: Option<UpstreamProtocol>,
}

/// A Service port reference: by number or by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortRef<'a> {
    /// The port number.
    Number(i32),
    /// The port name.
    Name(&'a str),
}

impl fmt::Display for PortRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(name) => write!(f, "{name:?}"),
        }
    }
}

/// Why a front end rejected a route's action: the condition it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Condition type (`Accepted`).
    pub type_: &'static str,
    /// Reason constant.
    pub reason: &'static str,
    /// The full message, naming the field.
    pub message: String,
}

/// A certificate an HTTPS listener offers, from a TLS Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRef<'a> {
    /// The object that asks for it (its TLS conditions go there).
    pub source: SourceId,
    /// The field that asks for it (`spec.tls[0]`).
    pub field: FieldPath,
    /// Namespace of the Secret.
    pub namespace: &'a str,
    /// Name of the Secret.
    pub name: &'a str,
    /// SNI hosts as written (empty: offer it as the listener's default certificate).
    pub hosts: &'a [String],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_fill_their_indices_in_order() {
        let field = FieldPath::indexed("spec.rules[{}].http.paths[{}]", [2, 7]);
        assert_eq!(field.to_string(), "spec.rules[2].http.paths[7]");
        assert_eq!(
            FieldPath::new("spec.defaultBackend").to_string(),
            "spec.defaultBackend"
        );
        assert_eq!(
            FieldPath::indexed("spec.tls[{}]", [3, 0]).to_string(),
            "spec.tls[3]"
        );
    }

    #[test]
    fn source_order_ranks_the_object_before_its_positions() {
        let at = |source, rule, index| SourceOrder {
            source: SourceId(source),
            rule,
            index,
        };
        assert!(at(0, 5, 5) < at(1, 0, 0));
        assert!(at(1, 0, 9) < at(1, 1, 0));
        assert!(at(1, 1, 0) < at(1, 1, 1));
    }
}
