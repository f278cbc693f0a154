//! ingress-nginx canaries, from manifests through the real proxy, over HTTP/1.1 and HTTP/2
//! (`--ingress-class nginx`): a canary Ingress joins its main Ingress's route and sends
//! requests to its own backend by header (`always`/`never`, an exact value, a pattern), by
//! cookie (`always`/`never`, also when HTTP/2 splits the cookies over several headers) and
//! by weight, in ingress-nginx's precedence header → cookie → weight. Expected answers are
//! those of ingress-nginx's `docs/examples/canary` and `balancer.lua`.

use http::StatusCode;
use weir::proxy::ProxyConfig;

use crate::support::*;

fn manifests(main_port: u16, canary_port: u16) -> String {
    let mut out = NGINX_CLASS.to_owned();
    out.push_str(&loopback_service_yaml("main", main_port));
    out.push_str(&loopback_service_yaml("canary", canary_port));
    for (name, annotations) in [
        ("header", &[("canary-by-header", "X-Canary")][..]),
        (
            "value",
            &[
                ("canary-by-header", "X-Region"),
                ("canary-by-header-value", "eu-west"),
            ],
        ),
        (
            "pattern",
            &[
                ("canary-by-header", "X-Region"),
                ("canary-by-header-pattern", "^eu-"),
            ],
        ),
        ("cookie", &[("canary-by-cookie", "tester")]),
        ("w30", &[("canary-weight", "30")]),
        ("w0", &[("canary-weight", "0")]),
        ("w100", &[("canary-weight", "100")]),
        (
            "prec",
            &[
                ("canary-by-header", "X-Canary"),
                ("canary-by-cookie", "tester"),
                ("canary-weight", "100"),
            ],
        ),
    ] {
        let host = format!("{name}.example");
        let (main, canary) = (format!("{name}-main"), format!("{name}-canary"));
        out.push_str(&nginx_ingress(&main, &host, "main", &[]));
        out.push_str(
            &IngressYaml::nginx(&canary, &host)
                .service("canary")
                .nginx_annotations(&[("canary", "true")])
                .nginx_annotations(annotations)
                .yaml(),
        );
    }
    out
}

/// Which backend answered a GET to `host` with these request headers.
async fn who(c: &mut Client, host: &str, headers: &[(&str, &str)]) -> String {
    let mut req = c.request("GET", host, "/", empty());
    for (name, value) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            http::HeaderValue::from_str(value).expect("value"),
        );
    }
    let a = c.answer(req).await;
    assert_eq!(a.status, StatusCode::OK, "{host} {headers:?}");
    a.backend().unwrap_or("none").to_owned()
}

#[tokio::test]
async fn canaries_route_by_header_cookie_and_weight_in_that_order() {
    let main = Backend::start("main").await;
    let canary = Backend::start("canary").await;
    let h = Harness::start(ProxyConfig::default()).await;
    let compiled = h.serve_manifests(&manifests(main.addr.port(), canary.addr.port()), &["nginx"]);
    // The one condition: the pattern is the regex crate's syntax (a Warning).
    let conditions: Vec<_> = compiled
        .status
        .conditions
        .iter()
        .flat_map(|(o, cs)| cs.iter().map(move |c| (o.key.name.as_str(), c.reason)))
        .collect();
    assert_eq!(
        conditions,
        [("pattern-canary", "PartiallySupportedAnnotation")],
        "{:?}",
        compiled.status.conditions
    );

    for proto in BOTH {
        let mut c = h.client(proto).await;
        for (host, headers, want) in [
            // canary-by-header: always / never / anything else falls through (weight 0).
            ("header.example", &[("X-Canary", "always")][..], "canary"),
            ("header.example", &[("X-Canary", "never")][..], "main"),
            ("header.example", &[("X-Canary", "sometimes")][..], "main"),
            ("header.example", &[][..], "main"),
            // with a value: that value → canary; "always" is just another value then.
            ("value.example", &[("X-Region", "eu-west")][..], "canary"),
            ("value.example", &[("X-Region", "eu-west-2")][..], "main"),
            ("value.example", &[("X-Region", "always")][..], "main"),
            // with a pattern: a match anywhere in the value → canary.
            (
                "pattern.example",
                &[("X-Region", "eu-central")][..],
                "canary",
            ),
            ("pattern.example", &[("X-Region", "us-east")][..], "main"),
            ("pattern.example", &[("X-Region", "always")][..], "main"),
            // canary-by-cookie: always / never / anything else.
            (
                "cookie.example",
                &[("Cookie", "tester=always")][..],
                "canary",
            ),
            (
                "cookie.example",
                &[("Cookie", "a=1; tester=always; b=2")][..],
                "canary",
            ),
            ("cookie.example", &[("Cookie", "tester=never")][..], "main"),
            ("cookie.example", &[("Cookie", "tester=maybe")][..], "main"),
            (
                "cookie.example",
                &[("Cookie", "xtester=always")][..],
                "main",
            ),
            // weight 0 and weight 100 (of 100) are exact.
            ("w0.example", &[][..], "main"),
            ("w100.example", &[][..], "canary"),
            // precedence (weight 100): header beats cookie, cookie beats weight.
            (
                "prec.example",
                &[("X-Canary", "never"), ("Cookie", "tester=always")][..],
                "main",
            ),
            (
                "prec.example",
                &[("X-Canary", "always"), ("Cookie", "tester=never")][..],
                "canary",
            ),
            (
                "prec.example",
                &[("X-Canary", "other"), ("Cookie", "tester=never")][..],
                "main",
            ),
            ("prec.example", &[("Cookie", "tester=never")][..], "main"),
            ("prec.example", &[("X-Canary", "other")][..], "canary"),
        ] {
            assert_eq!(
                who(&mut c, host, headers).await,
                want,
                "{proto:?} {host} {headers:?}"
            );
        }
        if proto == Proto::H2 {
            // HTTP/2 clients may send each cookie as its own `cookie` header (RFC 9113
            // 8.2.3); the one carrying the canary cookie decides.
            let split = [("cookie", "a=1"), ("cookie", "tester=always")];
            assert_eq!(who(&mut c, "cookie.example", &split).await, "canary");
            let split = [("cookie", "tester=never"), ("cookie", "b=2")];
            assert_eq!(who(&mut c, "cookie.example", &split).await, "main");
        }

        // canary-weight 30 of 100 over N = 1000 requests: if each request went to the
        // canary independently with p = 0.3 the count would be Binomial(1000, 0.3), mean 300,
        // sd = sqrt(1000 × 0.3 × 0.7) ≈ 14.5; accept 300 ± 6 sd = [213, 387] (a correct
        // proxy fails this with probability below 1e-8). weir's smooth weighted round robin
        // is tighter than that, never looser.
        let n = 1000;
        let mut to_canary = 0;
        for _ in 0..n {
            if who(&mut c, "w30.example", &[]).await == "canary" {
                to_canary += 1;
            }
        }
        eprintln!("{proto:?}: {to_canary} of {n} requests to the canary (weight 30 of 100)");
        assert!(
            (213..=387).contains(&to_canary),
            "{proto:?}: {to_canary} of {n} requests went to the canary (weight 30 of 100)"
        );
    }
    main.stop().await;
    canary.stop().await;
}
