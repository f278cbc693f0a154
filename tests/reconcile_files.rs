//! File mode: `run_files` loads a manifests directory, publishes, follows edits (also a
//! ConfigMap volume's atomic `..data` swap), keeps the last snapshot when the directory
//! becomes unreadable, and re-checks certificate expiry while running. Real files, real
//! `notify` events and the real clock, so the waits are bounded polls (no timing assertions).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weir::compile::CompileConfig;
use weir::proxy::{Proxy, ProxyConfig};
use weir::reconcile::{ReconcileConfig, run_files};

const CLASS: &str = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: weir}
spec: {controller: weir.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{name: http, port: 80}]}
";

fn ingress(host: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web, namespace: default}}
spec:
  ingressClassName: weir
  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"
    )
}

fn hosts(proxy: &Proxy) -> Vec<String> {
    proxy
        .snapshot()
        .route_table("http")
        .map(|t| t.virtual_hosts.exact.keys().cloned().collect())
        .unwrap_or_default()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 10 s: {what}");
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write manifest");
}

/// A TLS Secret `default/tls` for `a.example` whose certificate expires at `not_after`.
fn tls_secret(not_after: SystemTime) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).expect("params");
    params.not_before = time::OffsetDateTime::UNIX_EPOCH;
    params.not_after = time::OffsetDateTime::from(not_after);
    let cert = params.self_signed(&key).expect("self-signed");
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "tls", "namespace": "default"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert.pem(), "tls.key": key.serialize_pem()},
    })
    .to_string()
}

const TLS_INGRESS: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  ingressClassName: weir
  tls: [{hosts: [a.example], secretName: tls}]
  rules:
  - host: a.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
";

#[tokio::test]
async fn a_certificate_that_expires_while_running_is_dropped_and_counted() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("manifests");
    std::fs::create_dir(&dir).expect("mkdir");
    write(&dir, "class.yaml", CLASS);
    write(&dir, "ingress.yaml", TLS_INGRESS);
    // Whole seconds, as X.509 keeps them; four seconds to spare for the initial compile on a busy machine.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let not_after = UNIX_EPOCH + Duration::from_secs(now + 4);
    write(&dir, "secret.json", &tls_secret(not_after));

    let mut cfg = config();
    cfg.compile.https_addr = Some("127.0.0.1:8443".parse().expect("addr"));
    let metrics = cfg.metrics.clone();
    let proxy = Proxy::new(ProxyConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_files(dir.clone(), cfg, proxy.clone(), async move {
        let _ = stopped.await;
    }));
    let sni = |proxy: &Proxy| {
        proxy
            .snapshot()
            .listener("https")
            .and_then(|l| l.tls.as_ref())
            .map(|tls| tls.sni.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let render = || {
        let mut out = String::new();
        metrics.render_metrics(&mut out);
        out
    };
    eventually("initial load published", || proxy.generation() == 1).await;
    assert_eq!(sni(&proxy), ["a.example"]);
    let out = render();
    assert!(
        out.contains(&format!(
            "weir_certificate_expiry_timestamp_seconds{{listener=\"https\",source=\"default/tls\"}} {}\n",
            now + 4
        )),
        "{out}"
    );
    assert!(out.contains("weir_certificates_expired 0\n"), "{out}");

    // No file changes: only the re-check timer can notice the expiry.
    eventually("the expired certificate dropped", || sni(&proxy).is_empty()).await;
    let out = render();
    assert!(out.contains("weir_certificates_expired 1\n"), "{out}");
    assert!(
        !out.contains("weir_certificate_expiry_timestamp_seconds{"),
        "{out}"
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run_files stops on shutdown")
        .expect("task")
        .expect("run_files ok");
}

fn config() -> ReconcileConfig {
    let mut cfg = ReconcileConfig::new(CompileConfig {
        controller_name: "weir.dev/ingress-controller".to_owned(),
        http_addr: "127.0.0.1:8080".parse().expect("addr"),
        https_addr: None,
        default_backend: None,
        now_unix: 0,
        ingress_classes: Vec::new(),
        annotations_prefix: weir::compile::nginx::DEFAULT_PREFIX.to_owned(),
        gateway: Default::default(),
    });
    cfg.quiet = Duration::from_millis(20);
    cfg.max_delay = Duration::from_millis(200);
    cfg
}

/// One version of a ConfigMap volume's data, as the kubelet's atomic writer lays it out: a
/// `..<timestamp>` directory, published by renaming a fresh symlink over `..data`.
fn project_configmap(dir: &Path, version: &str, files: &[(&str, String)]) {
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir(&data).expect("mkdir data");
    for (name, text) in files {
        write(&data, name, text);
    }
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).expect("symlink ..data_tmp");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    for (name, _) in files {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).expect("symlink file");
        }
    }
}

#[tokio::test]
async fn a_configmap_volume_loads_once_and_follows_its_atomic_updates() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("config");
    std::fs::create_dir(&dir).expect("mkdir");
    let files = |host: &str| {
        vec![
            ("class.yaml", CLASS.to_owned()),
            ("ingress.yaml", ingress(host)),
        ]
    };
    project_configmap(&dir, "2026_12_01_20_00_00.000000001", &files("a.example"));
    // A symlink back to the volume's root: a cycle for a walk that follows directory links.
    std::os::unix::fs::symlink(".", dir.join("loop")).expect("symlink loop");

    let cfg = config();
    let proxy = Proxy::new(ProxyConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_files(dir.clone(), cfg, proxy.clone(), async move {
        let _ = stopped.await;
    }));
    eventually("initial load published", || proxy.generation() == 1).await;
    assert_eq!(hosts(&proxy), ["a.example"]);

    // The kubelet's update: new data directory, `..data` swapped, the old one removed.
    project_configmap(&dir, "2026_12_01_20_05_00.000000002", &files("b.example"));
    std::fs::remove_dir_all(dir.join("..2026_12_01_20_00_00.000000001")).expect("rm old");
    eventually("the ..data swap published", || {
        hosts(&proxy) == ["b.example"]
    })
    .await;

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run_files stops on shutdown")
        .expect("task")
        .expect("run_files ok");
}

#[tokio::test]
async fn follows_edits_and_keeps_the_last_snapshot_when_the_directory_goes_away() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("manifests");
    std::fs::create_dir_all(dir.join("nested")).expect("mkdir");
    write(&dir, "class.yaml", CLASS);
    write(&dir.join("nested"), "ingress.yaml", &ingress("a.example"));

    let cfg = config();
    let metrics = cfg.metrics.clone();
    let proxy = Proxy::new(ProxyConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_files(dir.clone(), cfg, proxy.clone(), async move {
        let _ = stopped.await;
    }));

    eventually("initial load published", || proxy.generation() == 1).await;
    assert_eq!(hosts(&proxy), ["a.example"]);

    // An edit in a nested directory is picked up (recursive watch).
    write(&dir.join("nested"), "ingress.yaml", &ingress("b.example"));
    eventually("edit published", || hosts(&proxy) == ["b.example"]).await;

    // A broken document is a diagnostic, not an outage: the rest still loads.
    write(
        &dir,
        "broken.yaml",
        "kind: Ingress\napiVersion: networking.k8s.io/v1\nspec: [",
    );
    write(&dir.join("nested"), "ingress.yaml", &ingress("c.example"));
    eventually("edit next to a broken file published", || {
        hosts(&proxy) == ["c.example"]
    })
    .await;

    // The directory disappears: the reload fails and the last snapshot keeps serving.
    let generation = proxy.generation();
    std::fs::remove_dir_all(&dir).expect("rm");
    let mut out = String::new();
    eventually("failed reload counted", || {
        out.clear();
        metrics.render_metrics(&mut out);
        out.lines()
            .find_map(|l| l.strip_prefix("weir_watch_errors_total{kind=\"manifests\"} "))
            .is_some_and(|n| n != "0")
    })
    .await;
    assert_eq!(proxy.generation(), generation, "nothing published");
    assert_eq!(hosts(&proxy), ["c.example"], "last snapshot kept");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run_files stops on shutdown")
        .expect("task")
        .expect("run_files ok");
}
