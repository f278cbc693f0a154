//! The Gateway API front end: weir's GatewayClasses, their Gateways and the HTTPRoutes
//! attached to them → the same [`Ir`] the Ingress front end writes (its listeners and route
//! tables sit beside Ingress's).
//!
//! - **Classes**: a GatewayClass is weir's when its `controllerName` is
//!   [`GatewayConfig::controller_name`] (`--gateway-controller-name`).
//! - **Gateways** of weir's classes, in precedence order (oldest `creationTimestamp`, then
//!   namespace/name). Each listener port is one socket on [`GatewayConfig::bind`]
//!   (`--gateway-bind-address`) serving the route table `gateway-<port>`; Gateways that share
//!   a port share that socket and table (hosts keep their routes apart; equal matches are
//!   settled by the conflicts pass, oldest route first). `HTTP` and `HTTPS` (`tls.mode`
//!   `Terminate`, certificates from `certificateRefs`) are served; a listener of another
//!   protocol, on a port another listener serves with another protocol, or on a port of the
//!   Ingress listeners is rejected with a condition on its Gateway, and the others serve.
//! - **HTTPRoutes** attach through `parentRefs` (Gateway name and namespace, optionally
//!   `sectionName` and `port`) to every listener that admits them (`allowedRoutes`:
//!   namespaces `Same`/`All`, kinds) and whose hostname intersects theirs. Each rule's matches
//!   become routes (path `Exact`/`PathPrefix`/`RegularExpression`, headers, query parameters,
//!   method; Gateway API precedence is the snapshot's own order); filters
//!   `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestRedirect`, `URLRewrite`,
//!   `RequestMirror`, `CORS` compile with the `HTTPFilter` code, `ExtensionRef` names a weir
//!   `HTTPFilter`. Weighted `backendRefs` are Service ports, in the route's namespace or, with
//!   a ReferenceGrant, another; a backend that does not resolve answers **500** for its share.
//!
//! Conditions go on the Gateway and the HTTPRoute in the flat report (`weir validate`,
//! Events); the Gateway API's structured status (per listener, per parent) is not written yet.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::filters::{self, EntryContext, FilterSet};
use super::ingress::parse_host;
use super::ir::{
    BackendRef, CertificateRef, FieldPath, HostMatch, IrAction, IrForward, IrListener, IrRoute,
    PortRef, Source, SourceOrder, Unresolved,
};
use super::status::Status;
use super::{CompileConfig, Ir, ObjectRef};
use crate::api::gateway::{
    BackendObjectReference, GROUP, Gateway, GatewayAddress, GatewayListener, HTTPRoute,
    HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule, ParentReference, RouteGroupKind,
};
use crate::api::httpfilter::{self, FilterEntry, FilterType};
use crate::api::{condition_types, reasons};
use crate::net::Cidr;
use crate::snapshot::{
    Filter, HeaderMatch, ListenerProtocol, PathMatch, Pattern, QueryMatch, RouteMatch,
    RouteTimeouts, StringMatch,
};
use crate::store::{ObjectKey, Objects};

mod grpc;
mod report;

pub(super) use grpc::as_http_routes;

pub(super) use report::finish;
pub use report::{
    GatewayApiReport, GatewayReport, ListenerReport, RouteParent, RouteReport, SUPPORTED_FEATURES,
};
use report::{ListenerCheck, condition};

/// The Gateway API settings of compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// `GatewayClass.spec.controllerName` that marks weir's classes.
    pub controller_name: String,
    /// The address Gateway listeners bind, on their own ports, without a pool.
    pub bind: IpAddr,
    /// `--gateway-address-pool`: each Gateway gets an address of its own from it (binds its
    /// listeners there and publishes it in `status.addresses`).
    pub address_pool: Option<Cidr>,
}

/// The Gateway API flags of `weir run` and `weir validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// `GatewayClass.spec.controllerName` of weir's Gateway API classes.
    #[arg(long, default_value = DEFAULT_CONTROLLER_NAME)]
    pub gateway_controller_name: String,
    /// Address Gateway API listeners bind (each on its own port).
    #[arg(long, default_value = "0.0.0.0")]
    pub gateway_bind_address: IpAddr,
    /// Give each Gateway an address of its own from this network (e.g. `10.244.200.0/24`):
    /// its listeners bind it and its `status.addresses` names it. The addresses must be
    /// local to weir's host or network namespace. Without it, Gateways share
    /// `--gateway-bind-address` and publish weir's published addresses.
    #[arg(long, value_name = "CIDR")]
    pub gateway_address_pool: Option<Cidr>,
}

impl Default for GatewayArgs {
    fn default() -> Self {
        let config = GatewayConfig::default();
        GatewayArgs {
            gateway_controller_name: config.controller_name,
            gateway_bind_address: config.bind,
            gateway_address_pool: config.address_pool,
        }
    }
}

impl GatewayArgs {
    /// The compile settings these flags give.
    pub fn config(&self) -> GatewayConfig {
        GatewayConfig {
            controller_name: self.gateway_controller_name.clone(),
            bind: self.gateway_bind_address,
            address_pool: self.gateway_address_pool,
        }
    }
}

/// The default `--gateway-controller-name`.
pub const DEFAULT_CONTROLLER_NAME: &str = "weir.dev/gateway-controller";

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            controller_name: DEFAULT_CONTROLLER_NAME.to_owned(),
            bind: IpAddr::from([0, 0, 0, 0]),
            address_pool: None,
        }
    }
}

const GATEWAY: &str = "Gateway";
const HTTP_ROUTE: &str = "HTTPRoute";
const GRPC_ROUTE: &str = "GRPCRoute";
/// The route kinds HTTP and HTTPS listeners admit.
const ROUTE_KINDS: [&str; 2] = [HTTP_ROUTE, GRPC_ROUTE];

/// What requests sent to a backend that does not resolve get (the Gateway API says 500).
const UNRESOLVED: Unresolved = Unresolved {
    status: 500,
    body: "backend not resolved\n",
};

/// The rule of an HTTPRoute without rules: every path, no backends.
static DEFAULT_RULE: [HTTPRouteRule; 1] = [HTTPRouteRule {
    name: None,
    matches: Vec::new(),
    filters: Vec::new(),
    backend_refs: Vec::new(),
    timeouts: None,
}];

/// One accepted Gateway listener: where routes can attach.
struct Attach<'a> {
    gateway: &'a ObjectKey,
    listener: &'a GatewayListener,
    /// The route table it serves; `None` while it cannot serve (no usable certificate).
    table: Option<String>,
    /// Index of its Gateway in the front end's list, and of the listener in the Gateway.
    slot: (usize, usize),
}

/// A route kind of the Gateway API group.
fn route_kind(kind: &str) -> RouteGroupKind {
    RouteGroupKind {
        group: Some(GROUP.to_owned()),
        kind: kind.to_owned(),
    }
}

/// Whether `k` names the route kind `kind`.
fn is_kind(k: &RouteGroupKind, kind: &str) -> bool {
    k.kind == kind && k.group.as_deref().unwrap_or(GROUP) == GROUP
}

/// Add weir's Gateways and their HTTPRoutes to `ir`, and their structured status to the
/// report.
pub(super) fn front_end<'a>(
    objects: &'a Objects,
    grpc: &'a [(ObjectKey, HTTPRoute)],
    config: &'a CompileConfig,
    filter_set: &mut FilterSet,
    ir: &mut Ir<'a>,
    status: &mut Status,
) {
    let gw = &config.gateway;
    status.report.gateway_api.controller_name = gw.controller_name.clone();
    let mut classes: Vec<&str> = Vec::new();
    for (key, class) in &objects.gateway_classes {
        if class.spec.controller_name == gw.controller_name {
            classes.push(&key.name);
            status
                .report
                .gateway_api
                .classes
                .insert(key.name.clone(), class.metadata.generation);
        }
    }
    let mut gateways: Vec<(&ObjectKey, &Gateway)> = objects
        .gateways
        .iter()
        .map(|(key, g)| (key, &**g))
        .filter(|(_, g)| classes.contains(&g.spec.gateway_class_name.as_str()))
        .collect();
    gateways.sort_by_key(|(key, g)| (g.metadata.creation_timestamp.clone(), *key));
    if gateways.is_empty() {
        return;
    }
    let addresses = assign_addresses(&gateways, gw.address_pool);
    // Addresses the Ingress listeners hold.
    let taken: Vec<SocketAddr> = ir.listeners.iter().map(|l| l.address).collect();
    let mut sockets: BTreeMap<SocketAddr, ListenerProtocol> = BTreeMap::new();
    let mut attach: Vec<Attach<'a>> = Vec::new();
    let mut reports: Vec<GatewayReport> = Vec::with_capacity(gateways.len());
    for (g, ((key, gateway), address)) in gateways.iter().zip(addresses).enumerate() {
        let generation = gateway.metadata.generation;
        let source = Source {
            kind: GATEWAY,
            key,
            generation,
            metrics_per_route: false,
        };
        let id = ir.add_source(source);
        let mut report = GatewayReport {
            generation,
            addresses: None,
            ..GatewayReport::default()
        };
        let bind = match address {
            Ok(Some(ip)) => {
                report.addresses = Some(vec![GatewayAddress {
                    type_: Some("IPAddress".to_owned()),
                    value: ip.to_string(),
                }]);
                Some(ip)
            }
            Ok(None) => Some(gw.bind),
            Err((reason, message)) => {
                status.error(&source, condition_types::ACCEPTED, reason, message.clone());
                report.conditions = vec![
                    condition(
                        condition_types::ACCEPTED,
                        false,
                        reason,
                        &message,
                        generation,
                    ),
                    condition(
                        condition_types::PROGRAMMED,
                        false,
                        reason,
                        message,
                        generation,
                    ),
                ];
                None
            }
        };
        let mut served = 0;
        for (index, listener) in gateway.spec.listeners.iter().enumerate() {
            let mut check = ListenerCheck::default();
            let field = format!("spec.listeners[{index}] ({:?})", listener.name);
            let mut refuse = |check: &mut ListenerCheck,
                              type_: &'static str,
                              reason: &'static str,
                              message: String| {
                let message = format!("{field}: {message}");
                status.error(&source, type_, reason, message.clone());
                let slot = match type_ {
                    condition_types::RESOLVED_REFS => &mut check.unresolved,
                    condition_types::CONFLICTED => &mut check.conflicted,
                    _ => &mut check.refused,
                };
                slot.get_or_insert((reason, message));
            };
            let mut supported_kinds = Vec::new();
            match listener.allowed_routes.as_ref().map(|a| a.kinds.as_slice()) {
                None | Some([]) => supported_kinds.extend(ROUTE_KINDS.map(route_kind)),
                Some(kinds) => {
                    for k in kinds {
                        if let Some(kind) = ROUTE_KINDS.into_iter().find(|kind| is_kind(k, kind)) {
                            if !supported_kinds.iter().any(|s| is_kind(s, kind)) {
                                supported_kinds.push(route_kind(kind));
                            }
                        } else {
                            refuse(
                                &mut check,
                                condition_types::RESOLVED_REFS,
                                reasons::INVALID_ROUTE_KINDS,
                                format!(
                                    "allowedRoutes.kinds: {}/{} is not a route kind weir serves \
                                     (HTTPRoute, GRPCRoute)",
                                    k.group.as_deref().unwrap_or(GROUP),
                                    k.kind
                                ),
                            );
                        }
                    }
                }
            }
            let protocol = match listener.protocol.as_str() {
                "HTTP" => Some(ListenerProtocol::Http),
                "HTTPS" => Some(ListenerProtocol::Https),
                other => {
                    refuse(
                        &mut check,
                        condition_types::ACCEPTED,
                        reasons::UNSUPPORTED_PROTOCOL,
                        format!("protocol {other:?} is not served (HTTP, HTTPS)"),
                    );
                    supported_kinds.clear();
                    None
                }
            };
            let port = u16::try_from(listener.port).ok().filter(|p| *p > 0);
            if port.is_none() {
                refuse(
                    &mut check,
                    condition_types::ACCEPTED,
                    reasons::UNSUPPORTED_VALUE,
                    format!("port {} is not 1-65535", listener.port),
                );
            }
            if let Some(host) = listener.hostname.as_deref()
                && let Err(why) = parse_host(host)
            {
                refuse(
                    &mut check,
                    condition_types::ACCEPTED,
                    reasons::UNSUPPORTED_VALUE,
                    format!("hostname {host:?} {why}; listener not served"),
                );
            }
            let address = bind.zip(port).map(|(ip, port)| SocketAddr::new(ip, port));
            if let Some(address) = address {
                if let Some(t) = taken.iter().find(|t| overlaps(**t, address)) {
                    refuse(
                        &mut check,
                        condition_types::ACCEPTED,
                        reasons::PORT_UNAVAILABLE,
                        format!("{address} overlaps the Ingress listener {t}; listener not served"),
                    );
                }
                if let (Some(protocol), Some(other)) = (protocol, sockets.get(&address))
                    && *other != protocol
                {
                    refuse(
                        &mut check,
                        condition_types::CONFLICTED,
                        reasons::PROTOCOL_CONFLICT,
                        format!(
                            "{address} is served as {} by an older listener; listener not served",
                            protocol_name(*other)
                        ),
                    );
                }
            }
            if protocol == Some(ListenerProtocol::Https) {
                let tls = listener.tls.as_ref();
                if let Some(mode) = tls.and_then(|t| t.mode.as_deref())
                    && mode != "Terminate"
                {
                    refuse(
                        &mut check,
                        condition_types::ACCEPTED,
                        reasons::UNSUPPORTED_VALUE,
                        format!("tls.mode {mode:?} is not served (Terminate)"),
                    );
                }
                let mut certificates = Vec::new();
                for (c, cert) in tls
                    .into_iter()
                    .flat_map(|t| &t.certificate_refs)
                    .enumerate()
                {
                    let namespace = cert.namespace.as_deref().unwrap_or(&key.namespace);
                    let problem = if !cert.group.as_deref().unwrap_or("").is_empty()
                        || cert.kind.as_deref().unwrap_or("Secret") != "Secret"
                    {
                        Some((
                            reasons::INVALID_CERTIFICATE_REF,
                            format!("certificateRefs[{c}] is not a core Secret"),
                        ))
                    } else if namespace != key.namespace
                        && !granted(
                            objects,
                            GATEWAY,
                            &key.namespace,
                            namespace,
                            "Secret",
                            &cert.name,
                        )
                    {
                        Some((
                            reasons::REF_NOT_PERMITTED,
                            format!(
                                "certificateRefs[{c}] Secret {namespace}/{} needs a \
                                 ReferenceGrant in {namespace}",
                                cert.name
                            ),
                        ))
                    } else if let Err(why) =
                        usable_certificate(objects, namespace, &cert.name, config.now_unix)
                    {
                        Some((
                            reasons::INVALID_CERTIFICATE_REF,
                            format!(
                                "certificateRefs[{c}] Secret {namespace}/{}: {why}",
                                cert.name
                            ),
                        ))
                    } else {
                        None
                    };
                    match problem {
                        Some((reason, message)) => {
                            refuse(&mut check, condition_types::RESOLVED_REFS, reason, message)
                        }
                        None => certificates.push(CertificateRef {
                            source: id,
                            field: FieldPath::indexed(
                                "spec.listeners[{}].tls.certificateRefs[{}]",
                                [index, c],
                            ),
                            namespace,
                            name: &cert.name,
                            hosts: listener.hostname.as_slice(),
                        }),
                    }
                }
                if certificates.is_empty() {
                    check.unserved = true;
                    if check.unresolved.is_none() {
                        refuse(
                            &mut check,
                            condition_types::RESOLVED_REFS,
                            reasons::INVALID_CERTIFICATE_REF,
                            "an HTTPS listener needs a certificateRef".to_owned(),
                        );
                    }
                }
                if check.serves()
                    && let Some(address) = address
                {
                    ir.certificate_sets
                        .entry(table_name(address))
                        .or_default()
                        .extend(certificates);
                }
            }
            if let (Some(address), Some(protocol)) = (address, protocol)
                && check.refused.is_none()
                && check.conflicted.is_none()
            {
                // An accepted listener that cannot serve (no usable certificate) still takes
                // routes: they count in attachedRoutes, and serve once it can.
                let table = check.serves().then(|| {
                    served += 1;
                    sockets.entry(address).or_insert(protocol);
                    table_name(address)
                });
                attach.push(Attach {
                    gateway: key,
                    listener,
                    table,
                    slot: (g, index),
                });
            }
            report.listeners.push(ListenerReport {
                name: listener.name.clone(),
                supported_kinds,
                attached_routes: 0,
                conditions: check.conditions(generation),
            });
        }
        if report.conditions.is_empty() {
            let all = gateway.spec.listeners.len();
            let (accepted, reason, message) = if served == all {
                (
                    true,
                    reasons::ACCEPTED,
                    "every listener is served".to_owned(),
                )
            } else if served > 0 {
                (
                    true,
                    reasons::LISTENERS_NOT_VALID,
                    format!("{served} of {all} listeners are served"),
                )
            } else {
                (
                    false,
                    reasons::LISTENERS_NOT_VALID,
                    "no listener is served".to_owned(),
                )
            };
            report.conditions = vec![
                condition(
                    condition_types::ACCEPTED,
                    accepted,
                    reason,
                    &message,
                    generation,
                ),
                condition(
                    condition_types::PROGRAMMED,
                    served > 0,
                    if served > 0 {
                        reasons::PROGRAMMED
                    } else {
                        reasons::INVALID
                    },
                    message,
                    generation,
                ),
            ];
        }
        reports.push(report);
    }
    for (&address, &protocol) in &sockets {
        let table = table_name(address);
        ir.listeners.push(IrListener {
            name: table.clone(),
            address,
            protocol,
            route_table: table.clone(),
            certificates: (protocol == ListenerProtocol::Https).then(|| table.clone()),
        });
        ir.route_tables.entry(table).or_default().deep_wildcards = true;
    }

    // HTTPRoutes and GRPCRoutes (in their HTTPRoute form), oldest first.
    let mut routes: Vec<(&'static str, &ObjectKey, &HTTPRoute)> = objects
        .http_routes
        .iter()
        .map(|(key, route)| (HTTP_ROUTE, key, &**route))
        .chain(grpc.iter().map(|(key, route)| (GRPC_ROUTE, key, route)))
        .collect();
    routes.sort_by_key(|(kind, key, r)| (r.metadata.creation_timestamp.clone(), *key, *kind));
    for (kind, key, route) in routes {
        let parents = Parents {
            gateways: &gateways,
            attach: &attach,
        };
        let (report, attached) =
            http_route(objects, kind, key, route, &parents, filter_set, ir, status);
        for a in attached {
            let (g, l) = attach[a].slot;
            reports[g].listeners[l].attached_routes += 1;
        }
        if !report.parents.is_empty() {
            let object = ObjectRef {
                kind,
                key: key.clone(),
            };
            status.report.gateway_api.routes.insert(object, report);
        }
    }
    for ((key, _), report) in gateways.iter().zip(reports) {
        status
            .report
            .gateway_api
            .gateways
            .insert((*key).clone(), report);
    }
}

/// The route table (and listener) name of a Gateway socket.
fn table_name(address: SocketAddr) -> String {
    format!("gateway-{address}")
}

fn protocol_name(protocol: ListenerProtocol) -> &'static str {
    match protocol {
        ListenerProtocol::Http => "HTTP",
        ListenerProtocol::Https => "HTTPS",
    }
}

/// Whether two listening sockets cannot both bind: the same port, and the same address or
/// either one unspecified.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Whether the Secret exists and holds a valid certificate and key (the tls pass checks the
/// same again, once per Secret, and reports on the Gateway).
fn usable_certificate(
    objects: &Objects,
    namespace: &str,
    name: &str,
    now_unix: i64,
) -> Result<(), String> {
    let secret = objects
        .secrets
        .get(&ObjectKey::new(namespace, name))
        .ok_or("not found")?;
    super::tls::check_secret(format!("{namespace}/{name}"), secret, now_unix)
        .map(drop)
        .map_err(|(_, why)| why)
}

/// The address a Gateway binds (`None`: the shared bind address), or why it has none.
type Assigned = Result<Option<IpAddr>, (&'static str, String)>;

/// The address each Gateway (in precedence order) binds: `Ok(None)` without a pool (the
/// shared `--gateway-bind-address`); with one, the address it asks for in `spec.addresses`
/// (which must be a free pool address), else the pool address its status already names
/// (addresses stay put when older Gateways go), else the first free one.
fn assign_addresses(gateways: &[(&ObjectKey, &Gateway)], pool: Option<Cidr>) -> Vec<Assigned> {
    let Some(pool) = pool else {
        return gateways.iter().map(|_| Ok(None)).collect();
    };
    let mut used: Vec<IpAddr> = Vec::new();
    let mut out: Vec<Option<Assigned>> = vec![None; gateways.len()];
    // Asked-for addresses first, then sticky ones, then the rest.
    for (i, (_, gateway)) in gateways.iter().enumerate() {
        let Some(asked) = gateway.spec.addresses.first() else {
            continue;
        };
        let ip = asked.value.parse::<IpAddr>().ok();
        out[i] = Some(match ip {
            _ if asked.type_.as_deref().unwrap_or("IPAddress") != "IPAddress" => Err((
                reasons::UNSUPPORTED_ADDRESS,
                format!(
                    "spec.addresses: type {:?} is not served (IPAddress)",
                    asked.type_
                ),
            )),
            _ if gateway.spec.addresses.len() > 1 => Err((
                reasons::UNSUPPORTED_ADDRESS,
                "spec.addresses: weir gives a Gateway one address".to_owned(),
            )),
            Some(ip) if pool.contains(ip) && !used.contains(&ip) => {
                used.push(ip);
                Ok(Some(ip))
            }
            _ => Err((
                reasons::UNSUPPORTED_ADDRESS,
                format!(
                    "spec.addresses: {:?} is not a free address of the pool {pool}",
                    asked.value
                ),
            )),
        });
    }
    for (i, (_, gateway)) in gateways.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let current = gateway
            .status
            .iter()
            .flat_map(|s| &s.addresses)
            .filter_map(|a| a.value.parse::<IpAddr>().ok())
            .find(|ip| pool.contains(*ip) && !used.contains(ip));
        if let Some(ip) = current {
            used.push(ip);
            out[i] = Some(Ok(Some(ip)));
        }
    }
    let mut next = 0u128;
    for slot in out.iter_mut().filter(|s| s.is_none()) {
        let free = loop {
            match pool.host(next) {
                Some(ip) if used.contains(&ip) => next += 1,
                other => break other,
            }
        };
        *slot = Some(match free {
            Some(ip) => {
                used.push(ip);
                Ok(Some(ip))
            }
            None => Err((
                reasons::ADDRESS_NOT_ASSIGNED,
                format!("the address pool {pool} has no free address"),
            )),
        });
    }
    out.into_iter()
        .map(|a| a.expect("invariant: every Gateway got an outcome"))
        .collect()
}

/// Whether a ReferenceGrant in `to_namespace` lets `from_kind` objects of `from_namespace`
/// refer to the `to_kind` named `name`.
fn granted(
    objects: &Objects,
    from_kind: &str,
    from_namespace: &str,
    to_namespace: &str,
    to_kind: &str,
    name: &str,
) -> bool {
    objects
        .reference_grants
        .iter()
        .filter(|(k, _)| k.namespace == to_namespace)
        .any(|(_, g)| g.spec.allows(from_kind, from_namespace, to_kind, name))
}

/// Whether `parent` names the listener `at`.
fn names(parent: &ParentReference, route_namespace: &str, at: &Attach<'_>) -> bool {
    parent.group.as_deref().unwrap_or(GROUP) == GROUP
        && parent.kind.as_deref().unwrap_or(GATEWAY) == GATEWAY
        && parent.namespace.as_deref().unwrap_or(route_namespace) == at.gateway.namespace
        && parent.name == at.gateway.name
        && parent
            .section_name
            .as_deref()
            .is_none_or(|s| s == at.listener.name)
        && parent.port.is_none_or(|p| p == at.listener.port)
}

/// Why the listener `at` does not admit a route of `namespace`, if it does not.
fn refuses(at: &Attach<'_>, kind: &str, namespace: &str, objects: &Objects) -> Option<String> {
    let allowed = at.listener.allowed_routes.as_ref();
    let namespaces = allowed.and_then(|a| a.namespaces.as_ref());
    let from = namespaces.and_then(|n| n.from.as_deref()).unwrap_or("Same");
    let ns_ok = match from {
        "All" => true,
        "Same" => namespace == at.gateway.namespace,
        "Selector" => {
            // The API server labels every Namespace with its name.
            let mut labels = objects
                .namespaces
                .get(&ObjectKey::new("", namespace))
                .and_then(|n| n.metadata.labels.clone())
                .unwrap_or_default();
            labels
                .entry("kubernetes.io/metadata.name".to_owned())
                .or_insert_with(|| namespace.to_owned());
            let selector = namespaces.and_then(|n| n.selector.as_ref());
            if !selector.is_some_and(|s| s.matches(&labels)) {
                return Some(format!(
                    "listener {:?} of Gateway {} admits routes of the namespaces its selector \
                     selects, and {namespace} is not one",
                    at.listener.name, at.gateway
                ));
            }
            true
        }
        _ => {
            return Some(format!(
                "allowedRoutes.namespaces.from {from:?} is not served (Same, All, Selector)"
            ));
        }
    };
    if !ns_ok {
        return Some(format!(
            "listener {:?} of Gateway {} admits routes of its own namespace only",
            at.listener.name, at.gateway
        ));
    }
    let kinds = allowed.map(|a| a.kinds.as_slice()).unwrap_or_default();
    let kind_ok = kinds.is_empty() || kinds.iter().any(|k| is_kind(k, kind));
    (!kind_ok).then(|| {
        format!(
            "listener {:?} of Gateway {} does not admit {kind}s",
            at.listener.name, at.gateway
        )
    })
}

/// The hosts a route serves on a listener: the intersection of its hostnames with the
/// listener's (empty: none intersect).
fn intersect(listener: Option<&str>, route: &[HostMatch]) -> Vec<HostMatch> {
    let listener = match listener.map(parse_host) {
        Some(Ok(h)) => h,
        Some(Err(_)) => return Vec::new(),
        None => HostMatch::Any,
    };
    if route.is_empty() {
        return vec![listener];
    }
    let covers = |suffix: &str, host: &str| host.ends_with(suffix) && host.len() > suffix.len();
    route
        .iter()
        .filter_map(|r| match (&listener, r) {
            (HostMatch::Any, r) => Some(r.clone()),
            (l, HostMatch::Any) => Some(l.clone()),
            (HostMatch::Exact(l), HostMatch::Exact(h)) => (l == h).then(|| r.clone()),
            (HostMatch::Wildcard(s), HostMatch::Exact(h)) => covers(s, h).then(|| r.clone()),
            (HostMatch::Exact(h), HostMatch::Wildcard(s)) => {
                covers(s, h).then(|| HostMatch::Exact(h.clone()))
            }
            (HostMatch::Wildcard(l), HostMatch::Wildcard(r)) => {
                if r.ends_with(l.as_str()) {
                    Some(HostMatch::Wildcard(r.clone()))
                } else if l.ends_with(r.as_str()) {
                    Some(HostMatch::Wildcard(l.clone()))
                } else {
                    None
                }
            }
        })
        .collect()
}

/// Where routes can attach: weir's Gateways and their served listeners.
struct Parents<'p, 'a> {
    gateways: &'p [(&'a ObjectKey, &'a Gateway)],
    attach: &'p [Attach<'a>],
}

/// One HTTPRoute into the route tables of the listeners it attaches to; returns its parent
/// entries and the attach points (indexes into `parents.attach`) it attached to.
#[allow(clippy::too_many_arguments)]
fn http_route<'a>(
    objects: &'a Objects,
    kind: &'static str,
    key: &'a ObjectKey,
    route: &'a HTTPRoute,
    parents: &Parents<'_, 'a>,
    filter_set: &mut FilterSet,
    ir: &mut Ir<'a>,
    status: &mut Status,
) -> (RouteReport, Vec<usize>) {
    let generation = route.metadata.generation;
    let mut source = Source {
        kind,
        key,
        generation,
        metrics_per_route: false,
    };
    source.read_metrics_annotation(&route.metadata, status);
    let spec = &route.spec;
    let mut report = RouteReport::default();
    let mut attached: Vec<usize> = Vec::new();
    let mut hostnames = Vec::new();
    for (i, host) in spec.hostnames.iter().enumerate() {
        match parse_host(host) {
            Ok(h) => hostnames.push(h),
            Err(why) => status.error(
                &source,
                condition_types::ACCEPTED,
                reasons::INVALID_HOST,
                format!("spec.hostnames[{i}] {host:?} {why}; hostname skipped"),
            ),
        }
    }
    // Where it attaches: (table, host) pairs, once each.
    let mut targets: Vec<(String, HostMatch)> = Vec::new();
    for (p, parent) in spec.parent_refs.iter().enumerate() {
        let namespace = parent.namespace.as_deref().unwrap_or(&key.namespace);
        let is_gateway = parent.group.as_deref().unwrap_or(GROUP) == GROUP
            && parent.kind.as_deref().unwrap_or(GATEWAY) == GATEWAY;
        let ours = is_gateway
            && parents
                .gateways
                .iter()
                .any(|(g, _)| g.namespace == namespace && g.name == parent.name);
        if !ours {
            // Another controller's Gateway, or none: not weir's to report on, unless no
            // Gateway by that name exists at all.
            let exists = is_gateway
                && objects
                    .gateways
                    .contains_key(&ObjectKey::new(namespace, &parent.name));
            if !exists {
                status.error(
                    &source,
                    condition_types::ACCEPTED,
                    reasons::NO_MATCHING_PARENT,
                    format!(
                        "spec.parentRefs[{p}]: no Gateway {namespace}/{} exists",
                        parent.name
                    ),
                );
            }
            continue;
        }
        let mut accepted = None;
        let mut why = None;
        for (a, at) in parents.attach.iter().enumerate() {
            if !names(parent, &key.namespace, at) {
                continue;
            }
            if let Some(reason) = refuses(at, kind, &key.namespace, objects) {
                why.get_or_insert((reasons::NOT_ALLOWED_BY_LISTENERS, reason));
                continue;
            }
            let hosts = intersect(at.listener.hostname.as_deref(), &hostnames);
            if hosts.is_empty() {
                why.get_or_insert((
                    reasons::NO_MATCHING_LISTENER_HOSTNAME,
                    format!(
                        "no hostname intersects listener {:?}'s {:?}",
                        at.listener.name,
                        at.listener.hostname.as_deref().unwrap_or("*")
                    ),
                ));
                continue;
            }
            accepted = Some(());
            if !attached.contains(&a) {
                attached.push(a);
            }
            let Some(table) = &at.table else { continue };
            for host in hosts {
                let target = (table.clone(), host);
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
        }
        let condition = match (accepted, why) {
            (Some(()), _) => condition(
                condition_types::ACCEPTED,
                true,
                reasons::ACCEPTED,
                "accepted",
                generation,
            ),
            (None, why) => {
                let (reason, message) = why.unwrap_or_else(|| {
                    (
                        reasons::NO_MATCHING_PARENT,
                        format!(
                            "no served listener of Gateway {namespace}/{} matches{}{}",
                            parent.name,
                            parent
                                .section_name
                                .as_deref()
                                .map(|s| format!(" sectionName {s:?}"))
                                .unwrap_or_default(),
                            parent
                                .port
                                .map(|p| format!(" port {p}"))
                                .unwrap_or_default(),
                        ),
                    )
                });
                let message = format!("spec.parentRefs[{p}]: {message}");
                status.error(&source, condition_types::ACCEPTED, reason, message.clone());
                condition(
                    condition_types::ACCEPTED,
                    false,
                    reason,
                    message,
                    generation,
                )
            }
        };
        if !report.parents.iter().any(|r| r.parent_ref == *parent) {
            report.parents.push(RouteParent {
                parent_ref: parent.clone(),
                conditions: vec![condition],
            });
        }
    }
    if targets.is_empty() {
        if !attached.is_empty() {
            check_unserved_backends(objects, &source, &spec.rules, status);
        }
        return (report, attached);
    }
    let id = ir.add_source(source);
    let ctx = EntryContext { key, objects };
    let rules = if spec.rules.is_empty() {
        &DEFAULT_RULE[..]
    } else {
        &spec.rules
    };
    for (r, rule) in rules.iter().enumerate() {
        let Some(rule_filters) = chain(&rule.filters, &source, &ctx, filter_set, r, status) else {
            continue;
        };
        let mut backends = Vec::new();
        for (b, backend) in rule.backend_refs.iter().enumerate() {
            let reference = &backend.backend;
            let namespace = reference.namespace.as_deref().unwrap_or(&key.namespace);
            let refused = refusal(objects, &source, b, reference);
            let Some(filters) = chain(&backend.filters, &source, &ctx, filter_set, r, status)
            else {
                continue;
            };
            let port = PortRef::Number(reference.port.unwrap_or(0));
            let mut backend_ref = BackendRef::new(namespace, &reference.name, port);
            backend_ref.weight = backend.weight.unwrap_or(1).max(0) as u32;
            backend_ref.filters = filters;
            backend_ref.refused = refused;
            backends.push(backend_ref);
        }
        let timeouts = match route_timeouts(rule) {
            Ok(timeouts) => timeouts,
            Err(why) => {
                status.error(
                    &source,
                    condition_types::ACCEPTED,
                    reasons::UNSUPPORTED_VALUE,
                    format!("spec.rules[{r}].timeouts: {why}; rule not served"),
                );
                continue;
            }
        };
        let default_match = [HTTPRouteMatch::default()];
        let matches = if rule.matches.is_empty() {
            &default_match[..]
        } else {
            &rule.matches
        };
        for (m, route_match) in matches.iter().enumerate() {
            let matches = match route_match_of(route_match) {
                Ok(matches) => matches,
                Err(why) => {
                    status.error(
                        &source,
                        condition_types::ACCEPTED,
                        reasons::INVALID_PATH,
                        format!("spec.rules[{r}].matches[{m}]: {why}; match skipped"),
                    );
                    continue;
                }
            };
            for (table, host) in &targets {
                // No backend (none given, or none valid): 500, unless a filter (a redirect)
                // answers first.
                let action = IrAction::Forward(IrForward {
                    backends: backends.clone(),
                    unresolved: UNRESOLVED,
                    timeouts,
                });
                let routes = ir
                    .route_tables
                    .get_mut(table)
                    .expect("invariant: every attach point's table exists");
                routes.hosts.entry(host.clone()).or_default().push(IrRoute {
                    name: format!("{}/{}/{r}/{m}", key.namespace, key.name),
                    matches: matches.clone(),
                    filters: rule_filters.clone(),
                    action,
                    field: FieldPath::indexed("spec.rules[{}].matches[{}]", [r, m]),
                    order: SourceOrder {
                        source: id,
                        rule: r,
                        index: m,
                    },
                });
            }
        }
    }
    (report, attached)
}

/// Why a backendRef of the route `key` cannot resolve, when that is known without looking
/// the Service up: not a core Service, in another namespace without a ReferenceGrant, or no
/// port.
fn refusal(
    objects: &Objects,
    route: &Source<'_>,
    b: usize,
    reference: &BackendObjectReference,
) -> Option<(&'static str, String)> {
    let key = route.key;
    let namespace = reference.namespace.as_deref().unwrap_or(&key.namespace);
    if !reference.group.as_deref().unwrap_or("").is_empty()
        || reference.kind.as_deref().unwrap_or("Service") != "Service"
    {
        Some((
            reasons::INVALID_KIND,
            format!("backendRefs[{b}]: only core Services are served as backends"),
        ))
    } else if namespace != key.namespace
        && !granted(
            objects,
            route.kind,
            &key.namespace,
            namespace,
            "Service",
            &reference.name,
        )
    {
        Some((
            reasons::REF_NOT_PERMITTED,
            format!(
                "backendRefs[{b}]: Service {namespace}/{} needs a ReferenceGrant in {namespace}",
                reference.name
            ),
        ))
    } else if reference.port.is_none() {
        Some((
            reasons::INVALID_BACKEND,
            format!("backendRefs[{b}]: port is required for a Service"),
        ))
    } else {
        None
    }
}

/// The backend references of a route that attached only to listeners that cannot serve
/// yet: nothing enters the IR, so they are checked here (with the backends pass's rules) for
/// the route's `ResolvedRefs`.
fn check_unserved_backends(
    objects: &Objects,
    source: &Source<'_>,
    rules: &[HTTPRouteRule],
    status: &mut Status,
) {
    let key = source.key;
    for (r, rule) in rules.iter().enumerate() {
        for (b, backend) in rule.backend_refs.iter().enumerate() {
            let reference = &backend.backend;
            let namespace = reference.namespace.as_deref().unwrap_or(&key.namespace);
            let problem = refusal(objects, source, b, reference).or_else(|| {
                let port = PortRef::Number(reference.port.unwrap_or(0));
                super::backends::unavailable(objects, namespace, &reference.name, port)
                    .map(|(reason, message)| (reason, format!("backendRefs[{b}]: {message}")))
            });
            if let Some((reason, message)) = problem {
                status.error(
                    source,
                    condition_types::RESOLVED_REFS,
                    reason,
                    format!("spec.rules[{r}].{message}"),
                );
            }
        }
    }
}

/// A rule's `timeouts` (Gateway API durations; `0s` or none: the cluster's).
fn route_timeouts(rule: &HTTPRouteRule) -> Result<RouteTimeouts, String> {
    let mut out = RouteTimeouts::default();
    let Some(t) = &rule.timeouts else {
        return Ok(out);
    };
    for (value, slot, field) in [
        (&t.request, &mut out.request, "request"),
        (
            &t.backend_request,
            &mut out.backend_request,
            "backendRequest",
        ),
    ] {
        if let Some(value) = value {
            *slot = super::parse_duration(value)
                .ok_or_else(|| format!("{field} {value:?} is not a duration like 10s or 500ms"))?;
        }
    }
    Ok(out)
}

/// A rule's (or backend's) filters; `None` when one is invalid (the rule is not served).
fn chain(
    filters: &[HTTPRouteFilter],
    source: &Source<'_>,
    ctx: &EntryContext<'_>,
    filter_set: &mut FilterSet,
    rule: usize,
    status: &mut Status,
) -> Option<Vec<Filter>> {
    let mut out = Vec::new();
    for (f, filter) in filters.iter().enumerate() {
        let field = format!("spec.rules[{rule}].filters[{f}]");
        if filter.type_ == "ExtensionRef" {
            match filter.extension_ref.as_ref() {
                Some(ext) if ext.group == "weir.dev" && ext.kind == "HTTPFilter" => {
                    out.extend(filter_set.chain(source, &ctx.key.namespace, &ext.name, status));
                }
                _ => {
                    status.error(
                        source,
                        condition_types::RESOLVED_REFS,
                        reasons::INVALID_KIND,
                        format!(
                            "{field}: extensionRef must name a weir.dev HTTPFilter; rule not served"
                        ),
                    );
                    return None;
                }
            }
            continue;
        }
        let entry = match entry_of(filter, &ctx.key.namespace) {
            Ok(entry) => entry,
            Err(why) => {
                status.error(
                    source,
                    condition_types::ACCEPTED,
                    reasons::UNSUPPORTED_VALUE,
                    format!("{field}: {why}; rule not served"),
                );
                return None;
            }
        };
        match filters::compile_entry(&entry, ctx) {
            Ok(compiled) => out.push(compiled),
            Err(e) => {
                status.error(
                    source,
                    condition_types::ACCEPTED,
                    reasons::INVALID_FILTER,
                    format!("{field}.{}: {}; rule not served", e.field, e.message),
                );
                return None;
            }
        }
    }
    Some(out)
}

/// An HTTPRoute filter (of a route in `namespace`) as the `HTTPFilter` entry of the same
/// type.
fn entry_of(filter: &HTTPRouteFilter, namespace: &str) -> Result<FilterEntry, String> {
    let type_ = match filter.type_.as_str() {
        "RequestHeaderModifier" => FilterType::RequestHeaderModifier,
        "ResponseHeaderModifier" => FilterType::ResponseHeaderModifier,
        "RequestRedirect" => FilterType::RequestRedirect,
        "URLRewrite" => FilterType::UrlRewrite,
        "RequestMirror" => FilterType::RequestMirror,
        "CORS" => FilterType::Cors,
        other => return Err(format!("filter type {other:?} is not served")),
    };
    let mut entry = FilterEntry::new(type_);
    entry.request_header_modifier = filter.request_header_modifier.clone();
    entry.response_header_modifier = filter.response_header_modifier.clone();
    entry.request_redirect = filter.request_redirect.clone();
    entry.url_rewrite = filter.url_rewrite.clone();
    entry.cors = filter.cors.clone();
    if let Some(mirror) = &filter.request_mirror {
        let b = &mirror.backend_ref;
        if b.namespace.as_deref().is_some_and(|n| n != namespace) {
            return Err("requestMirror.backendRef in another namespace is not served".to_owned());
        }
        // A fraction is a share like percent (rounded down to whole percent).
        let percent = match (&mirror.percent, &mirror.fraction) {
            (Some(p), _) => Some(*p),
            (None, Some(f)) if f.denominator.unwrap_or(100) > 0 => Some(
                (i64::from(f.numerator) * 100 / i64::from(f.denominator.unwrap_or(100))) as i32,
            ),
            (None, Some(_)) => return Err("requestMirror.fraction.denominator is 0".to_owned()),
            (None, None) => None,
        };
        entry.request_mirror = Some(httpfilter::RequestMirrorFilter {
            backend_ref: httpfilter::BackendRef {
                name: b.name.clone(),
                port: b.port.ok_or("requestMirror.backendRef.port is required")?,
            },
            percent,
            hostname: None,
        });
    }
    Ok(entry)
}

/// One `HTTPRouteMatch` as the snapshot's match.
fn route_match_of(m: &HTTPRouteMatch) -> Result<RouteMatch, String> {
    let (type_, value) = match &m.path {
        Some(p) => (
            p.type_.as_deref().unwrap_or("PathPrefix"),
            p.value.as_deref().unwrap_or("/"),
        ),
        None => ("PathPrefix", "/"),
    };
    if type_ != "RegularExpression" && !value.starts_with('/') {
        return Err(format!("path {value:?} is not absolute"));
    }
    let path = match type_ {
        "Exact" => PathMatch::Exact(value.into()),
        "PathPrefix" => {
            let trimmed = value.trim_end_matches('/');
            PathMatch::Prefix(if trimmed.is_empty() { "/" } else { trimmed }.into())
        }
        "RegularExpression" => PathMatch::Regex(Box::new(
            Pattern::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("path regular expression {value:?}: {e}"))?,
        )),
        other => {
            return Err(format!(
                "path type {other:?} is not Exact, PathPrefix or RegularExpression"
            ));
        }
    };
    let value_match = |type_: Option<&str>, value: &str| -> Result<StringMatch, String> {
        match type_.unwrap_or("Exact") {
            "Exact" => Ok(StringMatch::Exact(value.to_owned())),
            "RegularExpression" => Pattern::new(&format!("^(?:{value})$"))
                .map(StringMatch::Regex)
                .map_err(|e| format!("regular expression {value:?}: {e}")),
            other => Err(format!(
                "match type {other:?} is not Exact or RegularExpression"
            )),
        }
    };
    let mut headers = Vec::new();
    for h in &m.headers {
        headers.push(HeaderMatch {
            name: http::HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| format!("header name {:?} is not valid", h.name))?,
            value: value_match(h.type_.as_deref(), &h.value)?,
        });
    }
    let mut query = Vec::new();
    for q in &m.query_params {
        query.push(QueryMatch {
            name: q.name.clone(),
            value: value_match(q.type_.as_deref(), &q.value)?,
        });
    }
    let method = match m.method.as_deref() {
        Some(method) => Some(
            http::Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("method {method:?} is not valid"))?,
        ),
        None => None,
    };
    Ok(RouteMatch::new(path, method, headers, query))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects holding weir's GatewayClass `weir`.
    fn with_weir_class() -> Objects {
        let mut objects = Objects::default();
        let class: crate::api::gateway::GatewayClass = serde_yaml::from_str(
            "metadata: {name: weir}\nspec: {controllerName: weir.dev/gateway-controller}",
        )
        .expect("class");
        objects
            .gateway_classes
            .insert(ObjectKey::new("", "weir"), class.into());
        objects
    }

    fn hosts(list: &[&str]) -> Vec<HostMatch> {
        list.iter().map(|h| parse_host(h).expect("host")).collect()
    }

    #[test]
    fn route_hostnames_intersect_the_listeners() {
        assert_eq!(intersect(None, &[]), vec![HostMatch::Any]);
        assert_eq!(
            intersect(Some("a.example.com"), &[]),
            hosts(&["a.example.com"])
        );
        assert_eq!(
            intersect(
                Some("*.example.com"),
                &hosts(&["a.example.com", "b.other.org"])
            ),
            hosts(&["a.example.com"])
        );
        assert_eq!(
            intersect(Some("a.example.com"), &hosts(&["*.example.com"])),
            hosts(&["a.example.com"])
        );
        assert_eq!(
            intersect(Some("*.example.com"), &hosts(&["*.a.example.com"])),
            hosts(&["*.a.example.com"])
        );
        assert!(intersect(Some("a.example.com"), &hosts(&["b.example.com"])).is_empty());
        assert!(intersect(Some("*.example.com"), &hosts(&["example.com"])).is_empty());
    }

    #[test]
    fn matches_follow_the_gateway_api_defaults() {
        let m = route_match_of(&HTTPRouteMatch::default()).expect("default");
        assert_eq!(m.path, PathMatch::Prefix("/".into()));
        let m: HTTPRouteMatch = serde_json::from_value(serde_json::json!({
            "path": {"type": "PathPrefix", "value": "/v2/"},
            "headers": [{"name": "Version", "value": "two"}],
            "queryParams": [{"type": "RegularExpression", "name": "q", "value": "a+"}],
            "method": "POST"
        }))
        .expect("decode");
        let m = route_match_of(&m).expect("match");
        assert_eq!(m.path, PathMatch::Prefix("/v2".into()));
        assert_eq!(m.headers()[0].name, "version");
        assert!(m.query()[0].value.matches("aaa") && !m.query()[0].value.matches("baaa"));
        assert_eq!(m.method(), Some(&http::Method::POST));
        let bad: HTTPRouteMatch =
            serde_json::from_value(serde_json::json!({"path": {"value": "nope"}})).expect("decode");
        assert!(route_match_of(&bad).is_err());
    }

    #[test]
    fn a_namespace_selector_admits_routes_of_the_labelled_namespaces() {
        use k8s_openapi::api::core::v1::Namespace;
        let mut objects = with_weir_class();
        let gateway: Gateway = serde_yaml::from_str(
            "metadata: {name: gw, namespace: infra}\n\
             spec:\n  gatewayClassName: weir\n  listeners:\n  \
             - name: web\n    port: 80\n    protocol: HTTP\n    allowedRoutes:\n      \
             namespaces: {from: Selector, selector: {matchLabels: {team: shop}}}",
        )
        .expect("gateway");
        objects
            .gateways
            .insert(ObjectKey::new("infra", "gw"), gateway.into());
        let labelled: Namespace =
            serde_yaml::from_str("metadata: {name: shop, labels: {team: shop}}").expect("ns");
        objects
            .namespaces
            .insert(ObjectKey::new("", "shop"), labelled.into());
        for namespace in ["shop", "other"] {
            let route: HTTPRoute = serde_yaml::from_str(&format!(
                "metadata: {{name: r, namespace: {namespace}}}\n\
                 spec: {{parentRefs: [{{name: gw, namespace: infra}}]}}"
            ))
            .expect("route");
            objects
                .http_routes
                .insert(ObjectKey::new(namespace, "r"), route.into());
        }
        let compiled = super::super::compile(&objects, &super::super::testing::config());
        let accepted = |namespace: &str| {
            let c = &compiled.status.gateway_api.routes[&ObjectRef {
                kind: HTTP_ROUTE,
                key: ObjectKey::new(namespace, "r"),
            }]
                .parents[0]
                .conditions[0];
            (c.status, c.reason)
        };
        assert_eq!(
            accepted("shop"),
            (super::super::ConditionStatus::True, reasons::ACCEPTED)
        );
        assert_eq!(
            accepted("other"),
            (
                super::super::ConditionStatus::False,
                reasons::NOT_ALLOWED_BY_LISTENERS
            )
        );
        let gw = &compiled.status.gateway_api.gateways[&ObjectKey::new("infra", "gw")];
        assert_eq!(gw.listeners[0].attached_routes, 1);
    }

    #[test]
    fn routes_attach_to_a_listener_that_cannot_serve_yet() {
        let mut objects = with_weir_class();
        let gateway: Gateway = serde_yaml::from_str(
            "metadata: {name: gw, namespace: infra}\n\
             spec:\n  gatewayClassName: weir\n  listeners:\n  \
             - {name: tls, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: nope}]}}",
        )
        .expect("gateway");
        objects
            .gateways
            .insert(ObjectKey::new("infra", "gw"), gateway.into());
        let route: HTTPRoute = serde_yaml::from_str(
            "metadata: {name: r, namespace: infra}\n\
             spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: gone, port: 80}]}]}",
        )
        .expect("route");
        objects
            .http_routes
            .insert(ObjectKey::new("infra", "r"), route.into());
        let compiled = super::super::compile(&objects, &super::super::testing::config());
        let api = &compiled.status.gateway_api;
        let listener = &api.gateways[&ObjectKey::new("infra", "gw")].listeners[0];
        assert_eq!(listener.attached_routes, 1);
        let brief =
            |c: &super::super::Condition| format!("{}={:?}/{}", c.type_, c.status, c.reason);
        let conditions: Vec<_> = listener.conditions.iter().map(brief).collect();
        assert_eq!(
            conditions,
            [
                "Accepted=True/Accepted",
                "Conflicted=False/NoConflicts",
                "Programmed=False/Invalid",
                "ResolvedRefs=False/InvalidCertificateRef"
            ]
        );
        let parent: Vec<_> = api.routes[&ObjectRef {
            kind: HTTP_ROUTE,
            key: ObjectKey::new("infra", "r"),
        }]
            .parents[0]
            .conditions
            .iter()
            .map(brief)
            .collect();
        assert_eq!(
            parent,
            [
                "Accepted=True/Accepted",
                "ResolvedRefs=False/BackendNotFound"
            ]
        );
        assert!(
            compiled
                .snapshot
                .listeners
                .iter()
                .all(|l| !l.name.starts_with("gateway-"))
        );
    }

    #[test]
    fn mirrors_name_their_own_namespace_and_fractions_are_percentages() {
        let filter: HTTPRouteFilter = serde_json::from_value(serde_json::json!({
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"name": "copy", "namespace": "shop", "port": 80},
                "fraction": {"numerator": 25, "denominator": 50}
            }
        }))
        .expect("filter");
        let entry = entry_of(&filter, "shop").expect("same namespace");
        let mirror = entry.request_mirror.expect("mirror");
        assert_eq!(
            (mirror.backend_ref.name.as_str(), mirror.percent),
            ("copy", Some(50))
        );
        assert!(entry_of(&filter, "other").is_err(), "another namespace");
    }
}
