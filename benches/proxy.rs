//! Request-path benchmarks, in process on loopback: a keep-alive HTTP/1.1 client and an
//! HTTP/2 client through weir to a hyper backend (one request at a time, so the figure is
//! latency including client and backend work). The balancer picks alone are
//! `benches/balance.rs`.
//!
//! Run: `cargo bench --bench proxy`. `direct/*` gives the client-plus-backend baseline.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use support::*;
use weir::proxy::ProxyConfig;
use weir::snapshot::UpstreamProtocol;

fn request_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (h, backend) = rt.block_on(async {
        let backend = Backend::start("a").await;
        let h = Harness::start(ProxyConfig::default()).await;
        h.proxy
            .publish_endpoints(endpoints(&[("h1", &[&backend]), ("h2", &[&backend])]));
        h.publish(
            snapshot()
                .host("h1.example")
                .prefix("/", "h1")
                .host("h2.example")
                .prefix("/", "h2")
                .protocol("h2", UpstreamProtocol::H2c)
                .build(),
        );
        (h, backend)
    });
    // `direct/*` is the same client talking to the backend without weir: the difference is
    // weir's share.
    for (name, proto, host, addr) in [
        ("direct/h1_get", Proto::H1, "h1.example", backend.addr),
        ("proxy/h1_to_h1_get", Proto::H1, "h1.example", h.http),
        ("direct/h2_get", Proto::H2, "h2.example", backend.addr),
        ("proxy/h2_to_h2c_get", Proto::H2, "h2.example", h.http),
    ] {
        let mut client = rt.block_on(Client::connect(addr, proto));
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let r = client.get(host, "/").await;
                        assert_eq!(r.status, 200);
                    }
                    start.elapsed()
                })
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = request_path
}
criterion_main!(benches);
