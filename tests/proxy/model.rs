//! The model's powers through the real proxy, each over HTTP/1.1 and HTTP/2: header, query,
//! method and regex matches with Gateway API precedence; weighted backends; header filters
//! on both phases; direct responses, redirects and failures through the one local-reply
//! path (same `X-Request-Id`, same response filters, same accounting).

use http::{HeaderName, HeaderValue, Method};
use weir::proxy::ProxyConfig;
use weir::snapshot::{
    Backend as ModelBackend, BackendTarget, DirectResponse, Filter, Forward, HeaderMatch,
    HeaderModifier, HeaderPair, PathMatch, PathRewrite, Pattern, QueryMatch, Redirect, RouteAction,
    RouteMatch, StringMatch,
};

use crate::support::*;

fn prefix(p: &str) -> RouteMatch {
    RouteMatch::path(PathMatch::Prefix(p.into()))
}

fn header(mut m: RouteMatch, name: &'static str, value: StringMatch) -> RouteMatch {
    m.push_header(HeaderMatch {
        name: HeaderName::from_static(name),
        value,
    });
    m
}

fn query(mut m: RouteMatch, name: &str, value: StringMatch) -> RouteMatch {
    m.push_query(QueryMatch {
        name: name.into(),
        value,
    });
    m
}

fn method(mut m: RouteMatch, method: Method) -> RouteMatch {
    m.set_method(method);
    m
}

fn exact(v: &str) -> StringMatch {
    StringMatch::Exact(v.into())
}

fn regex(v: &str) -> StringMatch {
    StringMatch::Regex(Pattern::new(v).expect("pattern"))
}

fn pair(name: &'static str, value: &'static str) -> HeaderPair {
    HeaderPair {
        name: HeaderName::from_static(name),
        value: HeaderValue::from_static(value),
    }
}

fn weighted(backends: &[(&str, u32)]) -> RouteAction {
    RouteAction::Forward(Forward {
        backends: backends
            .iter()
            .map(|(svc, w)| ModelBackend::cluster(key(svc), *w))
            .collect(),
        timeouts: Default::default(),
    })
}

async fn get_with(
    c: &mut Client,
    m: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = c.request(m, host, path, empty());
    for (k, v) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    c.answer(req).await
}

/// (method, path, headers, backend that must answer)
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

#[tokio::test]
async fn header_query_method_and_regex_matches_follow_gateway_precedence() {
    let names = [
        "plain",
        "query",
        "one-header",
        "two-headers",
        "method",
        "regex",
    ];
    let backends: Vec<Backend> = futures::future::join_all(names.map(Backend::start)).await;
    let h = Harness::start(ProxyConfig::default()).await;
    let refs: Vec<[&Backend; 1]> = backends.iter().map(|b| [b]).collect();
    let sets: Vec<(&str, &[&Backend])> =
        names.iter().zip(&refs).map(|(n, b)| (*n, &b[..])).collect();
    h.proxy.publish_endpoints(endpoints(&sets));
    let fwd = |svc: &str| RouteAction::forward(key(svc));
    h.publish(
        snapshot()
            .host("m.example")
            .route_with(prefix("/"), vec![], fwd("plain"))
            .route_with(query(prefix("/"), "q", exact("1")), vec![], fwd("query"))
            .route_with(
                header(prefix("/"), "x-a", exact("1")),
                vec![],
                fwd("one-header"),
            )
            .route_with(
                header(
                    header(prefix("/"), "x-a", exact("1")),
                    "x-b",
                    regex("^[0-9]+$"),
                ),
                vec![],
                fwd("two-headers"),
            )
            .route_with(method(prefix("/"), Method::DELETE), vec![], fwd("method"))
            .route_with(
                RouteMatch::path(PathMatch::Regex(Box::new(
                    Pattern::new("^/v[0-9]+/items$").expect("re"),
                ))),
                vec![],
                fwd("regex"),
            )
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let both = [("x-a", "1"), ("x-b", "42")];
        let cases: [Case; 7] = [
            ("DELETE", "/?q=1", &both, "method"),
            ("GET", "/?q=1", &both, "two-headers"),
            ("GET", "/?q=1", &[("x-a", "1"), ("x-b", "4x")], "one-header"),
            ("GET", "/?q=1", &[("X-A", "1")], "one-header"),
            ("GET", "/?q=1", &[], "query"),
            ("GET", "/?q=2", &[], "plain"),
            ("GET", "/v2/items", &[], "regex"),
        ];
        for (m, path, headers, want) in cases {
            let a = get_with(&mut c, m, "m.example", path, headers).await;
            assert_eq!(a.backend(), Some(want), "{proto:?} {m} {path} {headers:?}");
        }
    }
}

#[tokio::test]
async fn weighted_backends_split_80_20_within_two_percent() {
    let heavy = Backend::start("heavy").await;
    let light = Backend::start("light").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy
        .publish_endpoints(endpoints(&[("heavy", &[&heavy]), ("light", &[&light])]));
    h.publish(
        snapshot()
            .host("w.example")
            .route_with(
                prefix("/"),
                vec![],
                weighted(&[("heavy", 80), ("light", 20)]),
            )
            .build(),
    );
    const N: u64 = 10_000;
    const TASKS: u64 = 50;
    for proto in BOTH {
        let before = (heavy.hits(), light.hits());
        // 10,000 requests, 50 at a time: a connection each over HTTP/1.1, streams of one
        // multiplexed connection over HTTP/2.
        let shared = h.client(Proto::H2).await.h2();
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let addr = h.http;
            let mut h2 = shared.clone();
            tasks.push(tokio::spawn(async move {
                let mut h1 = match proto {
                    Proto::H1 => Some(Client::connect(addr, Proto::H1).await),
                    Proto::H2 => None,
                };
                for _ in 0..N / TASKS {
                    let status = match h1.as_mut() {
                        Some(c) => c.get("w.example", "/").await.status,
                        None => {
                            let req = http::Request::get("http://w.example/")
                                .body(empty())
                                .expect("request");
                            h2.ready().await.expect("ready");
                            collect(h2.send_request(req).await.expect("response"))
                                .await
                                .status
                        }
                    };
                    assert_eq!(status, 200);
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let heavy_n = heavy.hits() - before.0;
        let light_n = light.hits() - before.1;
        assert_eq!(heavy_n + light_n, N, "{proto:?}");
        let share = heavy_n as f64 / N as f64;
        assert!(
            (0.78..=0.82).contains(&share),
            "{proto:?}: heavy share {share}"
        );
    }
}

#[tokio::test]
async fn zero_weights_answer_500_and_an_unresolved_backend_answers_for_its_share() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    let unresolved = RouteAction::Forward(Forward {
        backends: vec![
            ModelBackend::cluster(key("a"), 1),
            ModelBackend {
                target: BackendTarget::Respond(DirectResponse {
                    status: 500,
                    body: "backend not found\n".into(),
                }),
                weight: 1,
                filters: vec![],
            },
        ],
        timeouts: Default::default(),
    });
    h.publish(
        snapshot()
            .host("z.example")
            .route_with(prefix("/zero"), vec![], weighted(&[("a", 0)]))
            .route_with(prefix("/split"), vec![], unresolved)
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let zero = c.get("z.example", "/zero").await;
        assert_eq!(zero.status, 500, "{proto:?}");
        assert!(zero.header("x-request-id").is_some());
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(c.get("z.example", "/split").await.status.as_u16());
        }
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 200, 500, 500],
            "{proto:?}: round robin over the split"
        );
    }
}

#[tokio::test]
async fn header_filters_run_on_requests_and_on_every_response() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    let filters = vec![
        Filter::RequestHeaderModifier(HeaderModifier {
            set: vec![pair("x-forwarded-host", "set-by-filter")],
            add: vec![],
            remove: vec![],
        }),
        Filter::ResponseHeaderModifier(HeaderModifier {
            set: vec![pair("strict-transport-security", "max-age=31536000")],
            add: vec![pair("x-via", "weir")],
            remove: vec![HeaderName::from_static("x-hop")],
        }),
    ];
    let backend_filter = Filter::ResponseHeaderModifier(HeaderModifier {
        set: vec![pair("x-backend-filter", "a")],
        ..HeaderModifier::default()
    });
    let mut with_backend_filter = ModelBackend::cluster(key("a"), 1);
    with_backend_filter.filters.push(backend_filter);
    h.publish(
        snapshot()
            .host("f.example")
            .route_with(
                prefix("/"),
                filters.clone(),
                RouteAction::Forward(Forward {
                    backends: vec![with_backend_filter],
                    timeouts: Default::default(),
                }),
            )
            .route_with(
                prefix("/direct"),
                filters,
                RouteAction::respond(418, "teapot\n"),
            )
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let fwd = c.get("f.example", "/x").await;
        assert_eq!(fwd.status, 200, "{proto:?}");
        assert_eq!(
            fwd.header("strict-transport-security"),
            Some("max-age=31536000")
        );
        assert_eq!(fwd.header("x-via"), Some("weir"));
        assert_eq!(fwd.header("x-backend-filter"), Some("a"));
        assert_eq!(fwd.header("x-hop"), None);
        assert_eq!(fwd.header("x-seen-x-forwarded-host"), Some("set-by-filter"));
        // A local reply of the same route gets the same response filters and a request id.
        let direct = c.get("f.example", "/direct").await;
        assert_eq!(direct.status, 418);
        assert_eq!(&direct.body[..], b"teapot\n");
        assert_eq!(
            direct.header("strict-transport-security"),
            Some("max-age=31536000")
        );
        assert_eq!(direct.header("x-via"), Some("weir"));
        assert_eq!(
            direct.header("x-backend-filter"),
            None,
            "no backend was chosen"
        );
        assert!(direct.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn request_header_filter_changes_what_the_backend_receives() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    // Route filters run after weir's own header rules, so they can override them (as
    // Envoy's route-level header mutations do).
    let filters = vec![Filter::RequestHeaderModifier(HeaderModifier {
        set: vec![pair("x-forwarded-host", "set-by-filter")],
        add: vec![],
        remove: vec![HeaderName::from_static("te")],
    })];
    h.publish(
        snapshot()
            .host("r.example")
            .route_with(prefix("/"), filters, RouteAction::forward(key("a")))
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let a = get_with(&mut c, "GET", "r.example", "/", &[("te", "trailers")]).await;
        assert_eq!(a.status, 200);
        assert_eq!(
            a.header("x-seen-te"),
            None,
            "{proto:?}: removed by the filter"
        );
        assert_eq!(a.header("x-seen-x-forwarded-host"), Some("set-by-filter"));
    }
}

#[tokio::test]
async fn redirects_and_failures_leave_through_the_local_reply_path() {
    let h = Harness::start(ProxyConfig::default()).await;
    let to_https = RouteAction::Redirect(Box::new(Redirect {
        scheme: Some("https".into()),
        hostname: None,
        port: None,
        path: None,
        query: None,
        status: 308,
    }));
    let moved = RouteAction::Redirect(Box::new(Redirect {
        scheme: None,
        hostname: Some("new.example".into()),
        port: None,
        path: Some(PathRewrite::ReplacePrefixMatch("/v2".into())),
        query: None,
        status: 301,
    }));
    h.publish(
        snapshot()
            .host("r.example")
            .route_with(prefix("/"), vec![], to_https)
            .route_with(prefix("/v1"), vec![], moved)
            // A cluster with no endpoints: 503 through the same path.
            .prefix("/empty", "nobody")
            .build(),
    );
    let port = h.http.port();
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let r = c.get("r.example", "/cart?id=7").await;
        assert_eq!(r.status, 308, "{proto:?}");
        assert_eq!(r.header("location"), Some("https://r.example/cart?id=7"));
        assert!(r.header("x-request-id").is_some());
        let r = c.get("r.example:8080", "/v1/users/1").await;
        assert_eq!(r.status, 301);
        assert_eq!(
            r.header("location").map(str::to_owned),
            Some(format!("http://new.example:{port}/v2/users/1"))
        );
        let r = get_with(
            &mut c,
            "GET",
            "r.example",
            "/empty",
            &[("x-request-id", "keep-me")],
        )
        .await;
        assert_eq!(r.status, 503);
        assert_eq!(r.header("x-request-id"), Some("keep-me"));
        let r = c.get("unknown.example", "/").await;
        assert_eq!(r.status, 404);
        assert!(r.header("x-request-id").is_some());
    }
    // Every one of them was counted like any other request.
    let mut m = String::new();
    h.proxy.render_metrics(&mut m);
    let redirects: u64 = m
        .lines()
        .filter(|l| l.starts_with("weir_requests_total") && l.contains("code_class=\"3xx\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(redirects, 4, "{m}");
    assert!(
        m.contains("weir_requests_total{cluster=\"default/nobody:80\",code_class=\"5xx\"} 2"),
        "{m}"
    );
}
