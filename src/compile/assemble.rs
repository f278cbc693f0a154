//! Shared pass, the last: the IR (resolved, conflicts settled) → the [`Snapshot`].
//!
//! Builds each route table's virtual hosts from the hosts' routes, which arrive in
//! precedence order ([`crate::snapshot::RouteMatch::precedence`], then source order) from the
//! conflicts pass; turns each route's references into snapshot backends through
//! [`Resolver::action`], which reports the route's unresolved references and rejection in
//! this same order and moves only the clusters served routes use into the snapshot (their
//! backends' and their filters' — [`crate::snapshot::Filter::cluster`]); picks the
//! default route (the surviving candidate, else the fallback); attaches each HTTPS listener's
//! certificates; and numbers the routes ([`Snapshot::assign_route_ids`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Ir;
use super::backends::Resolver;
use super::ir::{HostMatch, IrRoute, Source};
use super::status::Status;
use crate::snapshot::{
    Cluster, ClusterKey, Listener, Route, RouteAction, RouteId, RouteTable, Snapshot, TlsConfig,
    VirtualHost, VirtualHosts,
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
                     clusters: &mut BTreeMap<ClusterKey, Arc<Cluster>>,
                     status: &mut Status| {
        let source: &Source<'_> = &sources[route.order.source.0];
        let action = resolver.action(route.action, source, route.field, who, clusters, status)?;
        // The clusters the route's filters send to (external auth, mirrors) count as used,
        // like its backends' clusters; the route's own filters run whatever the action.
        let backend_filters = match &action {
            RouteAction::Forward(forward) => forward.backends.as_slice(),
            RouteAction::Redirect(_) | RouteAction::Respond(_) => &[],
        };
        let filters = route
            .filters
            .iter()
            .chain(backend_filters.iter().flat_map(|b| &b.filters));
        resolver.filter_clusters(filters, clusters, status);
        // `format!` leaves room to spare; 50,000 names keep none.
        let mut name = route.name;
        name.shrink_to_fit();
        Some(Route {
            id: RouteId::default(),
            name,
            matches: route.matches,
            filters: route.filters,
            action,
            metrics_per_route: source.metrics_per_route,
        })
    };
    let mut tables = BTreeMap::new();
    for (name, table) in route_tables {
        let mut virtual_hosts = VirtualHosts {
            deep_wildcards: table.deep_wildcards,
            ..VirtualHosts::default()
        };
        for (host, routes) in table.hosts {
            debug_assert!(
                routes
                    .windows(2)
                    .all(|w| (w[0].matches.precedence(), w[0].order)
                        <= (w[1].matches.precedence(), w[1].order)),
                "invariant: the conflicts pass sorts routes"
            );
            let mut routes: Vec<Route> = routes
                .into_iter()
                .filter_map(|route| serve(route, "requests", &mut clusters, status))
                .collect();
            // The collect reuses the (larger) IR routes' buffer: give the excess back, it is
            // kept as long as the snapshot.
            routes.shrink_to_fit();
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

#[cfg(test)]
mod tests {
    use super::super::testing::{TABLE, add, ir, route, run, services};
    use crate::snapshot::ClusterKey;
    use crate::store::ObjectKey;

    #[test]
    fn only_clusters_of_served_routes_reach_the_snapshot() {
        // Both resolve; the younger route loses the conflict, so its Service gets no cluster.
        let objects = services(&["default/a", "default/b", "default/c"]);
        let keys = [
            ObjectKey::new("default", "old"),
            ObjectKey::new("default", "young"),
        ];
        let mut ir = ir(&keys);
        add(
            &mut ir,
            "h",
            [
                route(0, 0, "/x", &[("default/a", 1)]),
                route(1, 0, "/x", &[("default/b", 1)]),
            ],
        );
        ir.route_tables
            .get_mut(TABLE)
            .expect("table")
            .default_route
            .fallback = Some(route(1, 1, "/", &[("default/c", 1)]));
        let compiled = run(ir, &objects);
        let clusters: Vec<&ClusterKey> = compiled.snapshot.clusters.keys().collect();
        assert_eq!(
            clusters,
            [
                &ClusterKey::new("default", "a", 80),
                &ClusterKey::new("default", "c", 80)
            ]
        );
    }

    #[test]
    fn a_filter_cluster_reaches_the_snapshot_through_the_served_routes_that_use_it() {
        use crate::snapshot::{Filter, RequestMirror};
        let objects = services(&["default/a", "default/shadow", "default/unused"]);
        let keys = [
            ObjectKey::new("default", "old"),
            ObjectKey::new("default", "young"),
        ];
        let mirror = |service: &str| {
            Filter::RequestMirror(RequestMirror {
                cluster: ClusterKey::new("default", service, 80),
                percent: 100,
                hostname: None,
            })
        };
        let mut served = route(0, 0, "/x", &[("default/a", 1)]);
        served.filters.push(mirror("shadow"));
        // Loses the conflict: its filter's cluster is not used by anything served.
        let mut lost = route(1, 0, "/x", &[("default/a", 1)]);
        lost.filters.push(mirror("unused"));
        let mut ir = ir(&keys);
        add(&mut ir, "h", [served, lost]);
        let compiled = run(ir, &objects);
        let clusters: Vec<&ClusterKey> = compiled.snapshot.clusters.keys().collect();
        assert_eq!(
            clusters,
            [
                &ClusterKey::new("default", "a", 80),
                &ClusterKey::new("default", "shadow", 80)
            ]
        );
    }

    #[test]
    fn routes_are_served_in_precedence_then_source_order() {
        let objects = services(&["default/a"]);
        let keys = [
            ObjectKey::new("default", "old"),
            ObjectKey::new("default", "young"),
        ];
        let mut ir = ir(&keys);
        add(
            &mut ir,
            "h",
            [
                route(1, 0, "/", &[("default/a", 1)]),
                route(1, 1, "/long/er", &[("default/a", 1)]),
                route(0, 0, "/long", &[("default/a", 1)]),
            ],
        );
        let compiled = run(ir, &objects);
        let table = &compiled.snapshot.route_tables[TABLE];
        let names: Vec<&str> = table.virtual_hosts.exact["h"]
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["route-1-1", "route-0-0", "route-1-0"]);
        let ids: Vec<u32> = compiled.snapshot.routes().map(|r| r.id.0).collect();
        assert_eq!(ids, [0, 1, 2]);
    }
}
