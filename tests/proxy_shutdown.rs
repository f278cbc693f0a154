//! Graceful shutdown: once shutdown is signalled new connections are refused, HTTP/2 clients
//! get GOAWAY, and requests in flight finish before `serve` returns.

mod support;

use std::time::Duration;

use support::*;
use weir::proxy::ProxyConfig;

#[tokio::test]
async fn in_flight_requests_finish_and_new_connections_are_refused() {
    let a = Backend::start("a").await;
    let mut h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(snapshot().host("a.example").prefix("/", "a").build());

    let mut in_flight = Vec::new();
    for proto in BOTH {
        let mut c = h.client(proto).await;
        // Make sure the connection is established and served before shutdown.
        assert_eq!(c.get("a.example", "/").await.status, 200);
        in_flight.push(tokio::spawn(async move {
            let r = c.get("a.example", "/slow/300").await;
            (r.status, r.body.len(), c)
        }));
    }
    // Let both slow requests reach the backend.
    while a.hits() < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let serving = h.shutdown();
    // The listener is closed promptly: new connections are refused.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(h.http).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(refused, "new connections refused after shutdown");
    for t in in_flight {
        let (status, _, mut c) = t.await.expect("task");
        assert_eq!(status, 200, "in-flight request completed");
        // The connection is done: h2 got GOAWAY, h1 closed after its response.
        let proto = c.proto();
        let req = c.request("GET", "a.example", "/", empty());
        assert!(
            c.send(req).await.is_err(),
            "{proto:?} connection closed after drain"
        );
    }
    let result = tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("serve returns after draining")
        .expect("join");
    assert!(result.is_ok());
}

#[tokio::test]
async fn drain_timeout_bounds_shutdown() {
    let a = Backend::start("a").await;
    let mut h = Harness::start(ProxyConfig {
        drain_timeout: Duration::from_millis(200),
        ..ProxyConfig::default()
    })
    .await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(snapshot().host("a.example").prefix("/", "a").build());
    let mut c = h.client(Proto::H2).await;
    let stuck = tokio::spawn(async move { c.get("a.example", "/slow/60000").await });
    while a.hits() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let serving = h.shutdown();
    let result = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve returns once the drain timeout passed")
        .expect("join");
    assert!(result.is_ok());
    stuck.abort();
}
