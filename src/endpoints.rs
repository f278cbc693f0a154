//! EndpointSlice → [`crate::snapshot::EndpointSet`], published apart from the snapshot.
//!
//! Endpoints change far more often than routes (every rollout, every scale), so they bypass
//! compile: the reconciler rebuilds only the endpoint sets and the proxy swaps them in
//! without touching routes (ARCHITECTURE.md §4).
//!
//! Rules, per the EndpointSlice API:
//! - the slices of a Service are those labelled `kubernetes.io/service-name: <service>` in its
//!   namespace; all are merged;
//! - only `IPv4` and `IPv6` slices are used (`FQDN` slices are ignored);
//! - the endpoint port is resolved **per slice**, by the Service port's name (`""` for an
//!   unnamed port), since it can differ between slices during a rollout; a slice without
//!   that port, or with a non-TCP one, contributes nothing;
//! - `ready` absent means ready; `serving` absent means the same as `ready`; `terminating`
//!   absent means not terminating. Ready endpoints are used; only when there is none,
//!   endpoints that are `serving` and `terminating` are used (graceful drain);
//! - the result is deduplicated by address and sorted;
//! - a cluster forwarded to its Service's ClusterIP (`BackendPolicy` `forwardToClusterIP`)
//!   has that one endpoint (the ClusterIP and the Service port), slices aside;
//! - topology, when weir knows its zone (`--zone`): an endpoint is *preferred* when its
//!   EndpointSlice hints name that zone (hints are used only when every used endpoint has
//!   them, as kube-proxy does), or — without hints, under Service
//!   `trafficDistribution: PreferClose` — when its `zone` is that zone. The proxy sends to
//!   preferred endpoints while any of them is usable, else to all (`proxy::upstream`).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::api::endpointslice::EndpointSlice;
use crate::snapshot::{Cluster, ClusterKey, Endpoint, EndpointSet, EndpointSets};
use crate::store::Objects;

/// The endpoint set of one cluster from the slices of its Service.
pub fn endpoint_set<'a>(
    cluster: &Cluster,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    zone: Option<&str>,
) -> EndpointSet {
    if let Some(ip) = cluster.cluster_ip {
        // Forwarded to the Service's ClusterIP: its one endpoint, whatever the slices say.
        return EndpointSet {
            endpoints: vec![Endpoint::new(SocketAddr::new(ip, cluster.key.port()))],
        };
    }
    // (address, hinted for our zone (None: no hints), in our zone)
    let mut ready: Vec<(SocketAddr, Option<bool>, bool)> = Vec::new();
    let mut draining = Vec::new();
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let port = slice.ports.as_deref().unwrap_or_default().iter().find(|p| {
            p.name.as_deref().unwrap_or("") == cluster.port_name
                && p.protocol.as_deref().is_none_or(|proto| proto == "TCP")
        });
        let Some(port) = port
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        if port == 0 {
            continue;
        }
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.as_ref();
            let is_ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(is_ready);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            let target = if is_ready && !terminating {
                &mut ready
            } else if serving && terminating {
                &mut draining
            } else {
                continue;
            };
            let hinted = endpoint
                .hints
                .as_ref()
                .and_then(|h| h.for_zones.as_ref())
                .filter(|z| !z.is_empty())
                .map(|zones| zones.iter().any(|z| Some(z.name.as_str()) == zone));
            let local = zone.is_some() && endpoint.zone.as_deref() == zone;
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    target.push((SocketAddr::new(ip, port), hinted, local));
                }
            }
        }
    }
    let mut addresses = if ready.is_empty() { draining } else { ready };
    addresses.sort_unstable_by_key(|a| a.0);
    addresses.dedup_by_key(|a| a.0);
    let hints = addresses.iter().all(|a| a.1.is_some());
    EndpointSet {
        endpoints: addresses
            .into_iter()
            .map(|(address, hinted, local)| Endpoint {
                preferred: zone.is_some()
                    && if hints {
                        hinted == Some(true)
                    } else {
                        cluster.prefer_close && local
                    },
                ..Endpoint::new(address)
            })
            .collect(),
    }
}

/// The endpoint sets of every cluster (an empty set for a cluster whose Service has no
/// usable endpoint). Slices are indexed by Service once, not scanned per cluster. `zone` is
/// the proxy's zone, for topology.
pub fn build(
    objects: &Objects,
    clusters: &BTreeMap<ClusterKey, Arc<Cluster>>,
    zone: Option<&str>,
) -> EndpointSets {
    let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for (key, slice) in &objects.endpoint_slices {
        if let Some(service) = slice.service() {
            by_service
                .entry((key.namespace.as_str(), service))
                .or_default()
                .push(slice);
        }
    }
    clusters
        .iter()
        .map(|(key, cluster)| {
            let slices = by_service
                .get(&(key.namespace(), key.service()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            (
                key.clone(),
                Arc::new(endpoint_set(cluster, slices.iter().copied(), zone)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::annotations;
    use crate::api::endpointslice::{Endpoint as K8sEndpoint, EndpointConditions, EndpointPort};
    use crate::snapshot::UpstreamProtocol;
    use crate::store::ObjectKey;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cluster(port_name: &str) -> Cluster {
        Cluster::new(
            ClusterKey::new("default", "web", 80),
            port_name,
            UpstreamProtocol::Http1,
        )
    }

    /// (address, ready, serving, terminating)
    type Ep<'a> = (&'a str, Option<bool>, Option<bool>, Option<bool>);

    fn slice(
        name: &str,
        service: &str,
        address_type: &str,
        ports: &[(&str, i32)],
        endpoints: &[Ep<'_>],
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some(
                    [(
                        annotations::SERVICE_NAME_LABEL.to_owned(),
                        service.to_owned(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            address_type: address_type.into(),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port)| EndpointPort {
                        name: (!name.is_empty()).then(|| (*name).to_owned()),
                        port: Some(*port),
                        ..Default::default()
                    })
                    .collect(),
            ),
            endpoints: endpoints
                .iter()
                .map(|(address, ready, serving, terminating)| K8sEndpoint {
                    addresses: vec![(*address).to_owned()],
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        serving: *serving,
                        terminating: *terminating,
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn addresses(set: &EndpointSet) -> Vec<String> {
        set.endpoints
            .iter()
            .map(|e| e.address.to_string())
            .collect()
    }

    #[test]
    fn a_cluster_forwarded_to_its_cluster_ip_has_that_one_endpoint() {
        let s = slice(
            "a",
            "web",
            "IPv4",
            &[("http", 8080)],
            &[("10.0.0.1", None, None, None)],
        );
        let mut c = cluster("http");
        c.cluster_ip = Some("10.96.0.7".parse().expect("ip"));
        assert_eq!(addresses(&endpoint_set(&c, [&s], None)), ["10.96.0.7:80"]);
    }

    #[test]
    fn absent_ready_means_ready() {
        let s = slice(
            "a",
            "web",
            "IPv4",
            &[("http", 8080)],
            &[("10.0.0.1", None, None, None)],
        );
        assert_eq!(
            addresses(&endpoint_set(&cluster("http"), [&s], None)),
            ["10.0.0.1:8080"]
        );
    }

    #[test]
    fn not_ready_endpoints_are_excluded() {
        let s = slice(
            "a",
            "web",
            "IPv4",
            &[("http", 8080)],
            &[
                ("10.0.0.1", Some(false), Some(false), None),
                ("10.0.0.2", Some(true), None, None),
            ],
        );
        assert_eq!(
            addresses(&endpoint_set(&cluster("http"), [&s], None)),
            ["10.0.0.2:8080"]
        );
    }

    #[test]
    fn serving_terminating_used_only_without_ready() {
        let eps = [
            ("10.0.0.1", Some(false), Some(true), Some(true)),
            ("10.0.0.2", Some(false), Some(false), Some(true)),
        ];
        let draining = slice("a", "web", "IPv4", &[("http", 8080)], &eps);
        assert_eq!(
            addresses(&endpoint_set(&cluster("http"), [&draining], None)),
            ["10.0.0.1:8080"]
        );
        let ready = slice(
            "b",
            "web",
            "IPv4",
            &[("http", 8080)],
            &[("10.0.0.3", Some(true), Some(true), Some(false))],
        );
        assert_eq!(
            addresses(&endpoint_set(&cluster("http"), [&draining, &ready], None)),
            ["10.0.0.3:8080"]
        );
    }

    #[test]
    fn port_resolved_per_slice_by_name() {
        let old = slice(
            "a",
            "web",
            "IPv4",
            &[("metrics", 9090), ("http", 8080)],
            &[("10.0.0.1", None, None, None)],
        );
        let new = slice(
            "b",
            "web",
            "IPv4",
            &[("http", 8081)],
            &[("10.0.0.2", None, None, None)],
        );
        let other = slice(
            "c",
            "web",
            "IPv4",
            &[("grpc", 7000)],
            &[("10.0.0.3", None, None, None)],
        );
        assert_eq!(
            addresses(&endpoint_set(&cluster("http"), [&old, &new, &other], None)),
            ["10.0.0.1:8080", "10.0.0.2:8081"]
        );
    }

    #[test]
    fn unnamed_port_matches_unnamed_service_port() {
        let s = slice(
            "a",
            "web",
            "IPv4",
            &[("", 8080)],
            &[("10.0.0.1", None, None, None)],
        );
        assert_eq!(
            addresses(&endpoint_set(&cluster(""), [&s], None)),
            ["10.0.0.1:8080"]
        );
        assert!(
            endpoint_set(&cluster("http"), [&s], None)
                .endpoints
                .is_empty()
        );
    }

    #[test]
    fn fqdn_slices_ignored_ipv6_used() {
        let fqdn = slice(
            "a",
            "web",
            "FQDN",
            &[("http", 80)],
            &[("example.com", None, None, None)],
        );
        let v6 = slice(
            "b",
            "web",
            "IPv6",
            &[("http", 80)],
            &[("fd00::1", None, None, None)],
        );
        assert_eq!(
            addresses(&endpoint_set(&cluster("http"), [&fqdn, &v6], None)),
            ["[fd00::1]:80"]
        );
    }

    #[test]
    fn merged_slices_are_deduplicated_and_sorted() {
        let a = slice(
            "a",
            "web",
            "IPv4",
            &[("http", 80)],
            &[
                ("10.0.0.9", None, None, None),
                ("10.0.0.1", None, None, None),
            ],
        );
        let b = slice(
            "b",
            "web",
            "IPv4",
            &[("http", 80)],
            &[("10.0.0.1", None, None, None), ("bogus", None, None, None)],
        );
        assert_eq!(
            addresses(&endpoint_set(&cluster("http"), [&a, &b], None)),
            ["10.0.0.1:80", "10.0.0.9:80"]
        );
    }

    #[test]
    fn build_indexes_slices_by_service_label() {
        let mut objects = Objects::default();
        for s in [
            slice(
                "web-1",
                "web",
                "IPv4",
                &[("http", 80)],
                &[("10.0.0.1", None, None, None)],
            ),
            slice(
                "web-2",
                "web",
                "IPv4",
                &[("http", 80)],
                &[("10.0.0.2", None, None, None)],
            ),
            slice(
                "api-1",
                "api",
                "IPv4",
                &[("http", 80)],
                &[("10.0.0.3", None, None, None)],
            ),
        ] {
            let key = ObjectKey::new("default", s.metadata.name.clone().expect("named"));
            objects.endpoint_slices.insert(key, s.into());
        }
        let web = cluster("http");
        let mut missing = cluster("http");
        missing.key = ClusterKey::new(missing.key.namespace(), "gone", missing.key.port());
        let clusters = [
            (web.key.clone(), Arc::new(web.clone())),
            (missing.key.clone(), Arc::new(missing.clone())),
        ]
        .into();
        let sets = build(&objects, &clusters, None);
        assert_eq!(addresses(&sets[&web.key]), ["10.0.0.1:80", "10.0.0.2:80"]);
        assert!(sets[&missing.key].endpoints.is_empty());
    }

    fn zoned(address: &str, zone: &str, hint: Option<&str>) -> K8sEndpoint {
        K8sEndpoint {
            addresses: vec![address.to_owned()],
            zone: Some(zone.to_owned()),
            hints: hint.map(|h| {
                Box::new(k8s_openapi::api::discovery::v1::EndpointHints {
                    for_zones: Some(vec![k8s_openapi::api::discovery::v1::ForZone {
                        name: h.to_owned(),
                    }]),
                    ..Default::default()
                })
            }),
            ..Default::default()
        }
    }

    fn preferred(set: &EndpointSet) -> Vec<String> {
        set.endpoints
            .iter()
            .filter(|e| e.preferred)
            .map(|e| e.address.to_string())
            .collect()
    }

    #[test]
    fn topology_prefers_the_own_zone_by_hints_or_under_prefer_close() {
        let mut s = slice("a", "web", "IPv4", &[("http", 80)], &[]);
        s.endpoints = vec![
            zoned("10.0.0.1", "a", Some("a")),
            zoned("10.0.0.2", "b", Some("b")),
            zoned("10.0.0.3", "b", Some("a")),
        ];
        let plain = cluster("http");
        // Hints decide, whatever the endpoint's own zone and the Service's preference.
        assert_eq!(
            preferred(&endpoint_set(&plain, [&s], Some("a"))),
            ["10.0.0.1:80", "10.0.0.3:80"]
        );
        // No zone given: nothing is preferred.
        assert!(preferred(&endpoint_set(&plain, [&s], None)).is_empty());
        // One endpoint without hints: hints are ignored (kube-proxy's rule); then only
        // PreferClose makes the endpoint's own zone count.
        s.endpoints.push(zoned("10.0.0.4", "a", None));
        assert!(preferred(&endpoint_set(&plain, [&s], Some("a"))).is_empty());
        let mut close = cluster("http");
        close.prefer_close = true;
        assert_eq!(
            preferred(&endpoint_set(&close, [&s], Some("a"))),
            ["10.0.0.1:80", "10.0.0.4:80"]
        );
    }
}
