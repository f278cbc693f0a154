//! ingress-nginx's `limit-connections` and `proxy-next-upstream-timeout`, from manifests
//! through the real proxy, over HTTP/1.1 and HTTP/2: with `limit-connections: 2`, two slow
//! requests from loopback in flight (two connections on HTTP/1.1, two streams of one
//! connection on HTTP/2, as nginx counts each stream) make the third a 503 while they run,
//! and a request after they finished is served; a `limit-whitelist` address is not limited.
//! `proxy-next-upstream-timeout` stops a retry that would start after it (the backend fails
//! slowly, past the timeout) and lets one start before it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;
use weir::proxy::ProxyConfig;

use crate::support::*;

/// An Ingress `name` (host `<name>.example`, path `/`) to the Service `service`.
fn ingress(name: &str, service: &str, annotations: &[(&str, &str)]) -> String {
    nginx_ingress(name, &format!("{name}.example"), service, annotations)
}

/// A Service `name` (port 80) with the one endpoint `addr`.
fn service(name: &str, addr: SocketAddr) -> String {
    service_yaml(name, &[addr])
}

/// A backend whose requests are counted as they arrive and answered `status` once `hold`
/// says go (`true`) — or, with `delay`, after that long.
struct Slow {
    addr: SocketAddr,
    arrived: Arc<AtomicU64>,
    gate: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Slow {
    async fn start(status: u16, delay: Option<Duration>) -> Slow {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let arrived = Arc::new(AtomicU64::new(0));
        let (gate, open) = watch::channel(false);
        let count = arrived.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let count = count.clone();
                let open = open.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| {
                        let count = count.clone();
                        let mut open = open.clone();
                        async move {
                            count.fetch_add(1, Ordering::SeqCst);
                            match delay {
                                Some(d) => tokio::time::sleep(d).await,
                                None => {
                                    let _ = open.wait_for(|go| *go).await;
                                }
                            }
                            let mut resp = http::Response::new(body("slow\n"));
                            *resp.status_mut() =
                                http::StatusCode::from_u16(status).expect("status");
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Slow {
            addr,
            arrived,
            gate,
            task,
        }
    }

    fn arrived(&self) -> u64 {
        self.arrived.load(Ordering::SeqCst)
    }
}

impl Drop for Slow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `n` requests to `host` sent at once (HTTP/1.1: a connection each; HTTP/2: streams of one
/// connection), running until their backend lets them go; their statuses.
async fn in_flight(h: &Harness, proto: Proto, host: &'static str, n: usize) -> InFlight {
    let mut set = tokio::task::JoinSet::new();
    let shared = match proto {
        Proto::H2 => Some(h.client(proto).await),
        Proto::H1 => None,
    };
    for _ in 0..n {
        let mut c = match &shared {
            Some(c) => Client::H2(c.h2()),
            None => h.client(proto).await,
        };
        set.spawn(async move { c.get(host, "/").await.status.as_u16() });
    }
    InFlight {
        set,
        _shared: shared,
    }
}

struct InFlight {
    set: tokio::task::JoinSet<u16>,
    /// The HTTP/2 connection the streams share (kept open).
    _shared: Option<Client>,
}

impl InFlight {
    async fn statuses(mut self) -> Vec<u16> {
        let mut out = Vec::new();
        while let Some(s) = self.set.join_next().await {
            out.push(s.expect("request"));
        }
        out
    }
}

#[tokio::test]
async fn limit_connections_refuses_past_the_requests_in_flight_except_whitelisted() {
    for proto in BOTH {
        let slow = Slow::start(200, None).await;
        let mut yaml = NGINX_CLASS.to_owned();
        yaml.push_str(&service("slow", slow.addr));
        yaml.push_str(&ingress("conn", "slow", &[("limit-connections", "2")]));
        yaml.push_str(&ingress(
            "exempt",
            "slow",
            &[
                ("limit-connections", "2"),
                ("limit-whitelist", "127.0.0.1/32"),
            ],
        ));
        let h = Harness::start(ProxyConfig::default()).await;
        h.serve_manifests(&yaml, &["nginx"]);

        // Two requests in flight: both reached the backend, which holds them.
        let running = in_flight(&h, proto, "conn.example", 2).await;
        wait_until("two requests reached the backend", || slow.arrived() == 2).await;
        // The third, from the same address, while they run: 503, without reaching it.
        let mut c = h.client(proto).await;
        // (Bounded, so a limit that lets it through fails here rather than hangs: the backend
        // would hold it.)
        let third = tokio::time::timeout(Duration::from_secs(10), c.get("conn.example", "/"))
            .await
            .expect("the third request was held by the backend: not limited");
        assert_eq!(third.status, 503, "{proto:?}");
        assert_eq!(slow.arrived(), 2, "{proto:?}");
        // Let them finish: both are served.
        slow.gate.send_replace(true);
        assert_eq!(running.statuses().await, [200, 200], "{proto:?}");
        // Their counts are given back when their responses end (the proxy may drop them just
        // after the client read the last byte): a request after them is served, soon.
        let mut served = None;
        for _ in 0..100 {
            let a = c.get("conn.example", "/").await;
            if a.status == 200 {
                served = Some(a);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            served.is_some(),
            "{proto:?}: still refused after the two finished"
        );

        // The whitelisted address (loopback) is not counted: three at once all reach the
        // backend and are served.
        slow.gate.send_replace(false);
        let before = slow.arrived();
        let exempt = in_flight(&h, proto, "exempt.example", 3).await;
        wait_until("three exempt requests reached the backend", || {
            slow.arrived() == before + 3
        })
        .await;
        slow.gate.send_replace(true);
        assert_eq!(exempt.statuses().await, [200, 200, 200], "{proto:?}");
    }
}

#[tokio::test]
async fn next_upstream_timeout_stops_a_retry_that_would_start_after_it() {
    for proto in BOTH {
        // Each backend answers 502 after 1.2 s: past a 1 s retry timeout, well within 30 s.
        let late = Slow::start(502, Some(Duration::from_millis(1200))).await;
        let early = Slow::start(502, Some(Duration::from_millis(1200))).await;
        let retry = [
            ("proxy-next-upstream", "http_502"),
            ("proxy-next-upstream-tries", "2"),
        ];
        let mut yaml = NGINX_CLASS.to_owned();
        yaml.push_str(&service("late", late.addr));
        yaml.push_str(&service("early", early.addr));
        let mut late_annotations = retry.to_vec();
        late_annotations.push(("proxy-next-upstream-timeout", "1"));
        let mut early_annotations = retry.to_vec();
        early_annotations.push(("proxy-next-upstream-timeout", "30"));
        yaml.push_str(&ingress("late", "late", &late_annotations));
        yaml.push_str(&ingress("early", "early", &early_annotations));
        let h = Harness::start(ProxyConfig::default()).await;
        let compiled = h.serve_manifests(&yaml, &["nginx"]);
        let timeout = |service: &str| {
            compiled
                .snapshot
                .clusters
                .values()
                .find(|c| c.key.service() == service)
                .expect("cluster")
                .retry
                .timeout
        };
        assert_eq!(timeout("late"), Some(Duration::from_secs(1)), "{proto:?}");
        assert_eq!(timeout("early"), Some(Duration::from_secs(30)), "{proto:?}");
        let mut c = h.client(proto).await;

        // The first attempt failed after the timeout: no retry, its 502 stands.
        let a = c.get("late.example", "/").await;
        assert_eq!(a.status, 502, "{proto:?}");
        assert_eq!(late.arrived(), 1, "{proto:?}: no retry after the timeout");

        // The same failure well before the timeout: retried once (2 tries), then it stands.
        let a = c.get("early.example", "/").await;
        assert_eq!(a.status, 502, "{proto:?}");
        assert_eq!(
            early.arrived(),
            2,
            "{proto:?}: one retry before the timeout"
        );
    }
}
