//! Upstream connection pools: HTTP/1.1 keep-alive reuse, and HTTP/2 multiplexing that
//! honours the peer's `SETTINGS_MAX_CONCURRENT_STREAMS` by opening more connections.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::support::*;
use hyper_util::rt::{TokioExecutor, TokioIo};
use weir::proxy::ProxyConfig;
use weir::snapshot::UpstreamProtocol;

/// An h2c-only backend allowing `max_streams` concurrent streams per connection; counts
/// connections. Each response takes 100 ms.
async fn h2_backend(
    max_streams: u32,
) -> (
    std::net::SocketAddr,
    Arc<AtomicU64>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conns = Arc::new(AtomicU64::new(0));
    let counted = conns.clone();
    let task = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            counted.fetch_add(1, Ordering::Relaxed);
            tasks.spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, Infallible>(http::Response::new(body("ok")))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(max_streams)
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, conns, task)
}

#[tokio::test]
async fn h2_upstream_opens_more_connections_when_the_peer_limits_streams() {
    let (addr, conns, server) = h2_backend(5).await;
    let h = Harness::start(ProxyConfig::default()).await;
    let mut sets = std::collections::BTreeMap::new();
    sets.insert(key("g"), set([addr]));
    h.proxy.publish_endpoints(Arc::new(sets));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "g")
            .protocol("g", UpstreamProtocol::H2c)
            .build(),
    );
    let c = h.client(Proto::H2).await;
    // Warm up: one connection, whose SETTINGS (max 5 streams) weir has now seen.
    let mut warm = Client::H2(c.h2());
    assert_eq!(warm.get("a.example", "/").await.status, 200);
    assert_eq!(conns.load(Ordering::Relaxed), 1);
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let mut s = Client::H2(c.h2());
        burst.spawn(async move { s.get("a.example", "/").await.status });
    }
    while let Some(status) = burst.join_next().await {
        assert_eq!(status.expect("join"), 200);
    }
    // 20 concurrent streams cannot fit in one connection of 5: weir opened more.
    assert!(
        conns.load(Ordering::Relaxed) >= 2,
        "connections: {}",
        conns.load(Ordering::Relaxed)
    );
    server.abort();
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection_per_protocol() {
    let (addr, conns, server) = h2_backend(100).await;
    let h = Harness::start(ProxyConfig::default()).await;
    let mut sets = std::collections::BTreeMap::new();
    sets.insert(key("g"), set([addr]));
    h.proxy.publish_endpoints(Arc::new(sets));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "g")
            .protocol("g", UpstreamProtocol::H2c)
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        for _ in 0..5 {
            assert_eq!(c.get("a.example", "/").await.status, 200);
        }
    }
    // Ten requests from two client connections, one multiplexed upstream connection.
    assert_eq!(conns.load(Ordering::Relaxed), 1);
    server.abort();
}

/// An HTTP/1.1 keep-alive backend whose responses take `delay`; counts connections and the
/// most requests it had in progress at once.
async fn h1_slow_backend(
    delay: Duration,
) -> (std::net::SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conns = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let (counted, peaked) = (conns.clone(), peak.clone());
    let busy = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::Relaxed);
            let (peaked, busy) = (peaked.clone(), busy.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let (peaked, busy) = (peaked.clone(), busy.clone());
                    async move {
                        let now = busy.fetch_add(1, Ordering::Relaxed) + 1;
                        peaked.fetch_max(now, Ordering::Relaxed);
                        tokio::time::sleep(delay).await;
                        busy.fetch_sub(1, Ordering::Relaxed);
                        Ok::<_, Infallible>(http::Response::new(body("ok")))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, conns, peak)
}

fn capped(h: &Harness, addr: std::net::SocketAddr, limits: weir::snapshot::Limits) {
    let mut sets = std::collections::BTreeMap::new();
    sets.insert(key("g"), set([addr]));
    h.proxy.publish_endpoints(Arc::new(sets));
    let built = snapshot().host("a.example").prefix("/", "g").build();
    let mut snap = weir::snapshot::Snapshot::clone(&built);
    std::sync::Arc::make_mut(snap.clusters.get_mut(&key("g")).expect("cluster")).limits = limits;
    h.publish(Arc::new(snap));
}

async fn burst(h: &Harness, n: usize) -> Vec<u16> {
    let c = h.client(Proto::H2).await;
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..n {
        let mut s = Client::H2(c.h2());
        burst.spawn(async move { s.get("a.example", "/").await.status.as_u16() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = burst.join_next().await {
        statuses.push(status.expect("join"));
    }
    statuses.sort_unstable();
    statuses
}

#[tokio::test]
async fn http1_connections_are_capped_and_the_rest_wait_for_one() {
    let (addr, conns, peak) = h1_slow_backend(Duration::from_millis(50)).await;
    let h = Harness::start(ProxyConfig::default()).await;
    let limits = weir::snapshot::Limits {
        max_connections: 2,
        ..Default::default()
    };
    capped(&h, addr, limits);
    assert_eq!(burst(&h, 10).await, vec![200; 10]);
    // Two connections, kept alive and handed from one waiting request to the next.
    assert_eq!(conns.load(Ordering::Relaxed), 2);
    assert_eq!(peak.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_full_or_timed_out_pending_queue_is_answered_503() {
    let (addr, _conns, _peak) = h1_slow_backend(Duration::from_secs(2)).await;
    let h = Harness::start(ProxyConfig::default()).await;
    let limits = weir::snapshot::Limits {
        max_connections: 1,
        max_pending: 1,
        queue_timeout: Duration::from_millis(100),
    };
    capped(&h, addr, limits);
    // One is served, one waits and times out, one finds the queue full.
    assert_eq!(burst(&h, 3).await, vec![200, 503, 503]);
}
