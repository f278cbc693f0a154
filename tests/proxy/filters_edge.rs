//! The edge filters through the real proxy, each over HTTP/1.1 and HTTP/2: `RequestRedirect`,
//! `URLRewrite` (host and path reach HTTP/1.1 and HTTP/2 upstreams), `CORS` (preflight and
//! actual requests, allowed and refused origins), `BodyLimit` (declared and streamed bodies),
//! and the Ingress front end's HTTPS redirect of TLS hosts. The `manifests` tests go the whole
//! way: YAML (Ingress + `HTTPFilter` + Service + EndpointSlice) → load → compile → proxy.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use weir::compile::Compiled;
use weir::proxy::ProxyConfig;
use weir::snapshot::{
    BodyLimit, Cors, Filter, OriginMatch, PathMatch, PathRewrite, Redirect, RequestRedirect,
    RouteMatch, UpstreamProtocol, UrlRewrite,
};

use crate::support::*;

fn prefix(p: &str) -> RouteMatch {
    RouteMatch::path(PathMatch::Prefix(p.into()))
}

fn redirect(r: Redirect) -> Filter {
    Filter::RequestRedirect(RequestRedirect {
        redirect: r,
        https_upgrade: false,
    })
}

async fn send(
    c: &mut Client,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    b: Body,
) -> Answer {
    let mut req = c.request(method, host, path, b);
    for (k, v) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            http::HeaderValue::from_str(v).expect("value"),
        );
    }
    c.answer(req).await
}

/// A body of `chunks` frames of `size` bytes and no declared length (HTTP/1.1 chunked).
fn streamed(chunks: usize, size: usize) -> Body {
    let frames =
        (0..chunks).map(move |_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; size]))));
    StreamBody::new(futures::stream::iter(frames)).boxed()
}

#[tokio::test]
async fn request_redirect_builds_the_location_with_gateway_rules() {
    let web = Backend::start("web").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("web", &[&web])]));
    let to_https = redirect(Redirect {
        scheme: Some("https".into()),
        hostname: None,
        port: None,
        path: None,
        query: None,
        status: 301,
    });
    let moved = redirect(Redirect {
        scheme: None,
        hostname: Some("new.example".into()),
        port: None,
        path: Some(PathRewrite::ReplacePrefixMatch("/v2".into())),
        query: None,
        status: 307,
    });
    h.publish(
        snapshot()
            .host("r.example")
            .route_with(prefix("/"), vec![to_https], forward("web"))
            .route_with(prefix("/v1"), vec![moved], forward("web"))
            .build(),
    );
    let port = h.http.port();
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let a = c.get("r.example", "/cart?id=7").await;
        assert_eq!(a.status, StatusCode::MOVED_PERMANENTLY, "{proto:?}");
        assert_eq!(
            a.header("location"),
            Some("https://r.example/cart?id=7"),
            "{proto:?}: the scheme's well-known port is not written"
        );
        let a = c.get("r.example", "/v1/items?x=1").await;
        assert_eq!(a.status, StatusCode::TEMPORARY_REDIRECT, "{proto:?}");
        assert_eq!(
            a.header("location"),
            Some(format!("http://new.example:{port}/v2/items?x=1").as_str()),
            "{proto:?}: no scheme set, so the listener's port is kept"
        );
        assert!(a.header("x-request-id").is_some(), "the local-reply path");
    }
    assert_eq!(web.hits(), 0, "a redirect is never forwarded");
}

#[tokio::test]
async fn url_rewrite_changes_host_and_path_for_h1_and_h2_upstreams() {
    let h1 = Backend::start("h1").await;
    let h2 = Backend::start("h2").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy
        .publish_endpoints(endpoints(&[("h1", &[&h1]), ("h2", &[&h2])]));
    let rewrite = |path| {
        vec![Filter::UrlRewrite(UrlRewrite {
            hostname: Some("internal.example".into()),
            path: Some(path),
        })]
    };
    h.publish(
        snapshot()
            .host("u.example")
            .route_with(
                prefix("/api"),
                rewrite(PathRewrite::ReplacePrefixMatch("/".into())),
                forward("h1"),
            )
            .route_with(
                prefix("/grpc"),
                rewrite(PathRewrite::ReplaceFullPath("/svc/Method".into())),
                forward("h2"),
            )
            .protocol("h2", UpstreamProtocol::H2c)
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let a = c.get("u.example", "/api/v1/items?x=1").await;
        assert_eq!(a.backend(), Some("h1"), "{proto:?}");
        assert_eq!(a.header("x-seen-version"), Some("HTTP/1.1"));
        assert_eq!(a.header("x-seen-authority"), Some("internal.example"));
        assert_eq!(a.header("x-seen-path"), Some("/v1/items?x=1"), "{proto:?}");
        assert_eq!(
            a.header("x-seen-x-forwarded-host"),
            Some("u.example"),
            "X-Forwarded-Host keeps the client's host"
        );
        let a = c.get("u.example", "/grpc/anything?y=2").await;
        assert_eq!(a.backend(), Some("h2"), "{proto:?}");
        assert_eq!(a.header("x-seen-version"), Some("HTTP/2.0"));
        assert_eq!(a.header("x-seen-authority"), Some("internal.example"));
        assert_eq!(
            a.header("x-seen-path"),
            Some("http://internal.example/svc/Method?y=2"),
            "{proto:?}"
        );
    }
}

fn cors(origins: Vec<OriginMatch>, credentials: bool) -> Filter {
    Filter::Cors(Arc::new(Cors {
        allow_origins: origins,
        allow_methods: Some(http::HeaderValue::from_static("GET, POST")),
        any_method: false,
        allow_headers: Some(http::HeaderValue::from_static("x-token")),
        any_header: false,
        expose_headers: Some(http::HeaderValue::from_static("x-trace")),
        allow_credentials: credentials,
        max_age: 600,
    }))
}

#[tokio::test]
async fn cors_answers_preflights_and_decorates_allowed_actual_requests() {
    let web = Backend::start("web").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("web", &[&web])]));
    let strict = cors(
        vec![
            OriginMatch::Exact("https://app.example".into()),
            OriginMatch::Wildcard {
                prefix: "https://".into(),
                suffix: ".shop.example".into(),
            },
        ],
        true,
    );
    let open = cors(vec![OriginMatch::Any], false);
    h.publish(
        snapshot()
            .host("c.example")
            .route_with(prefix("/"), vec![strict], forward("web"))
            .route_with(prefix("/public"), vec![open], forward("web"))
            .build(),
    );
    let preflight = |origin: &'static str| {
        [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "x-token"),
        ]
    };
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let before = web.hits();
        let a = send(
            &mut c,
            "OPTIONS",
            "c.example",
            "/x",
            &preflight("https://app.example"),
            empty(),
        )
        .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{proto:?}");
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(a.header("access-control-allow-methods"), Some("GET, POST"));
        assert_eq!(a.header("access-control-allow-headers"), Some("x-token"));
        assert_eq!(a.header("access-control-max-age"), Some("600"));
        assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(a.header("vary"), Some("Origin"));
        // On the preflight too (as Envoy; the Gateway API suite expects it).
        assert_eq!(a.header("access-control-expose-headers"), Some("x-trace"));

        let a = send(
            &mut c,
            "OPTIONS",
            "c.example",
            "/x",
            &preflight("https://evil.example"),
            empty(),
        )
        .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{proto:?}");
        assert!(
            !a.headers
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "{proto:?}: a refused origin gets no CORS headers: {:?}",
            a.headers
        );
        assert_eq!(web.hits(), before, "preflights are answered by weir");

        let a = send(
            &mut c,
            "GET",
            "c.example",
            "/x",
            &[("origin", "https://a.b.shop.example")],
            empty(),
        )
        .await;
        assert_eq!(a.backend(), Some("web"), "{proto:?}");
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some("https://a.b.shop.example")
        );
        assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(a.header("access-control-expose-headers"), Some("x-trace"));
        assert_eq!(a.header("vary"), Some("Origin"));

        let a = send(
            &mut c,
            "GET",
            "c.example",
            "/x",
            &[("origin", "https://shop.example")],
            empty(),
        )
        .await;
        assert_eq!(
            a.backend(),
            Some("web"),
            "{proto:?}: a refused origin is still forwarded"
        );
        assert!(
            a.header("access-control-allow-origin").is_none(),
            "{proto:?}"
        );

        let a = send(
            &mut c,
            "GET",
            "c.example",
            "/public/x",
            &[("origin", "https://any.example")],
            empty(),
        )
        .await;
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some("*"),
            "{proto:?}"
        );
        assert!(a.header("vary").is_none(), "`*` does not vary by origin");
        assert!(a.header("access-control-allow-credentials").is_none());

        let a = c.get("c.example", "/x").await;
        assert!(
            a.header("access-control-allow-origin").is_none(),
            "no Origin, no CORS"
        );
    }
}

#[tokio::test]
async fn body_limit_refuses_declared_and_streamed_bodies_over_the_limit() {
    for upstream in [UpstreamProtocol::Http1, UpstreamProtocol::H2c] {
        let web = Backend::start("web").await;
        let h = Harness::start(ProxyConfig::default()).await;
        h.proxy.publish_endpoints(endpoints(&[("web", &[&web])]));
        let limit = Filter::BodyLimit(BodyLimit {
            max_request_bytes: 1500,
        });
        h.publish(
            snapshot()
                .host("b.example")
                .route_with(prefix("/"), vec![limit], forward("web"))
                .protocol("web", upstream)
                .build(),
        );
        for proto in BOTH {
            let mut c = h.client(proto).await;
            let before = web.hits();
            let a = send(
                &mut c,
                "POST",
                "b.example",
                "/up",
                &[],
                body(vec![b'x'; 2000]),
            )
            .await;
            assert_eq!(
                a.status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{proto:?}/{upstream:?}"
            );
            assert_eq!(
                web.hits(),
                before,
                "{proto:?}/{upstream:?}: a declared length is refused before forwarding"
            );

            let mut c = h.client(proto).await;
            let a = send(&mut c, "POST", "b.example", "/up", &[], streamed(3, 1000)).await;
            assert_eq!(
                a.status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{proto:?}/{upstream:?}: a streamed body that grows past the limit is the \
                 client's fault, not a 502"
            );

            let mut c = h.client(proto).await;
            let a = send(&mut c, "POST", "b.example", "/up", &[], streamed(3, 500)).await;
            assert_eq!(
                a.status,
                StatusCode::OK,
                "{proto:?}/{upstream:?}: exactly the limit passes"
            );
            assert_eq!(a.body.len(), 1500);
        }
    }
}

// ---------------------------------------------------------------- manifests mode

/// Loads `yaml` (plus an IngressClass, and a Service `shop/web` whose endpoint is `web`) from
/// a manifests directory, compiles it, and serves it.
fn serve_manifests(h: &Harness, web: &Backend, yaml: &str) -> Compiled {
    let base = WEIR_CLASS.to_owned() + &loopback_service_yaml("web", web.addr.port());
    h.serve_manifests(&format!("{base}---\n{yaml}"), &[])
}

/// An Ingress for `host` with one `/` path to `shop/web`, running `filters`.
fn ingress(name: &str, host: &str, filters: &str) -> String {
    IngressYaml::new("weir", name, host)
        .annotation("weir.dev/filters", filters)
        .yaml()
}

#[tokio::test]
async fn manifests_every_edge_filter_from_the_crd_to_the_proxy() {
    let web = Backend::start("web").await;
    let h = Harness::start(ProxyConfig::default()).await;
    let filters = r#"
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: to-https, namespace: shop}
spec:
  filters:
  - type: RequestRedirect
    requestRedirect: {scheme: https, statusCode: 301}
---
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: rewrite, namespace: shop}
spec:
  filters:
  - type: URLRewrite
    urlRewrite:
      hostname: backend.internal
      path: {type: ReplaceFullPath, replaceFullPath: /rewritten}
---
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: cors, namespace: shop}
spec:
  filters:
  - type: CORS
    cors:
      allowOrigins: ["https://app.example", "https://*.shop.example"]
      allowMethods: [GET, POST]
      allowCredentials: true
      maxAge: 600
---
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: small, namespace: shop}
spec:
  filters:
  - type: BodyLimit
    bodyLimit: {maxRequestBytes: 1000}
---
"#;
    let yaml = [
        filters.to_owned(),
        ingress("redirect", "r.example", "to-https"),
        ingress("rewrite", "u.example", "rewrite"),
        ingress("cors", "c.example", "cors"),
        ingress("limit", "b.example", "small"),
    ]
    .concat();
    let compiled = serve_manifests(&h, &web, &yaml);
    assert!(
        !compiled.status.has_rejections(),
        "{:#?}",
        compiled.status.conditions
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let a = c.get("r.example", "/a?b=1").await;
        assert_eq!(a.status, StatusCode::MOVED_PERMANENTLY, "{proto:?}");
        assert_eq!(a.header("location"), Some("https://r.example/a?b=1"));

        let a = c.get("u.example", "/original?q=1").await;
        assert_eq!(a.backend(), Some("web"), "{proto:?}");
        assert_eq!(a.header("x-seen-authority"), Some("backend.internal"));
        assert_eq!(a.header("x-seen-path"), Some("/rewritten?q=1"));

        let pre = [
            ("origin", "https://x.shop.example"),
            ("access-control-request-method", "POST"),
        ];
        let a = send(&mut c, "OPTIONS", "c.example", "/", &pre, empty()).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{proto:?}");
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some("https://x.shop.example")
        );
        assert_eq!(a.header("access-control-allow-methods"), Some("GET, POST"));
        assert_eq!(a.header("access-control-max-age"), Some("600"));
        let a = send(
            &mut c,
            "GET",
            "c.example",
            "/",
            &[("origin", "https://app.example")],
            empty(),
        )
        .await;
        assert_eq!(a.backend(), Some("web"));
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(a.header("access-control-allow-credentials"), Some("true"));

        let a = send(
            &mut c,
            "POST",
            "b.example",
            "/",
            &[],
            body(vec![b'x'; 1001]),
        )
        .await;
        assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{proto:?}");
        let mut c = h.client(proto).await;
        let a = send(&mut c, "POST", "b.example", "/", &[], streamed(2, 600)).await;
        assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{proto:?}");
        let mut c = h.client(proto).await;
        let a = send(
            &mut c,
            "POST",
            "b.example",
            "/",
            &[],
            body(vec![b'x'; 1000]),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{proto:?}");
    }
}

#[tokio::test]
async fn manifests_tls_hosts_redirect_plain_http_to_https_except_acme_and_opt_out() {
    let web = Backend::start("web").await;
    let h = Harness::start(ProxyConfig::default()).await;
    let yaml = [
        IngressYaml::new("weir", "secure", "secure.example")
            .tls()
            .yaml(),
        IngressYaml::new("weir", "plain-ok", "optout.example")
            .annotation("weir.dev/ssl-redirect", "false")
            .tls()
            .yaml(),
        ingress("no-tls", "plain.example", ""),
    ]
    .concat();
    let compiled = serve_manifests(&h, &web, &yaml);
    assert!(
        !compiled.status.has_rejections(),
        "{:#?}",
        compiled.status.conditions
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let a = send(
            &mut c,
            "POST",
            "secure.example",
            "/cart?id=1",
            &[],
            body("keep"),
        )
        .await;
        assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT, "{proto:?}");
        assert_eq!(
            a.header("location"),
            Some("https://secure.example/cart?id=1")
        );

        let a = c
            .get("secure.example", "/.well-known/acme-challenge/token-1")
            .await;
        assert_eq!(
            a.backend(),
            Some("web"),
            "{proto:?}: ACME HTTP-01 is never redirected"
        );

        let a = c.get("optout.example", "/").await;
        assert_eq!(
            a.backend(),
            Some("web"),
            "{proto:?}: weir.dev/ssl-redirect: false"
        );
        let a = c.get("plain.example", "/").await;
        assert_eq!(a.backend(), Some("web"), "{proto:?}: a host without TLS");

        let mut tls = crate::tls::tls_connect(h.https, "secure.example", proto, true)
            .await
            .client;
        let a = tls.get("secure.example", "/cart").await;
        assert_eq!(
            a.backend(),
            Some("web"),
            "{proto:?}: HTTPS is served, not redirected"
        );
        assert_eq!(a.header("x-seen-x-forwarded-proto"), Some("https"));

        // A client that is not a trusted proxy cannot claim HTTPS to skip the redirect.
        let a = send(
            &mut c,
            "GET",
            "secure.example",
            "/",
            &[("x-forwarded-proto", "https")],
            body(""),
        )
        .await;
        assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT, "{proto:?}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_that_ended_tls_the_https_redirect_does_not_loop() {
    let web = Backend::start("web").await;
    let h = Harness::start(ProxyConfig {
        forwarded: weir::proxy::ForwardedHeaders {
            trusted_proxies: vec!["127.0.0.0/8".parse().expect("cidr")],
        },
        ..ProxyConfig::default()
    })
    .await;
    let yaml = IngressYaml::new("weir", "secure", "secure.example")
        .tls()
        .yaml();
    serve_manifests(&h, &web, &yaml);
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let a = send(
            &mut c,
            "GET",
            "secure.example",
            "/",
            &[("x-forwarded-proto", "https")],
            body(""),
        )
        .await;
        assert_eq!(a.backend(), Some("web"), "{proto:?}: the LB ended TLS");
        let a = send(
            &mut c,
            "GET",
            "secure.example",
            "/",
            &[("x-forwarded-proto", "http")],
            body(""),
        )
        .await;
        assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT, "{proto:?}");
    }
}

#[tokio::test]
async fn manifests_an_invalid_edge_filter_fails_closed_naming_the_field() {
    let web = Backend::start("web").await;
    let h = Harness::start(ProxyConfig::default()).await;
    let yaml = [
        r#"
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: cors, namespace: shop}
spec:
  filters:
  - type: BodyLimit
    bodyLimit: {maxRequestBytes: 10}
  - type: CORS
    cors: {allowOrigins: ["https://ok.example", "app.example"]}
---
"#
        .to_owned(),
        ingress("broken", "c.example", "cors"),
    ]
    .concat();
    let compiled = serve_manifests(&h, &web, &yaml);
    assert!(compiled.status.has_rejections());
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let a = c.get("c.example", "/").await;
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{proto:?}");
        let text = String::from_utf8_lossy(&a.body);
        assert!(
            text.contains("spec.filters[1].cors.allowOrigins[1]"),
            "{proto:?}: {text}"
        );
    }
    assert_eq!(web.hits(), 0, "never served without the declared policy");
}
