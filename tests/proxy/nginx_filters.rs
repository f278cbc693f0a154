//! ingress-nginx's auth, CORS, rate-limit and mirror annotations, from manifests through the
//! real proxy, over HTTP/1.1 and HTTP/2: basic auth (htpasswd `auth-file` and `auth-map`
//! Secrets) answers 401 with the realm and lets the right password in; `auth-url` asks the
//! auth Service and its `auth-response-headers` reach the backend, a denial becomes the
//! sign-in redirect ingress-nginx builds; CORS preflights and actual responses carry the
//! headers of ingress-nginx's docs; `limit-rpm` lets `rate × multiplier + 1` requests
//! through, then answers 503, except to a `limit-whitelist` address; `custom-headers` sets
//! its ConfigMap's headers on responses; `mirror-target` copies requests to the mirror
//! Service with the target's host.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use weir::proxy::ProxyConfig;

use crate::support::*;

/// One request a [`Server`] saw: its target and headers.
type Seen = (String, HeaderMap);

/// A hyper server (HTTP/1.1 and h2c) recording every request. As the auth Service it
/// answers 200 with `X-Auth-Request-User: alice` to `Authorization: Bearer ok` and 401
/// otherwise; as a backend it answers 200 and echoes `X-Auth-Request-User` as
/// `x-seen-user` and `Authorization` as `x-seen-authorization`.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(auth: bool) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move {
                            let target = req
                                .uri()
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default();
                            let headers = req.headers().clone();
                            log.lock().expect("log").push((target, headers.clone()));
                            let mut resp = Response::new(body("answer\n"));
                            if auth {
                                let ok = headers
                                    .get("authorization")
                                    .is_some_and(|v| v == "Bearer ok");
                                if ok {
                                    resp.headers_mut().insert(
                                        "x-auth-request-user",
                                        HeaderValue::from_static("alice"),
                                    );
                                } else {
                                    *resp.status_mut() = StatusCode::UNAUTHORIZED;
                                }
                            } else {
                                for (from, to) in [
                                    ("x-auth-request-user", "x-seen-user"),
                                    ("authorization", "x-seen-authorization"),
                                ] {
                                    if let Some(v) = headers.get(from) {
                                        resp.headers_mut().insert(to, v.clone());
                                    }
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

// The password `secret`: `{SHA}` (base64 of its SHA-1) and bcrypt cost 4.
const SHA: &str = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";
const BCRYPT: &str = "$2y$04$/wjv.wj7Z/iAz1OGTu4gc.J5yGjxUN67Q6Ni2rhqIjUtlUKxyUc1i";

fn manifests(web: u16, auth: u16, shadow: u16) -> String {
    let mut out = NGINX_CLASS.to_owned();
    out.push_str(&format!(
        r#"---
apiVersion: v1
kind: Secret
metadata: {{name: htpasswd, namespace: shop}}
type: Opaque
stringData:
  auth: "foo:{SHA}\n"
---
apiVersion: v1
kind: Secret
metadata: {{name: users, namespace: shop}}
type: Opaque
stringData:
  bar: "{BCRYPT}"
  baz: "{SHA}"
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: custom-headers, namespace: shop}}
data:
  X-Using-Nginx-Controller: "true"
"#
    ));
    for (name, port) in [("web", web), ("auth", auth), ("shadow", shadow)] {
        out.push_str(&loopback_service_yaml(name, port));
    }
    let basic = [
        ("auth-type", "basic"),
        ("auth-secret", "htpasswd"),
        ("auth-realm", "Authentication Required - foo"),
    ];
    let map = [
        ("auth-type", "basic"),
        ("auth-secret", "shop/users"),
        ("auth-secret-type", "auth-map"),
    ];
    let external = [
        ("auth-url", "http://auth.shop.svc.cluster.local/oauth2/auth"),
        ("auth-response-headers", "X-Auth-Request-User"),
        ("auth-signin", "https://login.example/oauth2/start"),
    ];
    let cors = [
        ("enable-cors", "true"),
        (
            "cors-allow-origin",
            "https://origin-site.com:4443, https://*.example.org",
        ),
        ("cors-expose-headers", "X-CustomResponseHeader"),
    ];
    // rpm 1, multiplier 2: nginx's burst is 2, so 3 requests pass at once.
    let limited = [("limit-rpm", "1"), ("limit-burst-multiplier", "2")];
    let exempt = [
        ("limit-rpm", "1"),
        ("limit-burst-multiplier", "2"),
        ("limit-whitelist", "127.0.0.1/32"),
    ];
    let mirror = [(
        "mirror-target",
        "http://shadow.shop.svc.cluster.local$request_uri",
    )];
    let headers = [("custom-headers", "shop/custom-headers")];
    let any = |allow| {
        [
            ("whitelist-source-range", allow),
            ("auth-type", "basic"),
            ("auth-secret", "htpasswd"),
            ("satisfy", "any"),
        ]
    };
    let any_allowed = any("127.0.0.1/32");
    let any_other = any("10.0.0.0/8");
    for (name, annotations) in [
        ("basic", &basic[..]),
        ("map", &map[..]),
        ("external", &external[..]),
        ("cors", &cors[..]),
        ("limited-h1", &limited[..]),
        ("limited-h2", &limited[..]),
        ("exempt", &exempt[..]),
        ("mirror", &mirror[..]),
        ("headers", &headers[..]),
        ("any-allowed", &any_allowed[..]),
        ("any-other", &any_other[..]),
    ] {
        let host = format!("{name}.example");
        out.push_str(&nginx_ingress(name, &host, "web", annotations));
    }
    // satisfyAny with no authentication after it: a client not allowed is refused at the
    // chain's end.
    out.push_str(
        r#"---
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: lan-any, namespace: shop}
spec:
  filters:
  - type: IPAccess
    ipAccess: {allow: ["10.0.0.0/8"], satisfyAny: true}
"#,
    );
    out.push_str(
        &IngressYaml::nginx("any-alone", "any-alone.example")
            .annotation("weir.dev/filters", "lan-any")
            .yaml(),
    );
    out
}

/// `Authorization: Basic base64(user:password)`.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

async fn send(
    c: &mut Client,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = c.request(method, host, path, empty());
    for (n, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    c.answer(req).await
}

async fn get(c: &mut Client, host: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(c, "GET", host, path, headers).await
}

#[tokio::test]
async fn auth_cors_limits_and_mirror_annotations_are_enforced() {
    let web = Server::start(false).await;
    let auth = Server::start(true).await;
    let shadow = Server::start(false).await;
    let h = Harness::start(ProxyConfig::default()).await;
    let compiled = h.serve_manifests(
        &manifests(web.addr.port(), auth.addr.port(), shadow.addr.port()),
        &["nginx"],
    );
    let errors: Vec<String> = compiled
        .status
        .conditions
        .iter()
        .flat_map(|(o, cs)| {
            cs.iter()
                .map(move |c| format!("{}: {}", o.key.name, c.message))
        })
        .filter(|m| !m.contains("Partial") && m.contains("answer 500"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    for proto in BOTH {
        let mut c = h.client(proto).await;

        // Basic auth: htpasswd lines (auth-file), and a key per user (auth-map; no
        // auth-realm: an empty realm).
        for (host, realm) in [
            ("basic.example", "Authentication Required - foo"),
            ("map.example", ""),
        ] {
            let a = get(&mut c, host, "/", &[]).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{proto:?} {host}");
            let challenge = format!("Basic realm=\"{realm}\"");
            assert_eq!(a.header("www-authenticate"), Some(challenge.as_str()));
        }
        let right = basic("foo", "secret");
        for (host, user, password, want) in [
            ("basic.example", "foo", "wrong", StatusCode::UNAUTHORIZED),
            ("basic.example", "foo", "secret", StatusCode::OK),
            ("map.example", "bar", "secret", StatusCode::OK),
            ("map.example", "baz", "secret", StatusCode::OK),
            // foo is not in the map.
            ("map.example", "foo", "secret", StatusCode::UNAUTHORIZED),
        ] {
            let cred = basic(user, password);
            let a = get(&mut c, host, "/", &[("authorization", &cred)]).await;
            assert_eq!(a.status, want, "{proto:?} {host} {user}:{password}");
            assert_eq!(
                a.header("x-seen-authorization"),
                None,
                "{proto:?} {host}: the password stops at the proxy, as ingress-nginx's"
            );
        }

        // External auth: allowed, and the answer's header reaches the backend.
        let a = get(
            &mut c,
            "external.example",
            "/cart?id=1",
            &[
                ("authorization", "Bearer ok"),
                ("x-auth-request-user", "root"),
            ],
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
        assert_eq!(a.header("x-seen-user"), Some("alice"), "{proto:?}");
        assert_eq!(
            a.header("x-seen-authorization"),
            Some("Bearer ok"),
            "{proto:?}"
        );
        // Denied: ingress-nginx's sign-in redirect, `rd` = the original URL.
        let a = get(&mut c, "external.example", "/cart?id=1", &[]).await;
        assert_eq!(a.status, StatusCode::FOUND, "{proto:?}");
        assert_eq!(
            a.header("location"),
            Some("https://login.example/oauth2/start?rd=http://external.example%2Fcart%3Fid%3D1"),
            "{proto:?}"
        );

        // CORS preflight (ingress-nginx docs: 204 with the allow headers and defaults).
        let a = send(
            &mut c,
            "OPTIONS",
            "cors.example",
            "/",
            &[
                ("origin", "https://origin-site.com:4443"),
                ("access-control-request-method", "PUT"),
            ],
        )
        .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{proto:?}");
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some("https://origin-site.com:4443")
        );
        assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(
            a.header("access-control-allow-methods"),
            Some("GET, PUT, POST, DELETE, PATCH, OPTIONS")
        );
        // Header names compare case-insensitively; weir sends them lower-cased.
        let allowed = a.header("access-control-allow-headers").unwrap_or_default();
        assert!(
            allowed.eq_ignore_ascii_case(
                "DNT, Keep-Alive, User-Agent, X-Requested-With, If-Modified-Since, \
                 Cache-Control, Content-Type, Range, Authorization"
            ),
            "{proto:?}: {allowed}"
        );
        assert_eq!(a.header("access-control-max-age"), Some("1728000"));
        // A simple request from a wildcard origin: allowed, with the exposed headers.
        let a = get(
            &mut c,
            "cors.example",
            "/",
            &[("origin", "https://app.example.org")],
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some("https://app.example.org")
        );
        let exposed = a
            .header("access-control-expose-headers")
            .unwrap_or_default();
        assert!(
            exposed.eq_ignore_ascii_case("X-CustomResponseHeader"),
            "{proto:?}: {exposed}"
        );
        // An origin not listed gets no CORS headers.
        let a = get(
            &mut c,
            "cors.example",
            "/",
            &[("origin", "https://evil.com")],
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
        assert_eq!(a.header("access-control-allow-origin"), None);

        // Rate limit: rpm 1 with burst 2 lets exactly 3 requests through at once (nginx's
        // burst + 1), then 503. One token comes back per 60 s, and this loop takes far
        // less, so the 4th and 5th are refused.
        let host = match proto {
            Proto::H1 => "limited-h1.example",
            Proto::H2 => "limited-h2.example",
        };
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(get(&mut c, host, "/", &[]).await.status);
        }
        assert_eq!(
            statuses,
            [200, 200, 200, 503, 503].map(|s| StatusCode::from_u16(s).expect("status")),
            "{proto:?}"
        );
        // The same limit with 127.0.0.1 exempt: never refused.
        for i in 0..8 {
            let a = get(&mut c, "exempt.example", "/", &[]).await;
            assert_eq!(a.status, StatusCode::OK, "{proto:?} request {i}");
        }

        // satisfy: any — the allow list lets 127.0.0.1 in without credentials; where it
        // does not list it, credentials do; with no authentication after it, 403.
        let a = get(&mut c, "any-allowed.example", "/", &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
        let a = get(&mut c, "any-other.example", "/", &[]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{proto:?}");
        let a = get(
            &mut c,
            "any-other.example",
            "/",
            &[("authorization", &right)],
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
        let a = get(&mut c, "any-alone.example", "/", &[]).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{proto:?}");

        // Custom headers: the ConfigMap's entries on the response (the docs' example).
        let a = get(&mut c, "headers.example", "/", &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
        assert_eq!(
            a.header("x-using-nginx-controller"),
            Some("true"),
            "{proto:?}"
        );
        let a = get(&mut c, "basic.example", "/", &[]).await;
        assert_eq!(
            a.header("x-using-nginx-controller"),
            None,
            "{proto:?}: not elsewhere"
        );

        // Mirror: the copy reaches the shadow with the request's path.
        let path = format!("/mirrored/{proto:?}");
        let a = get(&mut c, "mirror.example", &path, &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
        wait_until("the mirror copy", || {
            shadow.seen().iter().any(|(target, _)| *target == path)
        })
        .await;
        // Its Host is the target's host, as ingress-nginx's mirror-host default.
        let seen = shadow.seen();
        let (_, headers) = seen.iter().find(|(t, _)| *t == path).expect("seen");
        assert_eq!(
            headers.get("host").and_then(|h| h.to_str().ok()),
            Some("shadow.shop.svc.cluster.local"),
            "{proto:?}"
        );
    }
    // The auth Service was asked at the configured path.
    assert!(
        auth.seen()
            .iter()
            .all(|(target, _)| target == "/oauth2/auth"),
        "{:?}",
        auth.seen()
    );
    assert_eq!(auth.seen().len(), 4, "two asks per protocol");
}
