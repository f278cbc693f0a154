//! Leader election against a scripted API server (tower-test mock behind a real
//! `kube::Client`), on tokio's paused clock: acquire by create, fencing at the renew
//! deadline while renewals fail, and waiting out another holder's Lease before taking over
//! with a resourceVersion precondition.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::time::Instant;
use tower_test::mock;

use weir::lease::{Leadership, LeaseMetrics, LeaseOptions, elect};

type Handle = mock::Handle<Request<kube::client::Body>, Response<Full<Bytes>>>;

const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/weir/leases/weir-leader";

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn status(code: u16, reason: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": reason,
           "code": code, "message": reason})
}

fn lease(holder: &str, rv: &str, transitions: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"namespace": "weir", "name": "weir-leader", "resourceVersion": rv},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                 "renewTime": "2026-01-01T00:00:00.000000Z", "leaseTransitions": transitions}
    })
}

async fn next(
    handle: &mut Handle,
) -> (
    Method,
    String,
    Value,
    mock::SendResponse<Response<Full<Bytes>>>,
) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(60), handle.next_request())
        .await
        .expect("a request within 60 s (paused clock)")
        .expect("a request");
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let bytes = request
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("json body")
    };
    (method, path, body, send)
}

fn start(identity: &str) -> (Handle, Leadership, Arc<LeaseMetrics>) {
    let (service, handle) = mock::pair::<Request<kube::client::Body>, Response<Full<Bytes>>>();
    let client = kube::Client::new(service, "default");
    let metrics = Arc::new(LeaseMetrics::default());
    let opts = LeaseOptions::new("weir", "weir-leader", identity);
    let (leadership, election) =
        elect(client, opts, metrics.clone(), std::future::pending()).expect("valid options");
    tokio::spawn(election);
    (handle, leadership, metrics)
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn acquires_by_create_and_stops_leading_at_the_renew_deadline() {
    let (mut handle, leadership, metrics) = start("weir-a");
    let (method, path, _, send) = next(&mut handle).await;
    assert_eq!((method, path.as_str()), (Method::GET, PATH));
    send.send_response(respond(StatusCode::NOT_FOUND, &status(404, "NotFound")));
    let (method, _, body, send) = next(&mut handle).await;
    assert_eq!(method, Method::POST);
    assert_eq!(body["spec"]["holderIdentity"], "weir-a");
    let acquired = Instant::now();
    send.send_response(respond(StatusCode::CREATED, &lease("weir-a", "1", 0)));
    settle().await;
    assert!(leadership.is_leader(), "created the Lease: leader");
    let mut gauge = String::new();
    metrics.render_metrics(&mut gauge);
    assert!(gauge.contains("weir_leader 1"));

    // From now on every renewal fails (API server unreachable: 503 on every GET).
    let deadline = acquired + Duration::from_secs(10);
    let mut saw_leader_before = false;
    loop {
        let (method, _, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::GET);
        let now = Instant::now();
        if now < deadline {
            assert!(leadership.is_leader(), "still within the renew deadline");
            saw_leader_before = true;
        } else {
            assert!(
                !leadership.is_leader(),
                "past the renew deadline: no longer leader"
            );
            break;
        }
        send.send_response(respond(
            StatusCode::SERVICE_UNAVAILABLE,
            &status(503, "ServiceUnavailable"),
        ));
    }
    assert!(saw_leader_before);
}

#[tokio::test(start_paused = true)]
async fn waits_out_another_holder_then_takes_over_with_a_precondition() {
    let (mut handle, leadership, _) = start("weir-b");
    let first = Instant::now();
    // Another replica holds the Lease and stops renewing: the record never changes.
    loop {
        let (method, _, body, send) = next(&mut handle).await;
        if method == Method::PUT {
            assert!(
                Instant::now() >= first + Duration::from_secs(15),
                "took over only after the lease duration"
            );
            assert_eq!(
                body["metadata"]["resourceVersion"], "7",
                "precondition on what was read"
            );
            assert_eq!(body["spec"]["holderIdentity"], "weir-b");
            assert_eq!(body["spec"]["leaseTransitions"], 4);
            send.send_response(respond(StatusCode::OK, &lease("weir-b", "8", 4)));
            break;
        }
        assert_eq!(method, Method::GET);
        assert!(!leadership.is_leader());
        send.send_response(respond(StatusCode::OK, &lease("weir-a", "7", 3)));
    }
    settle().await;
    assert!(leadership.is_leader(), "took over");

    // A competing writer got there first: 409 on renewal means not leader.
    let (method, _, _, send) = next(&mut handle).await;
    assert_eq!(method, Method::GET);
    send.send_response(respond(StatusCode::OK, &lease("weir-b", "8", 4)));
    let (method, _, _, send) = next(&mut handle).await;
    assert_eq!(method, Method::PUT);
    send.send_response(respond(StatusCode::CONFLICT, &status(409, "Conflict")));
    settle().await;
    assert!(!leadership.is_leader(), "lost the race: follower at once");
}
