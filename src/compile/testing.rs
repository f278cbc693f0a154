//! Builders for unit tests that feed the shared passes an IR directly (no front end), so a
//! pass's rule can be checked with the least machinery — including what no front end
//! produces yet (a Service in another namespace, weighted backends, header matches).

use std::net::SocketAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Compiled;
use super::ir::{
    BackendRef, FieldPath, HostMatch, Ir, IrAction, IrForward, IrListener, IrRoute, IrRouteTable,
    PortRef, Rejection, Source, SourceId, SourceOrder, Unresolved,
};
use super::status::Status;
use crate::api::service::{Service, ServicePort, ServiceSpec};
use crate::snapshot::{ListenerProtocol, PathMatch, RouteMatch};
use crate::store::{KubeObject, ObjectKey, Objects};

/// A compile configuration for tests: weir's default controller names, the Ingress
/// listeners on 127.0.0.1:8080 (no HTTPS), Gateways on 0.0.0.0 without a pool.
pub(crate) fn config() -> super::CompileConfig {
    super::CompileConfig {
        controller_name: crate::api::values::DEFAULT_CONTROLLER_NAME.to_owned(),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        https_addr: None,
        default_backend: None,
        now_unix: 0,
        ingress_classes: Vec::new(),
        annotations_prefix: super::nginx::DEFAULT_PREFIX.to_owned(),
        gateway: super::gateway::GatewayConfig::default(),
    }
}

/// The route table the test listener serves.
pub(super) const TABLE: &str = "test";

/// Objects holding Services `namespace/name` with one TCP port 80 named `http`.
pub(super) fn services(keys: &[&str]) -> Objects {
    let mut objects = Objects::default();
    for key in keys {
        let (namespace, name) = key.split_once('/').expect("namespace/name");
        let service = Service {
            metadata: ObjectMeta {
                namespace: Some(namespace.to_owned()),
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: Some("http".to_owned()),
                    port: 80,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        };
        objects
            .apply(KubeObject::Service(service))
            .expect("test Services are named");
    }
    objects
}

/// An IR with one HTTP listener serving [`TABLE`], and one Ingress-like source per key (in
/// precedence order: the first key is the oldest).
pub(super) fn ir(sources: &[ObjectKey]) -> Ir<'_> {
    let mut ir = Ir::default();
    for key in sources {
        ir.add_source(Source {
            kind: "Ingress",
            key,
            generation: Some(3),
            metrics_per_route: false,
        });
    }
    ir.listeners.push(IrListener {
        name: "http".to_owned(),
        address: SocketAddr::from(([127, 0, 0, 1], 8080)),
        protocol: ListenerProtocol::Http,
        route_table: TABLE.to_owned(),
        certificates: None,
    });
    ir.route_tables
        .insert(TABLE.to_owned(), IrRouteTable::default());
    ir
}

/// A route of source `source` (rule 0, path `index`) matching path prefix `path`,
/// forwarding to `backends` (`namespace/service`, weight).
pub(super) fn route<'a>(
    source: usize,
    index: usize,
    path: &str,
    backends: &[(&'a str, u32)],
) -> IrRoute<'a> {
    let backends = backends
        .iter()
        .map(|(key, weight)| {
            let (namespace, service) = key.split_once('/').expect("namespace/service");
            let mut backend = BackendRef::new(namespace, service, PortRef::Number(80));
            backend.weight = *weight;
            backend
        })
        .collect();
    IrRoute {
        name: format!("route-{source}-{index}"),
        matches: RouteMatch::path(PathMatch::Prefix(path.into())),
        filters: Vec::new(),
        action: IrAction::Forward(IrForward {
            backends,
            unresolved: Unresolved {
                status: 500,
                body: "unresolved\n",
            },
            timeouts: Default::default(),
        }),
        field: FieldPath::indexed("spec.rules[0].http.paths[{}]", [index, 0]),
        order: SourceOrder {
            source: SourceId(source),
            rule: 0,
            index,
        },
    }
}

/// A route of source `source` whose action the front end rejected.
pub(super) fn rejected<'a>(source: usize, index: usize, path: &str) -> IrRoute<'a> {
    let mut route = route(source, index, path, &[]);
    route.action = IrAction::Reject(Rejection {
        type_: "Accepted",
        reason: "Rejected",
        message: format!("route {index} rejected"),
    });
    route
}

/// Add routes to host `host` of [`TABLE`].
pub(super) fn add<'a>(ir: &mut Ir<'a>, host: &str, routes: impl IntoIterator<Item = IrRoute<'a>>) {
    ir.route_tables
        .get_mut(TABLE)
        .expect("the test table")
        .hosts
        .entry(HostMatch::Exact(host.to_owned()))
        .or_default()
        .extend(routes);
}

/// Run the shared passes over `ir`.
pub(super) fn run<'a>(ir: Ir<'a>, objects: &'a Objects) -> Compiled {
    let mut status = Status::default();
    let policies = super::policy::Policies::default();
    let snapshot = super::passes(ir, objects, &policies, 0, &mut status);
    Compiled {
        snapshot,
        status: status.report,
    }
}
