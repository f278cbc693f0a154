//! Path normalization before routing (the README's table), the same over HTTP/1.1 and
//! HTTP/2, with the normalized path forwarded; and the upgrade allow-list: only WebSocket is
//! tunnelled, `h2c` is ignored (served as plain HTTP/1.1), anything else is refused.

use weir::proxy::ProxyConfig;

use crate::support::*;

/// (request path, Some((backend, path the backend sees)) or None for 400)
const TABLE: &[(&str, Option<(&str, &str)>)] = &[
    ("/app/x", Some(("app", "/app/x"))),
    ("/app/../secret", Some(("secret", "/secret"))),
    ("/app/%2e%2e/secret", Some(("secret", "/secret"))),
    ("/app/%2E%2E/secret/", Some(("secret", "/secret/"))),
    ("/app/./x", Some(("app", "/app/x"))),
    ("//app//x", Some(("app", "/app/x"))),
    ("/%61pp/x", Some(("app", "/app/x"))),
    ("/app/%7euser", Some(("app", "/app/~user"))),
    ("/app/a%20b", Some(("app", "/app/a%20b"))),
    ("/app/%c3%a9", Some(("app", "/app/%C3%A9"))),
    ("/app/x?q=../y", Some(("app", "/app/x?q=../y"))),
    ("/app/../../..", Some(("root", "/"))),
    ("/app%2Fx", None),
    ("/app%2fx", None),
    ("/app%5Cx", None),
    ("/app/%zz", None),
    ("/app/%00", None),
];

async fn serve() -> (Harness, [Backend; 3]) {
    let app = Backend::start("app").await;
    let secret = Backend::start("secret").await;
    let root = Backend::start("root").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[
        ("app", &[&app]),
        ("secret", &[&secret]),
        ("root", &[&root]),
    ]));
    h.publish(
        snapshot()
            .host("n.example")
            .prefix("/app", "app")
            .prefix("/secret", "secret")
            .prefix("/", "root")
            .build(),
    );
    (h, [app, secret, root])
}

#[tokio::test]
async fn paths_are_normalized_before_routing_over_h1_and_h2() {
    let (h, backends) = serve().await;
    for proto in BOTH {
        let mut c = h.client(proto).await;
        for (path, want) in TABLE {
            let a = c.get("n.example", path).await;
            match want {
                Some((backend, seen)) => {
                    assert_eq!(a.status, 200, "{proto:?} {path}");
                    assert_eq!(a.backend(), Some(*backend), "{proto:?} {path}");
                    let seen_path = a.header("x-seen-path").unwrap_or_default();
                    // HTTP/2 upstream requests carry the absolute form.
                    assert!(
                        seen_path.ends_with(seen),
                        "{proto:?} {path}: backend saw {seen_path}"
                    );
                }
                None => {
                    assert_eq!(a.status, 400, "{proto:?} {path}");
                    assert!(a.header("x-request-id").is_some());
                }
            }
        }
    }
    let hits: u64 = backends.iter().map(Backend::hits).sum();
    let forwarded = TABLE.iter().filter(|(_, w)| w.is_some()).count() as u64;
    assert_eq!(hits, 2 * forwarded, "a refused path reached a backend");
}

#[tokio::test]
async fn raw_http1_traversal_and_backslash_are_handled_on_the_wire() {
    let (h, _backends) = serve().await;
    let (out, _) = raw_exchange(
        h.http,
        b"GET /app/../secret HTTP/1.1\r\nHost: n.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("x-backend: secret"), "{text}");
    let (out, _) = raw_exchange(
        h.http,
        b"GET /app\\..\\secret HTTP/1.1\r\nHost: n.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
}

#[tokio::test]
async fn upgrade_h2c_is_ignored_and_unknown_upgrades_are_refused() {
    let (h, backends) = serve().await;
    // h2c: served as the plain HTTP/1.1 request it also is; no upgrade header upstream.
    let (out, _) = raw_exchange(
        h.http,
        b"GET /app/x HTTP/1.1\r\nHost: n.example\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("x-backend: app"), "{text}");
    assert!(!text.contains("x-seen-upgrade"), "{text}");
    assert!(!text.contains("x-seen-http2-settings"), "{text}");
    assert!(!text.contains("HTTP/1.1 101"), "{text}");

    let before: u64 = backends.iter().map(Backend::hits).sum();
    for upgrade in ["foo", "websocket, h2c", "h2c, websocket"] {
        let req = format!(
            "GET /app/x HTTP/1.1\r\nHost: n.example\r\nConnection: upgrade\r\nUpgrade: {upgrade}\r\n\r\n"
        );
        let (out, closed) = raw_exchange(h.http, req.as_bytes()).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 400"), "{upgrade}: {text}");
        assert!(closed, "{upgrade}: connection left open");
    }
    // HTTP/2: a CONNECT that is not WebSocket's extended CONNECT is refused too.
    let c = h.client(Proto::H2).await;
    let mut s = c.h2();
    let req = http::Request::builder()
        .method("CONNECT")
        .uri("n.example:443")
        .body(empty())
        .expect("request");
    s.ready().await.expect("ready");
    let resp = s.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 400);
    let after: u64 = backends.iter().map(Backend::hits).sum();
    assert_eq!(after, before, "a refused upgrade reached a backend");
}
