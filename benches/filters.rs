//! CPU per request of a five-filter chain — request header modifier, CORS, IP allow list,
//! rate limit (never reached) and basic auth answered from its cache — against the same
//! request with no filters: the difference is what the chain adds (issue 11 target: ≤ 1 µs).
//! Both sides build the request and response heads the same way, so that cost cancels out.
//!
//! Run: `cargo bench --bench filters`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderName, HeaderValue, Request, Response};
use weir::proxy::FilterChainBench;
use weir::snapshot::{
    BasicAuth, ClusterKey, Cors, Filter, HeaderModifier, HeaderPair, IpAccess, OriginMatch,
    PasswordHash, PathMatch, RateLimit, RateLimitKey, Route, RouteAction, RouteId, RouteMatch,
};

fn route(filters: Vec<Filter>) -> Route {
    Route {
        id: RouteId(0),
        name: "bench/route".to_owned(),
        matches: RouteMatch::path(PathMatch::Prefix("/".into())),
        filters,
        action: RouteAction::forward(ClusterKey::new("bench", "svc", 80)),
        metrics_per_route: false,
    }
}

fn five_filters() -> Vec<Filter> {
    let bcrypt = bcrypt::hash("secret", 4).expect("hash");
    vec![
        Filter::RequestHeaderModifier(HeaderModifier {
            set: vec![HeaderPair {
                name: HeaderName::from_static("x-env"),
                value: HeaderValue::from_static("prod"),
            }],
            add: Vec::new(),
            remove: vec![HeaderName::from_static("x-debug")],
        }),
        Filter::Cors(Arc::new(Cors {
            allow_origins: vec![OriginMatch::Exact("https://app.example.com".into())],
            allow_methods: Some(HeaderValue::from_static("GET, POST")),
            any_method: false,
            allow_headers: None,
            any_header: false,
            expose_headers: None,
            allow_credentials: true,
            max_age: 600,
        })),
        Filter::IpAccess(Arc::new(IpAccess {
            allow: vec!["10.0.0.0/8".parse().expect("cidr")],
            deny: Vec::new(),
            trusted_hops: 0,
            satisfy_any: false,
        })),
        Filter::RateLimit(Arc::new(RateLimit {
            requests: u32::MAX,
            period: Duration::from_secs(1),
            burst: u32::MAX,
            key: RateLimitKey::ClientIp,
            status: 429,
            exempt: Vec::new(),
        })),
        Filter::BasicAuth(Arc::new(BasicAuth {
            challenge: HeaderValue::from_static("Basic realm=\"bench\""),
            users: BTreeMap::from([("alice".to_owned(), PasswordHash::Bcrypt(bcrypt))]),
        })),
    ]
}

fn heads(auth: &HeaderValue) -> (http::request::Parts, http::response::Parts) {
    let req = Request::builder()
        .uri("/api/items")
        .header("host", "shop.example")
        .header("origin", "https://app.example.com")
        .header("authorization", auth.clone())
        .body(())
        .expect("request")
        .into_parts()
        .0;
    let resp = Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(())
        .expect("response")
        .into_parts()
        .0;
    (req, resp)
}

fn chain(c: &mut Criterion) {
    let peer: SocketAddr = "10.1.2.3:40000".parse().expect("addr");
    let creds = base64::engine::general_purpose::STANDARD.encode("alice:secret");
    let auth = HeaderValue::try_from(format!("Basic {creds}")).expect("value");
    let none = FilterChainBench::new(route(Vec::new()), peer);
    let five = FilterChainBench::new(route(five_filters()), peer);
    // The first request pays bcrypt and fills the cache; every measured one hits it.
    let (mut req, mut resp) = heads(&auth);
    assert!(
        five.run(&mut req, &mut resp),
        "the chain lets the request through"
    );

    c.bench_function("filters/none", |b| {
        b.iter(|| {
            let (mut req, mut resp) = heads(&auth);
            black_box(none.run(&mut req, &mut resp));
            black_box((req, resp))
        })
    });
    c.bench_function("filters/five_cached_basic_auth", |b| {
        b.iter(|| {
            let (mut req, mut resp) = heads(&auth);
            black_box(five.run(&mut req, &mut resp));
            black_box((req, resp))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = chain
}
criterion_main!(benches);
