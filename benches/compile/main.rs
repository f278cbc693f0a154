//! Compile benchmark: 5,000 Ingresses × 10 paths (50,000 routes), 5,000 Services, 20,000
//! endpoints. Measures `compile`, `endpoints::build` and one `Snapshot::route` lookup.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method};
use weir::compile::compile;
use weir::snapshot::RequestHead;

mod objects;

fn bench(c: &mut Criterion) {
    let objects = objects::objects();
    let config = objects::config();
    let compiled = compile(&objects, &config);
    let routes = compiled.snapshot.routes().count();
    assert_eq!(routes, objects::INGRESSES * objects::PATHS);
    assert!(
        !compiled.status.has_rejections(),
        "{:?}",
        compiled.status.conditions.iter().next()
    );

    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    group.bench_function("compile_5k_ingresses_50k_routes", |b| {
        b.iter(|| compile(black_box(&objects), black_box(&config)))
    });
    group.bench_function("endpoints_build_5k_clusters_20k_endpoints", |b| {
        b.iter(|| {
            weir::endpoints::build(
                black_box(&objects),
                black_box(&compiled.snapshot.clusters),
                None,
            )
        })
    });
    group.bench_function("compile_plus_endpoints", |b| {
        b.iter(|| {
            let compiled = compile(black_box(&objects), black_box(&config));
            weir::endpoints::build(&objects, &compiled.snapshot.clusters, None)
        })
    });
    group.finish();

    let table = compiled
        .snapshot
        .route_table("http")
        .expect("http listener");
    let headers = HeaderMap::new();
    let get = Method::GET;
    c.bench_function("route_lookup_hit", |b| {
        b.iter(|| {
            let head = RequestHead::new(
                &get,
                black_box("host-4242.example.com:8080"),
                black_box("/app-7/v0/x?q=1"),
                &headers,
            );
            table.route(black_box(&head))
        })
    });
    c.bench_function("route_lookup_uppercase_host", |b| {
        b.iter(|| {
            let head = RequestHead::new(
                &get,
                black_box("HOST-4242.example.com"),
                black_box("/app-7/v0/x"),
                &headers,
            );
            table.route(black_box(&head))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
