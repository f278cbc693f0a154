//! `ExternalAuth` and `RequestMirror` through the real proxy, over HTTP/1.1 and HTTP/2: the
//! auth service allows (its headers reach the backend), denies (401, 401 → sign-in 302, 403)
//! and fails closed (a status that is no decision: 500; an auth service that never answers:
//! 503 after the filter's timeout); a mirror reaches the shadow while the client's answer
//! comes first. The last case goes CRD → compile → proxy from manifests.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use weir::proxy::ProxyConfig;
use weir::snapshot::{
    ClusterKey, EndpointSets, ExternalAuth, Filter, PathMatch, RequestMirror, RouteMatch,
    UpstreamProtocol,
};

use crate::support::*;

/// One request a test server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    target: String,
    headers: HeaderMap,
}

type Handler = Arc<dyn Fn(&Seen) -> Answerer + Send + Sync>;

/// What a test server does with a request: answer at once, or after `gate` is opened.
enum Answerer {
    Now(u16, Vec<(&'static str, &'static str)>),
    Never,
    After(Arc<Notify>),
}

/// A hyper server (HTTP/1.1 and h2c) recording every request and answering with `handler`.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let handler = handler.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let log = log.clone();
                        async move {
                            let seen = Seen {
                                method: req.method().clone(),
                                target: req
                                    .uri()
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: req.headers().clone(),
                            };
                            log.lock().expect("log").push(seen.clone());
                            let (status, headers) = match handler(&seen) {
                                Answerer::Now(status, headers) => (status, headers),
                                Answerer::Never => std::future::pending().await,
                                Answerer::After(gate) => {
                                    gate.notified().await;
                                    (200, Vec::new())
                                }
                            };
                            let mut resp = Response::new(body("answer\n"));
                            *resp.status_mut() = StatusCode::from_u16(status).expect("status");
                            for (n, v) in headers {
                                resp.headers_mut().append(n, HeaderValue::from_static(v));
                            }
                            // What the backend saw, for the client to check.
                            for (n, v) in &seen.headers {
                                if n.as_str().starts_with("x-auth-request-") {
                                    let name = format!("x-seen-{n}");
                                    resp.headers_mut().append(
                                        HeaderName::from_bytes(name.as_bytes()).expect("name"),
                                        v.clone(),
                                    );
                                }
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Server { addr, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The auth service: the `Authorization` header decides, as oauth2-proxy's `/oauth2/auth`.
fn auth_handler() -> Handler {
    Arc::new(|seen: &Seen| {
        let token = seen
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match token {
            "Bearer alice" => Answerer::Now(
                202,
                vec![
                    ("x-auth-request-user", "alice"),
                    ("x-auth-request-groups", "admin"),
                    ("x-auth-request-groups", "dev"),
                ],
            ),
            "Bearer mallory" => Answerer::Now(403, vec![]),
            "Bearer broken" => Answerer::Now(404, vec![]),
            "Bearer slow" => Answerer::Never,
            _ => Answerer::Now(401, vec![("www-authenticate", "Bearer realm=\"shop\"")]),
        }
    })
}

fn ok_handler() -> Handler {
    Arc::new(|_: &Seen| Answerer::Now(200, vec![]))
}

fn auth(signin_url: Option<&str>) -> Filter {
    Filter::ExternalAuth(Arc::new(ExternalAuth {
        cluster: key("auth"),
        path: "/oauth2/auth".into(),
        method: Method::GET,
        headers_to_backend: vec![
            HeaderName::from_static("x-auth-request-user"),
            HeaderName::from_static("x-auth-request-groups"),
        ],
        signin_url: signin_url.map(str::to_owned),
        timeout: Duration::from_millis(300),
    }))
}

fn mirror(percent: u32) -> Filter {
    Filter::RequestMirror(RequestMirror {
        cluster: key("shadow"),
        percent,
        hostname: None,
    })
}

/// A harness serving `a.example/` → `web` with `filters`, the `auth` and `shadow` clusters
/// in the snapshot (as compile puts them there).
async fn serve(filters: Vec<Filter>, sets: &[(&str, SocketAddr)]) -> Harness {
    let h = Harness::start(ProxyConfig::default()).await;
    let snap = snapshot()
        .host("a.example")
        .route_with(
            RouteMatch::path(PathMatch::Prefix("/".into())),
            filters,
            forward("web"),
        )
        .protocol("auth", UpstreamProtocol::Http1)
        .protocol("shadow", UpstreamProtocol::Http1)
        .build();
    h.publish(snap);
    let sets: EndpointSets = sets
        .iter()
        .map(|(svc, addr)| (key(svc), set([*addr])))
        .collect::<BTreeMap<ClusterKey, _>>();
    h.proxy.publish_endpoints(Arc::new(sets));
    h
}

fn get(client: &Client, path: &str, token: Option<&str>) -> Request<Body> {
    let mut req = client.request("GET", "a.example", path, empty());
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", HeaderValue::from_str(t).expect("token"));
    }
    // A client cannot smuggle its own identity past the auth service.
    req.headers_mut()
        .insert("x-auth-request-user", HeaderValue::from_static("root"));
    req
}

#[tokio::test]
async fn external_auth_allows_and_its_headers_reach_the_backend() {
    let auth_srv = Server::start(auth_handler()).await;
    let web = Server::start(ok_handler()).await;
    let h = serve(
        vec![auth(None)],
        &[("auth", auth_srv.addr), ("web", web.addr)],
    )
    .await;
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let req = get(&c, "/cart?id=1", Some("Bearer alice"));
        let a = c.answer(req).await;
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
        assert_eq!(
            a.header("x-seen-x-auth-request-user"),
            Some("alice"),
            "{proto:?}"
        );
        let groups: Vec<_> = a
            .headers
            .get_all("x-seen-x-auth-request-groups")
            .iter()
            .collect();
        assert_eq!(groups, ["admin", "dev"], "{proto:?}");
    }
    // The subrequests: the filter's path, the client's credentials, what ingress-nginx adds.
    let seen = auth_srv.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(
            (s.method.as_str(), s.target.as_str()),
            ("GET", "/oauth2/auth")
        );
        let h = |n: &str| s.headers.get(n).and_then(|v| v.to_str().ok());
        assert_eq!(h("authorization"), Some("Bearer alice"));
        assert_eq!(h("x-original-url"), Some("http://a.example/cart?id=1"));
        assert_eq!(h("x-original-method"), Some("GET"));
        assert_eq!(h("x-auth-request-redirect"), Some("/cart?id=1"));
        assert_eq!(h("x-forwarded-host"), Some("a.example"));
        assert!(h("x-forwarded-for").is_some());
    }
    // Counted in the auth cluster's counters.
    let sample = "weir_requests_total{cluster=\"default/auth:80\",code_class=\"2xx\"}";
    assert_eq!(h.metric(sample), 2);
    assert_eq!(web.seen().len(), 2);
}

#[tokio::test]
async fn external_auth_denials_reach_the_client_and_nothing_is_forwarded() {
    let auth_srv = Server::start(auth_handler()).await;
    let web = Server::start(ok_handler()).await;
    let h = serve(
        vec![auth(None)],
        &[("auth", auth_srv.addr), ("web", web.addr)],
    )
    .await;
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let req = get(&c, "/", None);
        let a = c.answer(req).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{proto:?}");
        assert_eq!(a.header("www-authenticate"), Some("Bearer realm=\"shop\""));
        assert!(a.header("x-request-id").is_some(), "a local reply");
        let req = get(&c, "/", Some("Bearer mallory"));
        assert_eq!(
            c.answer(req).await.status,
            StatusCode::FORBIDDEN,
            "{proto:?}"
        );
        // An answer that is no decision fails closed.
        let req = get(&c, "/", Some("Bearer broken"));
        let a = c.answer(req).await;
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{proto:?}");
    }
    assert!(web.seen().is_empty(), "no denied request was forwarded");
}

#[tokio::test]
async fn a_401_with_a_signin_url_redirects_to_it() {
    let auth_srv = Server::start(auth_handler()).await;
    let web = Server::start(ok_handler()).await;
    let signin = "https://auth.example/oauth2/start?rd=https://$host$escaped_request_uri";
    let h = serve(
        vec![auth(Some(signin))],
        &[("auth", auth_srv.addr), ("web", web.addr)],
    )
    .await;
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let req = get(&c, "/cart?id=1", None);
        let a = c.answer(req).await;
        assert_eq!(a.status, StatusCode::FOUND, "{proto:?}");
        assert_eq!(
            a.header("location"),
            Some("https://auth.example/oauth2/start?rd=https://a.example%2Fcart%3Fid%3D1")
        );
        let req = get(&c, "/", Some("Bearer mallory"));
        assert_eq!(
            c.answer(req).await.status,
            StatusCode::FORBIDDEN,
            "403 is not redirected"
        );
    }
    assert!(web.seen().is_empty());
}

#[tokio::test]
async fn an_auth_service_that_never_answers_or_is_gone_fails_closed() {
    let auth_srv = Server::start(auth_handler()).await;
    let web = Server::start(ok_handler()).await;
    // Nothing listens on the second auth address's port once it is dropped.
    let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gone_addr = gone.local_addr().expect("addr");
    drop(gone);
    let h = serve(
        vec![auth(None)],
        &[("auth", auth_srv.addr), ("web", web.addr)],
    )
    .await;
    for proto in BOTH {
        let mut c = h.client(proto).await;
        // The filter's timeout (300 ms) bounds the wait.
        let req = get(&c, "/", Some("Bearer slow"));
        let a = tokio::time::timeout(Duration::from_secs(10), c.answer(req))
            .await
            .expect("the timeout answers");
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{proto:?}");
    }
    assert!(
        h.metric("weir_upstream_errors_total{cluster=\"default/auth:80\",kind=\"timeout\"}") >= 2
    );
    let sets: EndpointSets = [
        (key("auth"), set([gone_addr])),
        (key("web"), set([web.addr])),
    ]
    .into_iter()
    .collect();
    h.proxy.publish_endpoints(Arc::new(sets));
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let req = get(&c, "/", Some("Bearer alice"));
        assert_eq!(
            c.answer(req).await.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{proto:?}"
        );
    }
    let sets: EndpointSets = [(key("web"), set([web.addr]))].into_iter().collect();
    h.proxy.publish_endpoints(Arc::new(sets));
    let mut c = h.client(Proto::H1).await;
    let req = get(&c, "/", Some("Bearer alice"));
    assert_eq!(
        c.answer(req).await.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no endpoint"
    );
    assert!(web.seen().is_empty(), "nothing was forwarded unchecked");
}

#[tokio::test]
async fn a_mirror_reaches_the_shadow_and_the_client_does_not_wait_for_it() {
    let gate = Arc::new(Notify::new());
    let shadow_gate = gate.clone();
    let shadow = Server::start(Arc::new(move |_: &Seen| {
        Answerer::After(shadow_gate.clone())
    }))
    .await;
    let web = Server::start(ok_handler()).await;
    let h = serve(
        vec![mirror(100)],
        &[("shadow", shadow.addr), ("web", web.addr)],
    )
    .await;
    for (i, proto) in BOTH.into_iter().enumerate() {
        let mut c = h.client(proto).await;
        let mut req = c.request("GET", "a.example", "/search?q=1", empty());
        req.headers_mut()
            .insert("cookie", HeaderValue::from_static("session=1"));
        // The shadow holds its answer until the gate opens, which happens only after the
        // client's answer: a client that waited for the shadow would never get one.
        let a = tokio::time::timeout(Duration::from_secs(10), c.answer(req))
            .await
            .expect("the client's answer comes while the shadow still holds its own");
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
        wait_until("the shadow got the copy", || shadow.seen().len() == i + 1).await;
        let copy = &shadow.seen()[i];
        assert_eq!(
            (copy.method.as_str(), copy.target.as_str()),
            ("GET", "/search?q=1")
        );
        assert_eq!(
            copy.headers.get("cookie").map(|v| v.as_bytes()),
            Some(&b"session=1"[..])
        );
        gate.notify_waiters();
    }
    // A request with a body is not mirrored (and counted); the client is served as ever.
    let mut c = h.client(Proto::H1).await;
    let req = c.request("POST", "a.example", "/orders", body("{}"));
    assert_eq!(c.answer(req).await.status, StatusCode::OK);
    assert_eq!(
        h.metric("weir_mirror_skipped_total{cluster=\"default/shadow:80\",reason=\"body\"}"),
        1
    );
    assert_eq!(web.seen().len(), 3);
    assert_eq!(shadow.seen().len(), 2);
}

#[tokio::test]
async fn a_dead_shadow_never_fails_the_client_and_percent_zero_mirrors_nothing() {
    let web = Server::start(ok_handler()).await;
    let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gone_addr = gone.local_addr().expect("addr");
    drop(gone);
    let h = serve(
        vec![mirror(100)],
        &[("shadow", gone_addr), ("web", web.addr)],
    )
    .await;
    for proto in BOTH {
        let mut c = h.client(proto).await;
        assert_eq!(
            c.get("a.example", "/").await.status,
            StatusCode::OK,
            "{proto:?}"
        );
    }
    wait_until("the failed copies are counted", || {
        h.metric("weir_upstream_errors_total{cluster=\"default/shadow:80\",kind=\"connect\"}") >= 2
    })
    .await;
    let shadow = Server::start(ok_handler()).await;
    let h = serve(
        vec![mirror(0)],
        &[("shadow", shadow.addr), ("web", web.addr)],
    )
    .await;
    for proto in BOTH {
        let mut c = h.client(proto).await;
        assert_eq!(
            c.get("a.example", "/").await.status,
            StatusCode::OK,
            "{proto:?}"
        );
    }
    assert!(shadow.seen().is_empty());
}

/// The CRD path: an Ingress naming an `HTTPFilter` (ExternalAuth, then RequestMirror) in
/// manifests, compiled by `weir::compile`, endpoints from EndpointSlices, served by the proxy.
#[tokio::test]
async fn manifests_external_auth_and_mirror_from_an_httpfilter() {
    let auth_srv = Server::start(auth_handler()).await;
    let web = Server::start(ok_handler()).await;
    let shadow = Server::start(ok_handler()).await;
    let service = |name: &str, port: u16, target: SocketAddr| {
        format!(
            "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: shop}}
spec: {{ports: [{{name: http, port: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: shop, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {}}}]
endpoints: [{{addresses: [\"127.0.0.1\"], conditions: {{ready: true}}}}]
",
            target.port()
        )
    };
    let manifests = format!(
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: weir}}
spec: {{controller: weir.dev/ingress-controller}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations: {{weir.dev/filters: guard}}
spec:
  ingressClassName: weir
  rules:
  - host: a.example
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {{name: guard, namespace: shop}}
spec:
  filters:
  - type: ExternalAuth
    externalAuth:
      backendRef: {{name: oauth2-proxy, port: 4180}}
      path: /oauth2/auth
      headersToBackend: [X-Auth-Request-User]
      timeout: 1s
  - type: RequestMirror
    requestMirror: {{backendRef: {{name: shadow, port: 80}}, percent: 100}}
---
{}---
{}---
{}",
        service("web", 80, web.addr),
        service("oauth2-proxy", 4180, auth_srv.addr),
        service("shadow", 80, shadow.addr),
    );
    let h = Harness::start(ProxyConfig::default()).await;
    let compiled = h.serve_manifests(&manifests, &[]);
    assert!(
        !compiled.status.has_rejections(),
        "{:?}",
        compiled.status.conditions
    );
    // The filters' Services are clusters like the backend's, with their endpoints.
    let clusters: Vec<String> = compiled
        .snapshot
        .clusters
        .keys()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        clusters,
        ["shop/oauth2-proxy:4180", "shop/shadow:80", "shop/web:80"]
    );
    for (i, proto) in BOTH.into_iter().enumerate() {
        let mut c = h.client(proto).await;
        let req = get(&c, "/", Some("Bearer alice"));
        let a = c.answer(req).await;
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
        assert_eq!(a.header("x-seen-x-auth-request-user"), Some("alice"));
        wait_until("the shadow got the copy", || shadow.seen().len() == i + 1).await;
        let req = get(&c, "/", None);
        assert_eq!(
            c.answer(req).await.status,
            StatusCode::UNAUTHORIZED,
            "{proto:?}"
        );
    }
    // Denied requests run no later filter: only the allowed ones were mirrored.
    assert_eq!(shadow.seen().len(), 2);
    assert_eq!(web.seen().len(), 2);
}
