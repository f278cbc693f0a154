//! networking.k8s.io/v1 Ingress, as weir keeps it: every field k8s-openapi's type has, laid
//! out for 5,000 of them.
//!
//! k8s-openapi's `Ingress` is 584 bytes before any field is filled and each
//! `HTTPIngressPath` 176, most of it a resource backend (`TypedLocalObjectReference`, 72
//! bytes inline) that almost no Ingress has, and a default backend of the same shape in every
//! spec. Here both sit behind a pointer: a path is 112 bytes, an Ingress 464. Nothing is
//! dropped, so the field names, types, required fields and JSON are k8s-openapi's, and
//! [`From`] converts either way (`weir migrate` writes Ingresses back out as k8s-openapi's).

use k8s_openapi::api::core::v1::TypedLocalObjectReference;
use k8s_openapi::api::networking::v1 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

pub use k8s::{IngressServiceBackend, IngressStatus, IngressTLS, ServiceBackendPort};

/// An Ingress.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ingress {
    /// Name, namespace, uid, generation and annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Its rules, TLS and default backend.
    #[serde(default)]
    pub spec: Option<IngressSpec>,
    /// The load-balancer addresses published on it.
    #[serde(default)]
    pub status: Option<IngressStatus>,
}

/// An Ingress's spec.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// The backend of requests no rule matches (rare: boxed).
    #[serde(default)]
    pub default_backend: Option<Box<IngressBackend>>,
    /// The IngressClass it belongs to.
    #[serde(default)]
    pub ingress_class_name: Option<String>,
    /// Host rules.
    #[serde(default)]
    pub rules: Option<Vec<IngressRule>>,
    /// TLS hosts and their Secrets.
    #[serde(default)]
    pub tls: Option<Vec<IngressTLS>>,
}

/// One host rule.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// The host (absent: every host).
    #[serde(default)]
    pub host: Option<String>,
    /// Its paths.
    #[serde(default)]
    pub http: Option<HTTPIngressRuleValue>,
}

/// The paths of a rule.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HTTPIngressRuleValue {
    /// Its paths.
    pub paths: Vec<HTTPIngressPath>,
}

/// One path of a rule and its backend.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HTTPIngressPath {
    /// Where matching requests go.
    pub backend: IngressBackend,
    /// The path (absent: `/`).
    #[serde(default)]
    pub path: Option<String>,
    /// `Exact`, `Prefix` or `ImplementationSpecific`.
    pub path_type: String,
}

/// A backend: a Service port, or a resource (which weir reports as unsupported; boxed, as
/// few Ingresses have one).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackend {
    /// A resource in the Ingress's namespace.
    #[serde(default)]
    pub resource: Option<Box<TypedLocalObjectReference>>,
    /// A Service port in the Ingress's namespace.
    #[serde(default)]
    pub service: Option<IngressServiceBackend>,
}

same_resource_as!(Ingress, k8s::Ingress);

impl From<k8s::IngressBackend> for IngressBackend {
    fn from(b: k8s::IngressBackend) -> Self {
        IngressBackend {
            resource: b.resource.map(Box::new),
            service: b.service,
        }
    }
}

impl From<IngressBackend> for k8s::IngressBackend {
    fn from(b: IngressBackend) -> Self {
        k8s::IngressBackend {
            resource: b.resource.map(|r| *r),
            service: b.service,
        }
    }
}

impl From<k8s::Ingress> for Ingress {
    fn from(ingress: k8s::Ingress) -> Self {
        Ingress {
            metadata: ingress.metadata,
            spec: ingress.spec.map(|spec| IngressSpec {
                default_backend: spec.default_backend.map(|b| Box::new(b.into())),
                ingress_class_name: spec.ingress_class_name,
                rules: spec.rules.map(|rules| {
                    rules
                        .into_iter()
                        .map(|rule| IngressRule {
                            host: rule.host,
                            http: rule.http.map(|http| HTTPIngressRuleValue {
                                paths: http
                                    .paths
                                    .into_iter()
                                    .map(|p| HTTPIngressPath {
                                        backend: p.backend.into(),
                                        path: p.path,
                                        path_type: p.path_type,
                                    })
                                    .collect(),
                            }),
                        })
                        .collect()
                }),
                tls: spec.tls,
            }),
            status: ingress.status,
        }
    }
}

impl From<Ingress> for k8s::Ingress {
    fn from(ingress: Ingress) -> Self {
        k8s::Ingress {
            metadata: ingress.metadata,
            spec: ingress.spec.map(|spec| k8s::IngressSpec {
                default_backend: spec.default_backend.map(|b| (*b).into()),
                ingress_class_name: spec.ingress_class_name,
                rules: spec.rules.map(|rules| {
                    rules
                        .into_iter()
                        .map(|rule| k8s::IngressRule {
                            host: rule.host,
                            http: rule.http.map(|http| k8s::HTTPIngressRuleValue {
                                paths: http
                                    .paths
                                    .into_iter()
                                    .map(|p| k8s::HTTPIngressPath {
                                        backend: p.backend.into(),
                                        path: p.path,
                                        path_type: p.path_type,
                                    })
                                    .collect(),
                            }),
                        })
                        .collect()
                }),
                tls: spec.tls,
            }),
            status: ingress.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ingress with every field set, as the API server writes it.
    fn full() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "shop",
                "namespace": "default",
                "annotations": { "weir.dev/ssl-redirect": "false" }
            },
            "spec": {
                "ingressClassName": "weir",
                "defaultBackend": { "service": { "name": "fallback", "port": { "name": "http" } } },
                "tls": [{ "hosts": ["shop.example.com"], "secretName": "shop-tls" }],
                "rules": [{
                    "host": "shop.example.com",
                    "http": { "paths": [
                        { "path": "/api", "pathType": "Prefix",
                          "backend": { "service": { "name": "api", "port": { "number": 80 } } } },
                        { "path": "/static", "pathType": "ImplementationSpecific",
                          "backend": { "resource": {
                              "apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "assets" } } }
                    ] }
                }]
            },
            "status": { "loadBalancer": { "ingress": [{ "ip": "192.0.2.1" }] } }
        })
    }

    #[test]
    fn reads_every_field_of_the_api_servers_json_and_converts_back_unchanged() {
        let theirs: k8s::Ingress = serde_json::from_value(full()).expect("k8s-openapi's");
        let ours: Ingress = serde_json::from_value(full()).expect("ours");
        assert_eq!(ours, Ingress::from(theirs.clone()), "the same as converted");
        assert_eq!(k8s::Ingress::from(ours.clone()), theirs, "nothing lost");
        let spec = ours.spec.as_ref().expect("spec");
        let paths = &spec.rules.as_ref().expect("rules")[0]
            .http
            .as_ref()
            .expect("http")
            .paths;
        assert_eq!(paths[0].path.as_deref(), Some("/api"));
        assert_eq!(paths[0].path_type, "Prefix");
        assert!(paths[1].backend.resource.is_some());
        assert_eq!(
            spec.default_backend
                .as_ref()
                .and_then(|b| b.service.as_ref())
                .map(|s| s.name.as_str()),
            Some("fallback")
        );
    }
}
