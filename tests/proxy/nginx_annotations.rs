//! ingress-nginx annotations, from manifests through the real proxy, over HTTP/1.1 and HTTP/2,
//! with `--ingress-class nginx` (the Ingresses are of another controller's class): source
//! allow/deny lists answer 403 as ingress-nginx does, `proxy-body-size` answers 413, an
//! unreadable value fails closed (500), and an Ingress with only unsupported annotations is
//! served as if it had none.

use http::StatusCode;
use weir::proxy::ProxyConfig;

use crate::support::*;

fn manifests(port: u16) -> String {
    let mut out = NGINX_CLASS.to_owned() + &loopback_service_yaml("web", port);
    for (name, annotation, value) in [
        ("loopback", "whitelist-source-range", "127.0.0.0/8, ::1"),
        ("lan", "allowlist-source-range", "10.0.0.0/8"),
        ("denied", "denylist-source-range", "127.0.0.1"),
        ("small", "proxy-body-size", "1k"),
        ("unlimited", "proxy-body-size", "0"),
        ("broken", "whitelist-source-range", "10.0.0.0/99"),
        ("plain", "configuration-snippet", "deny all;"),
    ] {
        let host = format!("{name}.example");
        out.push_str(&nginx_ingress(name, &host, "web", &[(annotation, value)]));
    }
    out
}

#[tokio::test]
async fn annotations_compile_into_filters_the_proxy_enforces() {
    let backend = Backend::start("web").await;
    let h = Harness::start(ProxyConfig::default()).await;
    let compiled = h.serve_manifests(&manifests(backend.addr.port()), &["nginx"]);
    let reasons = condition_reasons(&compiled);
    assert!(
        reasons.contains(&("broken".to_owned(), "InvalidAnnotation")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("plain".to_owned(), "SnippetRefused")),
        "{reasons:?}"
    );

    let big = "x".repeat(4096);
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let status = |a: Answer| a.status;
        assert_eq!(
            status(c.get("loopback.example", "/").await),
            StatusCode::OK,
            "{proto:?}"
        );
        assert_eq!(
            status(c.get("lan.example", "/").await),
            StatusCode::FORBIDDEN,
            "{proto:?}"
        );
        assert_eq!(
            status(c.get("denied.example", "/").await),
            StatusCode::FORBIDDEN,
            "{proto:?}"
        );
        for (host, size, want) in [
            ("small.example", 512, StatusCode::OK),
            ("small.example", 4096, StatusCode::PAYLOAD_TOO_LARGE),
            ("unlimited.example", 4096, StatusCode::OK),
        ] {
            // A fresh connection each: HTTP/1.1 closes one after a 413 of an unread body.
            let mut fresh = h.client(proto).await;
            let req = fresh.request("POST", host, "/", body(big[..size].to_owned()));
            assert_eq!(
                fresh.answer(req).await.status,
                want,
                "{proto:?} {host} {size}"
            );
        }
        assert_eq!(
            status(c.get("broken.example", "/").await),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{proto:?}: an unreadable allow list fails closed"
        );
        let plain = c.get("plain.example", "/").await;
        assert_eq!(
            plain.status,
            StatusCode::OK,
            "{proto:?}: served without the snippet"
        );
        assert_eq!(plain.backend(), Some("web"));
    }
    backend.stop().await;
}
