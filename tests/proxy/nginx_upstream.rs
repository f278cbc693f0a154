//! ingress-nginx balancing, affinity, timeout, retry and backend-protocol annotations, from
//! manifests through the real proxy, over HTTP/1.1 and HTTP/2: `load-balance: ewma` sends
//! less to a slow endpoint than `round_robin`; `affinity: cookie` sets its cookie and sticks
//! to it; `upstream-hash-by` keeps a `$arg_`/`$http_`/`$request_uri` value on one endpoint;
//! `proxy-connect-timeout` fails a black-holed endpoint over to another;
//! `proxy-next-upstream: http_502` retries a 502 and `off` does not; `backend-protocol: GRPC`
//! speaks h2c to an h2-only backend; `service-upstream` forwards to the ClusterIP (a
//! headless Service answers 503); and Ingresses with different annotations on one Service get
//! clusters of their own while one without any keeps the default cluster.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::HeaderValue;
use weir::proxy::ProxyConfig;

use crate::balancing::delayed_backend;
use crate::support::*;

/// An Ingress of class `nginx` for `name.example/` → `service`.
fn ingress(name: &str, service: &str, annotations: &[(&str, &str)]) -> String {
    nginx_ingress(name, &format!("{name}.example"), service, annotations)
}

/// 16 concurrent clients × 25 requests to `host`; the requests each backend answered.
async fn spread(h: &Harness, host: &'static str, proto: Proto) -> HashMap<String, usize> {
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let mut c = h.client(proto).await;
        clients.spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..25 {
                let a = c.get(host, "/").await;
                assert_eq!(a.status, 200, "{host}");
                seen.push(a.backend().expect("x-backend").to_owned());
            }
            seen
        });
    }
    let mut counts = HashMap::new();
    while let Some(seen) = clients.join_next().await {
        for b in seen.expect("client") {
            *counts.entry(b).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test]
async fn ewma_sends_less_to_a_slow_endpoint_than_round_robin_and_variants_are_clusters_of_their_own()
 {
    for proto in BOTH {
        let fast_a = Backend::start("fast-a").await;
        let fast_b = Backend::start("fast-b").await;
        let (slow, slow_task) = delayed_backend("slow", Duration::from_millis(50)).await;
        let mut yaml = NGINX_CLASS.to_owned();
        yaml.push_str(&service_yaml("mixed", &[fast_a.addr, fast_b.addr, slow]));
        yaml.push_str(&ingress("rr", "mixed", &[("load-balance", "round_robin")]));
        yaml.push_str(&ingress("ewma", "mixed", &[("load-balance", "ewma")]));
        yaml.push_str(&ingress("plain", "mixed", &[]));
        let h = Harness::start(ProxyConfig::default()).await;
        let compiled = h.serve_manifests(&yaml, &["nginx"]);
        // Two annotated Ingresses, two variants; the plain one keeps the default cluster.
        let variants: BTreeSet<&str> = compiled
            .snapshot
            .clusters
            .keys()
            .filter(|k| k.service() == "mixed")
            .map(|k| k.variant())
            .collect();
        assert_eq!(variants.len(), 3, "{variants:?}");
        assert!(variants.contains(""), "{variants:?}");
        assert!(
            variants.iter().filter(|v| v.starts_with("nginx-")).count() == 2,
            "{variants:?}"
        );

        let share = |c: &HashMap<String, usize>| {
            c.get("slow").copied().unwrap_or(0) as f64 / c.values().sum::<usize>() as f64
        };
        let rr = spread(&h, "rr.example", proto).await;
        let ewma = spread(&h, "ewma.example", proto).await;
        let plain = spread(&h, "plain.example", proto).await;
        eprintln!("{proto:?}: round robin {rr:?}, ewma {ewma:?}, plain {plain:?}");
        // Round robin gives each of the 3 endpoints exactly every third pick (400 picks:
        // 133 or 134 each, whatever their speed), so within 0.05 of 1/3. Peak EWMA sees the
        // slow endpoint's 50 ms samples against about 1 ms and its requests in flight, so it
        // loses nearly every comparison (as in tests/proxy/balancing.rs: well under 1/4).
        assert!((share(&rr) - 1.0 / 3.0).abs() < 0.05, "{proto:?}: {rr:?}");
        assert!(share(&ewma) < 0.25, "{proto:?}: {ewma:?}");
        assert!(share(&ewma) < share(&rr), "{proto:?}: {ewma:?} vs {rr:?}");
        // The plain Ingress's default cluster is weir's default, round robin too.
        assert!(
            (share(&plain) - 1.0 / 3.0).abs() < 0.05,
            "{proto:?}: {plain:?}"
        );
        slow_task.abort();
    }
}

#[tokio::test]
async fn cookie_affinity_sets_its_cookie_and_sticks_and_hash_by_keeps_a_key_on_one_endpoint() {
    for proto in BOTH {
        let pool = [
            Backend::start("a").await,
            Backend::start("b").await,
            Backend::start("c").await,
        ];
        let addrs: Vec<SocketAddr> = pool.iter().map(|b| b.addr).collect();
        let mut yaml = NGINX_CLASS.to_owned();
        yaml.push_str(&service_yaml("pool", &addrs));
        yaml.push_str(&ingress(
            "sticky",
            "pool",
            &[
                ("affinity", "cookie"),
                ("session-cookie-name", "route"),
                ("session-cookie-path", "/"),
                ("session-cookie-max-age", "3600"),
                ("session-cookie-samesite", "Strict"),
                ("session-cookie-secure", "true"),
            ],
        ));
        yaml.push_str(&ingress(
            "byarg",
            "pool",
            &[("upstream-hash-by", "$arg_user")],
        ));
        yaml.push_str(&ingress(
            "byheader",
            "pool",
            &[("upstream-hash-by", "$http_x_user")],
        ));
        yaml.push_str(&ingress(
            "byuri",
            "pool",
            &[("upstream-hash-by", "$request_uri")],
        ));
        let h = Harness::start(ProxyConfig::default()).await;
        h.serve_manifests(&yaml, &["nginx"]);
        let mut c = h.client(proto).await;

        // No cookie: weir picks by a fresh value and sets it with the annotations' attributes.
        let first = c.get("sticky.example", "/").await;
        assert_eq!(first.status, 200, "{proto:?}");
        let set = first.header("set-cookie").expect("set-cookie").to_owned();
        let value = set
            .strip_prefix("route=")
            .and_then(|r| r.split(';').next())
            .expect("route=value")
            .to_owned();
        assert!(
            set.ends_with("; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict; Secure"),
            "{proto:?}: {set}"
        );
        let pinned = first.backend().expect("backend").to_owned();
        // 50 requests with the cookie: all on the endpoint the first one reached (round
        // robin over 3 would give each a third), and no new cookie.
        for _ in 0..50 {
            let mut req = c.request("GET", "sticky.example", "/", empty());
            req.headers_mut().insert(
                "cookie",
                HeaderValue::from_str(&format!("route={value}")).expect("cookie"),
            );
            let a = c.answer(req).await;
            assert_eq!(a.backend(), Some(pinned.as_str()), "{proto:?}");
            assert_eq!(a.header("set-cookie"), None, "{proto:?}");
        }

        // Hash by a query parameter, a header and the request URI: 10 keys × 10 requests each; each key
        // stays on one endpoint. With 3 endpoints the 10 keys all land on the same one with
        // probability 3 × (1/3)^10 ≈ 5e-5, so more than one endpoint serves them.
        for (host, by) in [
            ("byarg.example", "arg"),
            ("byheader.example", "header"),
            ("byuri.example", "uri"),
        ] {
            let mut used = BTreeSet::new();
            for user in 0..10 {
                let mut seen = BTreeSet::new();
                for _ in 0..10 {
                    let path = match by {
                        "arg" => format!("/?user=u{user}"),
                        "uri" => format!("/u{user}?page=1"),
                        _ => "/".to_owned(),
                    };
                    let mut req = c.request("GET", host, &path, empty());
                    if by == "header" {
                        req.headers_mut().insert(
                            "x-user",
                            HeaderValue::from_str(&format!("u{user}")).expect("value"),
                        );
                    }
                    let a = c.answer(req).await;
                    assert_eq!(a.status, 200, "{proto:?} {host}");
                    seen.insert(a.backend().expect("backend").to_owned());
                }
                assert_eq!(seen.len(), 1, "{proto:?} {host} u{user}: {seen:?}");
                used.extend(seen);
            }
            assert!(used.len() > 1, "{proto:?} {host}: {used:?}");
        }
    }
}

#[tokio::test]
async fn connect_timeout_fails_over_and_next_upstream_retries_502_unless_off() {
    for proto in BOTH {
        let (hole, _filler) = black_hole();
        let good = Backend::start("good").await;
        let failing = Backend::start("failing").await;
        failing.fail_with(502);
        let failing_off = Backend::start("failing-off").await;
        failing_off.fail_with(502);
        let good_off = Backend::start("good-off").await;
        let mut yaml = NGINX_CLASS.to_owned();
        yaml.push_str(&service_yaml(
            "holey",
            &[hole.local_addr().expect("addr"), good.addr],
        ));
        // Separate Services (and endpoints): clusters share endpoint state by address, so
        // ejecting the failing endpoint for one Ingress must not hide it from the other.
        yaml.push_str(&service_yaml("flaky", &[failing.addr, good.addr]));
        yaml.push_str(&service_yaml(
            "flaky-off",
            &[failing_off.addr, good_off.addr],
        ));
        yaml.push_str(&ingress(
            "connect",
            "holey",
            &[("proxy-connect-timeout", "1")],
        ));
        yaml.push_str(&ingress(
            "retry",
            "flaky",
            &[("proxy-next-upstream", "error timeout http_502")],
        ));
        yaml.push_str(&ingress(
            "noretry",
            "flaky-off",
            &[("proxy-next-upstream", "off")],
        ));
        let h = Harness::start(ProxyConfig::default()).await;
        let compiled = h.serve_manifests(&yaml, &["nginx"]);
        let holey = compiled
            .snapshot
            .clusters
            .values()
            .find(|c| c.key.service() == "holey")
            .expect("the holey cluster");
        assert_eq!(holey.timeouts.connect, Duration::from_secs(1), "{proto:?}");
        let mut c = h.client(proto).await;

        // Round robin over the black hole and the good endpoint: of 4 requests at least one
        // tries the hole first, waits out the connect timeout (1 s, checked above: how long
        // it took is not asserted) and is answered by the good endpoint.
        let mut slowest = Duration::ZERO;
        for _ in 0..4 {
            let started = Instant::now();
            let a = c.get("connect.example", "/").await;
            slowest = slowest.max(started.elapsed());
            assert_eq!(a.status, 200, "{proto:?}");
            assert_eq!(a.backend(), Some("good"), "{proto:?}");
        }
        // A lower bound only: it shows the hole was tried, and cannot fail on a slow machine.
        assert!(
            slowest >= Duration::from_millis(900),
            "{proto:?}: {slowest:?}"
        );

        // `off`: round robin sends one of the first two requests to the failing endpoint,
        // and its 502 is the answer.
        let mut statuses = Vec::new();
        for _ in 0..2 {
            statuses.push(c.get("noretry.example", "/").await.status.as_u16());
        }
        assert!(statuses.contains(&502), "{proto:?}: {statuses:?}");

        // `http_502`: the failing endpoint's 502s are retried on the good one.
        for _ in 0..6 {
            let a = c.get("retry.example", "/").await;
            assert_eq!(a.status, 200, "{proto:?}");
            assert_eq!(a.backend(), Some("good"), "{proto:?}");
        }
        assert!(
            failing.hits() > 0,
            "{proto:?}: the failing endpoint was tried"
        );
    }
}

#[tokio::test]
async fn backend_protocol_grpc_speaks_h2c_to_the_backend() {
    for proto in BOTH {
        let grpc = GrpcBackend::start("grpc").await;
        let mut yaml = NGINX_CLASS.to_owned();
        yaml.push_str(&service_yaml("grpc", &[grpc.addr]));
        yaml.push_str(&ingress("grpc", "grpc", &[("backend-protocol", "GRPC")]));
        yaml.push_str(&ingress("plain", "grpc", &[]));
        let h = Harness::start(ProxyConfig::default()).await;
        h.serve_manifests(&yaml, &["nginx"]);
        let mut c = h.client(proto).await;
        let a = c.get("grpc.example", "/pkg.Svc/Call").await;
        assert_eq!(a.status, 200, "{proto:?}");
        assert_eq!(a.backend(), Some("grpc"), "{proto:?}");
        assert_eq!(grpc.hits(), 1, "{proto:?}");
        // Without the annotation weir speaks HTTP/1.1, which the h2-only backend refuses.
        let mut c = h.client(proto).await;
        let a = c.get("plain.example", "/pkg.Svc/Call").await;
        assert_eq!(a.status, 502, "{proto:?}");
        assert_eq!(grpc.hits(), 1, "{proto:?}");
    }
}

#[tokio::test]
async fn service_upstream_forwards_to_the_cluster_ip_and_a_headless_service_answers_503() {
    for proto in BOTH {
        let vip = Backend::start("vip").await;
        let pod = Backend::start("pod").await;
        let port = vip.addr.port();
        let mut yaml = NGINX_CLASS.to_owned();
        // The Service's ClusterIP:port is the `vip` backend; its EndpointSlice names `pod`.
        yaml.push_str(&format!(
            r#"---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec: {{clusterIP: 127.0.0.1, ports: [{{name: http, port: {port}}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: headless, namespace: shop}}
spec: {{clusterIP: None, ports: [{{name: http, port: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-0, namespace: shop, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: {pod_port}}}]
endpoints: [{{addresses: ["127.0.0.1"]}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: headless-0, namespace: shop, labels: {{kubernetes.io/service-name: headless}}}}
addressType: IPv4
ports: [{{name: http, port: {pod_port}}}]
endpoints: [{{addresses: ["127.0.0.1"]}}]
"#,
            pod_port = pod.addr.port()
        ));
        let on_port = |name: &str, service: &str, annotations: &[(&str, &str)]| {
            let host = format!("{name}.example");
            IngressYaml::nginx(name, &host)
                .service(service)
                .port(port)
                .nginx_annotations(annotations)
                .yaml()
        };
        yaml.push_str(&on_port("vip", "web", &[("service-upstream", "true")]));
        yaml.push_str(&on_port("pods", "web", &[]));
        yaml.push_str(&on_port(
            "headless",
            "headless",
            &[("service-upstream", "true")],
        ));
        let h = Harness::start(ProxyConfig::default()).await;
        let compiled = h.serve_manifests(&yaml, &["nginx"]);
        let reasons = condition_reasons(&compiled);
        assert!(
            reasons.contains(&("headless".to_owned(), "NoClusterIP")),
            "{reasons:?}"
        );
        let mut c = h.client(proto).await;
        for _ in 0..3 {
            assert_eq!(c.get("vip.example", "/").await.backend(), Some("vip"));
            assert_eq!(c.get("pods.example", "/").await.backend(), Some("pod"));
        }
        assert_eq!(
            c.get("headless.example", "/").await.status,
            503,
            "{proto:?}"
        );
    }
}
