//! Fluent fixture builders for Rust-side compile and router tests
//! (`ingress("default/web").host("a.example").prefix("/", "svc", 80)`), so tests read as
//! the rules they check instead of walls of YAML.

#![allow(dead_code)] // each test crate uses a different subset

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressClassSpec,
    IngressRule, IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use weir::compile::{self, CompileConfig, Compiled};
use weir::store::{KubeObject, Objects};

/// "Now" of every fixture compile: 2030-01-01T00:00:00Z.
pub const NOW_UNIX: i64 = 1_893_456_000;

/// The compile configuration tests use.
pub fn config() -> CompileConfig {
    CompileConfig {
        controller_name: "weir.dev/ingress-controller".to_owned(),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        https_addr: Some(SocketAddr::from(([127, 0, 0, 1], 8443))),
        default_backend: None,
        now_unix: NOW_UNIX,
    }
}

/// Objects from fixtures (through `Objects::apply`, as the real sources insert).
pub fn objects(items: impl IntoIterator<Item = KubeObject>) -> Objects {
    let mut objects = Objects::default();
    for item in items {
        objects.apply(item).expect("fixture objects are named");
    }
    objects
}

/// Compile fixtures with [`config`].
pub fn compile(items: impl IntoIterator<Item = KubeObject>) -> Compiled {
    compile::compile(&objects(items), &config())
}

fn meta(key: &str) -> ObjectMeta {
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
        ..Default::default()
    }
}

/// A Service port reference: by number (`80`) or by name (`"http"`).
#[derive(Debug, Clone)]
pub enum PortRef {
    /// By number.
    Number(i32),
    /// By name.
    Name(String),
}

impl From<i32> for PortRef {
    fn from(n: i32) -> Self {
        PortRef::Number(n)
    }
}

impl From<&str> for PortRef {
    fn from(name: &str) -> Self {
        PortRef::Name(name.to_owned())
    }
}

fn backend(service: &str, port: impl Into<PortRef>) -> IngressBackend {
    let port = match port.into() {
        PortRef::Number(n) => ServiceBackendPort {
            number: Some(n),
            name: None,
        },
        PortRef::Name(name) => ServiceBackendPort {
            number: None,
            name: Some(name),
        },
    };
    IngressBackend {
        service: Some(IngressServiceBackend {
            name: service.to_owned(),
            port: Some(port),
        }),
        resource: None,
    }
}

/// IngressClass `name` with weir's controller; `default` marks it the default class.
pub fn weir_class(name: &str, default: bool) -> KubeObject {
    class(name, "weir.dev/ingress-controller", default)
}

/// IngressClass `name` with any controller.
pub fn class(name: &str, controller: &str, default: bool) -> KubeObject {
    let mut metadata = meta(name);
    if default {
        metadata.annotations = Some(
            [(
                "ingressclass.kubernetes.io/is-default-class".to_owned(),
                "true".to_owned(),
            )]
            .into(),
        );
    }
    KubeObject::IngressClass(IngressClass {
        metadata,
        spec: Some(IngressClassSpec {
            controller: Some(controller.to_owned()),
            parameters: None,
        }),
    })
}

/// Start an Ingress `namespace/name` of class `weir`.
pub fn ingress(key: &str) -> IngressBuilder {
    IngressBuilder {
        ingress: Ingress {
            metadata: meta(key),
            spec: Some(IngressSpec {
                ingress_class_name: Some("weir".to_owned()),
                ..Default::default()
            }),
            status: None,
        },
    }
}

/// Builds an Ingress rule by rule.
#[derive(Debug, Clone)]
pub struct IngressBuilder {
    ingress: Ingress,
}

impl IngressBuilder {
    fn spec(&mut self) -> &mut IngressSpec {
        self.ingress.spec.get_or_insert_with(Default::default)
    }

    /// Set (or clear) `spec.ingressClassName`.
    pub fn class(mut self, class: Option<&str>) -> Self {
        self.spec().ingress_class_name = class.map(str::to_owned);
        self
    }

    /// Add an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.ingress
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Set `metadata.creationTimestamp` (seconds since the epoch).
    pub fn created(mut self, unix: i64) -> Self {
        let ts = k8s_openapi::jiff::Timestamp::from_second(unix).expect("valid timestamp");
        self.ingress.metadata.creation_timestamp = Some(Time(ts));
        self
    }

    /// Start a rule for `host`.
    pub fn host(mut self, host: &str) -> Self {
        self.spec()
            .rules
            .get_or_insert_with(Vec::new)
            .push(IngressRule {
                host: Some(host.to_owned()),
                http: None,
            });
        self
    }

    /// Start a rule without host.
    pub fn any_host(mut self) -> Self {
        self.spec()
            .rules
            .get_or_insert_with(Vec::new)
            .push(IngressRule::default());
        self
    }

    /// Add a path to the current rule (a rule without host is started if there is none).
    pub fn path(
        mut self,
        path_type: &str,
        path: &str,
        service: &str,
        port: impl Into<PortRef>,
    ) -> Self {
        let rules = self.spec().rules.get_or_insert_with(Vec::new);
        if rules.is_empty() {
            rules.push(IngressRule::default());
        }
        let rule = rules
            .last_mut()
            .expect("invariant: a rule was just ensured");
        rule.http
            .get_or_insert_with(|| HTTPIngressRuleValue { paths: Vec::new() })
            .paths
            .push(HTTPIngressPath {
                path: Some(path.to_owned()),
                path_type: path_type.to_owned(),
                backend: backend(service, port),
            });
        self
    }

    /// Add a `Prefix` path.
    pub fn prefix(self, path: &str, service: &str, port: impl Into<PortRef>) -> Self {
        self.path("Prefix", path, service, port)
    }

    /// Add an `Exact` path.
    pub fn exact(self, path: &str, service: &str, port: impl Into<PortRef>) -> Self {
        self.path("Exact", path, service, port)
    }

    /// Set `spec.defaultBackend`.
    pub fn default_backend(mut self, service: &str, port: impl Into<PortRef>) -> Self {
        self.spec().default_backend = Some(backend(service, port));
        self
    }

    /// Add a `spec.tls` entry.
    pub fn tls(mut self, hosts: &[&str], secret: &str) -> Self {
        self.spec()
            .tls
            .get_or_insert_with(Vec::new)
            .push(IngressTLS {
                hosts: Some(hosts.iter().map(|h| (*h).to_owned()).collect()),
                secret_name: Some(secret.to_owned()),
            });
        self
    }

    /// The Ingress.
    pub fn build(self) -> Ingress {
        self.ingress
    }
}

impl From<IngressBuilder> for KubeObject {
    fn from(b: IngressBuilder) -> Self {
        KubeObject::Ingress(b.ingress)
    }
}

/// Start a Service `namespace/name`.
pub fn service(key: &str) -> ServiceBuilder {
    ServiceBuilder {
        service: Service {
            metadata: meta(key),
            spec: Some(ServiceSpec::default()),
            status: None,
        },
    }
}

/// Builds a Service.
#[derive(Debug, Clone)]
pub struct ServiceBuilder {
    service: Service,
}

impl ServiceBuilder {
    /// Add a port (`name` empty: unnamed).
    pub fn port(self, name: &str, port: i32) -> Self {
        self.port_with(name, port, None)
    }

    /// Add a port with an `appProtocol`.
    pub fn port_with(mut self, name: &str, port: i32, app_protocol: Option<&str>) -> Self {
        let spec = self.service.spec.get_or_insert_with(Default::default);
        spec.ports.get_or_insert_with(Vec::new).push(ServicePort {
            name: (!name.is_empty()).then(|| name.to_owned()),
            port,
            app_protocol: app_protocol.map(str::to_owned),
            ..Default::default()
        });
        self
    }

    /// Make it an ExternalName Service.
    pub fn external_name(mut self, name: &str) -> Self {
        let spec = self.service.spec.get_or_insert_with(Default::default);
        spec.type_ = Some("ExternalName".to_owned());
        spec.external_name = Some(name.to_owned());
        self
    }
}

impl From<ServiceBuilder> for KubeObject {
    fn from(b: ServiceBuilder) -> Self {
        KubeObject::Service(b.service)
    }
}

/// Start an EndpointSlice `namespace/name` of Service `service`.
pub fn slice(key: &str, service: &str) -> SliceBuilder {
    let mut metadata = meta(key);
    metadata.labels = Some([("kubernetes.io/service-name".to_owned(), service.to_owned())].into());
    SliceBuilder {
        slice: EndpointSlice {
            metadata,
            address_type: "IPv4".to_owned(),
            endpoints: Vec::new(),
            ports: Some(Vec::new()),
        },
    }
}

/// Builds an EndpointSlice.
#[derive(Debug, Clone)]
pub struct SliceBuilder {
    slice: EndpointSlice,
}

impl SliceBuilder {
    /// Add a port (`name` empty: unnamed).
    pub fn port(mut self, name: &str, port: i32) -> Self {
        self.slice
            .ports
            .get_or_insert_with(Vec::new)
            .push(EndpointPort {
                name: (!name.is_empty()).then(|| name.to_owned()),
                port: Some(port),
                ..Default::default()
            });
        self
    }

    /// Add a ready endpoint.
    pub fn ready(self, address: &str) -> Self {
        self.endpoint(address, Some(true), Some(true), Some(false))
    }

    /// Add an endpoint with explicit conditions.
    pub fn endpoint(
        mut self,
        address: &str,
        ready: Option<bool>,
        serving: Option<bool>,
        terminating: Option<bool>,
    ) -> Self {
        self.slice.endpoints.push(Endpoint {
            addresses: vec![address.to_owned()],
            conditions: Some(EndpointConditions {
                ready,
                serving,
                terminating,
            }),
            ..Default::default()
        });
        self
    }
}

impl From<SliceBuilder> for KubeObject {
    fn from(b: SliceBuilder) -> Self {
        KubeObject::EndpointSlice(b.slice)
    }
}
