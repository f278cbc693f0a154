//! TEMPORARY stand-in for `crate::endpoints` until the compile branch lands; deleted on merge.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::snapshot::{Cluster, ClusterKey, Endpoint, EndpointSet, EndpointSets};
use crate::store::Objects;

/// Endpoint set of one cluster from its Service's slices (ready endpoints only).
pub fn endpoint_set<'a>(
    cluster: &Cluster,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> EndpointSet {
    let mut endpoints = Vec::new();
    for slice in slices {
        let Some(port) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or("") == cluster.port_name)
        else {
            continue;
        };
        let Some(port) = port.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for ep in &slice.endpoints {
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready {
                continue;
            }
            for a in &ep.addresses {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    endpoints.push(Endpoint {
                        address: SocketAddr::new(ip, port),
                        weight: 1,
                    });
                }
            }
        }
    }
    endpoints.sort_by_key(|e| e.address);
    endpoints.dedup();
    EndpointSet { endpoints }
}

/// Endpoint sets of every cluster.
pub fn build(objects: &Objects, clusters: &BTreeMap<ClusterKey, Cluster>) -> EndpointSets {
    clusters
        .iter()
        .map(|(key, cluster)| {
            let slices = objects.endpoint_slices.values().filter(|s| {
                s.metadata.namespace.as_deref() == Some(key.namespace.as_str())
                    && s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kubernetes.io/service-name"))
                        == Some(&key.service)
            });
            (key.clone(), Arc::new(endpoint_set(cluster, slices)))
        })
        .collect()
}
