//! The reconcile loop over a channel, with tokio's paused clock: initial-sync gating, quiet
//! period, maximum delay, and status-only changes.

use std::time::Duration;

use k8s_openapi::api::networking::v1::{IngressLoadBalancerIngress, IngressLoadBalancerStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::metrics::ReconcileMetrics;
use super::*;
use crate::api::ingress::{Ingress, IngressSpec, IngressStatus};
use crate::compile::CompileConfig;

fn config() -> ReconcileConfig {
    ReconcileConfig::new(CompileConfig {
        controller_name: "weir.dev/ingress-controller".to_owned(),
        http_addr: "127.0.0.1:8080".parse().expect("addr"),
        https_addr: None,
        default_backend: None,
        now_unix: 0,
        ingress_classes: Vec::new(),
        annotations_prefix: crate::compile::nginx::DEFAULT_PREFIX.to_owned(),
        gateway: Default::default(),
    })
}

fn ingress(name: &str, class: &str) -> Ingress {
    Ingress {
        metadata: ObjectMeta {
            namespace: Some("default".to_owned()),
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(IngressSpec {
            ingress_class_name: Some(class.to_owned()),
            ..IngressSpec::default()
        }),
        status: None,
    }
}

fn event(kind: Kind, change: Change) -> StoreEvent {
    StoreEvent {
        source: kind.into(),
        change,
        arrived: Instant::now(),
    }
}

/// Let the loop task run everything that is ready.
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

const REQUIRED: [Kind; 3] = [Kind::Ingress, Kind::Service, Kind::EndpointSlice];

struct Harness {
    tx: mpsc::Sender<StoreEvent>,
    proxy: Proxy,
    metrics: Arc<ReconcileMetrics>,
}

impl Harness {
    fn start() -> Self {
        let cfg = config();
        let metrics = cfg.metrics.reconcile.clone();
        let proxy = Proxy::default();
        let (tx, rx) = mpsc::channel(64);
        let loop_proxy = proxy.clone();
        tokio::spawn(async move {
            let mut core = Core::new(cfg, loop_proxy);
            let required = REQUIRED.map(Source::Kind);
            drive(&mut core, rx, &required, std::future::pending()).await;
        });
        Harness { tx, proxy, metrics }
    }

    async fn send(&self, kind: Kind, change: Change) {
        self.tx.send(event(kind, change)).await.expect("loop alive");
        settle().await;
    }

    async fn sync_all(&self) {
        for kind in REQUIRED {
            self.send(kind, Change::Replace(Vec::new())).await;
        }
    }

    fn generation(&self) -> u64 {
        self.proxy.generation()
    }
}

async fn advance(ms: u64) {
    tokio::time::advance(Duration::from_millis(ms)).await;
    settle().await;
}

#[tokio::test(start_paused = true)]
async fn nothing_is_published_before_every_kind_has_listed() {
    let h = Harness::start();
    h.send(
        Kind::Ingress,
        Change::Replace(vec![KubeObject::Ingress(ingress("a", "weir"))]),
    )
    .await;
    h.send(Kind::Service, Change::Replace(Vec::new())).await;
    advance(5_000).await;
    assert_eq!(h.generation(), 0, "EndpointSlices have not listed yet");
    h.send(Kind::EndpointSlice, Change::Replace(Vec::new()))
        .await;
    advance(0).await;
    assert_eq!(
        h.generation(),
        1,
        "published as soon as the view is complete"
    );
}

#[tokio::test(start_paused = true)]
async fn a_change_is_published_after_the_quiet_period() {
    let h = Harness::start();
    h.sync_all().await;
    assert_eq!(h.generation(), 1);
    h.send(
        Kind::Ingress,
        Change::Apply(Box::new(KubeObject::Ingress(ingress("a", "weir")))),
    )
    .await;
    advance(60).await;
    h.send(
        Kind::Ingress,
        Change::Apply(Box::new(KubeObject::Ingress(ingress("b", "weir")))),
    )
    .await;
    advance(60).await;
    assert_eq!(
        h.generation(),
        1,
        "the second change restarted the quiet period"
    );
    advance(50).await;
    assert_eq!(h.generation(), 2, "one build for the burst");
    assert_eq!(h.metrics.reconcile_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_continuous_stream_of_changes_is_built_within_the_maximum_delay() {
    let h = Harness::start();
    h.sync_all().await;
    // A change every 50 ms for 3 s: never quiet for 100 ms.
    let mut built_at = Vec::new();
    for i in 0..60 {
        let name = format!("ing-{i}");
        h.send(
            Kind::Ingress,
            Change::Apply(Box::new(KubeObject::Ingress(ingress(&name, "weir")))),
        )
        .await;
        advance(50).await;
        if h.generation() > 1 + built_at.len() as u64 {
            built_at.push(i);
        }
    }
    assert!(
        built_at.len() >= 2,
        "builds happen during the stream (at changes {built_at:?})"
    );
    assert!(
        built_at.windows(2).all(|w| w[1] - w[0] <= 21),
        "at most 1 s (20 changes) apart: {built_at:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_status_only_change_does_not_recompile() {
    let h = Harness::start();
    h.sync_all().await;
    h.send(
        Kind::Ingress,
        Change::Apply(Box::new(KubeObject::Ingress(ingress("a", "weir")))),
    )
    .await;
    advance(200).await;
    let before = h.metrics.reconcile_count();
    let mut with_status = ingress("a", "weir");
    with_status.metadata.resource_version = Some("42".to_owned());
    with_status.status = Some(IngressStatus {
        load_balancer: Some(IngressLoadBalancerStatus {
            ingress: Some(vec![IngressLoadBalancerIngress {
                ip: Some("127.0.0.1".to_owned()),
                ..IngressLoadBalancerIngress::default()
            }]),
        }),
    });
    h.send(
        Kind::Ingress,
        Change::Apply(Box::new(KubeObject::Ingress(with_status))),
    )
    .await;
    advance(200).await;
    assert_eq!(
        h.metrics.reconcile_count(),
        before,
        "status write echoed back: no compile"
    );
    h.send(
        Kind::Ingress,
        Change::Apply(Box::new(KubeObject::Ingress(ingress("a", "other")))),
    )
    .await;
    advance(200).await;
    assert_eq!(
        h.metrics.reconcile_count(),
        before + 1,
        "a spec change compiles"
    );
}

#[tokio::test(start_paused = true)]
async fn a_delete_of_an_unknown_object_changes_nothing() {
    let h = Harness::start();
    h.sync_all().await;
    h.send(
        Kind::Ingress,
        Change::Delete(ObjectKey::new("default", "nope")),
    )
    .await;
    advance(2_000).await;
    assert_eq!(h.generation(), 1);
}

fn served(not_after: &[i64]) -> Vec<CertificateExpiry> {
    not_after
        .iter()
        .enumerate()
        .map(|(i, &not_after)| CertificateExpiry {
            listener: "https".to_owned(),
            source: format!("default/c{i}"),
            not_after,
        })
        .collect()
}

#[test]
fn the_certificate_check_is_due_just_after_the_earliest_expiry_within_the_cap() {
    let cap = Duration::from_secs(3600);
    let check =
        |now, not_after: &[i64], https| next_certificate_check(now, &served(not_after), https, cap);
    // One second past the earliest notAfter: compile rejects only once notAfter < now.
    assert_eq!(
        check(1_000, &[1_300, 1_100], true),
        Some(Duration::from_secs(101))
    );
    // Far expiries and HTTPS without certificates still re-check within the cap.
    assert_eq!(check(1_000, &[1_000_000], true), Some(cap));
    assert_eq!(check(1_000, &[], true), Some(cap));
    // A certificate at (or, after a clock step back, past) its expiry: a second, not a spin.
    assert_eq!(check(1_000, &[1_000], true), Some(Duration::from_secs(1)));
    assert_eq!(check(1_000, &[10], true), Some(Duration::from_secs(1)));
    // No HTTPS listener: nothing depends on the clock.
    assert_eq!(check(1_000, &[], false), None);
}

/// Objects of one Service `web` with one Ingress route and its slice `web-a` (`ips`).
fn web(ips: &[&str]) -> Vec<KubeObject> {
    use serde_json::json;
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    vec![
        KubeObject::IngressClass(
            serde_json::from_value(json!({
                "metadata": {"name": "weir"},
                "spec": {"controller": "weir.dev/ingress-controller"}
            }))
            .expect("class"),
        ),
        KubeObject::Service(
            serde_json::from_value(json!({
                "metadata": {"namespace": "default", "name": "web"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
            }))
            .expect("service"),
        ),
        KubeObject::Ingress(
            serde_json::from_value(json!({
                "metadata": {"namespace": "default", "name": "web"},
                "spec": {"ingressClassName": "weir", "rules": [{"host": "web.example",
                    "http": {"paths": [{"path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
            }))
            .expect("ingress"),
        ),
        KubeObject::EndpointSlice(
            serde_json::from_value(json!({
                "metadata": {"namespace": "default", "name": "web-a",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}],
                "endpoints": endpoints
            }))
            .expect("slice"),
        ),
    ]
}

/// The endpoint addresses the proxy holds, sorted.
fn proxy_addresses(proxy: &Proxy) -> Vec<String> {
    let clusters = proxy.clusters_json();
    let mut out: Vec<String> = clusters["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["endpoints"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["address"].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn endpoint_slices_take_effect_while_a_compile_runs_and_other_changes_wait_for_it() {
    let proxy = Proxy::default();
    let mut core = Core::new(config(), proxy.clone());
    let mut debounce = Debounce::new(Duration::from_millis(100), Duration::from_secs(1));
    debounce.mark_synced(Instant::now());
    let _ = debounce.fire(Instant::now() + Duration::from_secs(2));
    let mut objects = Objects::default();
    for o in web(&["10.0.0.1"]) {
        objects.apply(o).expect("named");
    }
    core.set_objects(objects);
    let pending = Pending {
        compile: true,
        status: false,
        first_arrival: None,
    };
    core.build(pending);
    assert_eq!(proxy.generation(), 1);
    assert_eq!(proxy_addresses(&proxy), ["10.0.0.1:8080"]);

    // A compile starts, and takes the compile input with it.
    let compiling = core.start_compile();
    let slice = web(&["10.0.0.1", "10.0.0.2"]).pop().expect("slice");
    core.apply(
        event(Kind::EndpointSlice, Change::Apply(Box::new(slice))),
        &mut debounce,
    );
    assert_eq!(
        proxy_addresses(&proxy),
        ["10.0.0.1:8080", "10.0.0.2:8080"],
        "the endpoints fast path does not wait for the compile"
    );
    core.apply(
        event(
            Kind::Ingress,
            Change::Apply(Box::new(KubeObject::Ingress(ingress("other", "weir")))),
        ),
        &mut debounce,
    );
    assert_eq!(core.deferred.as_ref().map(Vec::len), Some(1));
    assert_eq!(debounce.deadline(), None, "nothing scheduled while it runs");

    let done = compiling.await.expect("compile thread");
    core.finish_compile(done, pending, &mut debounce);
    assert_eq!(proxy.generation(), 2);
    assert_eq!(
        proxy_addresses(&proxy),
        ["10.0.0.1:8080", "10.0.0.2:8080"],
        "the compile's publish uses the slices as they are now"
    );
    assert!(core.deferred.is_none());
    assert_eq!(
        core.objects.ingresses.len(),
        2,
        "the deferred change applied"
    );
    assert!(
        debounce.deadline().is_some(),
        "and it schedules the next compile"
    );
}
