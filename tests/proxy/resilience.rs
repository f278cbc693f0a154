//! Upstream resilience: a burst behind one slow backend completes or fails within the
//! configured timeouts, a black-holed endpoint is failed over within the connect timeout,
//! an HTTP/2 stream the upstream refused is sent again, and a HEAD response with a stray
//! body never poisons a pooled HTTP/1.1 connection.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir::proxy::ProxyConfig;
use weir::snapshot::{Timeouts, UpstreamProtocol};

/// The issue's backend: one single-threaded `http.server` process (listen backlog 5,
/// HTTP/1.0: a connection per request) on five ports, each request taking 10 ms.
const SLOW_BACKEND: &str = r#"
import http.server, selectors, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.01)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(http.server.HTTPServer):
    request_queue_size = 5
sel = selectors.DefaultSelector()
servers = [S(("127.0.0.1", 0), H) for _ in range(5)]
for s in servers:
    sel.register(s, selectors.EVENT_READ)
print(" ".join(str(s.server_address[1]) for s in servers), flush=True)
while True:
    for key, _ in sel.select():
        key.fileobj._handle_request_noblock()
"#;

/// The Python backend, killed (by its PID) when dropped.
struct Python(Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts [`SLOW_BACKEND`]; `None` when there is no `python3`.
fn slow_backend() -> Option<(Python, Vec<SocketAddr>)> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SLOW_BACKEND)
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take().expect("piped");
    let child = Python(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("ports");
    let addrs = line
        .split_whitespace()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p.parse().expect("port"))))
        .collect();
    Some((child, addrs))
}

fn publish_cluster(h: &Harness, addrs: Vec<SocketAddr>, protocol: UpstreamProtocol, t: Timeouts) {
    let mut sets = std::collections::BTreeMap::new();
    sets.insert(key("s"), set(addrs));
    h.proxy.publish_endpoints(Arc::new(sets));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "s")
            .protocol("s", protocol)
            .timeouts("s", t)
            .build(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_behind_one_slow_backend_completes_or_fails_within_the_timeouts() {
    let Some((_python, addrs)) = slow_backend() else {
        eprintln!("skipped: no python3");
        return;
    };
    assert_eq!(addrs.len(), 5);
    let h = Harness::start(ProxyConfig::default()).await;
    // Default limits; a short request timeout so the bound below is short too.
    let timeouts = Timeouts {
        request: Duration::from_secs(10),
        ..Timeouts::default()
    };
    publish_cluster(&h, addrs, UpstreamProtocol::Http1, timeouts);
    let c = h.client(Proto::H2).await;
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..500 {
        let mut s = Client::H2(c.h2());
        burst.spawn(async move {
            let started = Instant::now();
            let status = s.get("a.example", "/").await.status;
            (status, started.elapsed())
        });
    }
    let (mut ok, mut unavailable, mut timed_out) = (0, 0, 0);
    let mut slowest = Duration::ZERO;
    while let Some(joined) = burst.join_next().await {
        let (status, took) = joined.expect("join");
        slowest = slowest.max(took);
        match status.as_u16() {
            200 => ok += 1,
            503 => unavailable += 1,
            504 => timed_out += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    eprintln!("burst: {ok} ok, {unavailable} 503, {timed_out} 504, slowest {slowest:?}");
    // Every request ends within the queue timeout (10 s), an attempt per endpoint and a
    // requeue (6 × 2 s connect) and the request timeout (10 s), with a wide margin.
    assert!(slowest < Duration::from_secs(45), "slowest {slowest:?}");
    // The burst completes rather than stalls.
    assert!(ok >= 400, "{ok} of 500 completed");
}

#[tokio::test]
async fn a_black_holed_endpoint_is_failed_over_within_the_connect_timeout() {
    for protocol in [UpstreamProtocol::Http1, UpstreamProtocol::H2c] {
        let (hole, _filler) = black_hole();
        let good = Backend::start("good").await;
        let h = Harness::start(ProxyConfig::default()).await;
        let connect = Duration::from_millis(300);
        let timeouts = Timeouts {
            connect,
            ..Timeouts::default()
        };
        let addrs = vec![hole.local_addr().expect("addr"), good.addr];
        publish_cluster(&h, addrs, protocol, timeouts);
        let c = h.client(Proto::H2).await;
        // Concurrent requests, half of them sent to the black hole first: on HTTP/2 they
        // would queue behind each other's connect without a bound.
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let mut s = Client::H2(c.h2());
            burst.spawn(async move {
                let started = Instant::now();
                let answer = s.get("a.example", "/").await;
                (
                    answer.status,
                    answer.backend().map(str::to_owned),
                    started.elapsed(),
                )
            });
        }
        while let Some(joined) = burst.join_next().await {
            let (status, backend, took) = joined.expect("join");
            assert_eq!(status, 200, "{protocol:?}");
            assert_eq!(backend.as_deref(), Some("good"));
            // One connect timeout, then the good endpoint: far below 20 × 300 ms.
            assert!(took < connect * 5, "{protocol:?}: {took:?}");
        }
    }
}

/// An h2c upstream that resets the first `refuse` streams with `REFUSED_STREAM` and answers
/// the others with the request body; counts the streams it saw.
async fn refusing_h2(refuse: u64) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(AtomicU64::new(0));
    let counted = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    let n = counted.fetch_add(1, Ordering::Relaxed);
                    if n < refuse {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    tokio::spawn(async move {
                        let mut body = req.into_body();
                        let mut got = Vec::new();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            got.extend_from_slice(&chunk);
                        }
                        let resp = http::Response::new(());
                        if let Ok(mut send) = respond.send_response(resp, false) {
                            let _ = send.send_data(Bytes::from(got), true);
                        }
                    });
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_refused_stream_is_sent_once_more() {
    let (addr, seen) = refusing_h2(1).await;
    let h = Harness::start(ProxyConfig::default()).await;
    publish_cluster(&h, vec![addr], UpstreamProtocol::H2c, Timeouts::default());
    let mut c = h.client(Proto::H1).await;
    // A POST, never retried otherwise: nothing was processed, so it is sent again, body
    // and all.
    let req = c.request("POST", "a.example", "/", body("payload"));
    let answer = c.answer(req).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "payload");
    assert_eq!(seen.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_stream_refused_twice_is_answered_503() {
    let (addr, seen) = refusing_h2(u64::MAX).await;
    let h = Harness::start(ProxyConfig::default()).await;
    publish_cluster(&h, vec![addr], UpstreamProtocol::H2c, Timeouts::default());
    let mut c = h.client(Proto::H1).await;
    assert_eq!(c.get("a.example", "/").await.status, 503);
    // Once more, not forever.
    assert_eq!(seen.load(Ordering::Relaxed), 2);
}

/// An HTTP/1.1 upstream that wrongly sends a body after its HEAD responses (late, with the
/// next response on the connection), keeping the connection open; counts connections.
async fn head_with_body() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conns = Arc::new(AtomicU64::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let mut stray = false;
                loop {
                    let Ok(n) = tcp.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = buf.drain(..end + 4).collect::<Vec<u8>>();
                        let mut reply = Vec::new();
                        // The HEAD response's body comes late: just before the next
                        // response, where it is read as that response's status line.
                        if stray {
                            reply.extend_from_slice(b"hello");
                        }
                        reply.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
                        stray = head.starts_with(b"HEAD ");
                        if !stray {
                            reply.extend_from_slice(b"hello");
                        }
                        if tcp.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, conns)
}

#[tokio::test]
async fn a_head_response_never_returns_its_connection_to_the_pool() {
    let (addr, conns) = head_with_body().await;
    let h = Harness::start(ProxyConfig::default()).await;
    publish_cluster(&h, vec![addr], UpstreamProtocol::Http1, Timeouts::default());
    let mut c = h.client(Proto::H1).await;
    let head = c.request("HEAD", "a.example", "/", empty());
    let answer = c.answer(head).await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.is_empty());
    // The stray "hello" would come first on that connection, which was not reused.
    let answer = c.get("a.example", "/").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "hello");
    assert_eq!(conns.load(Ordering::Relaxed), 2);
    // A GET's connection, framed cleanly, is reused.
    assert_eq!(c.get("a.example", "/").await.status, 200);
    assert_eq!(conns.load(Ordering::Relaxed), 2);
}

/// An HTTP/1.1 upstream that never answers `/head`, and on `/body` sends its headers and
/// the start of a body that never ends.
async fn stalling() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                if buf.starts_with(b"GET /body") {
                    let _ = tcp
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
                        .await;
                }
                // Hold the connection until the proxy lets go.
                let _ = tcp.read(&mut chunk).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_whole_request_timeout_bounds_the_headers_and_the_body() {
    let addr = stalling().await;
    let limit = Duration::from_millis(300);
    let h = Harness::start(ProxyConfig {
        max_request_duration: limit,
        ..ProxyConfig::default()
    })
    .await;
    publish_cluster(&h, vec![addr], UpstreamProtocol::Http1, Timeouts::default());
    for proto in BOTH {
        let mut c = h.client(proto).await;
        // No headers within the limit (the request timeout is a minute): 504.
        let started = Instant::now();
        assert_eq!(c.get("a.example", "/head").await.status, 504, "{proto:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "{proto:?}");
        // Headers in time, then a body that stalls: cut at the limit.
        let mut c = h.client(proto).await;
        let req = c.request("GET", "a.example", "/body", empty());
        let resp = c.send(req).await.expect("headers");
        assert_eq!(resp.status(), 200);
        use http_body_util::BodyExt;
        let cut = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect()).await;
        assert!(cut.expect("cut before 10 s").is_err(), "{proto:?}");
    }
}
