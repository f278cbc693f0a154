//! Shared pass, the last: the IR (resolved, conflicts settled) → the [`Snapshot`].
//!
//! Builds each route table's virtual hosts from the hosts' routes, which arrive in
//! precedence order ([`crate::snapshot::RouteMatch::precedence`], then source order) from the
//! conflicts pass; turns each route's references into snapshot backends through
//! [`Resolver::action`], which reports the route's unresolved references and rejection in
//! this same order and moves only the clusters served routes use into the snapshot; picks the
//! default route (the surviving candidate, else the fallback); attaches each HTTPS listener's
//! certificates; and numbers the routes ([`Snapshot::assign_route_ids`]).

use std::collections::BTreeMap;

use super::Ir;
use super::backends::Resolver;
use super::ir::{HostMatch, IrRoute, Source};
use super::status::Status;
use crate::snapshot::{
    Cluster, ClusterKey, Listener, Route, RouteId, RouteTable, Snapshot, TlsConfig, VirtualHost,
    VirtualHosts,
};

/// Build the snapshot; `tls` is the tls pass's output by certificate set.
pub(super) fn snapshot<'a>(
    ir: Ir<'a>,
    resolver: &mut Resolver<'a>,
    tls: &BTreeMap<String, TlsConfig>,
    status: &mut Status,
) -> Snapshot {
    let Ir {
        sources,
        listeners,
        route_tables,
        certificate_sets: _,
    } = ir;
    let mut clusters = BTreeMap::new();
    let mut serve = |route: IrRoute<'a>,
                     who: &str,
                     clusters: &mut BTreeMap<ClusterKey, Cluster>,
                     status: &mut Status| {
        let source: &Source<'_> = &sources[route.order.source.0];
        let action = resolver.action(route.action, source, route.field, who, clusters, status)?;
        Some(Route {
            id: RouteId::default(),
            name: route.name,
            matches: route.matches,
            filters: route.filters,
            action,
        })
    };
    let mut tables = BTreeMap::new();
    for (name, table) in route_tables {
        let mut virtual_hosts = VirtualHosts::default();
        for (host, routes) in table.hosts {
            debug_assert!(
                routes
                    .windows(2)
                    .all(|w| (w[0].matches.precedence(), w[0].order)
                        <= (w[1].matches.precedence(), w[1].order)),
                "invariant: the conflicts pass sorts routes"
            );
            let routes: Vec<Route> = routes
                .into_iter()
                .filter_map(|route| serve(route, "requests", &mut clusters, status))
                .collect();
            if routes.is_empty() {
                continue;
            }
            let vhost = VirtualHost {
                host: host.display(),
                routes,
            };
            match host {
                HostMatch::Exact(host) => {
                    virtual_hosts.exact.insert(host, vhost);
                }
                HostMatch::Wildcard(suffix) => {
                    virtual_hosts.wildcard.insert(suffix, vhost);
                }
                HostMatch::Any => virtual_hosts.any = Some(vhost),
            }
        }
        // After the conflicts pass at most one candidate is not rejected; rejected ones
        // report their rejection here and serve nothing.
        let default = table.default_route;
        let mut default_route = None;
        for candidate in default.candidates {
            if let Some(route) = serve(candidate, "requests", &mut clusters, status) {
                default_route = Some(route);
            }
        }
        if default_route.is_none() {
            default_route = default
                .fallback
                .and_then(|route| serve(route, "unmatched requests", &mut clusters, status));
        }
        tables.insert(
            name,
            RouteTable {
                virtual_hosts,
                default_route,
            },
        );
    }
    let listeners = listeners
        .into_iter()
        .map(|listener| Listener {
            tls: listener
                .certificates
                .as_ref()
                .map(|set| tls.get(set).cloned().unwrap_or_default()),
            name: listener.name,
            address: listener.address,
            protocol: listener.protocol,
            route_table: listener.route_table,
        })
        .collect();
    let mut snapshot = Snapshot {
        listeners,
        route_tables: tables,
        clusters,
    };
    snapshot.assign_route_ids();
    snapshot
}
