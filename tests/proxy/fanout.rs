//! Per-request balancing: one client connection carrying 100 concurrent HTTP/2 streams
//! spreads 100,000 requests over 4 endpoints with max/min per-endpoint share ≤ 1.02, for
//! HTTP/1.1 and h2c upstreams. (A per-connection balancer would send all of them to one.)
//! The same over one HTTP/1.1 keep-alive connection, sequentially.
//!
//! Builds with debug assertions (plain `cargo test`, and the optimized `ci` profile) run a
//! tenth of the requests to stay within the time budget of an unoptimized test run; release
//! builds run the full 100,000, and `WEIR_FANOUT_REQUESTS=100000` forces any count (the
//! `ci` profile is fast enough for it).

use std::sync::Arc;

use crate::support::*;
use weir::proxy::ProxyConfig;
use weir::snapshot::UpstreamProtocol;

const STREAMS: usize = 100;
fn requests() -> usize {
    std::env::var("WEIR_FANOUT_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            10_000
        } else {
            100_000
        })
}

async fn fan_out(protocol: UpstreamProtocol) {
    let backends = [
        Backend::start("b0").await,
        Backend::start("b1").await,
        Backend::start("b2").await,
        Backend::start("b3").await,
    ];
    let h = Harness::start(ProxyConfig::default()).await;
    let refs: Vec<&Backend> = backends.iter().collect();
    h.proxy.publish_endpoints(endpoints(&[("web", &refs)]));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "web")
            .protocol("web", protocol)
            .build(),
    );
    let client = h.client(Proto::H2).await;
    let sender = client.h2();
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = tokio::task::JoinSet::new();
    let requests = requests();
    for _ in 0..STREAMS {
        let mut s = sender.clone();
        let failures = failures.clone();
        tasks.spawn(async move {
            for _ in 0..requests / STREAMS {
                let req = http::Request::get("http://a.example/")
                    .body(empty())
                    .expect("req");
                let failure = match s.send_request(req).await {
                    Ok(resp) if resp.status() == 200 => {
                        let _ = collect(resp).await;
                        continue;
                    }
                    Ok(resp) => {
                        let a = collect(resp).await;
                        format!("{} {:?}", a.status, a.body)
                    }
                    Err(e) => format!("client error: {e}"),
                };
                failures.lock().expect("lock").push(failure);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let failures = failures.lock().expect("lock");
    assert!(
        failures.is_empty(),
        "{protocol:?}: {} failed, first: {:?}",
        failures.len(),
        failures.first()
    );
    let hits: Vec<u64> = backends.iter().map(Backend::hits).collect();
    assert_eq!(
        hits.iter().sum::<u64>(),
        (requests / STREAMS * STREAMS) as u64
    );
    let max = *hits.iter().max().expect("max") as f64;
    let min = *hits.iter().min().expect("min") as f64;
    assert!(
        min > 0.0 && max / min <= 1.02,
        "{protocol:?}: shares {hits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_h2_connection_spreads_over_four_http1_endpoints() {
    fan_out(UpstreamProtocol::Http1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_h2_connection_spreads_over_four_h2c_endpoints() {
    fan_out(UpstreamProtocol::H2c).await;
}

#[tokio::test]
async fn one_http1_connection_spreads_its_requests() {
    let backends = [Backend::start("b0").await, Backend::start("b1").await];
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy
        .publish_endpoints(endpoints(&[("web", &[&backends[0], &backends[1]])]));
    h.publish(snapshot().host("a.example").prefix("/", "web").build());
    let mut c = h.client(Proto::H1).await;
    for _ in 0..100 {
        assert_eq!(c.get("a.example", "/").await.status, 200);
    }
    assert_eq!(backends[0].hits(), 50);
    assert_eq!(backends[1].hits(), 50);
}
