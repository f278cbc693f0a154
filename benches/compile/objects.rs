//! A large in-memory cluster for the compile benchmark and the memory measurement:
//! 5,000 Ingresses × 10 paths, 5,000 Services, 5,000 EndpointSlices × 4 endpoints (20,000).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{IngressClass, IngressClassSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use weir::api::endpointslice::{Endpoint, EndpointPort, EndpointSlice};
use weir::api::ingress::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use weir::api::service::{Service, ServicePort, ServiceSpec};
use weir::compile::CompileConfig;
use weir::store::{KubeObject, Objects};

pub const INGRESSES: usize = 5_000;
pub const PATHS: usize = 10;
pub const SERVICES: usize = 5_000;
pub const ENDPOINTS_PER_SERVICE: usize = 4;

fn meta(namespace: &str, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        ..Default::default()
    }
}

/// The compile settings the set is compiled with: listeners on 127.0.0.1 port 0 (the proxy
/// tests bind them), a fixed clock.
pub fn config() -> CompileConfig {
    CompileConfig {
        controller_name: "weir.dev/ingress-controller".into(),
        http_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        https_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        default_backend: None,
        now_unix: 1_893_456_000,
        ingress_classes: Vec::new(),
        annotations_prefix: weir::compile::nginx::DEFAULT_PREFIX.to_owned(),
        gateway: Default::default(),
    }
}

pub fn objects() -> Objects {
    let mut objects = Objects::default();
    let mut apply = |o| {
        objects.apply(o).expect("generated objects are named");
    };
    apply(KubeObject::IngressClass(IngressClass {
        metadata: ObjectMeta {
            name: Some("weir".into()),
            ..Default::default()
        },
        spec: Some(IngressClassSpec {
            controller: Some("weir.dev/ingress-controller".into()),
            parameters: None,
        }),
    }));
    for s in 0..SERVICES {
        let namespace = format!("ns-{}", s % 50);
        apply(KubeObject::Service(Service {
            metadata: meta(&namespace, format!("svc-{s}")),
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }));
        let mut slice_meta = meta(&namespace, format!("svc-{s}-abcde"));
        slice_meta.labels = Some(BTreeMap::from([(
            "kubernetes.io/service-name".to_owned(),
            format!("svc-{s}"),
        )]));
        apply(KubeObject::EndpointSlice(EndpointSlice {
            metadata: slice_meta,
            address_type: "IPv4".into(),
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                ..Default::default()
            }]),
            endpoints: (0..ENDPOINTS_PER_SERVICE)
                .map(|e| {
                    let n = s * ENDPOINTS_PER_SERVICE + e;
                    Endpoint {
                        addresses: vec![format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255)],
                        ..Default::default()
                    }
                })
                .collect(),
            service: None,
        }));
    }
    for i in 0..INGRESSES {
        // Ingress i lives with the Services of its namespace and routes to them.
        let namespace_index = i % 50;
        let paths = (0..PATHS)
            .map(|p| {
                let s = (i + p * 50) % SERVICES;
                let s = s - s % 50 + namespace_index;
                HTTPIngressPath {
                    path: Some(format!("/app-{p}/v{}", i % 7)),
                    path_type: if p % 3 == 0 { "Exact" } else { "Prefix" }.into(),
                    backend: IngressBackend {
                        service: Some(IngressServiceBackend {
                            name: format!("svc-{s}"),
                            port: Some(ServiceBackendPort {
                                number: Some(80),
                                name: None,
                            }),
                        }),
                        resource: None,
                    },
                }
            })
            .collect();
        apply(KubeObject::Ingress(Ingress {
            metadata: meta(&format!("ns-{namespace_index}"), format!("ing-{i}")),
            spec: Some(IngressSpec {
                ingress_class_name: Some("weir".into()),
                rules: Some(vec![IngressRule {
                    host: Some(format!("host-{i}.example.com")),
                    http: Some(HTTPIngressRuleValue { paths }),
                }]),
                ..Default::default()
            }),
            status: None,
        }));
    }
    objects
}
