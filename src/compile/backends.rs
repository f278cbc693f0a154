//! Shared pass: backend references → clusters.
//!
//! Every [`BackendRef`] of every route (and default-route candidate) is resolved to a Service
//! port by number or by name, in the namespace the reference names. Each distinct reference
//! is resolved once (cached), so 50,000 routes over 5,000 Services cost 5,000 lookups; the
//! outcome is written into the reference, for the conflicts pass (a route whose backends
//! resolved beats one whose did not) and for assemble.
//!
//! Nothing is reported here: a route that loses a conflict must not report a missing Service
//! it would never have served, and conditions follow route order (the order the router
//! tries routes), which only assemble knows. Assemble calls [`Resolver::action`] for each
//! surviving route; that reports the route's unresolved references on its source object and
//! moves the clusters it uses into the snapshot, so only clusters some served route
//! references are built.
//!
//! Filters that send requests of their own (`ExternalAuth`, `RequestMirror`) name a Service
//! port too. They are compiled before the front ends (each `HTTPFilter` once), so they check
//! their reference with [`service_cluster`] (same rules; a reference that does not resolve
//! fails the filter, closed) and hold its [`ClusterKey`]; assemble then hands every served
//! route's filters to [`Resolver::filter_clusters`], which moves those clusters into the
//! snapshot like a backend's. A Gateway API `RequestMirror` will take the same path.
//!
//! A reference does not resolve when its Service is missing, has no such (TCP) port, or is
//! of type `ExternalName` (weir does not proxy to DNS names in this version); requests sent
//! to it get the route's `unresolved` answer (Ingress: 503), with a `ResolvedRefs` condition.
//!
//! A cluster whose policy forwards to the Service's ClusterIP gets that address (its one
//! endpoint, [`crate::endpoints`]); a Service without one (headless, `None`) does not
//! resolve (`NoClusterIP`, 503).
//!
//! The upstream protocol comes from the Service port's `appProtocol`: `kubernetes.io/h2c`
//! (or `h2c`) → HTTP/2 cleartext; `https`, `tls`, `h2` or `kubernetes.io/wss` → TLS; absent,
//! `http` or `kubernetes.io/ws` → HTTP/1.1; `kubernetes.io/ws(s)` also marks the cluster as
//! WebSocket. Anything else → HTTP/1.1 with an `UnknownAppProtocol` warning on the Service
//! (reported when the cluster is first used).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::api::service::ServicePort;

use super::Ir;
use super::ir::{BackendRef, FieldPath, IrAction, IrRoute, PortRef, Source, Variant};
use super::policy::Policies;
use super::status::Status;
use crate::api::{condition_types, reasons, values};
use crate::snapshot::{
    Backend, BackendTarget, Cluster, ClusterKey, Filter, Forward, RouteAction, UpstreamProtocol,
};
use crate::store::{ObjectKey, Objects};

/// The outcome of resolving one distinct reference.
#[derive(Debug)]
enum Outcome<'a> {
    /// Forward to this cluster; `warning` is reported on the Service when the cluster is
    /// first used.
    Cluster {
        /// Boxed: a cluster is much larger than the other variant.
        cluster: Box<Cluster>,
        service: Source<'a>,
        warning: Option<String>,
    },
    /// Requests get the route's `unresolved` answer; report this reason and message.
    Unavailable {
        reason: &'static str,
        message: String,
    },
}

/// Resolved references, and the clusters they lead to.
pub(super) struct Resolver<'a> {
    objects: &'a Objects,
    policies: &'a Policies<'a>,
    /// By (namespace, Service, port, variant name).
    cache: HashMap<(&'a str, &'a str, PortRef<'a>, Option<String>), usize>,
    /// Clusters filters send to, by key (they name ports by number, so the key is known
    /// before resolution).
    filter_cache: HashMap<ClusterKey, usize>,
    outcomes: Vec<Outcome<'a>>,
    /// Whether assemble already moved the outcome's cluster into the snapshot.
    used: Vec<bool>,
}

/// Resolve every backend reference of the IR, writing the outcomes into the references.
pub(super) fn resolve<'a>(
    ir: &mut Ir<'a>,
    objects: &'a Objects,
    policies: &'a Policies<'a>,
) -> Resolver<'a> {
    let mut resolver = Resolver {
        objects,
        policies,
        cache: HashMap::new(),
        filter_cache: HashMap::new(),
        outcomes: Vec::new(),
        used: Vec::new(),
    };
    for table in ir.route_tables.values_mut() {
        let default = &mut table.default_route;
        let routes = table
            .hosts
            .values_mut()
            .flatten()
            .chain(default.candidates.iter_mut())
            .chain(default.fallback.iter_mut());
        for route in routes {
            if let IrAction::Forward(forward) = &mut route.action {
                for backend in &mut forward.backends {
                    backend.outcome = Some(resolver.resolve(backend));
                }
            }
        }
    }
    resolver
}

/// The cluster of the Service port a filter names (`ExternalAuth`, `RequestMirror`; the
/// Gateway API's `RequestMirror` later): `service` in `namespace`, port by number, under the
/// same rules as a route's backend. `Err` holds the reason and message when it does not
/// resolve; the filter then fails (closed) at compile time instead of sending anywhere.
/// Assemble keeps the cluster in the snapshot through [`Resolver::filter_clusters`].
pub(super) fn service_cluster(
    objects: &Objects,
    namespace: &str,
    service: &str,
    port: u16,
) -> Result<ClusterKey, (&'static str, String)> {
    match resolve_service(
        objects,
        namespace,
        service,
        PortRef::Number(i32::from(port)),
    ) {
        Outcome::Cluster { cluster, .. } => Ok(cluster.key),
        Outcome::Unavailable { reason, message } => Err((reason, message)),
    }
}

impl<'a> Resolver<'a> {
    fn resolve(&mut self, backend: &BackendRef<'a>) -> usize {
        if let Some((reason, message)) = &backend.refused {
            return self.push(Outcome::Unavailable {
                reason,
                message: message.clone(),
            });
        }
        let variant = backend.variant.as_deref();
        let key = (
            backend.namespace,
            backend.service,
            backend.port,
            variant.map(|v| v.name.clone()),
        );
        if let Some(&outcome) = self.cache.get(&key) {
            return outcome;
        }
        let outcome = self.build(backend.namespace, backend.service, backend.port, variant);
        let index = self.push(outcome);
        self.cache.insert(key, index);
        index
    }

    /// The outcome of a Service port: its cluster carries the port's `BackendPolicy`, then
    /// the variant's settings (under the variant's key).
    fn build(
        &self,
        namespace: &str,
        service: &str,
        port: PortRef<'_>,
        variant: Option<&Variant>,
    ) -> Outcome<'a> {
        let mut outcome = resolve_service(self.objects, namespace, service, port);
        if let Outcome::Cluster { cluster, .. } = &mut outcome {
            if let Err((reason, message)) = self.policies.apply_to(cluster, self.objects) {
                return Outcome::Unavailable { reason, message };
            }
            if let Some(variant) = variant {
                cluster.key = cluster.key.with_variant(&variant.name);
                if let Some(protocol) = variant.protocol {
                    cluster.protocol = protocol;
                }
                // Validated by the front end that made the variant.
                let _ = super::policy::apply(&variant.policy, cluster);
                if let Some(tls) = &variant.policy.tls {
                    match super::policy::upstream_tls(tls, namespace, service, self.objects) {
                        Ok(tls) => cluster.tls = Some(std::sync::Arc::new(tls)),
                        Err((reason, message)) => {
                            return Outcome::Unavailable { reason, message };
                        }
                    }
                }
            }
            if cluster.via_cluster_ip {
                let ip = self
                    .objects
                    .services
                    .get(&ObjectKey::new(namespace, service))
                    .and_then(|s| s.spec.as_ref())
                    .and_then(|s| s.cluster_ip.as_deref())
                    .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
                match ip {
                    Some(ip) => cluster.cluster_ip = Some(ip),
                    None => {
                        return Outcome::Unavailable {
                            reason: reasons::NO_CLUSTER_IP,
                            message: format!(
                                "Service {namespace}/{service} has no ClusterIP to forward to \
                                 (forwardToClusterIP): it is headless (clusterIP: None) or, in \
                                 a manifests directory, spec.clusterIP is not written"
                            ),
                        };
                    }
                }
            }
        }
        outcome
    }

    fn push(&mut self, outcome: Outcome<'a>) -> usize {
        self.outcomes.push(outcome);
        self.used.push(false);
        self.outcomes.len() - 1
    }

    /// Moves the clusters `filters` send to (their [`Filter::cluster`]) into `clusters`, as
    /// [`Resolver::action`] does for backends: called by assemble for every served route,
    /// so a filter's cluster is in the snapshot exactly when some served route uses it.
    /// Each distinct cluster is resolved once.
    pub(super) fn filter_clusters<'f>(
        &mut self,
        filters: impl IntoIterator<Item = &'f Filter>,
        clusters: &mut BTreeMap<ClusterKey, Arc<Cluster>>,
        status: &mut Status,
    ) {
        for key in filters.into_iter().filter_map(Filter::cluster) {
            let index = match self.filter_cache.get(key) {
                Some(&index) => index,
                None => {
                    let port = PortRef::Number(i32::from(key.port()));
                    let outcome = self.build(key.namespace(), key.service(), port, None);
                    let index = self.push(outcome);
                    self.filter_cache.insert(key.clone(), index);
                    index
                }
            };
            // Filters compile only when their Service port resolves (`service_cluster`), over
            // the same objects, so an unavailable outcome cannot happen here.
            debug_assert!(matches!(self.outcomes[index], Outcome::Cluster { .. }));
            self.take_cluster(index, clusters, status);
        }
    }

    /// Moves the cluster of outcome `index` into `clusters` the first time it is used,
    /// reporting its Service's warning then.
    fn take_cluster(
        &mut self,
        index: usize,
        clusters: &mut BTreeMap<ClusterKey, Arc<Cluster>>,
        status: &mut Status,
    ) {
        let Outcome::Cluster {
            cluster,
            service,
            warning,
        } = &self.outcomes[index]
        else {
            return;
        };
        if self.used[index] {
            return;
        }
        self.used[index] = true;
        if let Entry::Vacant(entry) = clusters.entry(cluster.key.clone()) {
            entry.insert(Arc::new(Cluster::clone(cluster)));
            if let Some(message) = warning {
                status.warning(
                    service,
                    condition_types::ACCEPTED,
                    reasons::UNKNOWN_APP_PROTOCOL,
                    message.clone(),
                );
            }
        }
    }
}

/// Why a reference to a Service port does not resolve, if it does not (the reason and a
/// message naming the Service).
pub(super) fn unavailable(
    objects: &Objects,
    namespace: &str,
    service: &str,
    port: PortRef<'_>,
) -> Option<(&'static str, String)> {
    match resolve_service(objects, namespace, service, port) {
        Outcome::Unavailable { reason, message } => Some((reason, message)),
        Outcome::Cluster { .. } => None,
    }
}

/// Resolves a reference to a Service port (uncached).
fn resolve_service<'o>(
    objects: &'o Objects,
    namespace: &str,
    service: &str,
    port: PortRef<'_>,
) -> Outcome<'o> {
    let lookup = ObjectKey::new(namespace, service);
    let Some((key, service)) = objects.services.get_key_value(&lookup) else {
        return Outcome::Unavailable {
            reason: reasons::SERVICE_NOT_FOUND,
            message: format!("Service {lookup} not found"),
        };
    };
    let spec = service.spec.as_ref();
    if spec.and_then(|s| s.type_.as_deref()) == Some(values::SERVICE_TYPE_EXTERNAL_NAME) {
        return Outcome::Unavailable {
            reason: reasons::EXTERNAL_NAME_NOT_SUPPORTED,
            message: format!("Service {key} is of type ExternalName, which weir does not proxy to"),
        };
    }
    let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
    let found = ports.iter().find(|p| match port {
        PortRef::Number(n) => p.port == n,
        PortRef::Name(wanted) => p.name.as_deref() == Some(wanted),
    });
    let Some((service_port, number)) =
        found.and_then(|p| Some((p, u16::try_from(p.port).ok().filter(|&n| n > 0)?)))
    else {
        return Outcome::Unavailable {
            reason: reasons::SERVICE_PORT_NOT_FOUND,
            message: format!("Service {key} has no port {port}"),
        };
    };
    if service_port.protocol.as_deref().is_some_and(|p| p != "TCP") {
        return Outcome::Unavailable {
            reason: reasons::SERVICE_PORT_NOT_FOUND,
            message: format!("Service {key} port {port} is not TCP"),
        };
    }
    let (cluster, warning) = cluster(
        ClusterKey::new(key.namespace.as_str(), key.name.as_str(), number),
        service_port,
    );
    Outcome::Cluster {
        cluster: Box::new(cluster),
        service: Source {
            kind: "Service",
            key,
            generation: service.metadata.generation,
            metrics_per_route: false,
        },
        warning,
    }
}

impl<'a> Resolver<'a> {
    /// Why a route is not fully resolved: the message of its first unresolved reference
    /// (`None`: every reference resolved). Only forwards have references.
    pub(super) fn unresolved(&self, route: &IrRoute<'_>) -> Option<&str> {
        let IrAction::Forward(forward) = &route.action else {
            return None;
        };
        forward
            .backends
            .iter()
            .find_map(|backend| match &self.outcomes[outcome(backend)] {
                Outcome::Cluster { .. } => None,
                Outcome::Unavailable { message, .. } => Some(message.as_str()),
            })
    }

    /// The snapshot action of a served route, reporting its unresolved references (and
    /// rejection) on `source` and moving the clusters it uses into `clusters`; `None` for a
    /// rejected route. `who` names the requests that get the `unresolved` answer in messages
    /// (`requests`, `unmatched requests`).
    pub(super) fn action(
        &mut self,
        action: IrAction<'a>,
        source: &Source<'_>,
        field: FieldPath,
        who: &str,
        clusters: &mut BTreeMap<ClusterKey, Arc<Cluster>>,
        status: &mut Status,
    ) -> Option<RouteAction> {
        let forward = match action {
            IrAction::Forward(forward) => forward,
            IrAction::Reject(rejection) => {
                status.error(source, rejection.type_, rejection.reason, rejection.message);
                return None;
            }
        };
        let mut resolved = false;
        let mut backends = Vec::with_capacity(forward.backends.len());
        for backend in forward.backends {
            let index = outcome(&backend);
            let target = match &self.outcomes[index] {
                Outcome::Cluster { cluster, .. } => {
                    resolved = true;
                    let key = cluster.key.clone();
                    self.take_cluster(index, clusters, status);
                    BackendTarget::Cluster(key)
                }
                Outcome::Unavailable { reason, message } => {
                    let message = format!(
                        "{field}: {message}; {who} get {}",
                        forward.unresolved.status
                    );
                    status.error(source, condition_types::RESOLVED_REFS, reason, message);
                    BackendTarget::Respond(forward.unresolved.response())
                }
            };
            backends.push(Backend {
                target,
                weight: backend.weight,
                filters: backend.filters,
            });
        }
        Some(if resolved {
            RouteAction::Forward(Forward {
                backends,
                timeouts: Forward::own_timeouts(forward.timeouts),
            })
        } else {
            // Nothing to forward to: answer directly, without a pick among dead backends.
            RouteAction::Respond(forward.unresolved.response())
        })
    }
}

/// The outcome index the resolve step wrote into a reference.
fn outcome(backend: &BackendRef<'_>) -> usize {
    backend
        .outcome
        .expect("invariant: the backends pass resolves every reference before it is read")
}

/// The cluster of a Service port, and a warning for an unknown `appProtocol`.
fn cluster(key: ClusterKey, port: &ServicePort) -> (Cluster, Option<String>) {
    let mut warning = None;
    // WebSocket upgrades are tunnelled on every cluster: `kubernetes.io/ws(s)` only says
    // which transport is under them.
    let protocol = match port.app_protocol.as_deref() {
        None | Some("http" | "kubernetes.io/ws") => UpstreamProtocol::Http1,
        Some("kubernetes.io/h2c" | "h2c") => UpstreamProtocol::H2c,
        Some("https" | "tls" | "h2" | "kubernetes.io/wss") => UpstreamProtocol::Tls,
        Some(other) => {
            warning = Some(format!(
                "port {}: appProtocol {other:?} is not one weir knows (http, https, h2c, kubernetes.io/h2c, kubernetes.io/ws, kubernetes.io/wss); using HTTP/1.1",
                key.port()
            ));
            UpstreamProtocol::Http1
        }
    };
    let cluster = Cluster::new(key, port.name.clone().unwrap_or_default(), protocol);
    (cluster, warning)
}

#[cfg(test)]
mod tests {
    use super::super::ObjectRef;
    use super::super::testing::{add, ir, route, run, services};
    use super::*;
    use crate::snapshot::{DirectResponse, Route};

    fn find<'s>(compiled: &'s super::super::Compiled, host: &str, name: &str) -> &'s Route {
        compiled.snapshot.route_tables[super::super::testing::TABLE]
            .virtual_hosts
            .exact[host]
            .routes
            .iter()
            .find(|r| r.name == name)
            .expect("route served")
    }

    #[test]
    fn a_service_in_another_namespace_resolves_in_that_namespace() {
        let objects = services(&["shared/api", "team-a/local"]);
        let keys = [ObjectKey::new("team-a", "web")];
        let mut ir = ir(&keys);
        add(
            &mut ir,
            "a.example",
            [
                route(0, 0, "/api", &[("shared/api", 1)]),
                // Same Service name, but the reference names team-a: not found there.
                route(0, 1, "/gone", &[("team-a/api", 1)]),
            ],
        );
        let compiled = run(ir, &objects);
        let api = ClusterKey::new("shared", "api", 80);
        assert!(compiled.snapshot.clusters.contains_key(&api));
        assert_eq!(
            find(&compiled, "a.example", "route-0-0").action,
            RouteAction::forward(api)
        );
        assert!(matches!(
            find(&compiled, "a.example", "route-0-1").action,
            RouteAction::Respond(DirectResponse { status: 500, .. })
        ));
        let referencing = ObjectRef {
            kind: "Ingress",
            key: keys[0].clone(),
        };
        let conditions = &compiled.status.conditions[&referencing];
        assert_eq!(conditions.len(), 1, "{conditions:?}");
        assert_eq!(conditions[0].reason, reasons::SERVICE_NOT_FOUND);
        assert!(
            conditions[0]
                .message
                .contains("Service team-a/api not found"),
            "{}",
            conditions[0].message
        );
    }

    #[test]
    fn each_distinct_reference_is_resolved_once() {
        let objects = services(&["default/a"]);
        let keys = [ObjectKey::new("default", "web")];
        let mut ir = ir(&keys);
        add(
            &mut ir,
            "a.example",
            (0..5).map(|i| route(0, i, &format!("/a{i}"), &[("default/a", 1)])),
        );
        add(
            &mut ir,
            "b.example",
            (0..5).map(|i| route(0, 10 + i, &format!("/m{i}"), &[("default/missing", 1)])),
        );
        let policies = Policies::default();
        let resolver = resolve(&mut ir, &objects, &policies);
        assert_eq!(resolver.outcomes.len(), 2);
    }

    #[test]
    fn an_unresolved_share_of_a_weighted_route_gets_the_unresolved_answer() {
        let objects = services(&["default/a"]);
        let keys = [ObjectKey::new("default", "web")];
        let mut ir = ir(&keys);
        add(
            &mut ir,
            "a.example",
            [route(
                0,
                0,
                "/",
                &[("default/a", 80), ("default/missing", 20)],
            )],
        );
        let compiled = run(ir, &objects);
        let RouteAction::Forward(forward) = &find(&compiled, "a.example", "route-0-0").action
        else {
            panic!("a route with one resolved backend forwards");
        };
        let shares: Vec<(u32, bool)> = forward
            .backends
            .iter()
            .map(|b| (b.weight, matches!(b.target, BackendTarget::Cluster(_))))
            .collect();
        assert_eq!(shares, [(80, true), (20, false)]);
        assert!(compiled.status.has_rejections());
    }
}
