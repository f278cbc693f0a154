//! One test per kind of decision `explain` reports: the listener, the certificate, path
//! normalization, the virtual host lookup, route precedence, each filter's effect, the
//! backend split and the endpoints.

use std::sync::Arc;

use super::*;
use crate::snapshot::{
    Backend, Cluster, Endpoint, EndpointSet, Forward, HeaderMatch, HeaderPair, IpAccess, Pattern,
    QueryMatch, Redirect, RequestRedirect, RouteId, TlsConfig, UpstreamProtocol, UrlRewrite,
    VirtualHosts,
};

fn route(name: &str, matches: RouteMatch, filters: Vec<Filter>, action: RouteAction) -> Route {
    Route {
        id: RouteId::default(),
        name: name.into(),
        matches,
        filters,
        action,
        metrics_per_route: false,
    }
}

fn prefix(p: &str) -> RouteMatch {
    RouteMatch::path(PathMatch::Prefix(p.into()))
}

fn exact(p: &str) -> RouteMatch {
    RouteMatch::path(PathMatch::Exact(p.into()))
}

fn to(svc: &str) -> RouteAction {
    RouteAction::forward(ClusterKey::new("default", svc, 80))
}

fn vhost(host: &str, routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        host: host.into(),
        routes,
    }
}

/// A snapshot with an `http` (8080) and an `https` (8443) listener over one table.
fn snapshot(exact_hosts: Vec<VirtualHost>, wildcard: Vec<(&str, VirtualHost)>) -> Snapshot {
    let mut hosts = VirtualHosts::default();
    for v in exact_hosts {
        hosts.exact.insert(v.host.clone(), v);
    }
    for (suffix, v) in wildcard {
        hosts.wildcard.insert(suffix.into(), v);
    }
    let table = RouteTable {
        virtual_hosts: hosts,
        default_route: None,
    };
    let mut clusters = std::collections::BTreeMap::new();
    for svc in ["api", "web", "auth"] {
        let key = ClusterKey::new("default", svc, 80);
        clusters.insert(
            key.clone(),
            Cluster::new(key, "http", UpstreamProtocol::Http1).into(),
        );
    }
    Snapshot {
        listeners: vec![
            Listener {
                name: "http".into(),
                address: "0.0.0.0:8080".parse().expect("addr"),
                protocol: ListenerProtocol::Http,
                route_table: "t".into(),
                tls: None,
            },
            Listener {
                name: "https".into(),
                address: "0.0.0.0:8443".parse().expect("addr"),
                protocol: ListenerProtocol::Https,
                route_table: "t".into(),
                tls: Some(TlsConfig {
                    sni: Default::default(),
                    default: None,
                }),
            },
        ],
        route_tables: [("t".to_owned(), table)].into(),
        clusters,
    }
}

fn shop() -> Snapshot {
    snapshot(
        vec![vhost(
            "shop.example.com",
            vec![
                route("shop/exact", exact("/api/v1"), vec![], to("api")),
                route("shop/api-v1", prefix("/api/v1"), vec![], to("api")),
                route("shop/api", prefix("/api"), vec![], to("api")),
                route("shop/root", prefix("/"), vec![], to("web")),
            ],
        )],
        vec![(
            ".example.com",
            vhost(
                "*.example.com",
                vec![route("wild/root", prefix("/"), vec![], to("web"))],
            ),
        )],
    )
}

fn sets() -> EndpointSets {
    let mut sets = EndpointSets::new();
    sets.insert(
        ClusterKey::new("default", "api", 80),
        Arc::new(EndpointSet {
            endpoints: vec![
                Endpoint::new("10.0.0.1:8080".parse().expect("addr")),
                Endpoint::new("10.0.0.2:8080".parse().expect("addr")),
            ],
        }),
    );
    sets
}

fn run(
    snapshot: &Snapshot,
    method: &str,
    url: &str,
    headers: &[&str],
    ip: Option<&str>,
) -> Explanation {
    let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let req = ExplainRequest::parse(method, url, &headers, ip).expect("request");
    let sets = sets();
    explain(
        snapshot,
        Endpoints::Sets(&sets),
        EscapedSlashes::Reject,
        &req,
    )
}

fn verdict<'e>(e: &'e Explanation, name: &str) -> &'e RouteVerdict {
    e.routes
        .iter()
        .find(|r| r.name == name)
        .expect("route listed")
}

#[test]
fn the_listener_follows_scheme_and_port() {
    let s = shop();
    let e = run(&s, "GET", "https://shop.example.com/api/v1?x=1", &[], None);
    let l = e.listener.as_ref().expect("listener");
    assert_eq!(l.name, "https");
    assert!(l.why.contains("no port"), "{}", l.why);
    let e = run(&s, "GET", "http://shop.example.com:8080/", &[], None);
    assert_eq!(e.listener.as_ref().map(|l| l.name.as_str()), Some("http"));
    let e = run(&s, "GET", "http://shop.example.com:9999/", &[], None);
    assert!(e.listener.is_none());
    assert!(e.outcome.contains("refused"), "{}", e.outcome);
}

#[test]
fn the_certificate_is_the_one_the_handshake_gets() {
    let s = shop();
    let e = run(&s, "GET", "https://shop.example.com/", &[], None);
    let cert = e.certificate.as_deref().expect("https");
    assert!(cert.starts_with("self-signed"), "{cert}");
    assert!(
        run(&s, "GET", "http://shop.example.com/", &[], None)
            .certificate
            .is_none()
    );
}

#[test]
fn precedence_says_why_each_route_lost() {
    let s = shop();
    let e = run(&s, "GET", "https://shop.example.com/api/v1?x=1", &[], None);
    assert_eq!(e.route.as_deref(), Some("shop/exact"));
    assert_eq!(verdict(&e, "shop/exact").verdict, "chosen");
    let v = verdict(&e, "shop/api-v1");
    assert_eq!(v.verdict, "lost");
    assert!(v.why.contains("Exact, which beats Prefix"), "{}", v.why);
    let v = verdict(&e, "shop/api");
    assert_eq!(v.verdict, "lost");
    assert!(v.why.contains("longer path"), "{}", v.why);
    assert_eq!(verdict(&e, "shop/root").verdict, "lost");
    assert_eq!(e.outcome, "forwarded to default/api:80");

    let e = run(&s, "GET", "https://shop.example.com/apix", &[], None);
    assert_eq!(e.route.as_deref(), Some("shop/root"));
    let v = verdict(&e, "shop/api");
    assert_eq!(v.verdict, "no match");
    assert_eq!(v.why, "path /apix is not Prefix /api");
}

#[test]
fn method_header_and_query_matches_explain_themselves() {
    let mut rich = prefix("/");
    rich.set_method(Method::POST);
    let mut headers = prefix("/");
    headers.push_header(HeaderMatch {
        name: HeaderName::from_static("x-user"),
        value: StringMatch::Exact("a".into()),
    });
    let mut query = prefix("/");
    query.push_query(QueryMatch {
        name: "v".into(),
        value: StringMatch::Regex(Pattern::new("^2$").expect("re")),
    });
    let s = snapshot(
        vec![vhost(
            "h.example",
            vec![
                route("post", rich, vec![], to("api")),
                route("user", headers, vec![], to("api")),
                route("query", query, vec![], to("api")),
                route("any", prefix("/"), vec![], to("web")),
            ],
        )],
        vec![],
    );
    let e = run(&s, "GET", "http://h.example/?v=1", &["X-User: b"], None);
    assert_eq!(e.route.as_deref(), Some("any"));
    assert_eq!(verdict(&e, "post").why, "method GET is not POST");
    assert_eq!(verdict(&e, "user").why, "header x-user: b is not \"a\"");
    assert_eq!(
        verdict(&e, "query").why,
        "query parameter v=1 is not ~ /^2$/"
    );
    let e = run(&s, "GET", "http://h.example/?v=2", &["X-User: a"], None);
    assert_eq!(e.route.as_deref(), Some("user"));
    assert!(
        verdict(&e, "query")
            .why
            .contains("matches more headers (1 against 0)")
    );
    assert!(verdict(&e, "any").why.contains("matches more headers"));
    let e = run(&s, "POST", "http://h.example/", &[], None);
    assert_eq!(e.route.as_deref(), Some("post"));
    assert!(verdict(&e, "any").why.contains("also matches the method"));
}

#[test]
fn virtual_host_lookup_is_listed_step_by_step() {
    let s = shop();
    let e = run(&s, "GET", "http://a.example.com/", &[], None);
    assert_eq!(e.route.as_deref(), Some("wild/root"));
    let steps: Vec<(&str, &str)> = e
        .virtual_hosts
        .iter()
        .map(|s| (s.lookup.as_str(), s.result.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("exact a.example.com", "no such virtual host"),
            ("wildcard *.example.com", "route wild/root matches"),
        ]
    );
    let e = run(&s, "GET", "http://other.test/", &[], None);
    assert!(e.route.is_none());
    assert_eq!(e.outcome, "404: no route matches");
    assert_eq!(
        e.virtual_hosts.last().map(|s| s.result.as_str()),
        Some("none: 404")
    );
}

#[test]
fn paths_are_explained_after_normalization() {
    let s = shop();
    let e = run(
        &s,
        "GET",
        "http://shop.example.com/x/../api/./v1",
        &[],
        None,
    );
    assert_eq!(e.normalized_path.as_deref(), Some("/api/v1"));
    assert_eq!(e.route.as_deref(), Some("shop/exact"));
    let e = run(&s, "GET", "http://shop.example.com/a%2Fb", &[], None);
    assert!(e.outcome.starts_with("400"), "{}", e.outcome);
    assert!(e.route.is_none());
}

#[test]
fn filters_say_what_they_do_to_this_request() {
    let add = HeaderModifier {
        set: vec![HeaderPair {
            name: HeaderName::from_static("x-env"),
            value: HeaderValue::from_static("prod"),
        }],
        add: vec![],
        remove: vec![HeaderName::from_static("x-debug")],
    };
    let rewrite = UrlRewrite {
        hostname: Some("internal.example".into()),
        path: Some(PathRewrite::ReplacePrefixMatch("/v2".into())),
    };
    let https = RequestRedirect {
        redirect: Redirect {
            scheme: Some("https".into()),
            hostname: None,
            port: None,
            path: None,
            query: None,
            status: 308,
        },
        https_upgrade: true,
    };
    let access = IpAccess {
        allow: vec!["10.0.0.0/8".parse().expect("cidr")],
        deny: vec![],
        trusted_hops: 0,
        satisfy_any: false,
    };
    let s = snapshot(
        vec![vhost(
            "f.example",
            vec![route(
                "f",
                prefix("/api"),
                vec![
                    Filter::RequestRedirect(https),
                    Filter::IpAccess(Arc::new(access)),
                    Filter::RequestHeaderModifier(add),
                    Filter::UrlRewrite(rewrite),
                ],
                to("api"),
            )],
        )],
        vec![],
    );
    let e = run(
        &s,
        "GET",
        "https://f.example/api/users?id=1",
        &[],
        Some("10.1.2.3"),
    );
    let effects: Vec<&str> = e.filters.iter().map(|f| f.effect.as_str()).collect();
    assert_eq!(
        effects,
        [
            "HTTPS redirect: not applied (it arrived over TLS)",
            "allows 10.1.2.3",
            "request headers: removes x-debug, sets x-env: prod",
            "the backend gets path /v2/users and Host internal.example",
        ]
    );
    assert_eq!(e.outcome, "forwarded to default/api:80");

    let e = run(
        &s,
        "GET",
        "http://f.example/api/users?id=1",
        &[],
        Some("10.1.2.3"),
    );
    assert_eq!(
        e.outcome,
        "308 redirect to https://f.example/api/users?id=1"
    );
    let e = run(&s, "GET", "https://f.example/api", &[], Some("192.0.2.1"));
    assert_eq!(e.outcome, "403 forbidden (IPAccess denies 192.0.2.1)");
}

#[test]
fn backends_show_their_share_and_clusters_their_endpoints() {
    let split = RouteAction::Forward(Forward {
        backends: vec![
            Backend::cluster(ClusterKey::new("default", "api", 80), 3),
            Backend::cluster(ClusterKey::new("default", "web", 80), 1),
        ],
        timeouts: None,
    });
    let s = snapshot(
        vec![vhost(
            "b.example",
            vec![route("b", prefix("/"), vec![], split)],
        )],
        vec![],
    );
    let e = run(&s, "GET", "http://b.example/", &[], None);
    let shares: Vec<(&str, f64)> = e
        .backends
        .iter()
        .map(|b| (b.target.as_str(), b.share_percent))
        .collect();
    assert_eq!(shares, [("default/api:80", 75.0), ("default/web:80", 25.0)]);
    assert_eq!(e.outcome, "forwarded to one of 2 backends by weight");
    let api = &e.clusters[0];
    assert_eq!(api.name, "default/api:80");
    assert_eq!(api.role, "backend");
    assert_eq!(api.endpoints.len(), 2);
    assert_eq!(api.endpoints[0]["address"], "10.0.0.1:8080");
    assert!(api.policy.get("protocol").is_some(), "{}", api.policy);
    assert!(api.policy.get("key").is_none(), "the name says it");
    assert!(e.clusters[1].endpoints.is_empty(), "web has no endpoints");
    let text = e.to_string();
    assert!(
        text.contains("endpoints: none (requests get 503)"),
        "{text}"
    );
    assert!(text.contains("default/api:80  weight 3 (75%)"), "{text}");

    // A running proxy's view: health and load per endpoint.
    let live = serde_json::json!({"clusters": [{"name": "default/api:80", "endpoints": [
        {"address": "10.0.0.1:8080", "health": "healthy", "in_flight": 2}]}]});
    let req = ExplainRequest::parse("GET", "http://b.example/", &[], None).expect("req");
    let e = explain(&s, Endpoints::Live(&live), EscapedSlashes::Reject, &req);
    assert_eq!(e.clusters[0].endpoints[0]["in_flight"], 2);
}

#[test]
fn requests_that_do_not_parse_are_refused_with_a_reason() {
    for (url, headers, why) in [
        ("ftp://x/", vec![], "http:// or https://"),
        ("/relative", vec![], "http:// or https://"),
        ("http://x/", vec!["no-colon".to_owned()], "Name: value"),
    ] {
        let err = ExplainRequest::parse("GET", url, &headers, None).expect_err(url);
        assert!(err.contains(why), "{url}: {err}");
    }
    let err = ExplainRequest::parse("GET", "http://x/", &[], Some("nope")).expect_err("ip");
    assert!(err.contains("client address"), "{err}");
}
