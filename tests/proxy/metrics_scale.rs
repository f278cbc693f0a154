//! The size of a scrape at scale (issue 15): 5,000 Ingresses × 10 paths (50,000 routes) over
//! 5,000 Services and 20,000 endpoints, compiled and published as `weir run` does. Idle, the
//! scrape holds no per-route or per-cluster series; traffic adds series only for the clusters
//! it reaches, and per-route series only where they are asked for.

#[path = "../../benches/compile/objects.rs"]
#[allow(dead_code)]
mod objects;

use std::sync::Arc;

use weir::compile::compile;
use weir::proxy::ProxyConfig;
use weir::snapshot::ClusterKey;

use crate::support::*;

/// The series of a scrape: its sample lines.
fn series(h: &Harness) -> Vec<String> {
    let mut out = String::new();
    h.proxy.render_metrics(&mut out);
    out.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Ingress `i`'s first path and the cluster it forwards to (see `objects.rs`).
fn route_of(i: usize) -> (String, String, ClusterKey) {
    let namespace = i % 50;
    let s = i % objects::SERVICES;
    let s = s - s % 50 + namespace;
    (
        format!("host-{i}.example.com"),
        format!("/app-0/v{}", i % 7),
        ClusterKey::new(&format!("ns-{namespace}"), &format!("svc-{s}"), 80),
    )
}

#[tokio::test]
async fn a_scrape_at_5000_ingresses_stays_under_2000_series() {
    let objects = objects::objects();
    let compiled = compile(&objects, &objects::config());
    assert_eq!(compiled.snapshot.routes().count(), 50_000);
    let sets = weir::endpoints::build(&objects, &compiled.snapshot.clusters, None);
    assert_eq!(sets.len(), 5_000);
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(Arc::new(sets));
    h.publish(Arc::new(compiled.snapshot));

    let idle = series(&h);
    assert!(idle.len() <= 2_000, "{} series idle", idle.len());
    assert!(
        idle.iter()
            .any(|l| l == "weir_clusters{state=\"healthy\"} 5000"),
        "{idle:?}"
    );
    assert!(
        !idle.iter().any(|l| l.contains("svc-")),
        "no per-cluster series while idle"
    );
    eprintln!("idle scrape: {} series", idle.len());

    // Traffic through 50 Ingresses to 50 clusters (their endpoints moved onto a local
    // backend), and requests for hosts no Ingress has.
    let backend = Backend::start("b").await;
    let used: Vec<_> = (0..50).map(|i| route_of(i * 97)).collect();
    for (_, _, cluster) in &used {
        h.proxy.update_endpoints(cluster, Some(set([backend.addr])));
    }
    let mut c = h.client(Proto::H2).await;
    for (host, path, _) in &used {
        assert_eq!(c.get(host, path).await.status, 200, "{host}{path}");
    }
    for i in 0..20 {
        assert_eq!(c.get(&format!("nobody-{i}.example"), "/").await.status, 404);
    }
    let busy = series(&h);
    eprintln!("after traffic to 50 clusters: {} series", busy.len());
    assert!(busy.len() <= 2_000, "{} series after traffic", busy.len());
    let per_cluster = (busy.len() - idle.len()) / used.len();
    assert!(per_cluster <= 25, "{per_cluster} series per busy cluster");
    for (_, _, cluster) in &used {
        let sample = format!(
            "weir_requests_total{{cluster=\"{}/{}:80\",code_class=\"2xx\"}} 1",
            cluster.namespace(),
            cluster.service()
        );
        assert!(busy.contains(&sample), "{sample}");
    }
    assert!(
        !busy.iter().any(|l| l.contains("nobody-")),
        "request hosts are never labels"
    );
    assert!(
        !busy.iter().any(|l| l.contains("route=")),
        "no per-route series by default"
    );
}
