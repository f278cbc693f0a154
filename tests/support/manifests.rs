//! YAML builders for the manifests-mode tests (`Harness::serve_manifests`): the IngressClasses,
//! a Service with its EndpointSlices, and an Ingress in namespace `shop`.

use std::net::SocketAddr;

/// The ingress-nginx annotations' prefix.
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// The IngressClass `nginx` of ingress-nginx's controller (served with `--ingress-class nginx`).
pub const NGINX_CLASS: &str = r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
"#;

/// The IngressClass `weir` of weir's own controller.
pub const WEIR_CLASS: &str = r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: weir}
spec: {controller: weir.dev/ingress-controller}
"#;

/// A Service `name` in `shop` (port 80, named `http`) whose endpoints are `addrs`, one
/// EndpointSlice each (`name-1`, `name-2`, …: their ports may differ).
pub fn service_yaml(name: &str, addrs: &[SocketAddr]) -> String {
    service_port_yaml(name, ("http", 80), addrs)
}

/// [`service_yaml`] on another port: `(name, number)` (e.g. `("https", 443)`); no `addrs`:
/// a Service without endpoints.
pub fn service_port_yaml(
    name: &str,
    (port_name, port): (&str, u16),
    addrs: &[SocketAddr],
) -> String {
    let mut out = format!(
        r#"---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: shop}}
spec: {{ports: [{{name: {port_name}, port: {port}}}]}}
"#
    );
    for (i, a) in addrs.iter().enumerate() {
        out.push_str(&format!(
            r#"---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-{n}, namespace: shop, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: {port_name}, port: {endpoint_port}}}]
endpoints: [{{addresses: ["{ip}"]}}]
"#,
            n = i + 1,
            endpoint_port = a.port(),
            ip = a.ip()
        ));
    }
    out
}

/// [`service_yaml`] with one endpoint, 127.0.0.1:`port`.
pub fn loopback_service_yaml(name: &str, port: u16) -> String {
    service_yaml(name, &[SocketAddr::from(([127, 0, 0, 1], port))])
}

/// An Ingress of class `nginx` in `shop` for `host/` (Prefix) → `service:80`, with these
/// ingress-nginx annotations (names without the prefix).
pub fn nginx_ingress(
    name: &str,
    host: &str,
    service: &str,
    annotations: &[(&str, &str)],
) -> String {
    IngressYaml::nginx(name, host)
        .service(service)
        .nginx_annotations(annotations)
        .yaml()
}

/// An Ingress in `shop`, for the cases [`nginx_ingress`] does not cover. By default: class
/// `nginx`, one path `/` (Prefix) → `web:80`, no annotations, no TLS.
pub struct IngressYaml<'a> {
    name: &'a str,
    class: &'a str,
    host: &'a str,
    service: &'a str,
    port: u16,
    paths: Vec<(&'a str, &'a str)>,
    annotations: Vec<(String, &'a str)>,
    tls: bool,
}

impl<'a> IngressYaml<'a> {
    /// An Ingress `name` of class `class` for `host`.
    pub fn new(class: &'a str, name: &'a str, host: &'a str) -> Self {
        IngressYaml {
            name,
            class,
            host,
            service: "web",
            port: 80,
            paths: vec![("/", "Prefix")],
            annotations: Vec::new(),
            tls: false,
        }
    }

    /// An Ingress `name` of class `nginx` for `host`.
    pub fn nginx(name: &'a str, host: &'a str) -> Self {
        Self::new("nginx", name, host)
    }

    /// Its paths go to `service` (instead of `web`).
    pub fn service(mut self, service: &'a str) -> Self {
        self.service = service;
        self
    }

    /// Its paths go to the Service's port `port` (instead of 80).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Its paths, as (path, pathType), instead of `/` (Prefix).
    pub fn paths(mut self, paths: &[(&'a str, &'a str)]) -> Self {
        self.paths = paths.to_vec();
        self
    }

    /// Adds ingress-nginx annotations (names without the prefix).
    pub fn nginx_annotations(mut self, annotations: &[(&str, &'a str)]) -> Self {
        self.annotations.extend(
            annotations
                .iter()
                .map(|(k, v)| (format!("{NGINX_PREFIX}/{k}"), *v)),
        );
        self
    }

    /// Adds one annotation, its full name.
    pub fn annotation(mut self, name: &str, value: &'a str) -> Self {
        self.annotations.push((name.to_owned(), value));
        self
    }

    /// Lists its host under `tls` (the default certificate).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// The manifest, starting with `---`.
    pub fn yaml(&self) -> String {
        let IngressYaml {
            name,
            class,
            host,
            service,
            port,
            ..
        } = self;
        let annotations = self
            .annotations
            .iter()
            .map(|(k, v)| format!("{k}: {v:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let tls = if self.tls {
            format!("  tls: [{{hosts: [{host}]}}]\n")
        } else {
            String::new()
        };
        let paths: String = self
            .paths
            .iter()
            .map(|(path, path_type)| {
                format!(
                    "      - {{path: {path:?}, pathType: {path_type}, backend: {{service: {{name: {service}, port: {{number: {port}}}}}}}}}\n"
                )
            })
            .collect();
        format!(
            r#"---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: shop
  annotations: {{{annotations}}}
spec:
  ingressClassName: {class}
{tls}  rules:
  - host: {host}
    http:
      paths:
{paths}"#
        )
    }
}
