//! discovery.k8s.io/v1 EndpointSlice, as weir keeps it: only what [`crate::endpoints`] builds
//! endpoint sets from.
//!
//! A cluster's EndpointSlices are the largest part of what a controller holds (one endpoint
//! per ready pod, each with a `targetRef`, `nodeName` and `hostname`, and a BTreeMap of labels
//! per slice). This type is deserialized straight from the API server's JSON (and from
//! manifest files) with only the fields below, so the rest is never allocated: 5,000 slices
//! of 4 endpoints took 14.7 MiB as k8s-openapi's `EndpointSlice` and take a fraction of
//! that here (`cargo bench --bench memory`). The field names and types are k8s-openapi's, so
//! an object is written the same way; [`From`] converts k8s-openapi's.
//!
//! The `kubernetes.io/service-name` label moves into [`EndpointSlice::service`] when the store
//! admits the slice ([`EndpointSlice::admit`]), and the labels map goes.

use k8s_openapi::api::discovery::v1 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};

pub use k8s::{EndpointConditions, EndpointHints, ForZone};

use super::annotations::SERVICE_NAME_LABEL;

/// An EndpointSlice: a set of endpoints of one Service, with their ports.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// Name and namespace (the rest is dropped when the store admits it).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6` or `FQDN`.
    #[serde(default)]
    pub address_type: String,
    /// The ports of every endpoint of the slice.
    #[serde(default)]
    pub ports: Option<Vec<EndpointPort>>,
    /// The endpoints (`null` on the wire for none).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub endpoints: Vec<Endpoint>,
    /// The Service it belongs to: its `kubernetes.io/service-name` label, moved here by
    /// [`EndpointSlice::admit`].
    #[serde(skip)]
    pub service: Option<String>,
}

/// One port of an EndpointSlice.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    /// The Service port's name (absent for an unnamed port).
    #[serde(default)]
    pub name: Option<String>,
    /// The port number.
    #[serde(default)]
    pub port: Option<i32>,
    /// `TCP` (absent), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// One endpoint of an EndpointSlice.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Its addresses (of the slice's address type).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub addresses: Vec<String>,
    /// Ready, serving, terminating.
    #[serde(default)]
    pub conditions: Option<EndpointConditions>,
    /// Its zone (topology).
    #[serde(default)]
    pub zone: Option<String>,
    /// Zone hints (topology-aware routing), boxed: 48 bytes inline in each endpoint otherwise,
    /// and most slices carry none.
    #[serde(default)]
    pub hints: Option<Box<EndpointHints>>,
}

impl EndpointSlice {
    /// The name of its Service: [`EndpointSlice::service`], or the label while the store has
    /// not admitted it yet.
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref().or_else(|| {
            self.metadata
                .labels
                .as_ref()?
                .get(SERVICE_NAME_LABEL)
                .map(String::as_str)
        })
    }

    /// Reduces it to what endpoint sets are built from: the Service label moves into
    /// [`EndpointSlice::service`], and every other label and annotation, the owner and the
    /// generated name go (the uid stays: events name it). Idempotent.
    pub fn admit(&mut self) {
        if let Some(mut labels) = self.metadata.labels.take()
            && let Some(service) = labels.remove(SERVICE_NAME_LABEL)
        {
            self.service = Some(service);
        }
        self.metadata.annotations = None;
        self.metadata.owner_references = None;
        self.metadata.generate_name = None;
        self.metadata.creation_timestamp = None;
        self.metadata.generation = None;
        for endpoint in &mut self.endpoints {
            endpoint.addresses.shrink_to_fit();
        }
        self.endpoints.shrink_to_fit();
    }
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

same_resource_as!(EndpointSlice, k8s::EndpointSlice);

impl From<k8s::EndpointSlice> for EndpointSlice {
    fn from(slice: k8s::EndpointSlice) -> Self {
        EndpointSlice {
            metadata: slice.metadata,
            address_type: slice.address_type,
            ports: slice.ports.map(|ports| {
                ports
                    .into_iter()
                    .map(|p| EndpointPort {
                        name: p.name,
                        port: p.port,
                        protocol: p.protocol,
                    })
                    .collect()
            }),
            endpoints: slice
                .endpoints
                .into_iter()
                .map(|e| Endpoint {
                    addresses: e.addresses,
                    conditions: e.conditions,
                    zone: e.zone,
                    hints: e.hints.map(Box::new),
                })
                .collect(),
            service: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_the_api_servers_json_keeping_only_what_endpoint_sets_need() {
        let json = r#"{
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "namespace": "shop", "uid": "u",
                "labels": {"kubernetes.io/service-name": "web",
                           "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "s"}]},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                "nodeName": "n1", "hostname": "h", "zone": "z1",
                "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop", "uid": "p"},
                "hints": {"forZones": [{"name": "z1"}]}}]
        }"#;
        let mut slice: EndpointSlice = serde_json::from_str(json).expect("parses");
        assert_eq!(slice.service(), Some("web"));
        slice.admit();
        slice.admit();
        assert_eq!(slice.service(), Some("web"));
        assert!(slice.metadata.labels.is_none() && slice.metadata.owner_references.is_none());
        assert_eq!(slice.metadata.name.as_deref(), Some("web-abc"));
        let e = &slice.endpoints[0];
        assert_eq!(e.addresses, ["10.0.0.1"]);
        assert_eq!(e.zone.as_deref(), Some("z1"));
        assert_eq!(e.conditions.as_ref().and_then(|c| c.ready), Some(true));
        assert_eq!(
            e.hints
                .as_ref()
                .and_then(|h| h.for_zones.as_ref())
                .map(Vec::len),
            Some(1)
        );
        assert_eq!(slice.ports.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn null_endpoints_and_addresses_are_empty() {
        let json = r#"{"metadata": {"name": "empty"}, "addressType": "IPv4", "ports": null,
            "endpoints": null}"#;
        let slice: EndpointSlice = serde_json::from_str(json).expect("parses");
        assert!(slice.endpoints.is_empty() && slice.ports.is_none());
        let json = r#"{"metadata": {"name": "e"}, "addressType": "IPv4",
            "endpoints": [{"addresses": null}]}"#;
        let slice: EndpointSlice = serde_json::from_str(json).expect("parses");
        assert!(slice.endpoints[0].addresses.is_empty());
    }

    #[test]
    fn converts_from_k8s_openapi() {
        let slice = EndpointSlice::from(k8s::EndpointSlice {
            metadata: ObjectMeta {
                name: Some("a".into()),
                labels: Some([(SERVICE_NAME_LABEL.to_owned(), "web".to_owned())].into()),
                ..Default::default()
            },
            address_type: "IPv6".into(),
            endpoints: vec![k8s::Endpoint {
                addresses: vec!["fd00::1".into()],
                node_name: Some("n".into()),
                ..Default::default()
            }],
            ports: None,
        });
        assert_eq!(slice.service(), Some("web"));
        assert_eq!(slice.address_type, "IPv6");
        assert_eq!(slice.endpoints[0].addresses, ["fd00::1"]);
    }
}
