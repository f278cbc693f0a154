//! ingress-nginx path, rewrite and redirect annotations, from manifests through the real
//! proxy, over HTTP/1.1 and HTTP/2, with the docs' examples: `rewrite-target` with capture
//! groups (`docs/examples/rewrite`), `use-regex`, `app-root`, `permanent-redirect` and
//! `temporal-redirect` (exactly their URL, no query of the request), `force-ssl-redirect`
//! (308), `server-alias`, `from-to-www-redirect`, `x-forwarded-prefix` and `upstream-vhost`;
//! and (compile only) an invalid regex path rejected alone.

use http::StatusCode;
use weir::proxy::ProxyConfig;

use crate::support::*;

/// One Ingress of class `nginx` for `host` → `web`, its paths as (path, pathType).
fn ingress(name: &str, host: &str, annotations: &[(&str, &str)], paths: &[(&str, &str)]) -> String {
    IngressYaml::nginx(name, host)
        .nginx_annotations(annotations)
        .paths(paths)
        .yaml()
}

fn manifests(port: u16) -> String {
    let mut out = NGINX_CLASS.to_owned() + &loopback_service_yaml("web", port);
    let root = [("/", "Prefix")];
    for (name, host, annotations, paths) in [
        (
            "rewrite",
            "rewrite.bar.com",
            &[
                ("rewrite-target", "/$2"),
                ("x-forwarded-prefix", "/something"),
            ][..],
            &[("/something(/|$)(.*)", "ImplementationSpecific")][..],
        ),
        (
            "regex",
            "regex.example",
            &[("use-regex", "true")],
            &[("/api/v[0-9]+", "ImplementationSpecific")],
        ),
        (
            "approot",
            "approot.bar.com",
            &[("app-root", "/app1")],
            &root,
        ),
        (
            "moved",
            "moved.example",
            &[
                ("permanent-redirect", "https://new.example/landing?from=old"),
                ("permanent-redirect-code", "308"),
            ],
            &root,
        ),
        (
            "temp",
            "temp.example",
            &[("temporal-redirect", "http://t.example")],
            &root,
        ),
        (
            "force",
            "force.example",
            &[("force-ssl-redirect", "true")],
            &root,
        ),
        (
            "alias",
            "main.example",
            &[("server-alias", "alias.example, *.wild.example")],
            &root,
        ),
        (
            "www",
            "site.example",
            &[("from-to-www-redirect", "true")],
            &root,
        ),
        (
            "towww",
            "www.shop2.example",
            &[("from-to-www-redirect", "true")],
            &root,
        ),
        (
            "vhost",
            "vhost.example",
            &[("upstream-vhost", "internal.example")],
            &root,
        ),
    ] {
        out.push_str(&ingress(name, host, annotations, paths));
    }
    // TLS hosts (default certificate): redirected unless `ssl-redirect: "false"`.
    for (name, value) in [("secure", "true"), ("plain", "false")] {
        let host = format!("{name}.example");
        out.push_str(
            &IngressYaml::nginx(name, &host)
                .nginx_annotations(&[("ssl-redirect", value)])
                .tls()
                .yaml(),
        );
    }
    out
}

/// The path and query the backend saw (HTTP/2 backends see an absolute URI).
fn seen_path(a: &Answer) -> String {
    let uri: http::Uri = a
        .header("x-seen-path")
        .expect("x-seen-path")
        .parse()
        .expect("uri");
    uri.path_and_query()
        .map(|pq| pq.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn path_and_redirect_annotations_are_served_as_ingress_nginx_does() {
    let backend = Backend::start("web").await;
    let h = Harness::start(ProxyConfig::default()).await;
    let compiled = h.serve_manifests(&manifests(backend.addr.port()), &["nginx"]);
    let errors: Vec<_> = condition_reasons(&compiled)
        .into_iter()
        .filter(|(_, r)| *r != "PartiallySupportedAnnotation")
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let port = h.http.port();

    for proto in BOTH {
        let mut c = h.client(proto).await;
        // docs/examples/rewrite: `/something(/|$)(.*)` → `/$2`, the query kept.
        for (path, want) in [
            ("/something", "/"),
            ("/something/", "/"),
            ("/something/new", "/new"),
            ("/Something/new?a=1&b=2", "/new?a=1&b=2"),
        ] {
            let a = c.get("rewrite.bar.com", path).await;
            assert_eq!(a.status, StatusCode::OK, "{proto:?} {path}");
            assert_eq!(seen_path(&a), want, "{proto:?} {path}");
            assert_eq!(a.header("x-seen-x-forwarded-prefix"), Some("/something"));
        }
        assert_eq!(
            c.get("rewrite.bar.com", "/other").await.status,
            StatusCode::NOT_FOUND,
            "{proto:?}"
        );

        // use-regex: case-insensitive, anchored at the start only.
        for (path, want) in [
            ("/api/v2", StatusCode::OK),
            ("/API/V10/users", StatusCode::OK),
            ("/x/api/v2", StatusCode::NOT_FOUND),
            ("/api/vx", StatusCode::NOT_FOUND),
        ] {
            let a = c.get("regex.example", path).await;
            assert_eq!(a.status, want, "{proto:?} {path}");
        }
        let a = c.get("regex.example", "/api/v2/x?q=1").await;
        assert_eq!(seen_path(&a), "/api/v2/x?q=1", "{proto:?}: no rewrite");

        // app-root: `/` (and only `/`) answers 302 to the root, without the query.
        let a = c.get("approot.bar.com", "/?q=1").await;
        assert_eq!(a.status, StatusCode::FOUND, "{proto:?}");
        assert_eq!(
            a.header("location"),
            Some(format!("http://approot.bar.com:{port}/app1").as_str())
        );
        let a = c.get("approot.bar.com", "/app1").await;
        assert_eq!((a.status, a.backend()), (StatusCode::OK, Some("web")));

        // permanent-redirect (code 308) and temporal-redirect (302): exactly their URL.
        let a = c.get("moved.example", "/x?y=1").await;
        assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT, "{proto:?}");
        assert_eq!(
            a.header("location"),
            Some("https://new.example/landing?from=old")
        );
        let a = c.get("temp.example", "/x?y=1").await;
        assert_eq!(a.status, StatusCode::FOUND, "{proto:?}");
        assert_eq!(a.header("location"), Some("http://t.example/"));

        // force-ssl-redirect: 308 to https although the Ingress has no TLS; the client's
        // X-Forwarded-Proto does not count from an untrusted peer.
        let a = c.get("force.example", "/x?y=1").await;
        assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT, "{proto:?}");
        assert_eq!(a.header("location"), Some("https://force.example/x?y=1"));
        let mut req = c.request("GET", "force.example", "/x", empty());
        req.headers_mut()
            .insert("x-forwarded-proto", http::HeaderValue::from_static("https"));
        assert_eq!(
            c.answer(req).await.status,
            StatusCode::PERMANENT_REDIRECT,
            "{proto:?}"
        );
        assert_eq!(
            c.get("force.example", "/.well-known/acme-challenge/t")
                .await
                .status,
            StatusCode::OK,
            "{proto:?}: ACME paths are not redirected"
        );

        // ssl-redirect: on (the default) for TLS hosts, off when "false".
        let a = c.get("secure.example", "/s").await;
        assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT, "{proto:?}");
        assert_eq!(a.header("location"), Some("https://secure.example/s"));
        let a = c.get("plain.example", "/s").await;
        assert_eq!(
            (a.status, a.backend()),
            (StatusCode::OK, Some("web")),
            "{proto:?}"
        );

        // server-alias: the same routes under the aliases.
        for host in ["main.example", "alias.example", "a.wild.example"] {
            let a = c.get(host, "/p").await;
            assert_eq!(
                (a.status, a.backend()),
                (StatusCode::OK, Some("web")),
                "{host}"
            );
        }
        assert_eq!(
            c.get("notalias.example", "/p").await.status,
            StatusCode::NOT_FOUND
        );

        // from-to-www-redirect, both ways (308, path and query kept).
        let a = c.get("www.site.example", "/p?q=1").await;
        assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT, "{proto:?}");
        assert_eq!(
            a.header("location"),
            Some(format!("http://site.example:{port}/p?q=1").as_str())
        );
        let a = c.get("shop2.example", "/").await;
        assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT, "{proto:?}");
        assert_eq!(
            a.header("location"),
            Some(format!("http://www.shop2.example:{port}/").as_str())
        );
        assert_eq!(c.get("site.example", "/p").await.backend(), Some("web"));

        // upstream-vhost: the Host the backend sees.
        let a = c.get("vhost.example", "/").await;
        assert_eq!(
            a.header("x-seen-authority"),
            Some("internal.example"),
            "{proto:?}"
        );
    }
    backend.stop().await;
}

#[tokio::test]
async fn a_trusted_proxy_that_ended_tls_is_not_redirected_by_force_ssl_redirect() {
    let backend = Backend::start("web").await;
    let config = ProxyConfig {
        forwarded: weir::proxy::ForwardedHeaders {
            trusted_proxies: vec!["127.0.0.0/8".parse().expect("cidr")],
        },
        ..ProxyConfig::default()
    };
    let h = Harness::start(config).await;
    h.serve_manifests(&manifests(backend.addr.port()), &["nginx"]);
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let mut req = c.request("GET", "force.example", "/x", empty());
        req.headers_mut()
            .insert("x-forwarded-proto", http::HeaderValue::from_static("https"));
        let a = c.answer(req).await;
        assert_eq!(
            (a.status, a.backend()),
            (StatusCode::OK, Some("web")),
            "{proto:?}"
        );
        assert_eq!(
            c.get("force.example", "/x").await.status,
            StatusCode::PERMANENT_REDIRECT,
            "{proto:?}: without the header it is cleartext"
        );
    }
    backend.stop().await;
}

/// Compile only: a path that is not a regular expression weir can match is rejected with a
/// condition; the Ingress's other paths are served.
#[test]
fn an_invalid_regex_path_rejects_only_that_path() {
    let yaml = manifests(8080)
        + &ingress(
            "mixed",
            "mixed.example",
            &[("use-regex", "true")],
            &[
                ("/good/[a-z]+", "ImplementationSpecific"),
                ("/bad/(unclosed", "ImplementationSpecific"),
                ("/look(?=ahead)", "ImplementationSpecific"),
            ],
        );
    let (_, compiled) = compile_manifests(&yaml, &["nginx"], false);
    let messages: Vec<String> = compiled
        .status
        .conditions
        .iter()
        .filter(|(o, _)| o.key.name == "mixed")
        .flat_map(|(_, cs)| cs.iter())
        .filter(|c| c.reason == "InvalidPath")
        .map(|c| c.message.clone())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("paths[1]") || messages[1].contains("paths[1]"));
    assert!(
        messages.iter().any(|m| m.contains("paths[2]")),
        "{messages:?}"
    );
    let routes = serde_json::to_string(&compiled.snapshot).expect("json");
    assert!(
        routes.contains("(?i)^/good/[a-z]+"),
        "the good path is served"
    );
    assert!(!routes.contains("unclosed"));
}
