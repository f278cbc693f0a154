//! Pass 4: backends → clusters and route actions; the default backend.
//!
//! A Service backend resolves, in the Ingress's namespace, to a Service port by number or by
//! name; the cluster is keyed by Service and port *number* (a named port is resolved here).
//! Each distinct backend is resolved once (cached), so 50,000 routes over 5,000 Services cost
//! 5,000 lookups.
//!
//! Unresolvable backends never abort compile:
//! - missing Service, missing port, or an `ExternalName` Service (weir does not proxy to DNS
//!   names in this version) → the route answers **503** and the Ingress gets a condition;
//! - a `resource` backend, or a backend naming neither a Service nor a port → the path is
//!   skipped with a condition (there is nothing weir could forward to).
//!
//! The upstream protocol comes from the Service port's `appProtocol`: `kubernetes.io/h2c`
//! (or `h2c`) → HTTP/2 cleartext; `https`, `tls`, `h2` or `kubernetes.io/wss` → TLS; absent,
//! `http` or `kubernetes.io/ws` → HTTP/1.1; `kubernetes.io/ws(s)` also marks the cluster as
//! WebSocket. Anything else → HTTP/1.1 with an `UnknownAppProtocol` warning on the Service.
//!
//! Default backend: the first `spec.defaultBackend` (in Ingress precedence order) that
//! resolves to an action wins, later ones get `DefaultBackendConflict`; without one the
//! controller-wide default backend from the command line is used.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::api::networking::v1::IngressBackend;

use super::classes::OwnedIngress;
use super::status::Status;
use super::{CompileConfig, Severity};
use crate::api::{condition_types, reasons, values};
use crate::snapshot::{Cluster, ClusterKey, LbPolicy, RouteAction, Timeouts, UpstreamProtocol};
use crate::store::{ObjectKey, Objects};

/// Body of the 503 answered for a backend that cannot be resolved.
const UNAVAILABLE_BODY: &str = "service unavailable\n";

/// A Service port reference: by number or by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum PortRef<'a> {
    /// `port.number`.
    Number(i32),
    /// `port.name`.
    Name(&'a str),
}

impl std::fmt::Display for PortRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(name) => write!(f, "{name:?}"),
        }
    }
}

/// The outcome of resolving a Service port, cached per (namespace, Service, port).
#[derive(Debug, Clone)]
enum Resolved {
    /// Forward to this cluster.
    Cluster(ClusterKey),
    /// Answer 503; report this reason and message.
    Unavailable(&'static str, String),
}

/// Resolves backends, building clusters on the way.
pub(super) struct Backends<'a> {
    objects: &'a Objects,
    cache: HashMap<(&'a str, &'a str, PortRef<'a>), Resolved>,
    /// Clusters of every resolved backend.
    pub(super) clusters: BTreeMap<ClusterKey, Cluster>,
}

impl<'a> Backends<'a> {
    /// A resolver over these objects.
    pub(super) fn new(objects: &'a Objects) -> Self {
        Backends {
            objects,
            cache: HashMap::new(),
            clusters: BTreeMap::new(),
        }
    }

    /// The action for an Ingress backend (`field` names it in messages); `None` when the
    /// path must be skipped. Conditions go to `owner`.
    pub(super) fn resolve(
        &mut self,
        owner: &'a ObjectKey,
        backend: &'a IngressBackend,
        field: &dyn Fn() -> String,
        status: &mut Status,
    ) -> Option<RouteAction> {
        if backend.resource.is_some() {
            let message = format!(
                "{}: resource backends are not supported (weir forwards to Services only); skipped",
                field()
            );
            status.ingress_error(
                owner,
                condition_types::ACCEPTED,
                reasons::RESOURCE_BACKEND_NOT_SUPPORTED,
                message,
            );
            return None;
        }
        let service = backend.service.as_ref();
        let port = service.and_then(|s| s.port.as_ref()).and_then(|p| {
            match (p.number, p.name.as_deref()) {
                (Some(n), _) => Some(PortRef::Number(n)),
                (None, Some(name)) if !name.is_empty() => Some(PortRef::Name(name)),
                _ => None,
            }
        });
        let (Some(service), Some(port)) = (service, port) else {
            let message = format!(
                "{}: the backend names no Service with a port number or name; skipped",
                field()
            );
            status.ingress_error(
                owner,
                condition_types::ACCEPTED,
                reasons::INVALID_BACKEND,
                message,
            );
            return None;
        };
        match self.resolve_port(&owner.namespace, &service.name, port, status) {
            Resolved::Cluster(cluster) => Some(RouteAction::forward(cluster)),
            Resolved::Unavailable(reason, message) => {
                let message = format!("{}: {message}; requests get 503", field());
                status.ingress_error(owner, condition_types::RESOLVED_REFS, reason, message);
                Some(unavailable())
            }
        }
    }

    /// The controller-wide default backend (`--default-backend`); conditions go to its
    /// Service.
    pub(super) fn resolve_flag(
        &mut self,
        service: &'a ObjectKey,
        port: &'a str,
        status: &mut Status,
    ) -> RouteAction {
        let port_ref = match port.parse::<i32>() {
            Ok(n) => PortRef::Number(n),
            Err(_) => PortRef::Name(port),
        };
        match self.resolve_port(&service.namespace, &service.name, port_ref, status) {
            Resolved::Cluster(cluster) => RouteAction::forward(cluster),
            Resolved::Unavailable(reason, message) => {
                let message =
                    format!("controller default backend: {message}; unmatched requests get 503");
                status.push(
                    "Service",
                    service,
                    condition_types::RESOLVED_REFS,
                    Severity::Error,
                    reason,
                    message,
                );
                unavailable()
            }
        }
    }

    fn resolve_port(
        &mut self,
        namespace: &'a str,
        name: &'a str,
        port: PortRef<'a>,
        status: &mut Status,
    ) -> Resolved {
        if let Some(resolved) = self.cache.get(&(namespace, name, port)) {
            return resolved.clone();
        }
        let resolved = self.resolve_uncached(namespace, name, port, status);
        self.cache.insert((namespace, name, port), resolved.clone());
        resolved
    }

    fn resolve_uncached(
        &mut self,
        namespace: &str,
        name: &str,
        port: PortRef<'_>,
        status: &mut Status,
    ) -> Resolved {
        let key = ObjectKey::new(namespace, name);
        let Some(service) = self.objects.services.get(&key) else {
            return Resolved::Unavailable(
                reasons::SERVICE_NOT_FOUND,
                format!("Service {key} not found"),
            );
        };
        let spec = service.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some(values::SERVICE_TYPE_EXTERNAL_NAME) {
            return Resolved::Unavailable(
                reasons::EXTERNAL_NAME_NOT_SUPPORTED,
                format!("Service {key} is of type ExternalName, which weir does not proxy to"),
            );
        }
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        let found = ports.iter().find(|p| match port {
            PortRef::Number(n) => p.port == n,
            PortRef::Name(wanted) => p.name.as_deref() == Some(wanted),
        });
        let Some((service_port, number)) =
            found.and_then(|p| Some((p, u16::try_from(p.port).ok().filter(|&n| n > 0)?)))
        else {
            return Resolved::Unavailable(
                reasons::SERVICE_PORT_NOT_FOUND,
                format!("Service {key} has no port {port}"),
            );
        };
        if service_port.protocol.as_deref().is_some_and(|p| p != "TCP") {
            return Resolved::Unavailable(
                reasons::SERVICE_PORT_NOT_FOUND,
                format!("Service {key} port {port} is not TCP"),
            );
        }
        let cluster_key = ClusterKey::new(&key.namespace, &key.name, number);
        if !self.clusters.contains_key(&cluster_key) {
            let cluster = cluster(cluster_key.clone(), service_port, &key, status);
            self.clusters.insert(cluster_key.clone(), cluster);
        }
        Resolved::Cluster(cluster_key)
    }
}

/// The 503 action for an unresolvable backend.
fn unavailable() -> RouteAction {
    RouteAction::respond(503, UNAVAILABLE_BODY)
}

fn cluster(
    key: ClusterKey,
    port: &ServicePort,
    service_key: &ObjectKey,
    status: &mut Status,
) -> Cluster {
    let app_protocol = port.app_protocol.as_deref();
    let (protocol, websocket) = match app_protocol {
        None | Some("http") => (UpstreamProtocol::Http1, false),
        Some("kubernetes.io/ws") => (UpstreamProtocol::Http1, true),
        Some("kubernetes.io/h2c" | "h2c") => (UpstreamProtocol::H2c, false),
        Some("https" | "tls" | "h2") => (UpstreamProtocol::Tls, false),
        Some("kubernetes.io/wss") => (UpstreamProtocol::Tls, true),
        Some(other) => {
            let message = format!(
                "port {}: appProtocol {other:?} is not one weir knows (http, https, h2c, kubernetes.io/h2c, kubernetes.io/ws, kubernetes.io/wss); using HTTP/1.1",
                key.port
            );
            status.push(
                "Service",
                service_key,
                condition_types::ACCEPTED,
                Severity::Warning,
                reasons::UNKNOWN_APP_PROTOCOL,
                message,
            );
            (UpstreamProtocol::Http1, false)
        }
    };
    Cluster {
        key,
        port_name: port.name.clone().unwrap_or_default(),
        protocol,
        websocket,
        lb_policy: LbPolicy::default(),
        timeouts: Timeouts::default(),
    }
}

/// The snapshot's default backend: the oldest Ingress `spec.defaultBackend` that resolves,
/// else the controller-wide one, else none.
pub(super) fn default_backend<'a>(
    owned: &[OwnedIngress<'a>],
    config: &'a CompileConfig,
    backends: &mut Backends<'a>,
    status: &mut Status,
) -> Option<RouteAction> {
    let mut chosen: Option<(RouteAction, &ObjectKey)> = None;
    for owned in owned {
        let Some(backend) = owned
            .ingress
            .spec
            .as_ref()
            .and_then(|s| s.default_backend.as_ref())
        else {
            continue;
        };
        if let Some((_, winner)) = &chosen {
            let message = format!(
                "spec.defaultBackend: Ingress {winner} already provides the default backend (older, or earlier in namespace/name order); ignored"
            );
            status.ingress_error(
                owned.key,
                condition_types::ACCEPTED,
                reasons::DEFAULT_BACKEND_CONFLICT,
                message,
            );
            continue;
        }
        let field = || "spec.defaultBackend".to_owned();
        if let Some(action) = backends.resolve(owned.key, backend, &field, status) {
            chosen = Some((action, owned.key));
        }
    }
    match (chosen, &config.default_backend) {
        (Some((action, _)), _) => Some(action),
        (None, Some(flag)) => Some(backends.resolve_flag(&flag.service, &flag.port, status)),
        (None, None) => None,
    }
}
