//! `compile(&Objects, &CompileConfig) -> Compiled`: a pure, deterministic function from
//! Kubernetes objects to a [`crate::snapshot::Snapshot`] and per-object status.
//!
//! No IO, no clock (the current time for certificate expiry is an input), no randomness.
//! Bad input never aborts compile: the offending object gets a [`Condition`] and only that
//! piece is skipped.
//!
//! # Passes, and why in this order
//!
//! 1. **listeners** — from the command line only; nothing depends on objects.
//! 2. **classes** (`classes.rs`) — decides which Ingresses are weir's and their precedence
//!    (oldest first). Every later pass looks only at those, in that order, so "the older
//!    Ingress wins" holds everywhere.
//! 3. **tls** (`tls.rs`) — certificates per SNI host. Independent of routes; run before them so
//!    an Ingress's TLS conditions come before its rule conditions in the report.
//! 4. **ingress** (`ingress.rs`) — hosts, paths, precedence sort and cross-Ingress conflicts.
//!    Conflicts are settled before backends are resolved, so a losing path never creates a
//!    cluster nor reports a missing Service it would never have served.
//! 5. **backends** (`backends.rs`) — resolves the surviving routes' Services into clusters
//!    (503 actions for unresolvable ones), then the default backend.
//! 6. **assemble** — virtual hosts and route names.
//!
//! Conditions are collected by the `status.rs` accumulator.
//!
//! # Choices where the Ingress spec leaves room
//!
//! - `pathType: ImplementationSpecific` is matched as `Prefix` (as Contour, and ingress-nginx
//!   without regex, do); an empty ImplementationSpecific path means `/`.
//! - A backend Service of type `ExternalName` is not proxied to (weir does not resolve DNS
//!   names in this version): its routes answer 503 with `ExternalNameNotSupported`.
//! - `resource` backends are skipped with `ResourceBackendNotSupported`.
//! - A missing Service or Service port makes the route answer 503 (never 404, never the
//!   default backend), with `ServiceNotFound` / `ServicePortNotFound`.
//! - Conflicts (same host, path and path type; two default backends; two certificates for
//!   one host) go to the oldest Ingress, then the first in namespace/name order; the loser
//!   gets an `Error` condition naming the winner.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::Serialize;

mod backends;
mod classes;
mod ingress;
mod status;
mod tls;

use crate::snapshot::router::DEFAULT_BACKEND_ROUTE;
use crate::snapshot::{
    Listener, ListenerProtocol, PathMatch, Route, RouteId, RouteMatch, RouteTable, Snapshot,
    VirtualHost, VirtualHosts,
};

/// Name of the route table both Ingress listeners serve.
pub const INGRESS_ROUTE_TABLE: &str = "ingress";
use crate::store::{ObjectKey, Objects};

/// Settings of compile that come from the command line, not from objects.
#[derive(Debug, Clone)]
pub struct CompileConfig {
    /// IngressClass `spec.controller` value that marks weir's classes.
    pub controller_name: String,
    /// Address of the plain HTTP listener.
    pub http_addr: SocketAddr,
    /// Address of the HTTPS listener (`None`: no HTTPS listener).
    pub https_addr: Option<SocketAddr>,
    /// Controller-wide default backend (`namespace/service:port`), used when no Ingress
    /// declares `spec.defaultBackend`.
    pub default_backend: Option<DefaultBackend>,
    /// "Now" as seconds since the Unix epoch, for certificate expiry (an input, so compile
    /// stays pure).
    pub now_unix: i64,
}

/// A controller-wide default backend: a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultBackend {
    /// The Service.
    pub service: ObjectKey,
    /// Its port, by number or by name.
    pub port: String,
}

/// The output of [`compile`].
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// The routing model.
    pub snapshot: Snapshot,
    /// What compile has to say about each object.
    pub status: StatusReport,
}

/// Per-object diagnostics plus the set of Ingresses weir owns.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusReport {
    /// Conditions per object; objects with nothing to report are absent.
    pub conditions: BTreeMap<ObjectRef, Vec<Condition>>,
    /// Ingresses that belong to weir's class (whether or not all their rules were accepted):
    /// the ones whose `status.loadBalancer` weir writes.
    pub owned_ingresses: BTreeSet<ObjectKey>,
}

impl StatusReport {
    /// Whether any object or piece of one was rejected.
    pub fn has_rejections(&self) -> bool {
        self.conditions
            .values()
            .flatten()
            .any(|c| c.severity == Severity::Error)
    }
}

/// Kind plus key of an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    /// Kubernetes kind (`Ingress`, `Service`, `Secret`, `IngressClass`, ...).
    pub kind: &'static str,
    /// Namespace and name.
    #[serde(flatten)]
    pub key: ObjectKey,
}

/// One diagnostic about an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// Condition type, e.g. `Accepted`, `ResolvedRefs`, `TLSValid`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `Error` when something was rejected (skipped), `Warning` when it was accepted with a
    /// caveat.
    pub severity: Severity,
    /// CamelCase reason constant (see `crate::api::reasons`).
    pub reason: &'static str,
    /// Human-readable explanation naming the offending field.
    pub message: String,
}

/// How bad a [`Condition`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Severity {
    /// Accepted, with a caveat.
    Warning,
    /// Rejected: the piece was skipped.
    Error,
}

/// Compile objects into a snapshot and status. Pure and deterministic.
pub fn compile(objects: &Objects, config: &CompileConfig) -> Compiled {
    let mut status = status::Status::default();

    // 2. classes
    let owned = classes::owned_ingresses(objects, config, &mut status);

    // 3. tls
    let tls = tls::certificates(&owned, objects, config, &mut status);

    // 4. ingress: hosts, paths, conflicts
    let pending = ingress::routes(&owned, &mut status);

    // 5. backends
    let mut backends = backends::Backends::new(objects);
    let mut virtual_hosts = VirtualHosts::default();
    for (host, pending_routes) in pending {
        let mut routes = Vec::with_capacity(pending_routes.len());
        for pending in pending_routes {
            let ingress = &owned[pending.owner];
            let field = || {
                format!(
                    "spec.rules[{}].http.paths[{}]",
                    pending.rule, pending.path_index
                )
            };
            let Some(action) = backends.resolve(ingress.key, pending.backend, &field, &mut status)
            else {
                continue;
            };
            // 6. assemble (routes are already in precedence order)
            routes.push(Route {
                id: RouteId::default(),
                name: format!(
                    "{}/{}/{}/{}",
                    ingress.key.namespace, ingress.key.name, pending.rule, pending.path_index
                ),
                matches: pending.matches,
                filters: Vec::new(),
                action,
            });
        }
        if routes.is_empty() {
            continue;
        }
        let vhost = VirtualHost {
            host: host.display(),
            routes,
        };
        match host {
            ingress::HostKey::Exact(name) => {
                virtual_hosts.exact.insert(name, vhost);
            }
            ingress::HostKey::Wildcard(suffix) => {
                virtual_hosts.wildcard.insert(suffix, vhost);
            }
            ingress::HostKey::Any => virtual_hosts.any = Some(vhost),
        }
    }
    let default_route =
        backends::default_backend(&owned, config, &mut backends, &mut status).map(|action| Route {
            id: RouteId::default(),
            name: DEFAULT_BACKEND_ROUTE.to_owned(),
            matches: RouteMatch::path(PathMatch::Prefix("/".to_owned())),
            filters: Vec::new(),
            action,
        });
    let table = RouteTable {
        virtual_hosts,
        default_route,
    };

    // 1. listeners (from the command line; both serve the one Ingress table)
    let mut listeners = vec![Listener {
        name: "http".to_owned(),
        address: config.http_addr,
        protocol: ListenerProtocol::Http,
        route_table: INGRESS_ROUTE_TABLE.to_owned(),
        tls: None,
    }];
    if let Some(address) = config.https_addr {
        listeners.push(Listener {
            name: "https".to_owned(),
            address,
            protocol: ListenerProtocol::Https,
            route_table: INGRESS_ROUTE_TABLE.to_owned(),
            tls: Some(tls),
        });
    }

    let mut snapshot = Snapshot {
        listeners,
        route_tables: [(INGRESS_ROUTE_TABLE.to_owned(), table)].into(),
        clusters: backends.clusters,
    };
    snapshot.assign_route_ids();
    Compiled {
        snapshot,
        status: status.report,
    }
}
