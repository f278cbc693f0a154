//! Protocol tests of the Kubernetes watchers against a scripted API server (a `tower-test`
//! mock behind a real `kube::Client`), for what a real server cannot be made to do at a
//! chosen instant: a bookmark then a dropped watch (resume from the bookmark's
//! resourceVersion), 410 Gone on resume (re-list, objects deleted meanwhile disappear), and
//! an object that does not decode (skipped; the watcher lives on); and that every kind of the
//! table gets its watcher, in the right scope and with its field selector.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc as fmpsc;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::StreamBody;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_test::mock;
use weir::api::ingress::Ingress;

use weir::store::kube::{
    Change, StoreEvent, WatchScope, namespaced_api, object_key, spawn_watchers, watch_kind,
};
use weir::store::{Kind, KindVisitor, KubeObject, ObjectKey, Source, StoreKind, WatchMetrics};

type Chunks = fmpsc::UnboundedReceiver<Result<Frame<Bytes>, Infallible>>;
type Body = StreamBody<Chunks>;
type Handle = mock::Handle<Request<kube::client::Body>, Response<Body>>;

/// A response whose body stays open until the returned sender is dropped.
fn streaming(
    status: StatusCode,
) -> (
    Response<Body>,
    fmpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>,
) {
    let (tx, rx) = fmpsc::unbounded();
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(StreamBody::new(rx))
        .expect("response");
    (response, tx)
}

fn complete(status: StatusCode, body: &Value) -> Response<Body> {
    let (response, tx) = streaming(status);
    tx.unbounded_send(Ok(Frame::data(Bytes::from(body.to_string()))))
        .expect("open");
    response
}

fn send_line(tx: &fmpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>, event: &Value) {
    tx.unbounded_send(Ok(Frame::data(Bytes::from(format!("{event}\n")))))
        .expect("watch body open");
}

fn ingress(name: &str, rv: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "namespace": "default", "name": name, "resourceVersion": rv, "uid": format!("uid-{name}"),
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"huge\":true}"}
        },
        "spec": {"ingressClassName": "weir", "rules": [{"host": format!("{name}.example")}]}
    })
}

/// An Ingress k8s-openapi cannot decode (`spec.rules` is not a list).
fn broken_ingress(name: &str, rv: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"namespace": "default", "name": name, "resourceVersion": rv},
        "spec": {"rules": "not-a-list"}
    })
}

fn list(rv: &str, items: Vec<Value>) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressList",
        "metadata": {"resourceVersion": rv},
        "items": items
    })
}

/// Wait for the next request and check it is a list (no `watch`) or a watch from `rv`.
async fn expect_request(
    handle: &mut Handle,
    watch_from: Option<&str>,
) -> mock::SendResponse<Response<Body>> {
    let (request, respond) = handle.next_request().await.expect("a request");
    assert_eq!(request.uri().path(), "/apis/networking.k8s.io/v1/ingresses");
    let query = request.uri().query().unwrap_or("").to_owned();
    match watch_from {
        None => assert!(
            !query.contains("watch=true"),
            "expected a list, got {query}"
        ),
        Some(rv) => {
            assert!(
                query.contains("watch=true"),
                "expected a watch, got {query}"
            );
            assert!(
                query.contains(&format!("resourceVersion={rv}&"))
                    || query.ends_with(&format!("resourceVersion={rv}")),
                "expected a watch from resourceVersion {rv}, got {query}"
            );
            assert!(
                query.contains("allowWatchBookmarks=true"),
                "bookmarks requested: {query}"
            );
        }
    }
    respond
}

fn names(change: &Change) -> Vec<String> {
    let objects: Vec<&KubeObject> = match change {
        Change::Replace(list) => list.iter().collect(),
        Change::Apply(object) => vec![object.as_ref()],
        Change::Delete(key) => return vec![format!("-{}", key.name)],
    };
    objects.iter().map(|o| object_key(o).name).collect()
}

async fn next(rx: &mut mpsc::Receiver<StoreEvent>) -> StoreEvent {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("an event within 30 s (paused clock)")
        .expect("watcher alive")
}

fn start() -> (
    Handle,
    mpsc::Receiver<StoreEvent>,
    Arc<WatchMetrics>,
    tokio::task::JoinHandle<()>,
) {
    let (service, handle) = mock::pair::<Request<kube::client::Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let metrics = Arc::new(WatchMetrics::default());
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(watch_kind::<Ingress>(
        namespaced_api::<Ingress>(&client, None),
        kube::runtime::watcher::Config::default(),
        Kind::Ingress.into(),
        tx,
        metrics.clone(),
    ));
    (handle, rx, metrics, task)
}

#[tokio::test(start_paused = true)]
async fn bookmark_resume_then_410_relists() {
    let (mut handle, mut rx, metrics, task) = start();

    // 1. Initial list: one good Ingress, one that does not decode.
    let respond = expect_request(&mut handle, None).await;
    respond.send_response(complete(
        StatusCode::OK,
        &list("10", vec![ingress("a", "9"), broken_ingress("b", "10")]),
    ));
    let listed = next(&mut rx).await;
    assert_eq!(
        names(&listed.change),
        ["a"],
        "the broken Ingress is skipped, the list is not"
    );
    let Change::Replace(objects) = &listed.change else {
        panic!("a list is a Replace")
    };
    let KubeObject::Ingress(a) = &objects[0] else {
        panic!("an Ingress")
    };
    assert!(a.metadata.managed_fields.is_none(), "managedFields dropped");
    assert!(
        a.metadata.annotations.is_none(),
        "last-applied annotation dropped"
    );

    // 2. Watch from the list's resourceVersion: an add, a bookmark, then the server closes.
    let respond = expect_request(&mut handle, Some("10")).await;
    let (response, body) = streaming(StatusCode::OK);
    respond.send_response(response);
    send_line(
        &body,
        &json!({"type": "ADDED", "object": ingress("c", "11")}),
    );
    assert_eq!(names(&next(&mut rx).await.change), ["c"]);
    send_line(
        &body,
        &json!({"type": "MODIFIED", "object": broken_ingress("c", "12")}),
    );
    assert_eq!(
        names(&next(&mut rx).await.change),
        ["-c"],
        "an object that stops decoding is treated as gone"
    );
    send_line(
        &body,
        &json!({"type": "BOOKMARK", "object": {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"resourceVersion": "15"}
        }}),
    );
    drop(body);

    // 3. The watch resumes from the bookmark's resourceVersion (not the last object's), and
    //    the server answers 410 Gone.
    let respond = expect_request(&mut handle, Some("15")).await;
    let (response, body) = streaming(StatusCode::OK);
    respond.send_response(response);
    send_line(
        &body,
        &json!({"type": "ERROR", "object": {
            "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "message": "too old resource version: 15 (30)", "reason": "Expired", "code": 410
        }}),
    );

    // 4. Re-list: `c` was deleted while we were away, `d` was added.
    let respond = expect_request(&mut handle, None).await;
    respond.send_response(complete(
        StatusCode::OK,
        &list("30", vec![ingress("a", "9"), ingress("d", "29")]),
    ));
    let relisted = next(&mut rx).await;
    assert_eq!(
        names(&relisted.change),
        ["a", "d"],
        "the re-list replaces the kind"
    );

    // 5. And it watches again from the new list.
    let _respond = expect_request(&mut handle, Some("30")).await;
    assert!(
        metrics.watch_error_count(Source::Kind(Kind::Ingress)) >= 1,
        "410 counted as a watch error"
    );
    let mut out = String::new();
    metrics.render_metrics(&mut out);
    assert!(
        out.contains("weir_watch_skipped_objects_total{kind=\"ingress\"} 2"),
        "{out}"
    );
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_server_is_retried_with_backoff() {
    let (mut handle, mut rx, metrics, task) = start();
    for _ in 0..3 {
        let respond = expect_request(&mut handle, None).await;
        respond.send_response(complete(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                    "message": "etcd is down", "reason": "ServiceUnavailable", "code": 503}),
        ));
    }
    let respond = expect_request(&mut handle, None).await;
    respond.send_response(complete(
        StatusCode::OK,
        &list("5", vec![ingress("a", "5")]),
    ));
    assert_eq!(names(&next(&mut rx).await.change), ["a"]);
    assert_eq!(metrics.watch_error_count(Source::Kind(Kind::Ingress)), 3);
    task.abort();
}

/// Percent-decode a query parameter value (`+` is a space, as in forms).
fn decode_query(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf-8")
}

/// The list request every watcher of the table must send, from the kind's type.
struct ExpectedList<'a> {
    namespace: &'a str,
}

impl KindVisitor for ExpectedList<'_> {
    type Output = (String, Option<String>);

    fn visit<K: StoreKind>(self) -> Self::Output {
        let namespace = K::NAMESPACED.then_some(self.namespace);
        (
            K::url_path(&(), namespace),
            K::FIELD_SELECTOR.map(str::to_owned),
        )
    }
}

#[tokio::test(start_paused = true)]
async fn every_kind_is_watched_in_its_scope_with_its_field_selector() {
    let (service, mut handle) = mock::pair::<Request<kube::client::Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let scope = WatchScope {
        namespace: Some("apps".to_owned()),
        publish_service: Some(ObjectKey::new("weir", "weir")),
        absent: Vec::new(),
    };
    let (tx, _rx) = mpsc::channel(16);
    let watchers = spawn_watchers(&client, &scope, tx, Arc::new(WatchMetrics::default()));

    let mut expected: BTreeSet<(String, Option<String>)> = Kind::ALL
        .iter()
        .map(|kind| kind.visit(ExpectedList { namespace: "apps" }))
        .collect();
    // The publish Service is watched on its own, by name, in its own namespace.
    expected.insert((
        "/api/v1/namespaces/weir/services".to_owned(),
        Some("metadata.name=weir".to_owned()),
    ));
    assert_eq!(expected.len(), Kind::ALL.len() + 1);
    assert!(
        expected.contains(&("/api/v1/namespaces/apps/secrets".to_owned(), None)),
        "every Secret (TLS and `auth` ones are kept): {expected:?}"
    );
    assert!(
        expected.contains(&("/apis/networking.k8s.io/v1/ingressclasses".to_owned(), None)),
        "IngressClasses are cluster-scoped, whatever the watch namespace: {expected:?}"
    );

    let mut seen = BTreeSet::new();
    let mut pending = Vec::new(); // keep the requests open: no retry, no second list
    for _ in 0..expected.len() {
        let (request, respond) =
            tokio::time::timeout(Duration::from_secs(30), handle.next_request())
                .await
                .expect("a request within 30 s (paused clock)")
                .expect("a request");
        let query = request.uri().query().unwrap_or("");
        assert!(!query.contains("watch=true"), "a list first: {query}");
        let selector = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("fieldSelector="))
            .map(decode_query);
        seen.insert((request.uri().path().to_owned(), selector));
        pending.push(respond);
    }
    assert_eq!(seen, expected);
    drop(watchers);
}

/// Answers discovery requests for the Gateway API's group versions: `served` lists the kinds
/// each version serves; a version not in it is 404.
async fn discovery(mut handle: Handle, served: Vec<(&'static str, Vec<&'static str>)>) {
    while let Some((request, respond)) = handle.next_request().await {
        let path = request.uri().path().to_owned();
        let version = path.strip_prefix("/apis/").unwrap_or(&path);
        let response = match served.iter().find(|(v, _)| *v == version) {
            Some((v, kinds)) => complete(
                StatusCode::OK,
                &json!({
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": v,
                    "resources": kinds.iter().map(|k| json!({
                        "name": format!("{}s", k.to_lowercase()),
                        "singularName": k.to_lowercase(),
                        "namespaced": true,
                        "kind": k,
                        "verbs": ["list", "watch"],
                    })).collect::<Vec<_>>(),
                }),
            ),
            None => complete(
                StatusCode::NOT_FOUND,
                &json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "the server could not find the requested resource",
                    "reason": "NotFound", "code": 404,
                }),
            ),
        };
        respond.send_response(response);
    }
}

#[tokio::test]
async fn optional_kinds_are_absent_exactly_when_the_api_server_does_not_serve_them() {
    let gateway_kinds = [
        Kind::GatewayClass,
        Kind::Gateway,
        Kind::HTTPRoute,
        Kind::GRPCRoute,
        Kind::ReferenceGrant,
    ];
    assert!(gateway_kinds.iter().all(|k| k.is_optional()));
    assert!(!Kind::Ingress.is_optional() && !Kind::Service.is_optional());

    // No Gateway API CRDs: all five absent (not watched, not waited for).
    let (service, handle) = mock::pair::<Request<kube::client::Body>, Response<Body>>();
    let server = tokio::spawn(discovery(handle, Vec::new()));
    let client = kube::Client::new(service, "default");
    let absent = weir::store::kube::absent_kinds(&client)
        .await
        .expect("discovery");
    assert_eq!(absent, gateway_kinds);
    let scope = WatchScope {
        absent: absent.clone(),
        ..WatchScope::default()
    };
    assert_eq!(scope.required_kinds().len(), Kind::ALL.len() - 5);
    assert!(
        !scope
            .required_kinds()
            .contains(&Source::Kind(Kind::Gateway))
    );
    server.abort();

    // The standard channel installed, but an older one without ReferenceGrant in v1beta1.
    let (service, handle) = mock::pair::<Request<kube::client::Body>, Response<Body>>();
    let server = tokio::spawn(discovery(
        handle,
        vec![
            (
                "gateway.networking.k8s.io/v1",
                vec!["GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute"],
            ),
            ("gateway.networking.k8s.io/v1beta1", vec!["HTTPRoute"]),
        ],
    ));
    let client = kube::Client::new(service, "default");
    let absent = weir::store::kube::absent_kinds(&client)
        .await
        .expect("discovery");
    assert_eq!(absent, [Kind::ReferenceGrant]);
    server.abort();
}
