//! v1 Service, as weir keeps it: only what compile reads (the type, the ports, the ClusterIP
//! and the traffic distribution).
//!
//! k8s-openapi's `Service` is 824 bytes before any field is filled, and the API server fills
//! many that weir never reads (selector, `clusterIPs`, `ipFamilies`, session affinity, each
//! port's `targetPort`, the status). This type is deserialized straight from the API server's
//! JSON (and from manifest files) with only the fields below, so the rest is never
//! allocated. The field names and types are k8s-openapi's, so an object is written the same
//! way; [`From`] converts k8s-openapi's.
//!
//! The `--publish-service` Service is this type too: its load-balancer status, external IPs
//! and external name are what the Ingress status publishes ([`crate::status::service_addresses`]),
//! and they are absent on most Services.

use k8s_openapi::api::core::v1 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

/// A Service: what a backend reference resolves against.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Name, namespace, uid and generation (labels and annotations are dropped when the store
    /// admits it: compile reads none).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What compile reads of the spec.
    #[serde(default)]
    pub spec: Option<ServiceSpec>,
    /// Its load balancer's addresses (for the `--publish-service` Service; not compile
    /// input).
    #[serde(default)]
    pub status: Option<ServiceStatus>,
}

/// The part of a Service's status weir reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// The addresses its load balancer was given.
    #[serde(default)]
    pub load_balancer: Option<k8s::LoadBalancerStatus>,
}

/// The part of a Service's spec compile reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `ClusterIP` (absent), `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Its ports.
    #[serde(default)]
    pub ports: Option<Vec<ServicePort>>,
    /// Its ClusterIP (`None` for a headless Service), for `forwardToClusterIP`.
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    /// `PreferClose` asks for topology-aware routing.
    #[serde(default)]
    pub traffic_distribution: Option<String>,
    /// The name an `ExternalName` Service stands for.
    #[serde(default)]
    pub external_name: Option<String>,
    /// External IPs (published for the `--publish-service` Service).
    #[serde(default, rename = "externalIPs")]
    pub external_ips: Option<Vec<String>>,
}

/// One port of a Service.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Its name (needed when the Service has several ports).
    #[serde(default)]
    pub name: Option<String>,
    /// The port number.
    #[serde(default)]
    pub port: i32,
    /// `TCP` (absent), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The application protocol (`h2c`, `https`, `kubernetes.io/ws`, …).
    #[serde(default)]
    pub app_protocol: Option<String>,
}

impl Service {
    /// Reduces it to what compile reads: labels, annotations, owners and the generated name
    /// go (the uid and generation stay). Idempotent.
    pub fn admit(&mut self) {
        let meta = &mut self.metadata;
        meta.labels = None;
        meta.annotations = None;
        meta.owner_references = None;
        meta.generate_name = None;
        meta.creation_timestamp = None;
        meta.finalizers = None;
        if let Some(ports) = self.spec.as_mut().and_then(|s| s.ports.as_mut()) {
            ports.shrink_to_fit();
        }
    }
}

same_resource_as!(Service, k8s::Service);

impl From<k8s::Service> for Service {
    fn from(service: k8s::Service) -> Self {
        Service {
            metadata: service.metadata,
            spec: service.spec.map(|spec| ServiceSpec {
                type_: spec.type_,
                ports: spec.ports.map(|ports| {
                    ports
                        .into_iter()
                        .map(|p| ServicePort {
                            name: p.name,
                            port: p.port,
                            protocol: p.protocol,
                            app_protocol: p.app_protocol,
                        })
                        .collect()
                }),
                cluster_ip: spec.cluster_ip,
                traffic_distribution: spec.traffic_distribution,
                external_name: spec.external_name,
                external_ips: spec.external_ips,
            }),
            status: service.status.map(|status| ServiceStatus {
                load_balancer: status.load_balancer,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_the_api_servers_json_keeping_only_what_compile_reads() {
        let json = r#"{
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u", "generation": 3,
                "labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "selector": {"app": "web"}, "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster", "trafficDistribution": "PreferClose",
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP",
                           "appProtocol": "h2c"}]},
            "status": {"loadBalancer": {}}
        }"#;
        let mut service: Service = serde_json::from_str(json).expect("parses");
        service.admit();
        service.admit();
        assert!(service.metadata.labels.is_none() && service.metadata.annotations.is_none());
        assert_eq!(service.metadata.name.as_deref(), Some("web"));
        assert_eq!(service.metadata.generation, Some(3));
        let spec = service.spec.as_ref().expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.7"));
        assert_eq!(spec.traffic_distribution.as_deref(), Some("PreferClose"));
        let port = &spec.ports.as_ref().expect("ports")[0];
        assert_eq!(port.name.as_deref(), Some("http"));
        assert_eq!(port.port, 80);
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
        assert_eq!(port.app_protocol.as_deref(), Some("h2c"));
    }

    #[test]
    fn converts_from_k8s_openapi() {
        let service = Service::from(k8s::Service {
            metadata: ObjectMeta {
                name: Some("a".into()),
                ..Default::default()
            },
            spec: Some(k8s::ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some("example.com".into()),
                ports: Some(vec![k8s::ServicePort {
                    port: 443,
                    app_protocol: Some("https".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: Some(k8s::ServiceStatus {
                load_balancer: Some(k8s::LoadBalancerStatus {
                    ingress: Some(vec![k8s::LoadBalancerIngress {
                        ip: Some("203.0.113.1".into()),
                        ..Default::default()
                    }]),
                }),
                conditions: None,
            }),
        });
        assert!(service.status.and_then(|s| s.load_balancer).is_some());
        let spec = service.spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
        assert_eq!(spec.external_name.as_deref(), Some("example.com"));
        let ports = spec.ports.expect("ports");
        assert_eq!(
            (ports[0].port, ports[0].app_protocol.as_deref()),
            (443, Some("https"))
        );
    }
}
