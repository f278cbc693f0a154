//! ingress-nginx `default-backend` and `custom-http-errors`, from manifests through the real
//! proxy, over HTTP/1.1 and HTTP/2: an upstream 404 is replaced by the default backend's
//! answer to `GET /` with `X-Code`, `X-Original-URI` … (the backend here answers with the
//! status `X-Code` names, as ingress-nginx's `custom-error-pages` image does); a 200 passes
//! through; a Service without endpoints is served by the default backend (`X-Code: 503`); the
//! codes without a default backend are not served (the finding says so) and the upstream's
//! 404 passes through.

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{HeaderValue, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use weir::proxy::ProxyConfig;

use crate::support::*;

/// Headers the error backend reports back as `x-error-<name>`.
const REPORTED: [&str; 10] = [
    "x-code",
    "x-format",
    "x-original-uri",
    "x-namespace",
    "x-ingress-name",
    "x-service-name",
    "x-service-port",
    "x-request-id",
    "x-forwarded-for",
    "host",
];

/// An error backend like ingress-nginx's `custom-error-pages`: the status `X-Code` names
/// (404 without one), a body naming it, the request's method, path and headers echoed.
async fn error_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let code = req
                        .headers()
                        .get("x-code")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u16>().ok())
                        .unwrap_or(404);
                    let mut resp = Response::new(body(format!("error page {code}\n")));
                    *resp.status_mut() = StatusCode::from_u16(code).expect("status");
                    let h = resp.headers_mut();
                    h.insert("x-backend", HeaderValue::from_static("errors"));
                    h.insert(
                        "x-error-method",
                        HeaderValue::from_str(req.method().as_str()).expect("m"),
                    );
                    h.insert(
                        "x-error-path",
                        HeaderValue::from_str(&req.uri().to_string()).expect("p"),
                    );
                    for name in REPORTED {
                        if let Some(v) = req.headers().get(name) {
                            h.insert(
                                http::HeaderName::from_bytes(format!("x-error-{name}").as_bytes())
                                    .expect("name"),
                                v.clone(),
                            );
                        }
                    }
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

fn manifests(web: u16, missing: u16, errors: u16) -> String {
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let ingress = |name: &str, svc: &str, annotations: &[(&str, &str)]| {
        nginx_ingress(name, &format!("{name}.example"), svc, annotations)
    };
    let both = [
        ("default-backend", "errors"),
        ("custom-http-errors", "404,503"),
    ];
    let mut out = NGINX_CLASS.to_owned();
    out.push_str(&loopback_service_yaml("web", web));
    out.push_str(&loopback_service_yaml("missing", missing));
    out.push_str(&service_yaml("empty", &[]));
    out.push_str(&loopback_service_yaml("errors", errors));
    out.push_str(&ingress("ok", "web", &both));
    out.push_str(&ingress("gone", "missing", &both));
    out.push_str(&ingress("down", "empty", &[("default-backend", "errors")]));
    // Two endpoints, one answering 404: retried on http_404 before anything is replaced.
    out.push_str(&service_yaml("mixed", &[loopback(web), loopback(missing)]));
    out.push_str(&ingress(
        "retried",
        "mixed",
        &[
            both[0],
            both[1],
            ("proxy-next-upstream", "error timeout http_404"),
            ("proxy-next-upstream-tries", "2"),
        ],
    ));
    out.push_str(&ingress(
        "bare",
        "missing",
        &[("custom-http-errors", "404")],
    ));
    out
}

#[tokio::test]
async fn errors_are_answered_by_the_default_backend() {
    let web = Backend::start("web").await;
    let missing = Backend::start("missing").await;
    missing.fail_with(404);
    let errors = error_backend().await;
    let h = Harness::start(ProxyConfig::default()).await;
    let compiled = h.serve_manifests(
        &manifests(web.addr.port(), missing.addr.port(), errors.port()),
        &["nginx"],
    );
    let unsupported: Vec<(String, String)> = compiled
        .status
        .conditions
        .iter()
        .flat_map(|(o, cs)| {
            cs.iter()
                .filter(|c| c.reason == "UnsupportedAnnotation")
                .map(move |c| (o.key.name.clone(), c.message.clone()))
        })
        .collect();
    assert!(
        unsupported
            .iter()
            .any(|(name, m)| name == "bare" && m.contains("custom-http-errors")),
        "{unsupported:?}"
    );
    assert!(
        unsupported.iter().all(|(name, _)| name == "bare"),
        "{unsupported:?}"
    );

    for proto in BOTH {
        let mut c = h.client(proto).await;
        // The upstream's 404 is replaced: the error backend's body, its status (the one
        // X-Code named), and the headers ingress-nginx's @custom_ location sends.
        let req = {
            let mut r = c.request("GET", "gone.example", "/shop/item?id=7", empty());
            r.headers_mut()
                .insert("accept", HeaderValue::from_static("application/json"));
            r
        };
        let a = c.answer(req).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{proto:?}");
        assert_eq!(&a.body[..], b"error page 404\n", "{proto:?}");
        assert_eq!(a.backend(), Some("errors"), "{proto:?}");
        for (name, want) in [
            ("x-error-method", "GET"),
            ("x-error-path", "/"),
            ("x-error-x-code", "404"),
            ("x-error-x-original-uri", "/shop/item?id=7"),
            ("x-error-x-format", "application/json"),
            ("x-error-x-namespace", "shop"),
            ("x-error-x-ingress-name", "gone"),
            ("x-error-x-service-name", "missing"),
            ("x-error-x-service-port", "80"),
            ("x-error-x-forwarded-for", "127.0.0.1"),
            ("x-error-host", "gone.example"),
        ] {
            assert_eq!(a.header(name), Some(want), "{proto:?} {name}");
        }
        // The request id the client sees is the one the error backend got.
        assert!(a.header("x-request-id").is_some(), "{proto:?}");
        assert_eq!(
            a.header("x-error-x-request-id"),
            a.header("x-request-id"),
            "{proto:?}"
        );
        assert!(missing.hits() > 0, "{proto:?}");

        // HEAD: the error backend is asked with HEAD, no body goes downstream.
        let a = c
            .answer(c.request("HEAD", "gone.example", "/x", empty()))
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{proto:?}");
        assert!(a.body.is_empty(), "{proto:?}");
        assert_eq!(a.header("x-error-method"), Some("HEAD"), "{proto:?}");

        // A request with a body: the body went to the upstream; the error backend is
        // asked with GET and no body (a fresh connection: the upstream answered without
        // reading the body).
        let mut fresh = h.client(proto).await;
        let req = fresh.request("POST", "gone.example", "/form", body("a=1&".repeat(512)));
        let a = fresh.answer(req).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{proto:?}");
        assert_eq!(&a.body[..], b"error page 404\n", "{proto:?}");
        assert_eq!(a.header("x-error-method"), Some("GET"), "{proto:?}");
        assert_eq!(
            a.header("x-error-x-original-uri"),
            Some("/form"),
            "{proto:?}"
        );

        // A 200 passes through untouched.
        let a = c.get("ok.example", "/fine").await;
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
        assert_eq!(a.backend(), Some("web"), "{proto:?}");
        assert_eq!(a.header("x-error-x-code"), None, "{proto:?}");

        // A Service without endpoints: the request itself goes to the default backend,
        // with X-Code 503 (and its path; no X-Original-URI), as ingress-nginx swaps the
        // upstream.
        let a = c.get("down.example", "/status?q=1").await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{proto:?}");
        assert_eq!(a.backend(), Some("errors"), "{proto:?}");
        assert_eq!(&a.body[..], b"error page 503\n", "{proto:?}");
        assert_eq!(a.header("x-error-path"), Some("/status?q=1"), "{proto:?}");
        assert_eq!(a.header("x-error-x-code"), Some("503"), "{proto:?}");
        assert_eq!(
            a.header("x-error-x-service-name"),
            Some("empty"),
            "{proto:?}"
        );
        assert_eq!(
            a.header("x-error-x-ingress-name"),
            Some("down"),
            "{proto:?}"
        );
        assert_eq!(a.header("x-error-x-original-uri"), None, "{proto:?}");

        // Retries run first: a 404 from one endpoint is retried on the other (200), so
        // every answer is the upstream's. Were the 404 replaced before retrying, each
        // request would show the error page with probability 1/2 (the first pick), and all
        // 10 passing by chance has probability 2^-10.
        let before = missing.hits();
        for i in 0..10 {
            let a = c.get("retried.example", "/").await;
            assert_eq!(a.status, StatusCode::OK, "{proto:?} {i}");
            assert_eq!(a.backend(), Some("web"), "{proto:?} {i}");
        }
        // ... and the 404 endpoint was tried (first picks are spread over both endpoints;
        // none of 10 landing on it has probability at most 2^-10).
        assert!(missing.hits() > before, "{proto:?}");

        // custom-http-errors without default-backend: not served, the 404 passes through.
        let a = c.get("bare.example", "/").await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{proto:?}");
        assert_eq!(a.backend(), Some("missing"), "{proto:?}");
        assert_eq!(&a.body[..], b"failing\n", "{proto:?}");
    }
    web.stop().await;
    missing.stop().await;
}
