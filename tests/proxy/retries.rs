//! Retries, the retry budget and circuit breakers, driven by the cluster's `RetryPolicy` and
//! `CircuitBreakers`: a killed endpoint costs no request under the default policy, a retry
//! storm stays within the budget, only idempotent requests are sent again after the upstream
//! may have processed them, retriable statuses and per-try timeouts move a request to
//! another endpoint, and `max_requests` answers 503 `x-weir-overloaded: max_requests`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use weir::proxy::ProxyConfig;
use weir::snapshot::{Cluster, EndpointSets};

use crate::support::*;

const HOST: &str = "a.example";
const CLUSTER: &str = "default/s:80";

/// A backend (HTTP/1.1 and h2c) that reads each request's body, waits `delay`, and answers
/// `status` with `x-backend: name`. Stopped when dropped.
struct Fixed {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Fixed {
    async fn start(name: &'static str, status: u16, delay: Duration) -> Fixed {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicU64::new(0));
        let counted = hits.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let counted = counted.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let counted = counted.clone();
                        async move {
                            counted.fetch_add(1, Ordering::Relaxed);
                            let _ = req.into_body().collect().await;
                            tokio::time::sleep(delay).await;
                            let mut resp = Response::new(body(name));
                            *resp.status_mut() = StatusCode::from_u16(status).expect("status");
                            resp.headers_mut()
                                .insert("x-backend", HeaderValue::from_static(name));
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                });
            }
        });
        Fixed { addr, hits, task }
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Fixed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A raw HTTP/1.1 upstream that reads a whole request (head, and a `Content-Length` body)
/// and then closes the connection without answering: the request was processed, the
/// response lost. Counts the requests it read.
async fn resetting() -> (SocketAddr, Arc<AtomicU64>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicU64::new(0));
    let counted = hits.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16 * 1024];
                let end = loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end + 4;
                    }
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < end + length {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::Relaxed);
                let _ = tcp.shutdown().await;
            });
        }
    });
    (addr, hits, task)
}

/// Four GETs on `c`, every one answered by `good`; returns how many requests the resetter
/// (`reset_hits`) read meanwhile.
async fn four_gets_answered_by_good(c: &mut Client, reset_hits: &AtomicU64, good: &Backend) -> u64 {
    let (resets, goods) = (reset_hits.load(Ordering::Relaxed), good.hits());
    for _ in 0..4 {
        let answer = c.get(HOST, "/").await;
        assert_eq!(answer.status, 200, "{:?}", c.proto());
        assert_eq!(answer.backend(), Some("good"), "{:?}", c.proto());
    }
    assert_eq!(good.hits() - goods, 4, "{:?}", c.proto());
    reset_hits.load(Ordering::Relaxed) - resets
}

fn publish(h: &Harness, addrs: Vec<SocketAddr>, change: impl FnOnce(&mut Cluster)) {
    let mut sets = EndpointSets::new();
    sets.insert(key("s"), set(addrs));
    h.proxy.publish_endpoints(Arc::new(sets));
    h.publish(
        snapshot()
            .host(HOST)
            .prefix("/", "s")
            .cluster("s", change)
            .build(),
    );
}

/// Passive outlier detection off: these tests need an endpoint that keeps failing to stay
/// in the rotation.
fn no_ejection(c: &mut Cluster) {
    c.health.passive = None;
}

fn retries(h: &Harness, reason: &str) -> u64 {
    h.metric(&format!(
        "weir_upstream_retries_total{{cluster=\"{CLUSTER}\",reason=\"{reason}\"}}"
    ))
}

fn all_retries(h: &Harness) -> u64 {
    [
        "connect-failure",
        "refused-stream",
        "reset",
        "timeout",
        "5xx",
        "gateway-error",
        "retriable-status-codes",
    ]
    .iter()
    .map(|r| retries(h, r))
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_four_backends_under_load_fails_no_get_with_the_default_policy() {
    let mut backends = Vec::new();
    for name in ["b0", "b1", "b2", "b3"] {
        backends.push(Backend::start(name).await);
    }
    let h = Harness::start(ProxyConfig::default()).await;
    publish(&h, backends.iter().map(|b| b.addr).collect(), |_| {});
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    // Eight clients, four over each protocol, sending GETs back to back.
    for n in 0..8 {
        let proto = if n % 2 == 0 { Proto::H1 } else { Proto::H2 };
        let mut c = h.client(proto).await;
        let stop = stop.clone();
        load.spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let answer = c.get(HOST, "/").await;
                if answer.status == 200 {
                    ok += 1;
                } else {
                    failed.push(answer.status);
                }
            }
            (ok, failed)
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = backends.remove(1);
    let before = killed.hits();
    killed.stop().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    while let Some(joined) = load.join_next().await {
        let (o, f) = joined.expect("join");
        ok += o;
        failed.extend(f);
    }
    let retried = all_retries(&h);
    let lost = h.metric(&format!(
        "weir_upstream_errors_total{{cluster=\"{CLUSTER}\",kind=\"upstream\"}}"
    ));
    eprintln!(
        "kill: {ok} GETs ok, {} failed, {retried} retried ({} connect-failure), {lost} \
         resent or moved on after a connection died, killed backend had {before} hits",
        failed.len(),
        retries(&h, "connect-failure"),
    );
    assert!(before > 0, "the killed backend took traffic before");
    assert!(failed.is_empty(), "failed GETs: {failed:?}");
    // The survivors kept answering after the kill.
    assert!(backends.iter().all(|b| b.hits() > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_storm_stays_within_the_retry_budget() {
    // One endpoint answers 503 at once; the other 200 after 20 ms, so retries stay in
    // flight long enough to compete for the budget.
    let bad = Fixed::start("bad", 503, Duration::ZERO).await;
    let good = Fixed::start("good", 200, Duration::from_millis(20)).await;
    let h = Harness::start(ProxyConfig::default()).await;
    publish(&h, vec![bad.addr, good.addr], |c| {
        no_ejection(c);
        c.retry.statuses = vec![503];
        c.retry.num_retries = 3;
    });
    // 32 concurrent requesters: 16 HTTP/1.1 connections and 16 streams on one HTTP/2
    // connection.
    const CONCURRENCY: u64 = 32;
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    let h2 = h.client(Proto::H2).await;
    for n in 0..CONCURRENCY {
        let mut c = if n % 2 == 0 {
            h.client(Proto::H1).await
        } else {
            Client::H2(h2.h2())
        };
        let stop = stop.clone();
        load.spawn(async move {
            let (mut ok, mut unavailable) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                match c.get(HOST, "/").await.status.as_u16() {
                    200 => ok += 1,
                    503 => unavailable += 1,
                    other => panic!("unexpected {other}"),
                }
            }
            (ok, unavailable)
        });
    }
    // Sample the gauges while the storm lasts.
    let started = Instant::now();
    let (mut peak_retries, mut peak_active) = (0, 0);
    while started.elapsed() < Duration::from_millis(1500) {
        peak_retries = peak_retries.max(h.metric(&format!(
            "weir_upstream_retries_active{{cluster=\"{CLUSTER}\"}}"
        )));
        peak_active = peak_active.max(h.metric(&format!(
            "weir_upstream_requests_active{{cluster=\"{CLUSTER}\"}}"
        )));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut unavailable) = (0, 0);
    while let Some(joined) = load.join_next().await {
        let (o, u) = joined.expect("join");
        ok += o;
        unavailable += u;
    }
    let requests = ok + unavailable;
    let retried = retries(&h, "retriable-status-codes");
    let exhausted = h.metric(&format!(
        "weir_retry_budget_exhausted_total{{cluster=\"{CLUSTER}\"}}"
    ));
    eprintln!(
        "storm: {requests} requests ({ok} ok, {unavailable} 503), {retried} retries \
         (ratio {:.2}), budget exhausted {exhausted} times, peak {peak_retries} retries \
         in flight of {peak_active} active",
        retried as f64 / requests.max(1) as f64
    );
    assert!(requests > 0);
    // At every instant retries in flight ≤ max(3, 20 % × active requests) (each retry counted
    // itself in before checking: distinct fetch_add results, so none started at or beyond the
    // budget of its moment); so the sampled peak is within the budget of the peak active
    // count. That count is about the requesters (32), a few more while a finished request's
    // body accounting ends after its client already sent the next one.
    assert!(
        peak_active <= 2 * CONCURRENCY,
        "{peak_active} active for {CONCURRENCY} requesters"
    );
    let budget = (20 * peak_active / 100).max(3);
    assert!(peak_retries <= budget, "{peak_retries} > {budget}");
    // A retry goes to the untried endpoint first, which always answers 200: at most one
    // retry per request, so the storm never more than doubles the load.
    assert!(
        retried <= requests,
        "{retried} retries for {requests} requests"
    );
    // About half the first attempts meet the 503 endpoint and each retry holds its place
    // for at least 20 ms, so far more than 6 requesters want to retry at once.
    assert!(exhausted > 0, "the budget never ran out");
    // What the budget refused stands: the upstream's 503, never a 502.
    assert!(unavailable > 0);
    assert!(good.hits() > 0 && bad.hits() > 0);
}

#[tokio::test]
async fn after_a_reset_a_get_is_retried_a_post_and_a_long_put_are_not() {
    let (resetter, reset_hits, _task) = resetting().await;
    let good = Backend::start("good").await;
    let h = Harness::start(ProxyConfig::default()).await;
    publish(&h, vec![resetter, good.addr], |c| {
        no_ejection(c);
        c.retry.on.reset = true;
    });
    for proto in BOTH {
        // GETs: every one answered by the good endpoint, the resetter's hits retried.
        let mut c = h.client(proto).await;
        let resets = four_gets_answered_by_good(&mut c, &reset_hits, &good).await;
        assert!(resets >= 1, "{proto:?}: the resetter was never tried");

        // POSTs: the resetter processed them; never sent again (502).
        for (method, payload) in [
            ("POST", Bytes::from_static(b"payload")),
            // Beyond the 64 KiB a replay keeps: streamed once, never again.
            ("PUT", Bytes::from(vec![b'x'; 100 * 1024])),
        ] {
            let (resets, goods) = (reset_hits.load(Ordering::Relaxed), good.hits());
            let mut bad_gateway = 0;
            for _ in 0..4 {
                let req = c.request(method, HOST, "/", body(payload.clone()));
                let answer = c.answer(req).await;
                match answer.status.as_u16() {
                    200 => assert_eq!(answer.body.len(), payload.len()),
                    502 => bad_gateway += 1,
                    other => panic!("{proto:?} {method}: {other}"),
                }
            }
            let resets = reset_hits.load(Ordering::Relaxed) - resets;
            // Round robin starts half the requests at the resetter, and none moves on.
            assert!(
                resets >= 1,
                "{proto:?} {method}: the resetter was never tried"
            );
            assert_eq!(bad_gateway, resets, "{proto:?} {method}");
            assert_eq!(resets + (good.hits() - goods), 4, "{proto:?} {method}");
        }
    }
    assert!(retries(&h, "reset") >= 2);
}

#[tokio::test]
async fn a_retriable_status_moves_to_another_endpoint_and_the_last_one_stands() {
    let bad = Fixed::start("bad", 503, Duration::ZERO).await;
    let good = Backend::start("good").await;
    let h = Harness::start(ProxyConfig::default()).await;
    publish(&h, vec![bad.addr, good.addr], |c| {
        no_ejection(c);
        c.retry.statuses = vec![503];
    });
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let before = bad.hits();
        for _ in 0..4 {
            let answer = c.get(HOST, "/").await;
            assert_eq!(answer.status, 200, "{proto:?}");
            assert_eq!(answer.backend(), Some("good"), "{proto:?}");
        }
        assert!(
            bad.hits() > before,
            "{proto:?}: the 503 endpoint was never tried"
        );
    }

    // Every endpoint answers 503: after the retries, the last 503 itself (the upstream's
    // answer, not a 502 of weir's).
    let other = Fixed::start("bad2", 503, Duration::ZERO).await;
    publish(&h, vec![bad.addr, other.addr], |c| {
        no_ejection(c);
        c.retry.statuses = vec![503];
        c.retry.num_retries = 2;
    });
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let before = bad.hits() + other.hits();
        let answer = c.get(HOST, "/").await;
        assert_eq!(answer.status, 503, "{proto:?}");
        assert!(
            matches!(answer.backend(), Some("bad" | "bad2")),
            "{proto:?}: {:?}",
            answer.headers
        );
        assert!(answer.header("x-weir-overloaded").is_none());
        // One attempt and two retries.
        assert_eq!(bad.hits() + other.hits() - before, 3, "{proto:?}");
    }
}

#[tokio::test]
async fn a_per_try_timeout_moves_a_request_to_the_fast_endpoint() {
    let slow = Fixed::start("slow", 200, Duration::from_millis(500)).await;
    let fast = Backend::start("fast").await;
    let h = Harness::start(ProxyConfig::default()).await;
    publish(&h, vec![slow.addr, fast.addr], |c| {
        no_ejection(c);
        c.retry.on.timeout = true;
        c.retry.per_try_timeout = Duration::from_millis(100);
    });
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let before = slow.hits();
        for _ in 0..4 {
            let answer = c.get(HOST, "/").await;
            assert_eq!(answer.status, 200, "{proto:?}");
            assert_eq!(answer.backend(), Some("fast"), "{proto:?}");
        }
        assert!(
            slow.hits() > before,
            "{proto:?}: the slow endpoint was never tried"
        );
    }
    assert!(retries(&h, "timeout") >= 2);

    // Without the trigger, the per-try timeout is just the attempt's timeout: 504.
    publish(&h, vec![slow.addr], |c| {
        no_ejection(c);
        c.retry.per_try_timeout = Duration::from_millis(100);
    });
    for proto in BOTH {
        let mut c = h.client(proto).await;
        assert_eq!(c.get(HOST, "/").await.status, 504, "{proto:?}");
    }
}

#[tokio::test]
async fn max_requests_answers_503_overloaded_beyond_the_limit() {
    let a = Fixed::start("a", 200, Duration::from_millis(300)).await;
    let b = Fixed::start("b", 200, Duration::from_millis(300)).await;
    let h = Harness::start(ProxyConfig::default()).await;
    publish(&h, vec![a.addr, b.addr], |c| {
        c.breakers.max_requests = 2;
    });
    for proto in BOTH {
        let opened = h.metric(&format!(
            "weir_circuit_breaker_open_total{{cluster=\"{CLUSTER}\",limit=\"max_requests\"}}"
        ));
        let mut burst = tokio::task::JoinSet::new();
        let h2 = h.client(Proto::H2).await;
        for _ in 0..6 {
            let mut c = match proto {
                Proto::H1 => h.client(Proto::H1).await,
                Proto::H2 => Client::H2(h2.h2()),
            };
            burst.spawn(async move { c.get(HOST, "/").await });
        }
        let (mut ok, mut overloaded) = (0, 0);
        while let Some(joined) = burst.join_next().await {
            let answer = joined.expect("join");
            match answer.status.as_u16() {
                200 => ok += 1,
                503 => {
                    assert_eq!(answer.header("x-weir-overloaded"), Some("max_requests"));
                    overloaded += 1;
                }
                other => panic!("{proto:?}: {other}"),
            }
        }
        // Six requests within 300 ms, two at a time: the first two pass, most others are
        // refused (a late one may find a slot freed after 300 ms).
        assert!(ok >= 2, "{proto:?}: {ok} ok");
        assert!(overloaded >= 1, "{proto:?}: none refused");
        let opened = h.metric(&format!(
            "weir_circuit_breaker_open_total{{cluster=\"{CLUSTER}\",limit=\"max_requests\"}}"
        )) - opened;
        assert_eq!(opened, overloaded, "{proto:?}");
        // Nothing is left counted once the responses ended.
        wait_until("no request in flight", || {
            h.metric(&format!(
                "weir_upstream_requests_active{{cluster=\"{CLUSTER}\"}}"
            )) == 0
        })
        .await;
    }
}

#[tokio::test]
async fn a_full_pending_queue_answers_503_overloaded_max_pending() {
    let slow = Fixed::start("slow", 200, Duration::from_millis(300)).await;
    let h = Harness::start(ProxyConfig::default()).await;
    // One connection, one waiter: of four concurrent requests, one is sent, one waits, and
    // the other two find the queue full.
    publish(&h, vec![slow.addr], |c| {
        c.limits.max_connections = 1;
        c.limits.max_pending = 1;
    });
    for proto in BOTH {
        let h2 = h.client(Proto::H2).await;
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let mut c = match proto {
                Proto::H1 => h.client(Proto::H1).await,
                Proto::H2 => Client::H2(h2.h2()),
            };
            burst.spawn(async move { c.get(HOST, "/").await });
        }
        let (mut ok, mut full) = (0, 0);
        while let Some(joined) = burst.join_next().await {
            let answer = joined.expect("join");
            match answer.status.as_u16() {
                200 => ok += 1,
                503 => {
                    assert_eq!(answer.header("x-weir-overloaded"), Some("max_pending"));
                    full += 1;
                }
                other => panic!("{proto:?}: {other}"),
            }
        }
        assert!(ok >= 2, "{proto:?}: {ok} ok");
        assert!(full >= 1, "{proto:?}: the queue never filled");
    }
    assert!(
        h.metric(&format!(
            "weir_circuit_breaker_open_total{{cluster=\"{CLUSTER}\",limit=\"max_pending\"}}"
        )) >= 2
    );
}

#[tokio::test]
async fn connect_failures_count_against_num_retries() {
    // An address nothing listens on: connecting is refused at once.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let good = Backend::start("good").await;
    let h = Harness::start(ProxyConfig::default()).await;
    publish(&h, vec![dead, good.addr], |c| {
        no_ejection(c);
        c.retry.num_retries = 0;
    });
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let (mut ok, mut bad_gateway) = (0, 0);
        // Round robin without retries: consecutive requests start at alternate endpoints,
        // so two of four meet the dead one, and nothing moves them on.
        for _ in 0..4 {
            match c.get(HOST, "/").await.status.as_u16() {
                200 => ok += 1,
                502 => bad_gateway += 1,
                other => panic!("{proto:?}: {other}"),
            }
        }
        assert!(
            ok >= 1 && bad_gateway >= 1,
            "{proto:?}: {ok} ok, {bad_gateway} 502"
        );
    }
    assert_eq!(retries(&h, "connect-failure"), 0);

    // One retry (the default): every request reaches the good endpoint.
    publish(&h, vec![dead, good.addr], no_ejection);
    for proto in BOTH {
        let mut c = h.client(proto).await;
        for _ in 0..4 {
            assert_eq!(c.get(HOST, "/").await.status, 200, "{proto:?}");
        }
    }
    assert!(retries(&h, "connect-failure") >= 2);
}

/// A raw HTTP/1.1 upstream that closes its first connection after reading the request head,
/// as a process killed with a request on its way would, and answers 200 on every later one.
/// Counts the connections it accepted.
async fn dies_on_first_connection() -> (SocketAddr, Arc<AtomicU64>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicU64::new(0));
    let counted = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let first = counted.fetch_add(1, Ordering::Relaxed) == 0;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if first {
                            return; // dropped: closed with the request unanswered
                        }
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if tcp.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, accepted, task)
}

#[tokio::test]
async fn a_get_whose_new_connection_dies_unanswered_is_resent_a_post_is_not() {
    for proto in BOTH {
        // The default policy (no `reset` retries); the only endpoint.
        let h = Harness::start(ProxyConfig::default()).await;
        let (addr, accepted, task) = dies_on_first_connection().await;
        publish(&h, vec![addr], no_ejection);
        let mut c = h.client(proto).await;
        assert_eq!(c.get(HOST, "/").await.status, 200, "{proto:?}");
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            2,
            "{proto:?}: resent once"
        );
        assert_eq!(
            retries(&h, "reset"),
            0,
            "{proto:?}: a free resend, not a retry"
        );
        task.abort();

        // A POST may have been processed: not sent again.
        let h = Harness::start(ProxyConfig::default()).await;
        let (addr, accepted, task) = dies_on_first_connection().await;
        publish(&h, vec![addr], no_ejection);
        let mut c = h.client(proto).await;
        let req = c.request("POST", HOST, "/", body(Bytes::from_static(b"payload")));
        assert_eq!(c.answer(req).await.status, 502, "{proto:?}");
        assert_eq!(accepted.load(Ordering::Relaxed), 1, "{proto:?}");
        task.abort();
    }
}

#[tokio::test]
async fn a_get_moves_on_from_an_endpoint_whose_new_connections_die_unanswered_too() {
    // The default policy (no `reset` retries). Every connection to the resetter dies with
    // the request unanswered, as connections to a listener being closed, or to a process
    // being killed, do.
    let (resetter, reset_hits, _task) = resetting().await;
    let good = Backend::start("good").await;
    let h = Harness::start(ProxyConfig::default()).await;
    publish(&h, vec![resetter, good.addr], no_ejection);
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let resets = four_gets_answered_by_good(&mut c, &reset_hits, &good).await;
        // Round robin starts half the GETs at the resetter: each tried there twice (the
        // free resend on a new connection), then once at the good endpoint.
        assert!(resets >= 2, "{proto:?}: the resetter was never tried");
        assert_eq!(resets % 2, 0, "{proto:?}: {resets} resetter hits");
    }
    assert_eq!(all_retries(&h), 0, "free moves, not retries");

    // The only endpoint: the GET fails after its resend, not in a loop.
    let (resetter, reset_hits, _task) = resetting().await;
    let h = Harness::start(ProxyConfig::default()).await;
    publish(&h, vec![resetter], no_ejection);
    let mut c = h.client(Proto::H1).await;
    assert_eq!(c.get(HOST, "/").await.status, 502);
    assert_eq!(reset_hits.load(Ordering::Relaxed), 2);
}
