//! Runtime state survives reconfiguration: under 200 concurrent requests, 200 successive
//! changes of endpoints, routes and cluster protocols cause zero failed requests; endpoints
//! that remain keep their pools and counters; removed ones drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::support::*;
use weir::proxy::ProxyConfig;
use weir::snapshot::UpstreamProtocol;

const CONCURRENCY: usize = 200;
const CHANGES: usize = 200;

fn variant(i: usize) -> Arc<weir::snapshot::Snapshot> {
    // Routes change every step: which cluster serves `/`, whether `/extra` exists, and the
    // protocol of `web2` (a protocol change gets fresh pools).
    let main = if i.is_multiple_of(2) { "web" } else { "web2" };
    let mut b = snapshot().host("a.example").prefix("/", main);
    if i.is_multiple_of(3) {
        b = b.prefix("/extra", "web");
    }
    b.prefix("/slow", "web2")
        .protocol("web", UpstreamProtocol::Http1)
        .protocol(
            "web2",
            if (i / 4).is_multiple_of(2) {
                UpstreamProtocol::H2c
            } else {
                UpstreamProtocol::Http1
            },
        )
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_changes_under_load_fail_no_request() {
    let mut backends = Vec::new();
    for i in 0..6 {
        backends.push(Backend::start(&format!("b{i}")).await);
    }
    let h = Harness::start(ProxyConfig::default()).await;
    let subset = |i: usize| -> Vec<&Backend> { (0..3).map(|k| &backends[(i + k) % 6]).collect() };
    h.proxy
        .publish_endpoints(endpoints(&[("web", &subset(0)), ("web2", &subset(3))]));
    h.publish(variant(0));

    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    // Half the load on one HTTP/2 connection (100 streams), half on 100 HTTP/1.1 connections.
    let h2 = h.client(Proto::H2).await;
    for n in 0..CONCURRENCY {
        let mut client = if n % 2 == 0 {
            Client::H2(h2.h2())
        } else {
            h.client(Proto::H1).await
        };
        let (done, ok, failed) = (done.clone(), ok.clone(), failed.clone());
        tasks.spawn(async move {
            let mut k = 0usize;
            while !done.load(Ordering::Relaxed) {
                k += 1;
                let path = match k % 4 {
                    0 => "/slow/20",
                    1 => "/extra",
                    _ => "/",
                };
                let req = client.request("GET", "a.example", path, empty());
                match client.send(req).await {
                    Ok(resp) if resp.status() == 200 => {
                        let _ = collect(resp).await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) => {
                        eprintln!("status {} for {path}", resp.status());
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        eprintln!("error {error} for {path}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }

    for i in 1..=CHANGES {
        if i % 2 == 0 {
            h.publish(variant(i));
        } else {
            // Endpoint churn: a sliding window of 3 out of 6 backends per cluster.
            h.proxy
                .update_endpoints(&key("web"), Some(set(subset(i).iter().map(|b| b.addr))));
            h.proxy.update_endpoints(
                &key("web2"),
                Some(set(subset(i + 3).iter().map(|b| b.addr))),
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .expect("clients finish");

    let ok = ok.load(Ordering::Relaxed);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests ({ok} succeeded)"
    );
    assert!(
        ok >= CHANGES as u64,
        "traffic flowed during the changes: {ok}"
    );
    assert_eq!(h.proxy.generation(), 1 + CHANGES as u64 / 2);
    // Every backend served traffic at some point.
    assert!(backends.iter().all(|b| b.hits() > 0));
}

#[tokio::test]
async fn endpoints_that_remain_keep_their_pools_and_counters() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("web", &[&a, &b])]));
    h.publish(snapshot().host("a.example").prefix("/", "web").build());
    let mut c = h.client(Proto::H1).await;
    for _ in 0..10 {
        assert_eq!(c.get("a.example", "/").await.status, 200);
    }
    let total_of = |addr: std::net::SocketAddr| {
        let j = h.proxy.clusters_json();
        j["clusters"][0]["endpoints"]
            .as_array()
            .expect("eps")
            .iter()
            .find(|e| e["address"] == addr.to_string())
            .map(|e| {
                (
                    e["total"].as_u64().expect("n"),
                    e["pooled_connections"].as_u64().expect("n"),
                )
            })
    };
    assert_eq!(total_of(a.addr), Some((5, 1)));
    // Remove b, publish an unrelated route change: a keeps its counter and pooled connection.
    h.proxy.update_endpoints(&key("web"), Some(set([a.addr])));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "web")
            .prefix("/new", "web")
            .build(),
    );
    assert_eq!(total_of(a.addr), Some((5, 1)));
    assert_eq!(total_of(b.addr), None);
    for _ in 0..4 {
        assert_eq!(c.get("a.example", "/new").await.backend(), Some("a"));
    }
    // Sequential requests reuse the one pooled connection.
    assert_eq!(total_of(a.addr), Some((9, 1)));
}
