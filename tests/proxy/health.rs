//! Online only: active checks and passive outlier detection, through the real proxy.

use std::time::Duration;

use weir::proxy::ProxyConfig;
use weir::snapshot::{ActiveCheck, CheckKind, OutlierDetection};

use crate::support::*;

/// An HTTP check of `/healthz` every `interval_ms`, 2 failures down, 2 passes up.
fn http_check(interval_ms: u64) -> ActiveCheck {
    ActiveCheck {
        kind: CheckKind::Http {
            path: "/healthz".into(),
            host: String::new(),
            expected_statuses: Vec::new(),
        },
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(500),
        healthy_threshold: 2,
        unhealthy_threshold: 2,
    }
}

/// Outlier detection on 5xx only, ejecting for `base_ms`.
fn outliers(consecutive_5xx: u32, base_ms: u64, max_percent: u8) -> OutlierDetection {
    OutlierDetection {
        consecutive_5xx,
        consecutive_gateway_errors: 0,
        interval: Duration::from_secs(10),
        base_ejection_time: Duration::from_millis(base_ms),
        max_ejection_percent: max_percent,
    }
}

/// The `/clusters` entry of the endpoint at `addr` in cluster `name`.
fn endpoint(h: &Harness, name: &str, addr: std::net::SocketAddr) -> serde_json::Value {
    let j = h.proxy.clusters_json();
    let cluster = j["clusters"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_default();
    cluster["endpoints"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["address"] == addr.to_string()))
        .cloned()
        .unwrap_or_default()
}

fn cluster(h: &Harness, name: &str) -> serde_json::Value {
    let j = h.proxy.clusters_json();
    j["clusters"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_default()
}

/// Sends `n` requests one after another; returns how many each backend answered
/// (`x-backend`), as (a, b, other).
async fn spread(c: &mut Client, host: &str, n: usize) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    for _ in 0..n {
        let answer = c.get(host, "/").await;
        match answer.backend() {
            Some("a") => counts.0 += 1,
            Some("b") => counts.1 += 1,
            _ => counts.2 += 1,
        }
    }
    counts
}

const WEB: &str = "default/web:80";

#[tokio::test]
async fn failing_active_check_takes_the_endpoint_out_until_it_passes_again() {
    let interval = 100;
    for proto in BOTH {
        let a = Backend::start("a").await;
        let b = Backend::start("b").await;
        let h = Harness::start(ProxyConfig::default()).await;
        h.proxy.publish_endpoints(endpoints(&[("web", &[&a, &b])]));
        h.publish(
            snapshot()
                .host("w.example")
                .prefix("/", "web")
                .cluster("web", |c| {
                    c.health.active = Some(Box::new(http_check(interval)))
                })
                .build(),
        );
        let mut c = h.client(proto).await;
        // Both start healthy (Kubernetes readiness is the first word).
        let (na, nb, other) = spread(&mut c, "w.example", 10).await;
        assert!(
            na > 0 && nb > 0 && other == 0,
            "{proto:?}: {na} {nb} {other}"
        );

        a.set_health(503);
        // Down after 2 failed probes: 2 intervals of at most 110 ms (jitter), plus slack for
        // a probe in flight and the scheduler.
        tokio::time::sleep(Duration::from_millis(2 * 110 + 500)).await;
        assert_eq!(
            endpoint(&h, WEB, a.addr)["health"],
            "unhealthy",
            "{proto:?}"
        );
        assert_eq!(cluster(&h, WEB)["usable"], 1);
        assert_eq!(
            h.metric(&format!("weir_endpoints_healthy{{cluster=\"{WEB}\"}}")),
            1
        );
        assert!(
            h.metric(&format!(
                "weir_active_check_failures_total{{cluster=\"{WEB}\"}}"
            )) >= 2
        );
        let before = a.hits();
        let (na, nb, other) = spread(&mut c, "w.example", 20).await;
        assert_eq!((na, nb, other), (0, 20, 0), "{proto:?}");
        assert_eq!(
            a.hits(),
            before,
            "{proto:?}: no request reached the failing endpoint"
        );

        a.set_health(0);
        tokio::time::sleep(Duration::from_millis(2 * 110 + 500)).await;
        assert_eq!(endpoint(&h, WEB, a.addr)["health"], "healthy", "{proto:?}");
        let active = &endpoint(&h, WEB, a.addr)["active_check"];
        assert_eq!(active["last"], "pass");
        assert!(active["failures"].as_u64() >= Some(2), "{active}");
        // Round robin over both again: a gets about half of 20.
        let (na, nb, _) = spread(&mut c, "w.example", 20).await;
        assert!(na >= 5 && nb >= 5, "{proto:?}: {na} {nb}");
    }
}

#[tokio::test]
async fn tcp_check_marks_a_stopped_backend_unhealthy() {
    for proto in BOTH {
        let a = Backend::start("a").await;
        let b = Backend::start("b").await;
        let a_addr = a.addr;
        let h = Harness::start(ProxyConfig::default()).await;
        h.proxy.publish_endpoints(endpoints(&[("web", &[&a, &b])]));
        let mut check = http_check(100);
        check.kind = CheckKind::Tcp;
        h.publish(
            snapshot()
                .host("w.example")
                .prefix("/", "web")
                .cluster("web", |c| c.health.active = Some(Box::new(check)))
                .build(),
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(endpoint(&h, WEB, a_addr)["health"], "healthy");
        assert_eq!(endpoint(&h, WEB, a_addr)["active_check"]["last"], "pass");
        a.stop().await;
        tokio::time::sleep(Duration::from_millis(2 * 110 + 500)).await;
        assert_eq!(
            endpoint(&h, WEB, a_addr)["health"],
            "unhealthy",
            "{proto:?}"
        );
        let mut c = h.client(proto).await;
        let (na, nb, other) = spread(&mut c, "w.example", 10).await;
        assert_eq!((na, nb, other), (0, 10, 0), "{proto:?}");
        // No request was tried on the stopped endpoint (it would count as a connect error).
        assert_eq!(
            h.metric(&format!(
                "weir_upstream_errors_total{{cluster=\"{WEB}\",kind=\"connect\"}}"
            )),
            0,
            "{proto:?}"
        );
    }
}

#[tokio::test]
async fn consecutive_5xx_ejects_an_endpoint_for_the_ejection_time() {
    let base = 500;
    for proto in BOTH {
        let a = Backend::start("a").await;
        let b = Backend::start("b").await;
        a.fail_with(500);
        let h = Harness::start(ProxyConfig::default()).await;
        h.proxy.publish_endpoints(endpoints(&[("web", &[&a, &b])]));
        h.publish(
            snapshot()
                .host("w.example")
                .prefix("/", "web")
                .cluster("web", |c| c.health.passive = Some(outliers(3, base, 50)))
                .build(),
        );
        let mut c = h.client(proto).await;
        // Round robin alternates (and other tests' health changes rebuild the balancer, so
        // do not rely on the exact order): a is ejected by its third 500.
        for _ in 0..50 {
            if a.hits() == 3 {
                break;
            }
            c.get("w.example", "/").await;
        }
        assert_eq!(a.hits(), 3, "{proto:?}");
        let ep = endpoint(&h, WEB, a.addr);
        assert_eq!(ep["health"], "ejected", "{proto:?}: {ep}");
        assert_eq!(ep["ejections"], 1);
        assert_eq!(
            h.metric(&format!(
                "weir_outlier_ejections_total{{cluster=\"{WEB}\"}}"
            )),
            1
        );
        // Ejected: the others serve everything (well within the 500 ms ejection).
        let (na, nb, _) = spread(&mut c, "w.example", 10).await;
        assert_eq!((na, nb), (0, 10), "{proto:?}");
        assert_eq!(
            a.hits(),
            3,
            "{proto:?}: no request reached the ejected endpoint"
        );

        // Back after the ejection time (the expiry timer bumps the balancer), healed.
        a.fail_with(0);
        tokio::time::sleep(Duration::from_millis(base + 300)).await;
        assert_eq!(endpoint(&h, WEB, a.addr)["health"], "healthy", "{proto:?}");
        let (na, nb, _) = spread(&mut c, "w.example", 10).await;
        assert!(na >= 3 && nb >= 3, "{proto:?}: {na} {nb}");
    }
}

#[tokio::test]
async fn max_ejection_percent_and_panic_keep_traffic_flowing() {
    for proto in BOTH {
        // 50%: of two failing endpoints only one is ejected; no panic.
        let a = Backend::start("a").await;
        let b = Backend::start("b").await;
        a.fail_with(500);
        b.fail_with(500);
        let h = Harness::start(ProxyConfig::default()).await;
        h.proxy.publish_endpoints(endpoints(&[("web", &[&a, &b])]));
        h.publish(
            snapshot()
                .host("w.example")
                .prefix("/", "web")
                .cluster("web", |c| c.health.passive = Some(outliers(2, 10_000, 50)))
                .build(),
        );
        let mut c = h.client(proto).await;
        let (na, nb, other) = spread(&mut c, "w.example", 20).await;
        assert_eq!(
            na + nb,
            20,
            "{proto:?}: every request answered by a backend"
        );
        assert_eq!(other, 0);
        let states = [
            endpoint(&h, WEB, a.addr)["health"].clone(),
            endpoint(&h, WEB, b.addr)["health"].clone(),
        ];
        let ejected = states.iter().filter(|s| *s == "ejected").count();
        assert_eq!(ejected, 1, "{proto:?}: {states:?}");
        assert_eq!(cluster(&h, WEB)["panic"], false);
        assert_eq!(cluster(&h, WEB)["usable"], 1);
        drop(h);

        // 100%: both ejected, fewer healthy than the panic threshold: balance over all.
        let h = Harness::start(ProxyConfig::default()).await;
        h.proxy.publish_endpoints(endpoints(&[("web", &[&a, &b])]));
        h.publish(
            snapshot()
                .host("w.example")
                .prefix("/", "web")
                .cluster("web", |c| c.health.passive = Some(outliers(2, 10_000, 100)))
                .build(),
        );
        let mut c = h.client(proto).await;
        for _ in 0..50 {
            if cluster(&h, WEB)["panic"] == true {
                break;
            }
            c.get("w.example", "/").await;
        }
        assert_eq!(endpoint(&h, WEB, a.addr)["health"], "ejected", "{proto:?}");
        assert_eq!(endpoint(&h, WEB, b.addr)["health"], "ejected", "{proto:?}");
        let cl = cluster(&h, WEB);
        assert_eq!(cl["panic"], true, "{cl}");
        assert_eq!(cl["usable"], 2);
        assert_eq!(
            h.metric(&format!("weir_endpoints_healthy{{cluster=\"{WEB}\"}}")),
            0
        );
        // Traffic still reaches both (round robin over all of them).
        let (na, nb, other) = spread(&mut c, "w.example", 10).await;
        assert!(
            na >= 3 && nb >= 3 && other == 0,
            "{proto:?}: {na} {nb} {other}"
        );
    }
}

#[tokio::test]
async fn one_prober_per_address_and_check_whatever_the_clusters() {
    let x = Backend::start("x").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy
        .publish_endpoints(endpoints(&[("a", &[&x]), ("b", &[&x])]));
    let build = |check: Option<ActiveCheck>| {
        let (ca, cb) = (check.clone(), check);
        snapshot()
            .host("a.example")
            .prefix("/", "a")
            .host("b.example")
            .prefix("/", "b")
            .cluster("a", |c| c.health.active = ca.map(Box::new))
            .cluster("b", |c| c.health.active = cb.map(Box::new))
            .build()
    };
    h.publish(build(Some(http_check(100))));
    // One prober every 90..110 ms sends at most 1000/90 + 1 ≈ 12 probes in a second (the
    // first one within 10 ms); two would send at least 2 × 1000/110 ≈ 18.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let probes = x.probes();
    assert!(
        (5..=13).contains(&probes),
        "one probe stream: {probes} probes"
    );

    // Both clusters change to the same new check: the old prober stops, one new one runs.
    h.publish(build(Some(http_check(50))));
    let start = x.probes();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let probes = x.probes() - start;
    // One stream at 45..55 ms: at most 1000/45 + 2 ≈ 24 (a probe of the old one may still
    // have been on its way); two would send at least 2 × 1000/55 ≈ 36.
    assert!(
        (10..=25).contains(&probes),
        "one probe stream: {probes} probes"
    );

    // No check left: no prober.
    h.publish(build(None));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = x.probes();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(x.probes(), stopped, "probers stopped");
    // Probes never count as requests.
    assert_eq!(x.hits(), 0);
    assert_eq!(endpoint(&h, "default/a:80", x.addr)["total"], 0);
}

#[tokio::test]
async fn grpc_check_follows_the_serving_status() {
    let a = GrpcBackend::start("a").await;
    let b = GrpcBackend::start("b").await;
    let h = Harness::start(ProxyConfig::default()).await;
    let mut sets = std::collections::BTreeMap::new();
    sets.insert(key("web"), set([a.addr, b.addr]));
    h.proxy.publish_endpoints(std::sync::Arc::new(sets));
    let mut check = http_check(100);
    check.kind = CheckKind::Grpc {
        service: String::new(),
    };
    h.publish(
        snapshot()
            .host("w.example")
            .prefix("/", "web")
            .protocol("web", weir::snapshot::UpstreamProtocol::H2c)
            .cluster("web", |c| c.health.active = Some(Box::new(check)))
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        a.set_serving(false);
        // 2 failed probes at most 110 ms apart, plus slack.
        tokio::time::sleep(Duration::from_millis(2 * 110 + 500)).await;
        assert_eq!(
            endpoint(&h, WEB, a.addr)["health"],
            "unhealthy",
            "{proto:?}"
        );
        let before = a.hits();
        let (na, nb, other) = spread(&mut c, "w.example", 10).await;
        assert_eq!((na, nb, other), (0, 10, 0), "{proto:?}");
        assert_eq!(a.hits(), before);

        a.set_serving(true);
        tokio::time::sleep(Duration::from_millis(2 * 110 + 500)).await;
        assert_eq!(endpoint(&h, WEB, a.addr)["health"], "healthy", "{proto:?}");
        let (na, nb, _) = spread(&mut c, "w.example", 10).await;
        assert!(na >= 3 && nb >= 3, "{proto:?}: {na} {nb}");
    }
    assert!(a.checks.load(std::sync::atomic::Ordering::Relaxed) >= 8);
}
