//! Streaming behaviour: trailers end to end (a gRPC-shaped call) for every combination of
//! downstream and upstream protocol, WebSocket upgrades tunnelled, and large bodies streamed.

use std::convert::Infallible;

use crate::support::*;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir::proxy::ProxyConfig;
use weir::snapshot::UpstreamProtocol;

#[tokio::test]
async fn trailers_cross_the_proxy_both_ways() {
    let g = Backend::start("grpc").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy
        .publish_endpoints(endpoints(&[("h1", &[&g]), ("h2", &[&g])]));
    h.publish(
        snapshot()
            .host("h1.t.example")
            .prefix("/", "h1")
            .host("h2.t.example")
            .prefix("/", "h2")
            .protocol("h2", UpstreamProtocol::H2c)
            .build(),
    );
    for proto in BOTH {
        for upstream in ["/h1", "/h2"] {
            let mut c = h.client(proto).await;
            let mut trailers = HeaderMap::new();
            trailers.insert("x-client-trailer", "sent".parse().expect("v"));
            let frames = vec![
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"\0\0\0\0\x05hello"))),
                Ok(Frame::trailers(trailers)),
            ];
            let b = StreamBody::new(futures::stream::iter(frames)).boxed();
            let host = format!("{}.t.example", &upstream[1..]);
            let mut req = c.request("POST", &host, "/trailers", b);
            req.headers_mut()
                .insert("te", "trailers".parse().expect("v"));
            req.headers_mut()
                .insert("trailer", "x-client-trailer".parse().expect("v"));
            req.headers_mut()
                .insert("content-type", "application/grpc".parse().expect("v"));
            let r = c.answer(req).await;
            assert_eq!(r.status, 200, "{proto:?} via {upstream}");
            assert_eq!(&r.body[..], b"\0\0\0\0\x05hello");
            let t = r.trailers.unwrap_or_else(|| {
                panic!(
                    "response trailers {proto:?} via {upstream}: {:?}",
                    r.headers
                )
            });
            assert_eq!(t.get("grpc-status").map(|v| v.as_bytes()), Some(&b"0"[..]));
            assert_eq!(
                t.get("x-seen-client-trailer").map(|v| v.as_bytes()),
                Some(&b"sent"[..]),
                "request trailers reach the backend ({proto:?} via {upstream})"
            );
        }
    }
}

#[tokio::test]
async fn grpc_trailers_reach_an_http1_client_from_an_h2_upstream() {
    let g = Backend::start("grpc").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("g", &[&g])]));
    h.publish(
        snapshot()
            .host("g.example")
            .prefix("/", "g")
            .protocol("g", UpstreamProtocol::H2c)
            .build(),
    );
    let mut c = h.client(Proto::H1).await;
    let mut req = c.request("POST", "g.example", "/trailers?undeclared", body("x"));
    req.headers_mut()
        .insert("te", "trailers".parse().expect("v"));
    let r = c.answer(req).await;
    assert_eq!(r.status, 200);
    let t = r.trailers.expect("grpc trailers declared by the proxy");
    assert_eq!(t.get("grpc-status").map(|v| v.as_bytes()), Some(&b"0"[..]));
}

#[tokio::test]
async fn large_bodies_stream_through() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(snapshot().host("a.example").prefix("/", "a").build());
    let payload = Bytes::from(vec![7u8; 4 * 1024 * 1024]);
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let r = c
            .answer(c.request("PUT", "a.example", "/up", body(payload.clone())))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), payload.len(), "{proto:?}");
        assert_eq!(r.body, payload);
    }
}

#[tokio::test]
async fn websocket_upgrade_is_tunnelled() {
    let ws = Backend::start("ws").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy
        .publish_endpoints(endpoints(&[("ws", &[&ws]), ("ws2", &[&ws])]));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "ws")
            .host("b.example")
            .prefix("/", "ws2")
            // An h2c cluster still tunnels HTTP/1.1 upgrades over a dedicated HTTP/1.1 connection.
            .protocol("ws2", UpstreamProtocol::H2c)
            .build(),
    );
    for host in ["a.example", "b.example"] {
        let mut c = h.client(Proto::H1).await;
        let mut req = c.request("GET", host, "/ws", empty());
        let hs = req.headers_mut();
        hs.insert("connection", "Upgrade".parse().expect("v"));
        hs.insert("upgrade", "websocket".parse().expect("v"));
        hs.insert("sec-websocket-version", "13".parse().expect("v"));
        hs.insert(
            "sec-websocket-key",
            "dGhlIHNhbXBsZSBub25jZQ==".parse().expect("v"),
        );
        let resp = c.send(req).await.expect("response");
        assert_eq!(resp.status(), 101, "{host}");
        assert_eq!(
            resp.headers().get("upgrade").map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        let upgraded = hyper::upgrade::on(resp).await.expect("upgrade");
        let mut io = TokioIo::new(upgraded);
        for msg in [&b"hello"[..], b"second frame"] {
            io.write_all(msg).await.expect("write");
            let mut buf = vec![0u8; 5 + msg.len()];
            io.read_exact(&mut buf).await.expect("read");
            assert_eq!(&buf[5..], msg);
            assert_eq!(&buf[..5], b"echo:");
        }
    }
}

#[tokio::test]
async fn websocket_over_h2_extended_connect_is_tunnelled_to_an_http1_upgrade() {
    let ws = Backend::start("ws").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("ws", &[&ws])]));
    h.publish(snapshot().host("a.example").prefix("/", "ws").build());
    let mut c = h.client(Proto::H2).await;
    // The first response guarantees the server's SETTINGS (ENABLE_CONNECT_PROTOCOL) arrived.
    assert_eq!(c.get("a.example", "/").await.status, 200);
    let mut req = http::Request::builder()
        .method("CONNECT")
        .uri("http://a.example/ws")
        .header("sec-websocket-version", "13")
        .body(empty())
        .expect("request");
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let resp = c.send(req).await.expect("response");
    assert_eq!(resp.status(), 200, "RFC 8441: 200 answers the CONNECT");
    assert!(resp.headers().get("sec-websocket-accept").is_none());
    let upgraded = hyper::upgrade::on(resp).await.expect("upgrade");
    let mut io = TokioIo::new(upgraded);
    io.write_all(b"over h2").await.expect("write");
    let mut buf = [0u8; 12];
    io.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"echo:over h2");
    // The stream is tunnelled; the connection still serves other requests.
    assert_eq!(c.get("a.example", "/").await.status, 200);
}
