//! Graceful shutdown: once shutdown is signalled new connections are refused, HTTP/2 clients
//! get GOAWAY, and requests in flight finish before `serve` returns.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;
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

/// Opens a WebSocket tunnel through the proxy to the echo backend.
async fn websocket(h: &Harness) -> TokioIo<hyper::upgrade::Upgraded> {
    let mut c = h.client(Proto::H1).await;
    let mut req = c.request("GET", "a.example", "/ws", empty());
    let hs = req.headers_mut();
    hs.insert("connection", "Upgrade".parse().expect("v"));
    hs.insert("upgrade", "websocket".parse().expect("v"));
    hs.insert("sec-websocket-version", "13".parse().expect("v"));
    hs.insert(
        "sec-websocket-key",
        "dGhlIHNhbXBsZSBub25jZQ==".parse().expect("v"),
    );
    let resp = c.send(req).await.expect("response");
    assert_eq!(resp.status(), 101);
    TokioIo::new(hyper::upgrade::on(resp).await.expect("upgrade"))
}

async fn echo(io: &mut TokioIo<hyper::upgrade::Upgraded>, msg: &[u8]) -> std::io::Result<()> {
    io.write_all(msg).await?;
    let mut buf = vec![0u8; 5 + msg.len()];
    io.read_exact(&mut buf).await?;
    assert_eq!(&buf[5..], msg);
    Ok(())
}

#[tokio::test]
async fn tunnels_are_drained_not_cut_at_shutdown() {
    let ws = Backend::start("ws").await;
    let mut h = Harness::start(ProxyConfig {
        drain_timeout: Duration::from_secs(20),
        ..ProxyConfig::default()
    })
    .await;
    h.proxy.publish_endpoints(endpoints(&[("ws", &[&ws])]));
    h.publish(snapshot().host("a.example").prefix("/", "ws").build());
    let mut io = websocket(&h).await;
    echo(&mut io, b"before").await.expect("tunnel works");

    let serving = h.shutdown();
    // An active tunnel keeps working through the drain (messages every 200 ms, less than the
    // one-second quiet period that ends a draining tunnel).
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        echo(&mut io, format!("during {i}").as_bytes())
            .await
            .expect("tunnel cut during the drain");
    }
    // Once it goes quiet it is closed, and serve returns well before the drain timeout.
    let result = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve waits for the tunnel, then returns")
        .expect("join");
    assert!(result.is_ok());
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), io.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "tunnel not closed: {read:?}"
    );
}

#[tokio::test]
async fn idle_tunnels_are_closed() {
    let ws = Backend::start("ws").await;
    let h = Harness::start(ProxyConfig {
        tunnel_idle_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    })
    .await;
    h.proxy.publish_endpoints(endpoints(&[("ws", &[&ws])]));
    h.publish(snapshot().host("a.example").prefix("/", "ws").build());
    let mut io = websocket(&h).await;
    echo(&mut io, b"hello").await.expect("tunnel works");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "idle tunnel left open: {read:?}"
    );
}
