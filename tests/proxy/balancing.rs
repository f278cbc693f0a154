//! Load balancing through the real proxy: least request against a slow endpoint, header
//! affinity for the consistent-hashing policies, and cookie affinity with a generated
//! cookie.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use hyper_util::rt::{TokioExecutor, TokioIo};
use weir::proxy::ProxyConfig;
use weir::snapshot::{HashKey, LbPolicy};

/// A backend (HTTP/1.1 and h2c) that answers every request after `delay`, naming itself in
/// `x-backend`. Stopped by aborting the returned task.
pub(crate) async fn delayed_backend(
    name: &'static str,
    delay: Duration,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |_req| async move {
                    tokio::time::sleep(delay).await;
                    let mut resp = http::Response::new(body("slow"));
                    resp.headers_mut()
                        .insert("x-backend", http::HeaderValue::from_static(name));
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

/// 16 concurrent clients × 25 requests through a cluster under `policy` over two fast
/// backends and one answering after 50 ms; the requests each backend answered.
async fn spread_under_load(policy: LbPolicy, proto: Proto) -> HashMap<String, usize> {
    let fast_a = Backend::start("fast-a").await;
    let fast_b = Backend::start("fast-b").await;
    let (slow, slow_task) = delayed_backend("slow", Duration::from_millis(50)).await;
    let h = Harness::start(ProxyConfig::default()).await;
    let mut sets = BTreeMap::new();
    sets.insert(key("svc"), set([fast_a.addr, fast_b.addr, slow]));
    h.proxy.publish_endpoints(Arc::new(sets));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "svc")
            .cluster("svc", |c| c.lb.policy = policy)
            .build(),
    );
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let mut c = h.client(proto).await;
        clients.spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..25 {
                let a = c.get("a.example", "/").await;
                assert_eq!(a.status, 200);
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
    slow_task.abort();
    counts
}

#[tokio::test]
async fn least_request_and_peak_ewma_send_clearly_less_to_a_slow_endpoint_than_round_robin() {
    for proto in BOTH {
        let rr = spread_under_load(LbPolicy::RoundRobin, proto).await;
        let lr = spread_under_load(LbPolicy::LeastRequest, proto).await;
        let ewma = spread_under_load(
            LbPolicy::PeakEwma {
                decay: Duration::from_secs(10),
            },
            proto,
        )
        .await;
        let slow = |c: &HashMap<String, usize>| {
            c.get("slow").copied().unwrap_or(0) as f64 / c.values().sum::<usize>() as f64
        };
        eprintln!("{proto:?}: round robin {rr:?}, least request {lr:?}, peak EWMA {ewma:?}");
        // Round robin gives each of the 3 endpoints 1/3 whatever their speed (a pick per
        // request, 400 requests: within a few requests of 133). Least request sees the slow
        // endpoint's requests pile up in flight (each holds it for 50 ms while the fast ones
        // answer in about a millisecond), so it loses nearly every pair it is drawn in.
        assert!((slow(&rr) - 1.0 / 3.0).abs() < 0.05, "{proto:?}: {rr:?}");
        assert!(slow(&lr) < slow(&rr), "{proto:?}: {lr:?} vs {rr:?}");
        assert!(slow(&lr) < 0.25, "{proto:?}: {lr:?}");
        // Peak EWMA also sees the slow endpoint's 50 ms samples (against about 1 ms).
        assert!(slow(&ewma) < slow(&rr), "{proto:?}: {ewma:?} vs {rr:?}");
        assert!(slow(&ewma) < 0.25, "{proto:?}: {ewma:?}");
    }
}

#[tokio::test]
async fn hashing_policies_keep_a_header_value_on_one_endpoint() {
    let x_user = http::HeaderName::from_static("x-user");
    for policy in [
        LbPolicy::RingHash {
            key: HashKey::Header(x_user.clone()),
            min_ring_size: 1024,
        },
        LbPolicy::Maglev {
            key: HashKey::Header(x_user.clone()),
        },
    ] {
        let backends = [
            Backend::start("a").await,
            Backend::start("b").await,
            Backend::start("c").await,
        ];
        let h = Harness::start(ProxyConfig::default()).await;
        h.proxy
            .publish_endpoints(endpoints(&[("svc", &backends.iter().collect::<Vec<_>>())]));
        h.publish(
            snapshot()
                .host("a.example")
                .prefix("/", "svc")
                .cluster("svc", |c| c.lb.policy = policy.clone())
                .build(),
        );
        for proto in BOTH {
            let mut c = h.client(proto).await;
            let mut get = async |user: &str| {
                let mut req = c.request("GET", "a.example", "/", empty());
                req.headers_mut()
                    .insert("x-user", http::HeaderValue::from_str(user).expect("value"));
                let a = c.answer(req).await;
                assert_eq!(a.status, 200);
                a.backend().expect("x-backend").to_owned()
            };
            let first = get("alice").await;
            for _ in 0..199 {
                assert_eq!(get("alice").await, first, "{policy:?} {proto:?}");
            }
            // 60 users over 3 endpoints: each endpoint gets some unless the hash misses one
            // entirely, probability ≈ 3 × (2/3)^60 ≈ 1e-10.
            let mut seen = HashSet::new();
            for u in 0..60 {
                seen.insert(get(&format!("user-{u}")).await);
            }
            assert_eq!(seen.len(), 3, "{policy:?} {proto:?}: {seen:?}");
        }
    }
}

#[tokio::test]
async fn a_generated_cookie_makes_the_next_requests_stick() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy
        .publish_endpoints(endpoints(&[("svc", &backends.iter().collect::<Vec<_>>())]));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "svc")
            .cluster("svc", |c| {
                c.lb.policy = LbPolicy::Maglev {
                    key: HashKey::Cookie {
                        name: "sticky".into(),
                        ttl: Duration::from_secs(60),
                        path: "/".into(),
                        same_site: None,
                        secure: false,
                    },
                }
            })
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let mut landed = HashSet::new();
        // Several fresh clients (no cookie): each gets a cookie, and sticks to where its
        // first request went.
        for _ in 0..10 {
            let first = c.get("a.example", "/").await;
            assert_eq!(first.status, 200);
            let set = first.header("set-cookie").expect("set-cookie").to_owned();
            assert!(
                set.starts_with("sticky=") && set.ends_with("; Path=/; Max-Age=60; HttpOnly"),
                "{set}"
            );
            let cookie = set.split(';').next().expect("name=value").to_owned();
            let home = first.backend().expect("x-backend").to_owned();
            landed.insert(home.clone());
            for _ in 0..20 {
                let mut req = c.request("GET", "a.example", "/", empty());
                req.headers_mut().insert(
                    "cookie",
                    http::HeaderValue::from_str(&format!("other=1; {cookie}")).expect("value"),
                );
                let a = c.answer(req).await;
                assert_eq!(a.backend(), Some(home.as_str()), "{proto:?} {cookie}");
                assert!(
                    a.header("set-cookie").is_none(),
                    "no new cookie once it has one"
                );
            }
        }
        // Ten random cookies over 3 endpoints: all on one with probability 3 × (1/3)^10.
        assert!(landed.len() > 1, "{proto:?}: {landed:?}");
    }
}
