//! The EndpointSlice fast path through the real compile and the real proxy: slice changes
//! reach the proxy's endpoints without a compile; other changes compile once per burst.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use weir::compile::CompileConfig;
use weir::proxy::{Proxy, ProxyConfig};
use weir::reconcile::{Core, ReconcileConfig, drive};
use weir::store::kube::{Change, StoreEvent};
use weir::store::{Kind, KubeObject, ObjectKey, Source};

/// The kinds this test lists (not the whole table, so that a new kind does not stall it).
const REQUIRED: [Source; 5] = [
    Source::Kind(Kind::Ingress),
    Source::Kind(Kind::IngressClass),
    Source::Kind(Kind::Service),
    Source::Kind(Kind::EndpointSlice),
    Source::Kind(Kind::Secret),
];

fn class() -> KubeObject {
    KubeObject::IngressClass(
        serde_json::from_value(json!({
            "metadata": {"name": "weir"},
            "spec": {"controller": "weir.dev/ingress-controller"}
        }))
        .expect("class"),
    )
}

fn service() -> KubeObject {
    KubeObject::Service(
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "web"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }))
        .expect("service"),
    )
}

fn ingress() -> KubeObject {
    KubeObject::Ingress(
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "web"},
            "spec": {"ingressClassName": "weir", "rules": [{"host": "web.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}
            ]}}]}
        }))
        .expect("ingress"),
    )
}

fn slice(name: &str, ips: &[&str]) -> KubeObject {
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    KubeObject::EndpointSlice(
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": name,
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": endpoints
        }))
        .expect("slice"),
    )
}

fn event(kind: Kind, change: Change) -> StoreEvent {
    StoreEvent {
        source: kind.into(),
        change,
        arrived: Instant::now(),
    }
}

async fn settle() {
    // A compile runs on a blocking thread, in real time (even under a paused clock): give it
    // some between rounds of yields.
    for _ in 0..10 {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The addresses the proxy holds for `default/web:80`.
fn proxy_endpoints(proxy: &Proxy) -> Vec<String> {
    let clusters = proxy.clusters_json();
    let text = clusters.to_string();
    let mut out: Vec<String> = Vec::new();
    collect_addresses(&clusters, &mut out);
    assert!(text.contains("default/web:80") || out.is_empty(), "{text}");
    out.sort();
    out
}

fn collect_addresses(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(a)) = map.get("address") {
                out.push(a.clone());
            }
            map.values().for_each(|v| collect_addresses(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_addresses(v, out)),
        _ => {}
    }
}

#[tokio::test(start_paused = true)]
async fn endpoint_slice_changes_reach_the_proxy_without_a_compile() {
    let cfg = ReconcileConfig::new(CompileConfig {
        controller_name: "weir.dev/ingress-controller".to_owned(),
        http_addr: "127.0.0.1:8080".parse().expect("addr"),
        https_addr: None,
        default_backend: None,
        now_unix: 0,
        ingress_classes: Vec::new(),
        annotations_prefix: weir::compile::nginx::DEFAULT_PREFIX.to_owned(),
        gateway: Default::default(),
    });
    let metrics = cfg.metrics.clone();
    let proxy = Proxy::new(ProxyConfig::default());
    let (tx, rx) = mpsc::channel(64);
    let loop_proxy = proxy.clone();
    tokio::spawn(async move {
        let mut core = Core::new(cfg, loop_proxy);
        drive(&mut core, rx, &REQUIRED, std::future::pending()).await;
    });
    let send = |kind, change| {
        let tx = tx.clone();
        async move {
            tx.send(event(kind, change)).await.expect("loop alive");
            settle().await;
        }
    };

    send(Kind::IngressClass, Change::Replace(vec![class()])).await;
    send(Kind::Service, Change::Replace(vec![service()])).await;
    send(Kind::Ingress, Change::Replace(vec![ingress()])).await;
    send(Kind::Secret, Change::Replace(Vec::new())).await;
    send(
        Kind::EndpointSlice,
        Change::Replace(vec![slice("web-a", &["10.0.0.1"])]),
    )
    .await;
    assert_eq!(proxy.generation(), 1, "compiled once the view was complete");
    assert_eq!(proxy_endpoints(&proxy), ["10.0.0.1:8080"]);
    assert_eq!(metrics.reconcile.reconcile_count(), 1);

    // Scale up: a second slice, and the first one grows.
    send(
        Kind::EndpointSlice,
        Change::Apply(Box::new(slice("web-b", &["10.0.0.3"]))),
    )
    .await;
    send(
        Kind::EndpointSlice,
        Change::Apply(Box::new(slice("web-a", &["10.0.0.1", "10.0.0.2"]))),
    )
    .await;
    assert_eq!(
        proxy_endpoints(&proxy),
        ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"],
        "published at once, with no debounce"
    );
    // Scale down: a slice goes away.
    send(
        Kind::EndpointSlice,
        Change::Delete(ObjectKey::new("default", "web-a")),
    )
    .await;
    assert_eq!(proxy_endpoints(&proxy), ["10.0.0.3:8080"]);
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(
        metrics.reconcile.reconcile_count(),
        1,
        "no compile for EndpointSlice changes"
    );
    assert_eq!(proxy.generation(), 1, "no new snapshot either");

    let mut out = String::new();
    metrics.render_metrics(&mut out);
    assert!(
        out.contains("weir_config_propagation_seconds_count{kind=\"endpoints\"} 3"),
        "{out}"
    );
}
