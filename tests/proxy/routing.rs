//! Routing by host and path, header rewriting, and failure mapping, each over HTTP/1.1 and
//! HTTP/2 (h2c prior knowledge) from the client.

use std::time::Duration;

use crate::support::*;
use weir::proxy::{ForwardedHeaders, ProxyConfig};
use weir::snapshot::{Timeouts, UpstreamProtocol};

#[tokio::test]
async fn routes_by_host_and_path_over_h1_and_h2() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let w = Backend::start("w").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy
        .publish_endpoints(endpoints(&[("a", &[&a]), ("b", &[&b]), ("w", &[&w])]));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "a")
            .prefix("/api", "b")
            .exact("/exact", "w")
            .host("*.wild.example")
            .prefix("/", "w")
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        assert_eq!(
            c.get("a.example", "/").await.backend(),
            Some("a"),
            "{proto:?}"
        );
        assert_eq!(c.get("a.example", "/api").await.backend(), Some("b"));
        assert_eq!(c.get("a.example", "/api/v1?x=1").await.backend(), Some("b"));
        // Prefix matches whole path elements only.
        assert_eq!(c.get("a.example", "/apix").await.backend(), Some("a"));
        // Host is case-insensitive and the port is ignored.
        assert_eq!(c.get("A.Example:8080", "/api").await.backend(), Some("b"));
        assert_eq!(c.get("a.example", "/exact").await.backend(), Some("w"));
        assert_eq!(c.get("a.example", "/exact/more").await.backend(), Some("a"));
        assert_eq!(c.get("x.wild.example", "/").await.backend(), Some("w"));
        // A wildcard covers one label only; unknown hosts get 404.
        let miss = c.get("y.x.wild.example", "/").await;
        assert_eq!(miss.status, 404, "{proto:?}");
        assert_eq!(c.get("unknown.example", "/").await.status, 404);
    }
}

#[tokio::test]
async fn default_backend_and_direct_responses() {
    let d = Backend::start("d").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("d", &[&d])]));
    h.publish(
        snapshot()
            .host("a.example")
            .respond("/gone", 503, "backend service missing")
            .default_backend("d")
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        assert_eq!(c.get("other.example", "/x").await.backend(), Some("d"));
        let r = c.get("a.example", "/gone").await;
        assert_eq!(r.status, 503);
        assert_eq!(&r.body[..], b"backend service missing");
    }
}

/// What a client (or the proxy in front of weir) sends: two `X-Forwarded-For` lines and
/// every other forwarding header.
fn with_forwarding_headers(c: &Client) -> http::Request<Body> {
    let mut req = c.request("POST", "a.example", "/echo", body("ping"));
    let h = req.headers_mut();
    h.append("x-forwarded-for", "198.51.100.1".parse().expect("v"));
    h.append(
        "x-forwarded-for",
        "203.0.113.9, 127.0.0.2".parse().expect("v"),
    );
    h.insert("x-forwarded-proto", "https".parse().expect("v"));
    h.insert("x-forwarded-host", "spoofed.example".parse().expect("v"));
    h.insert("x-forwarded-port", "8443".parse().expect("v"));
    h.insert("x-real-ip", "192.0.2.66".parse().expect("v"));
    h.insert(
        "forwarded",
        "for=192.0.2.66;proto=https".parse().expect("v"),
    );
    req
}

#[tokio::test]
async fn forwarding_headers_are_rewritten_unless_the_peer_is_a_trusted_proxy() {
    let a = Backend::start("a").await;
    // The harness's client connects from 127.0.0.1.
    for (trusted, believed) in [
        (None, false),
        (Some("10.0.0.0/8"), false),
        (Some("127.0.0.0/8"), true),
    ] {
        let h = Harness::start(ProxyConfig {
            forwarded: ForwardedHeaders {
                trusted_proxies: trusted.iter().map(|n| n.parse().expect("cidr")).collect(),
            },
            ..ProxyConfig::default()
        })
        .await;
        h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
        h.publish(snapshot().host("a.example").prefix("/", "a").build());
        for proto in BOTH {
            let case = format!("trusted {trusted:?}, {proto:?}");
            let mut c = h.client(proto).await;
            let r = c.answer(with_forwarding_headers(&c)).await;
            assert_eq!(r.status, 200, "{case}");
            assert_eq!(
                r.header("x-seen-x-forwarded-for-lines"),
                Some("1"),
                "{case}"
            );
            let seen = |name: &str| r.header(&format!("x-seen-{name}")).map(str::to_owned);
            if believed {
                // Every line, in order, then the peer; the client is the first address
                // from the right outside 127.0.0.0/8.
                assert_eq!(
                    seen("x-forwarded-for").as_deref(),
                    Some("198.51.100.1, 203.0.113.9, 127.0.0.2, 127.0.0.1"),
                    "{case}"
                );
                assert_eq!(seen("x-real-ip").as_deref(), Some("203.0.113.9"), "{case}");
                assert_eq!(
                    seen("x-forwarded-proto").as_deref(),
                    Some("https"),
                    "{case}"
                );
                assert_eq!(
                    seen("x-forwarded-host").as_deref(),
                    Some("spoofed.example"),
                    "{case}"
                );
                assert_eq!(seen("x-forwarded-port").as_deref(), Some("8443"), "{case}");
                assert_eq!(
                    seen("forwarded").as_deref(),
                    Some("for=192.0.2.66;proto=https"),
                    "{case}"
                );
            } else {
                assert_eq!(
                    seen("x-forwarded-for").as_deref(),
                    Some("127.0.0.1"),
                    "{case}"
                );
                assert_eq!(seen("x-real-ip").as_deref(), Some("127.0.0.1"), "{case}");
                assert_eq!(seen("x-forwarded-proto").as_deref(), Some("http"), "{case}");
                assert_eq!(
                    seen("x-forwarded-host").as_deref(),
                    Some("a.example"),
                    "{case}"
                );
                assert_eq!(seen("x-forwarded-port"), None, "{case}");
                assert_eq!(seen("forwarded"), None, "{case}");
            }
            // Without any forwarding header from a trusted peer, weir fills them in.
            let r = c.get("a.example", "/").await;
            assert_eq!(
                r.header("x-seen-x-forwarded-for"),
                Some("127.0.0.1"),
                "{case}"
            );
            assert_eq!(r.header("x-seen-x-real-ip"), Some("127.0.0.1"), "{case}");
            assert_eq!(r.header("x-seen-x-forwarded-proto"), Some("http"), "{case}");
            assert_eq!(
                r.header("x-seen-x-forwarded-host"),
                Some("a.example"),
                "{case}"
            );
        }
    }
}

#[tokio::test]
async fn request_id_and_hop_by_hop() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(snapshot().host("a.example").prefix("/", "a").build());
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let mut req = c.request("POST", "a.example", "/echo", body("ping"));
        req.headers_mut()
            .insert("x-request-id", "client-id-1".parse().expect("v"));
        if proto == Proto::H1 {
            req.headers_mut()
                .insert("connection", "x-hop".parse().expect("v"));
            req.headers_mut().insert("x-hop", "1".parse().expect("v"));
        }
        let r = c.answer(req).await;
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"ping");
        // A well-formed incoming request id is kept and echoed on the response.
        assert_eq!(r.header("x-seen-x-request-id"), Some("client-id-1"));
        assert_eq!(r.header("x-request-id"), Some("client-id-1"));
        // Hop-by-hop headers do not cross the proxy in either direction.
        assert_eq!(r.header("x-seen-x-hop"), None);
        assert_eq!(r.header("x-seen-connection"), None);
        assert_eq!(r.header("x-hop"), None);
        // Without an incoming id one is generated (UUID v4).
        let r = c.get("a.example", "/").await;
        let id = r.header("x-seen-x-request-id").expect("generated id");
        assert_eq!(id.len(), 36);
        assert_eq!(r.header("x-request-id"), Some(id));
    }
}

#[tokio::test]
async fn upstream_protocols_h1_h2c_and_authority_rewrite() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy
        .publish_endpoints(endpoints(&[("h1", &[&a]), ("h2", &[&a])]));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/one", "h1")
            .prefix("/two", "h2")
            .protocol("h2", UpstreamProtocol::H2c)
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let r = c.get("a.example", "/one?q=1").await;
        assert_eq!(r.header("x-seen-version"), Some("HTTP/1.1"));
        assert_eq!(r.header("x-seen-authority"), Some("a.example"));
        assert_eq!(r.header("x-seen-path"), Some("/one?q=1"));
        let r = c.get("a.example", "/two?q=2").await;
        assert_eq!(r.header("x-seen-version"), Some("HTTP/2.0"));
        assert_eq!(r.header("x-seen-authority"), Some("a.example"));
        assert_eq!(r.status, 200, "{proto:?}");
    }
}

#[tokio::test]
async fn failures_map_to_404_503_502_504_and_connect_failures_retry() {
    let live = Backend::start("live").await;
    let slow = Backend::start("slow").await;
    // A port with nothing listening: bind, read the address, close.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let h = Harness::start(ProxyConfig::default()).await;
    let mut sets = std::collections::BTreeMap::new();
    sets.insert(key("mixed"), set([dead, live.addr]));
    sets.insert(key("dead"), set([dead]));
    sets.insert(key("slow"), set([slow.addr]));
    h.proxy.publish_endpoints(std::sync::Arc::new(sets));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/mixed", "mixed")
            .prefix("/dead", "dead")
            .prefix("/empty", "empty")
            .prefix("/slow", "slow")
            .timeouts(
                "slow",
                Timeouts {
                    request: Duration::from_millis(200),
                    ..Timeouts::default()
                },
            )
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        // Connect failures before anything was sent move on to the next endpoint.
        for _ in 0..6 {
            let r = c.get("a.example", "/mixed").await;
            assert_eq!(r.status, 200, "{proto:?}");
            assert_eq!(r.backend(), Some("live"));
        }
        assert_eq!(c.get("a.example", "/dead").await.status, 502);
        assert_eq!(c.get("a.example", "/empty").await.status, 503);
        assert_eq!(c.get("a.example", "/slow/2000").await.status, 504);
        assert_eq!(c.get("nowhere.example", "/").await.status, 404);
    }
    let mut metrics = String::new();
    h.proxy.render_metrics(&mut metrics);
    assert!(
        metrics
            .contains("weir_upstream_errors_total{cluster=\"default/dead:80\",kind=\"connect\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("kind=\"timeout\"} 2"), "{metrics}");
    let clusters = h.proxy.clusters_json();
    let mixed = clusters["clusters"]
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["name"] == "default/mixed:80")
        .expect("mixed cluster");
    let live_total = mixed["endpoints"]
        .as_array()
        .expect("eps")
        .iter()
        .find(|e| e["address"] == live.addr.to_string())
        .expect("live endpoint")["total"]
        .as_u64();
    assert_eq!(live_total, Some(12));
}
