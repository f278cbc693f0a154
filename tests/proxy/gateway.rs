//! The Gateway API front end through the real proxy, over HTTP/1.1 and HTTP/2: a Gateway of
//! weir's class gets its own listener socket; an HTTPRoute's hostnames intersect the
//! listener's, its matches (path, header, query, method) follow Gateway API precedence, its
//! weighted backends split, its filters run; a route whose hostname the listener does not
//! serve, or whose parent is not weir's, is reported and not served.

use std::net::SocketAddr;

use http::StatusCode;
use weir::proxy::ProxyConfig;

use crate::support::*;

/// A GET of `path` on the route's host.
fn get(c: &Client, path: &str) -> http::Request<Body> {
    c.request("GET", "shop.example.com", path, empty())
}

/// A free loopback port for the Gateway's listener.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The Gateway listener on 127.0.0.1:`port`, once it accepts connections: the proxy binds a
/// new listener right after the publish (bounded wait).
async fn gateway_listener(port: u16) -> SocketAddr {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    addr
}

/// weir's GatewayClass `weir`.
const WEIR_CLASS: &str = r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: weir}
spec: {controllerName: weir.dev/gateway-controller}
"#;

fn manifests(port: u16, v1: u16, v2: u16) -> String {
    let mut out = loopback_service_yaml("v1", v1);
    out.push_str(&loopback_service_yaml("v2", v2));
    out.push_str(WEIR_CLASS);
    out.push_str(&format!(
        r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: other}}
spec: {{controllerName: example.com/other}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge, namespace: shop}}
spec:
  gatewayClassName: weir
  listeners:
  - {{name: web, port: {port}, protocol: HTTP, hostname: "*.example.com"}}
  - {{name: tcp, port: 9, protocol: TCP}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: theirs, namespace: shop}}
spec:
  gatewayClassName: other
  listeners: [{{name: web, port: 1, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: shop}}
spec:
  parentRefs: [{{name: edge, sectionName: web}}]
  hostnames: [shop.example.com, shop.other.org]
  rules:
  - matches:
    - path: {{type: PathPrefix, value: /api}}
      headers: [{{name: X-Version, value: "2"}}]
    - path: {{type: PathPrefix, value: /api}}
      queryParams: [{{name: v, value: "2"}}]
    backendRefs: [{{name: v2, port: 80}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: X-Route, value: api-v2}}]}}
  - matches: [{{path: {{type: PathPrefix, value: /api}}}}]
    backendRefs: [{{name: v1, port: 80, weight: 1}}, {{name: v2, port: 80, weight: 1}}]
  - matches: [{{path: {{type: Exact, value: /old}}, method: GET}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {{path: {{type: ReplaceFullPath, replaceFullPath: /new}}, statusCode: 301}}
  - matches: [{{path: {{type: RegularExpression, value: "/items/[0-9]+"}}}}]
    backendRefs: [{{name: v1, port: 80}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{set: [{{name: X-Hop, value: gateway}}]}}
  - matches: [{{path: {{type: Exact, value: /missing}}}}]
    backendRefs: [{{name: nowhere, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /slow}}}}]
    backendRefs: [{{name: v1, port: 80}}]
    timeouts: {{request: 250ms}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: elsewhere, namespace: shop}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [www.other.org]
  rules: [{{backendRefs: [{{name: v1, port: 80}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: stray, namespace: shop}}
spec:
  parentRefs: [{{name: theirs}}]
  rules: [{{backendRefs: [{{name: v1, port: 80}}]}}]
"#
    ));
    out
}

#[tokio::test]
async fn gateways_and_http_routes_serve_on_their_own_listener() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let port = free_port();
    let h = Harness::start(ProxyConfig::default()).await;
    let compiled = h.serve_manifests(&manifests(port, v1.addr.port(), v2.addr.port()), &[]);

    // What is not served is reported, on the object that says it.
    let mut reasons: Vec<(String, &str)> = compiled
        .status
        .conditions
        .iter()
        .flat_map(|(o, cs)| {
            cs.iter()
                .map(move |c| (format!("{} {}", o.kind, o.key), c.reason))
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("Gateway shop/edge".to_owned(), "UnsupportedProtocol"),
            (
                "HTTPRoute shop/elsewhere".to_owned(),
                "NoMatchingListenerHostname"
            ),
            ("HTTPRoute shop/shop".to_owned(), "ServiceNotFound"),
            // shop/stray's parent is another controller's Gateway: not weir's to report on.
        ],
        "{:#?}",
        compiled.status.conditions
    );
    // The structured status the writer publishes: per listener, per route parent.
    let api = &compiled.status.gateway_api;
    assert_eq!(api.classes.keys().collect::<Vec<_>>(), ["weir"]);
    let brief = |conditions: &[weir::compile::Condition]| -> Vec<String> {
        conditions
            .iter()
            .map(|c| format!("{}={:?}/{}", c.type_, c.status, c.reason))
            .collect()
    };
    let edge = &api.gateways[&weir::store::ObjectKey::new("shop", "edge")];
    assert_eq!(
        brief(&edge.conditions),
        [
            "Accepted=True/ListenersNotValid",
            "Programmed=True/Programmed"
        ]
    );
    let listeners: Vec<_> = edge
        .listeners
        .iter()
        .map(|l| {
            (
                l.name.as_str(),
                l.supported_kinds.len(),
                l.attached_routes,
                brief(&l.conditions),
            )
        })
        .collect();
    assert_eq!(
        listeners,
        [
            (
                "web",
                2, // HTTPRoute, GRPCRoute
                1,
                vec![
                    "Accepted=True/Accepted".to_owned(),
                    "Conflicted=False/NoConflicts".to_owned(),
                    "Programmed=True/Programmed".to_owned(),
                    "ResolvedRefs=True/ResolvedRefs".to_owned(),
                ]
            ),
            (
                "tcp",
                0,
                0,
                vec![
                    "Accepted=False/UnsupportedProtocol".to_owned(),
                    "Conflicted=False/NoConflicts".to_owned(),
                    "Programmed=False/Invalid".to_owned(),
                    "ResolvedRefs=True/ResolvedRefs".to_owned(),
                ]
            ),
        ]
    );
    let parents = |name: &str| -> Vec<Vec<String>> {
        api.routes[&weir::compile::ObjectRef {
            kind: "HTTPRoute",
            key: weir::store::ObjectKey::new("shop", name),
        }]
            .parents
            .iter()
            .map(|p| brief(&p.conditions))
            .collect()
    };
    assert_eq!(
        parents("shop"),
        [[
            "Accepted=True/Accepted",
            "ResolvedRefs=False/BackendNotFound"
        ]]
    );
    assert_eq!(
        parents("elsewhere"),
        [[
            "Accepted=False/NoMatchingListenerHostname",
            "ResolvedRefs=True/ResolvedRefs"
        ]]
    );
    assert!(!api.routes.keys().any(|r| r.key.name == "stray"));
    let listener = compiled
        .snapshot
        .listeners
        .iter()
        .find(|l| l.name == format!("gateway-127.0.0.1:{port}"))
        .expect("the Gateway's listener");
    assert_eq!(listener.address, SocketAddr::from(([127, 0, 0, 1], port)));
    assert!(
        compiled
            .snapshot
            .listeners
            .iter()
            .all(|l| l.address.port() != 1)
    );

    let addr = gateway_listener(port).await;
    for proto in BOTH {
        let mut c = Client::connect(addr, proto).await;
        // Header match, then query match, both to v2 with the response filter.
        let mut req = get(&c, "/api/x");
        req.headers_mut()
            .insert("x-version", http::HeaderValue::from_static("2"));
        let a = c.answer(req).await;
        assert_eq!(
            (a.status, a.backend()),
            (StatusCode::OK, Some("v2")),
            "{proto:?}"
        );
        assert_eq!(a.header("x-route"), Some("api-v2"));
        let a = c.answer(get(&c, "/api/x?v=2")).await;
        assert_eq!(
            (a.backend(), a.header("x-route")),
            (Some("v2"), Some("api-v2"))
        );
        // Without them: split 1:1 over v1 and v2, no filter.
        let mut v1_hits = 0;
        for _ in 0..200 {
            let a = c.answer(get(&c, "/api/y")).await;
            assert_eq!(a.status, StatusCode::OK);
            assert_eq!(a.header("x-route"), None);
            v1_hits += usize::from(a.backend() == Some("v1"));
        }
        assert!((80..=120).contains(&v1_hits), "v1 got {v1_hits} of 200");
        // Redirect on GET only; other methods fall through to no route (404).
        let a = c.answer(get(&c, "/old")).await;
        assert_eq!(a.status, StatusCode::MOVED_PERMANENTLY);
        assert!(
            a.header("location").is_some_and(|l| l.ends_with("/new")),
            "{:?}",
            a.header("location")
        );
        let a = c
            .answer(c.request("POST", "shop.example.com", "/old", empty()))
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        // Regular expressions match the whole path; the request filter reaches the backend.
        let a = c.answer(get(&c, "/items/42")).await;
        assert_eq!((a.status, a.backend()), (StatusCode::OK, Some("v1")));
        assert_eq!(a.header("x-seen-x-hop"), Some("gateway"));
        assert_eq!(
            c.answer(get(&c, "/items/42/more")).await.status,
            StatusCode::NOT_FOUND
        );
        // The rule's request timeout: a backend slower than it gets 504, a quick one serves.
        assert_eq!(
            c.answer(get(&c, "/slow/5000")).await.status,
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(c.answer(get(&c, "/slow/0")).await.status, StatusCode::OK);
        // A backend that does not resolve answers 500 (the Gateway API's rule).
        let a = c.answer(get(&c, "/missing")).await;
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
        // Hosts outside the listener's hostname are not served.
        let a = c
            .answer(c.request("GET", "shop.other.org", "/api/y", empty()))
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn grpc_routes_match_service_and_method_and_reach_h2c_backends() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let port = free_port();
    let h = Harness::start(ProxyConfig::default()).await;
    // v2 speaks h2c (appProtocol), as gRPC backends do.
    let mut yaml = loopback_service_yaml("v1", v1.addr.port());
    yaml.push_str(&loopback_service_yaml("v2", v2.addr.port()).replace(
        "ports: [{name: http, port: 80}]",
        "ports: [{name: http, port: 80, appProtocol: kubernetes.io/h2c}]",
    ));
    yaml.push_str(WEIR_CLASS);
    yaml.push_str(&format!(
        r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge, namespace: shop}}
spec:
  gatewayClassName: weir
  listeners: [{{name: web, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: echo, namespace: shop}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{{method: {{service: echo.Echo, method: Say}}}}]
    backendRefs: [{{name: v2, port: 80}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: X-Route, value: say}}]}}
  - matches:
    - method: {{service: echo.Echo}}
    - method: {{type: RegularExpression, service: "echo\\.v[0-9]+\\.Echo"}}
      headers: [{{name: x-tenant, value: a}}]
    backendRefs: [{{name: v1, port: 80}}]
"#
    ));
    let compiled = h.serve_manifests(&yaml, &[]);
    assert!(
        compiled.status.conditions.is_empty(),
        "{:#?}",
        compiled.status.conditions
    );
    let parents = &compiled.status.gateway_api.routes[&weir::compile::ObjectRef {
        kind: "GRPCRoute",
        key: weir::store::ObjectKey::new("shop", "echo"),
    }]
        .parents;
    assert_eq!(parents.len(), 1);
    assert!(
        parents[0]
            .conditions
            .iter()
            .all(|c| c.status == weir::compile::ConditionStatus::True)
    );
    let listener = &compiled.status.gateway_api.gateways
        [&weir::store::ObjectKey::new("shop", "edge")]
        .listeners[0];
    assert_eq!(listener.attached_routes, 1);
    assert!(
        listener
            .supported_kinds
            .iter()
            .any(|k| k.kind == "GRPCRoute")
    );

    let addr = gateway_listener(port).await;
    let mut c = Client::connect(addr, Proto::H2).await;
    let call = |c: &Client, path: &str| {
        let mut req = c.request("POST", "grpc.example.com", path, empty());
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        req
    };
    let a = c.answer(call(&c, "/echo.Echo/Say")).await;
    assert_eq!((a.status, a.backend()), (StatusCode::OK, Some("v2")));
    assert_eq!(a.header("x-route"), Some("say"));
    assert_eq!(a.header("x-seen-version"), Some("HTTP/2.0"), "h2c upstream");
    let a = c.answer(call(&c, "/echo.Echo/Other")).await;
    assert_eq!((a.status, a.backend()), (StatusCode::OK, Some("v1")));
    // The regular-expression service needs its header too.
    let mut req = call(&c, "/echo.v2.Echo/Say");
    req.headers_mut()
        .insert("x-tenant", http::HeaderValue::from_static("a"));
    assert_eq!(c.answer(req).await.backend(), Some("v1"));
    assert_eq!(
        c.answer(call(&c, "/echo.v2.Echo/Say")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.answer(call(&c, "/other.Service/Say")).await.status,
        StatusCode::NOT_FOUND
    );
}
