//! What operators see: the access log (JSON lines to a file), Prometheus metrics with
//! bounded labels, the cluster dump and readiness (snapshot generation).

use std::time::Duration;

use crate::support::*;
use weir::proxy::{AccessLogConfig, AccessLogFormat, AccessLogTarget, Proxy, ProxyConfig};

#[tokio::test]
async fn access_log_has_one_json_line_per_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig {
        access_log: AccessLogConfig {
            target: AccessLogTarget::File(path.clone()),
            format: AccessLogFormat::Json,
        },
        ..ProxyConfig::default()
    })
    .await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(snapshot().host("a.example").prefix("/", "a").build());
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let mut req = c.request("GET", "a.example", "/hello?q=1", empty());
        req.headers_mut()
            .insert("x-request-id", format!("id-{proto:?}").parse().expect("v"));
        assert_eq!(c.answer(req).await.status, 200);
        assert_eq!(c.get("nope.example", "/").await.status, 404);
    }
    let mut lines = Vec::new();
    for _ in 0..200 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        lines = text.lines().map(str::to_string).collect();
        if lines.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lines.len(), 4, "{lines:?}");
    let v: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(v[0]["request_id"], "id-H1");
    assert_eq!(v[0]["status"], 200);
    assert_eq!(v[0]["route"], "a.example/0");
    assert_eq!(v[0]["cluster"], "default/a:80");
    assert_eq!(v[0]["endpoint"], a.addr.to_string());
    assert_eq!(v[0]["path"], "/hello");
    assert_eq!(v[0]["protocol"], "HTTP/1.1");
    assert!(
        v[0]["duration_ms"].as_f64().expect("duration")
            >= v[0]["upstream_ms"].as_f64().expect("upstream")
    );
    assert_eq!(v[1]["status"], 404);
    assert_eq!(v[1]["error"], "no_route");
    assert_eq!(v[2]["request_id"], "id-H2");
    assert_eq!(v[2]["protocol"], "HTTP/2");
}

#[tokio::test]
async fn metrics_count_requests_by_cluster_listener_and_class() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    assert_eq!(
        h.proxy.generation(),
        0,
        "not ready before the first snapshot"
    );
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(snapshot().host("a.example").prefix("/", "a").build());
    assert_eq!(h.proxy.generation(), 1);
    for proto in BOTH {
        let mut c = h.client(proto).await;
        for _ in 0..3 {
            assert_eq!(c.get("a.example", "/").await.status, 200);
        }
        // Unknown hosts never become labels.
        assert_eq!(
            c.get(&format!("random-{proto:?}.example"), "/")
                .await
                .status,
            404
        );
    }
    let mut m = String::new();
    h.proxy.render_metrics(&mut m);
    assert!(
        m.contains("weir_requests_total{cluster=\"default/a:80\",code_class=\"2xx\"} 6"),
        "{m}"
    );
    assert!(m.contains("weir_requests_total{cluster=\"\",code_class=\"4xx\"} 2"));
    assert!(m.contains("weir_request_duration_seconds_count{cluster=\"default/a:80\"} 6"));
    assert!(m.contains("weir_downstream_requests_total{listener=\"http\",code_class=\"2xx\"} 6"));
    assert!(m.contains("weir_downstream_requests_total{listener=\"http\",code_class=\"4xx\"} 2"));
    assert!(
        !m.contains("weir_route_requests_total"),
        "no per-route series unless asked for"
    );
    assert!(m.contains("weir_downstream_connections_total{listener=\"http\"} 2"));
    assert!(m.contains("weir_endpoints{cluster=\"default/a:80\"} 1"));
    assert!(m.contains("weir_snapshot_generation 1"));
    assert!(!m.contains("random-"));
    // Counters survive a new snapshot with the same route.
    h.publish(snapshot().host("a.example").prefix("/", "a").build());
    let mut m2 = String::new();
    h.proxy.render_metrics(&mut m2);
    assert!(m2.contains("code_class=\"2xx\"} 6"));
    assert!(m2.contains("weir_snapshot_generation 2"));

    let j = h.proxy.clusters_json();
    let ep = &j["clusters"][0]["endpoints"][0];
    assert_eq!(ep["address"], a.addr.to_string());
    assert_eq!(ep["total"], 6);
    assert_eq!(ep["in_flight"], 0);
    assert_eq!(ep["health"], "healthy");
    assert_eq!(h.proxy.snapshot().routes().count(), 1);
}

#[test]
fn default_proxy_serves_an_empty_snapshot() {
    let p = Proxy::default();
    assert_eq!(p.generation(), 0);
    assert_eq!(p.snapshot().routes().count(), 0);
    assert_eq!(
        p.clusters_json()["clusters"].as_array().map(Vec::len),
        Some(0)
    );
}

#[tokio::test]
async fn in_flight_counts_return_to_zero_when_clients_give_up() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(snapshot().host("a.example").prefix("/", "a").build());
    let in_flight = |p: &weir::proxy::Proxy| {
        p.clusters_json()["clusters"][0]["endpoints"][0]["in_flight"].as_u64()
    };
    for proto in BOTH {
        let before = a.hits();
        let mut c = h.client(proto).await;
        let pending = tokio::spawn(async move { c.get("a.example", "/slow/5000").await });
        while a.hits() == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(in_flight(&h.proxy), Some(1), "{proto:?}");
        // The client gives up: the stream is reset (h2) or the connection closed (h1).
        pending.abort();
        let mut settled = false;
        for _ in 0..400 {
            if in_flight(&h.proxy) == Some(0) {
                settled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(settled, "{proto:?}: in-flight count back to 0");
    }
    // Both abandoned requests are counted (as 499, nginx's "client closed request").
    let mut m = String::new();
    h.proxy.render_metrics(&mut m);
    assert!(
        m.contains("weir_requests_total{cluster=\"default/a:80\",code_class=\"4xx\"} 2"),
        "{m}"
    );
}

#[tokio::test]
async fn per_route_metrics_on_request_only_for_routes_with_traffic() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig {
        metrics_per_route: true,
        ..ProxyConfig::default()
    })
    .await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "a")
            .prefix("/idle", "a")
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        for _ in 0..2 {
            assert_eq!(c.get("a.example", "/").await.status, 200);
        }
    }
    let mut m = String::new();
    h.proxy.render_metrics(&mut m);
    let route = "route=\"a.example/0\",cluster=\"default/a:80\"";
    assert!(
        m.contains(&format!(
            "weir_route_requests_total{{{route},code_class=\"2xx\"}} 4"
        )),
        "{m}"
    );
    assert!(m.contains(&format!(
        "weir_route_request_duration_seconds_count{{{route}}} 4"
    )));
    assert!(m.contains("weir_requests_total{cluster=\"default/a:80\",code_class=\"2xx\"} 4"));
    assert!(
        !m.contains("a.example/1"),
        "the idle route has no series: {m}"
    );
}
