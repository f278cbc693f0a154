//! The access-control filters through the real proxy, each over HTTP/1.1 and HTTP/2:
//! `RateLimit` (429 with `Retry-After`, refill on the paused clock, buckets kept across an
//! unchanged publish), `IPAccess` (allow/deny by the peer and by `X-Forwarded-For` with
//! trusted hops, failing closed; `/public/../admin` cannot step around it) and `BasicAuth`
//! (bcrypt and `{SHA}` accepted, anything else 401). The last test goes from manifests
//! (`HTTPFilter` + Secret + Ingress) through `weir::compile` to the proxy.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use weir::proxy::{ForwardedHeaders, ProxyConfig};
use weir::snapshot::{
    BasicAuth, Filter, IpAccess, PasswordHash, PathMatch, RateLimit, RateLimitKey, RouteMatch,
    Snapshot,
};

use crate::support::*;

fn prefix(p: &str) -> RouteMatch {
    RouteMatch::path(PathMatch::Prefix(p.into()))
}

async fn get_with(c: &mut Client, host: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = c.request("GET", host, path, empty());
    for (k, v) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    c.answer(req).await
}

fn rate_limited(burst: u32) -> Arc<Snapshot> {
    let limit = |burst| {
        vec![Filter::RateLimit(Arc::new(RateLimit {
            requests: 1,
            // An hour per token: the paused clock jumps to the next timer whenever the runtime
            // idles on IO (pool idle timers are a minute), which must not refill a bucket.
            period: Duration::from_secs(3600),
            burst,
            key: RateLimitKey::Route,
            status: 429,
            exempt: Vec::new(),
        }))]
    };
    // One host per protocol, so each starts with its own full bucket.
    snapshot()
        .host("h1.example")
        .route_with(prefix("/"), limit(burst), forward("svc"))
        .host("h2.example")
        .route_with(prefix("/"), limit(burst), forward("svc"))
        .build()
}

#[tokio::test(start_paused = true)]
async fn rate_limit_answers_429_with_retry_after_refills_and_survives_an_unchanged_publish() {
    let backend = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy
        .publish_endpoints(endpoints(&[("svc", &[&backend])]));
    h.publish(rate_limited(2));
    for (proto, host) in [(Proto::H1, "h1.example"), (Proto::H2, "h2.example")] {
        let mut c = h.client(proto).await;
        for _ in 0..2 {
            assert_eq!(c.get(host, "/").await.status, StatusCode::OK, "{proto:?}");
        }
        let refused = c.get(host, "/").await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{proto:?}");
        let retry: u64 = refused
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!(
            (1..=3600).contains(&retry),
            "{proto:?}: one token an hour: {retry}"
        );

        // The same configuration published again keeps the (empty) bucket.
        h.publish(rate_limited(2));
        assert_eq!(c.get(host, "/").await.status, StatusCode::TOO_MANY_REQUESTS);

        // After Retry-After, one token is back (and only one). A new client: the old one's
        // keep-alive connection idles out meanwhile.
        tokio::time::sleep(Duration::from_secs(retry)).await;
        let mut c = h.client(proto).await;
        assert_eq!(
            c.get(host, "/").await.status,
            StatusCode::OK,
            "{proto:?} refilled"
        );
        assert_eq!(c.get(host, "/").await.status, StatusCode::TOO_MANY_REQUESTS);
    }
    // A changed limit is a new filter: full buckets.
    h.publish(rate_limited(3));
    let mut c = h.client(Proto::H1).await;
    assert_eq!(c.get("h1.example", "/").await.status, StatusCode::OK);
    assert_eq!(backend.hits(), 2 * 3 + 1);
}

fn ip(allow: &[&str], deny: &[&str], trusted_hops: u32) -> Vec<Filter> {
    vec![Filter::IpAccess(Arc::new(IpAccess {
        allow: allow.iter().map(|s| s.parse().expect("cidr")).collect(),
        deny: deny.iter().map(|s| s.parse().expect("cidr")).collect(),
        trusted_hops,
        satisfy_any: false,
    }))]
}

/// (path, request headers, expected status)
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], StatusCode);

fn ip_snapshot() -> Arc<Snapshot> {
    snapshot()
        .host("ip.example")
        .route_with(
            prefix("/loopback"),
            ip(&["127.0.0.0/8"], &[], 0),
            forward("svc"),
        )
        .route_with(
            prefix("/denied"),
            ip(&["127.0.0.0/8"], &["127.0.0.1"], 0),
            forward("svc"),
        )
        .route_with(prefix("/lb"), ip(&["192.0.2.0/24"], &[], 1), forward("svc"))
        .route_with(prefix("/public"), vec![], forward("svc"))
        .route_with(
            prefix("/admin"),
            ip(&["10.0.0.0/8"], &[], 0),
            forward("svc"),
        )
        .build()
}

#[tokio::test]
async fn ip_access_allows_and_denies_by_peer_and_by_trusted_forwarded_for() {
    let backend = Backend::start("a").await;
    // The load balancer in front of weir is the loopback peer.
    let config = ProxyConfig {
        forwarded: ForwardedHeaders {
            trusted_proxies: vec!["127.0.0.0/8".parse().expect("cidr")],
        },
        ..ProxyConfig::default()
    };
    let h = Harness::start(config).await;
    h.proxy
        .publish_endpoints(endpoints(&[("svc", &[&backend])]));
    h.publish(ip_snapshot());
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let cases: [Case; 8] = [
            ("/loopback", &[], StatusCode::OK),
            ("/denied", &[], StatusCode::FORBIDDEN),
            // trustedHops 1: the entry the load balancer appended.
            ("/lb", &[("x-forwarded-for", "192.0.2.7")], StatusCode::OK),
            (
                "/lb",
                &[("x-forwarded-for", "198.51.100.1")],
                StatusCode::FORBIDDEN,
            ),
            // A client-sent entry left of the balancer's does not count.
            (
                "/lb",
                &[("x-forwarded-for", "192.0.2.7, 198.51.100.1")],
                StatusCode::FORBIDDEN,
            ),
            (
                "/lb",
                &[
                    ("x-forwarded-for", "6.6.6.6"),
                    ("x-forwarded-for", "192.0.2.9"),
                ],
                StatusCode::OK,
            ),
            // Fail closed: no entry for the client, or not an address.
            ("/lb", &[], StatusCode::FORBIDDEN),
            (
                "/lb",
                &[("x-forwarded-for", "unknown")],
                StatusCode::FORBIDDEN,
            ),
        ];
        for (path, headers, want) in cases {
            let a = get_with(&mut c, "ip.example", path, headers).await;
            assert_eq!(a.status, want, "{proto:?} {path} {headers:?}");
        }
    }

    // A peer weir does not trust: its X-Forwarded-For is discarded, so trusted hops find no
    // client and refuse.
    let untrusted = Harness::start(ProxyConfig::default()).await;
    untrusted
        .proxy
        .publish_endpoints(endpoints(&[("svc", &[&backend])]));
    untrusted.publish(ip_snapshot());
    for proto in BOTH {
        let mut c = untrusted.client(proto).await;
        let a = get_with(
            &mut c,
            "ip.example",
            "/lb",
            &[("x-forwarded-for", "192.0.2.7")],
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{proto:?}");
    }
}

#[tokio::test]
async fn path_traversal_cannot_step_around_ip_access() {
    let backend = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy
        .publish_endpoints(endpoints(&[("svc", &[&backend])]));
    h.publish(ip_snapshot());
    for proto in BOTH {
        let mut c = h.client(proto).await;
        assert_eq!(
            c.get("ip.example", "/public/x").await.status,
            StatusCode::OK
        );
        for path in [
            "/admin",
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/public/./../admin/x",
        ] {
            let a = c.get("ip.example", path).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{proto:?} {path}");
        }
    }
    assert_eq!(backend.hits(), 2);
}

/// `secret` under cost 4 (fast to check), and `{SHA}` of `secret`.
fn basic_auth() -> Vec<Filter> {
    let bcrypt = "$2y$04$/wjv.wj7Z/iAz1OGTu4gc.J5yGjxUN67Q6Ni2rhqIjUtlUKxyUc1i";
    let users = [
        ("alice".to_owned(), PasswordHash::Bcrypt(bcrypt.to_owned())),
        (
            "bob".to_owned(),
            PasswordHash::Sha1([
                0xe5, 0xe9, 0xfa, 0x1b, 0xa3, 0x1e, 0xcd, 0x1a, 0xe8, 0x4f, 0x75, 0xca, 0xaa, 0x47,
                0x4f, 0x3a, 0x66, 0x3f, 0x05, 0xf4,
            ]),
        ),
    ];
    vec![Filter::BasicAuth(Arc::new(BasicAuth {
        challenge: HeaderValue::from_static("Basic realm=\"shop\""),
        users: users.into(),
    }))]
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {creds}")
}

#[tokio::test]
async fn basic_auth_accepts_bcrypt_and_sha_and_challenges_everything_else() {
    let backend = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy
        .publish_endpoints(endpoints(&[("svc", &[&backend])]));
    h.publish(
        snapshot()
            .host("auth.example")
            .route_with(prefix("/"), basic_auth(), forward("svc"))
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let refused = [
            None,
            Some(basic("alice", "wrong")),
            Some(basic("carol", "secret")),
            Some("Bearer abc".to_owned()),
        ];
        for auth in refused {
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("authorization", a.as_str())).collect();
            let a = get_with(&mut c, "auth.example", "/", &headers).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{proto:?} {auth:?}");
            assert_eq!(a.header("www-authenticate"), Some("Basic realm=\"shop\""));
        }
        // Twice: the second is answered from the cache, with the same result.
        for (user, n) in [("alice", 2), ("bob", 1)] {
            for _ in 0..n {
                let auth = basic(user, "secret");
                let a = get_with(&mut c, "auth.example", "/", &[("authorization", &auth)]).await;
                assert_eq!(a.status, StatusCode::OK, "{proto:?} {user}");
            }
        }
    }
    assert_eq!(backend.hits(), 6);
}

/// Manifests of three Ingresses, one access filter each, and one naming a BasicAuth filter
/// whose Secret does not exist; the EndpointSlice points at `port` on loopback.
fn manifests(port: u16) -> String {
    let ingress = |name: &str, filter: &str| {
        let host = format!("{name}.example");
        IngressYaml::new("weir", name, &host)
            .annotation("weir.dev/filters", filter)
            .yaml()
    };
    let mut out = WEIR_CLASS.to_owned() + &loopback_service_yaml("web", port);
    out.push_str(
        r#"---
apiVersion: v1
kind: Secret
metadata: {name: htpasswd, namespace: shop}
type: Opaque
stringData:
  auth: |
    # alice:secret (bcrypt, cost 4)
    alice:$2y$04$/wjv.wj7Z/iAz1OGTu4gc.J5yGjxUN67Q6Ni2rhqIjUtlUKxyUc1i
---
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: limit, namespace: shop}
spec:
  filters:
  - type: RateLimit
    rateLimit: {requests: 1, unit: Hour, burst: 1, key: {type: Route}}
---
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: lan-only, namespace: shop}
spec:
  filters:
  - type: IPAccess
    ipAccess: {allow: ["10.0.0.0/8"], deny: []}
---
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: login, namespace: shop}
spec:
  filters:
  - type: BasicAuth
    basicAuth: {secretRef: {name: htpasswd}, realm: shop}
---
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: broken-login, namespace: shop}
spec:
  filters:
  - type: BasicAuth
    basicAuth: {secretRef: {name: no-such-secret}}
"#,
    );
    for (name, filter) in [
        ("limited", "limit"),
        ("lan", "lan-only"),
        ("private", "login"),
        ("broken", "broken-login"),
    ] {
        out.push_str(&ingress(name, filter));
    }
    out
}

#[tokio::test]
async fn manifests_compile_into_access_filters_the_proxy_enforces() {
    let backend = Backend::start("web").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.serve_manifests(&manifests(backend.addr.port()), &[]);

    let mut limited = Vec::new();
    for proto in BOTH {
        let mut c = h.client(proto).await;
        limited.push(c.get("limited.example", "/").await.status);
        limited.push(c.get("limited.example", "/").await.status);
        let lan = c.get("lan.example", "/").await;
        assert_eq!(
            lan.status,
            StatusCode::FORBIDDEN,
            "{proto:?}: loopback is not 10/8"
        );
        let anonymous = c.get("private.example", "/").await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{proto:?}");
        assert_eq!(
            anonymous.header("www-authenticate"),
            Some("Basic realm=\"shop\"")
        );
        let auth = basic("alice", "secret");
        let a = get_with(&mut c, "private.example", "/", &[("authorization", &auth)]).await;
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
        assert_eq!(a.backend(), Some("web"));
        // A missing Secret fails closed, with a body that names the filter.
        let broken = c.get("broken.example", "/").await;
        assert_eq!(
            broken.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{proto:?}"
        );
        let body = String::from_utf8_lossy(&broken.body);
        assert!(body.contains("shop/broken-login"), "{body}");
    }
    // One token per hour for the whole route, whatever the protocol.
    assert_eq!(
        limited,
        [
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}
