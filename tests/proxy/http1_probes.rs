//! Hostile HTTP/1 input over raw TCP (issue 10 §2): request smuggling and framing, chunked
//! bodies, Host, the request line, path traversal, slow headers. Every probe runs on a fresh
//! connection and checks what a client sees (the status line, or nothing at all), that the
//! connection is closed, and that the backend saw nothing when the request must be refused.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use weir::proxy::ProxyConfig;
use weir::snapshot::UpstreamProtocol;

use crate::support::*;

/// What weir must do with a probe.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// `400 Bad Request`, the connection closed, nothing forwarded.
    Refused,
    /// Not a byte of answer, the connection closed cleanly (no reset), nothing forwarded (a
    /// request line weir cannot read as HTTP/1.0 or HTTP/1.1, which may be an HTTP/2
    /// client).
    Closed,
    /// `400 Bad Request` (path normalization), nothing forwarded; the probe asks for the close.
    BadPath,
    /// `404 Not Found`: normalized onto a path no route serves, nothing forwarded.
    NotFound,
    /// Forwarded with this path (the backend's `x-seen-path`), `200 OK`.
    Forwarded(&'static str),
    /// Answered `200 OK` by weir itself (the any-host `Respond` route), nothing forwarded.
    Answered,
    /// The first `n` pipelined requests are forwarded, the next is refused with 400 and the
    /// connection closed; nothing after it reaches the backend.
    ServedThenRefused(u64),
}

use Outcome::*;

/// (name, bytes sent, outcome). Routes: `a.example` `/a` → backend; any host `/anyhost` →
/// a direct 200; nothing else.
const PROBES: &[(&str, &[u8], Outcome)] = &[
    // ---- framing and smuggling
    (
        "content-length and transfer-encoding",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "transfer-encoding and content-length",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "transfer-encoding without chunked",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: gzip\r\n\r\nxxxxx",
        Refused,
    ),
    (
        "transfer-encoding with chunked not last",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "transfer-encoding xchunked",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "transfer-encoding in HTTP/1.0",
        b"POST /a HTTP/1.0\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "space before the colon of transfer-encoding",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "obs-fold transfer-encoding",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "two different content-lengths",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        Refused,
    ),
    (
        "content-length list",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5, 6\r\n\r\nhello!",
        Refused,
    ),
    (
        "content-length +5",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nContent-Length: +5\r\n\r\nhello",
        Refused,
    ),
    (
        "content-length -1",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nContent-Length: -1\r\n\r\n",
        Refused,
    ),
    (
        "content-length 0x5",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0x5\r\n\r\nhello",
        Refused,
    ),
    (
        "CL.TE smuggling after a keep-alive request",
        b"GET /a HTTP/1.1\r\nHost: a.example\r\n\r\nPOST /a HTTP/1.1\r\nHost: a.example\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.example\r\n\r\n",
        ServedThenRefused(1),
    ),
    // ---- chunked bodies (head and first chunks in one write: nothing may be forwarded)
    (
        "chunk size not hex",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "chunk size overflows 64 bits",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "negative chunk size",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "chunk size 0x5",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "chunk size line ends in a lone LF",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "chunk data not followed by CRLF",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        Refused,
    ),
    (
        "chunk extension without a name",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "chunk extension with a bare LF",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nhello\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "space before the chunk size",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
        Refused,
    ),
    (
        "bad chunk after a good one",
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nhello\r\n0\r\n\r\n",
        Refused,
    ),
    // ---- Host (RFC 9112 §3.2)
    (
        "HTTP/1.1 without Host",
        b"GET /a HTTP/1.1\r\n\r\n",
        Refused,
    ),
    (
        "two Host headers",
        b"GET /a HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        Refused,
    ),
    (
        "absolute-form target and a different Host",
        b"GET http://b.example/a HTTP/1.1\r\nHost: a.example\r\n\r\n",
        Refused,
    ),
    (
        "absolute-form target without Host in HTTP/1.1",
        b"GET http://a.example/a HTTP/1.1\r\n\r\n",
        Refused,
    ),
    (
        "Host with userinfo",
        b"GET /a HTTP/1.1\r\nHost: user@a.example\r\n\r\n",
        Refused,
    ),
    (
        "Host with a path",
        b"GET /a HTTP/1.1\r\nHost: a.example/x\r\n\r\n",
        Refused,
    ),
    (
        "HTTP/1.0 without Host routes as the empty host",
        b"GET /anyhost HTTP/1.0\r\n\r\n",
        Answered,
    ),
    (
        "absolute-form target and the same Host",
        b"GET http://A.example:80/a HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        Forwarded("/a"),
    ),
    // ---- the request line and header syntax
    (
        "invalid connection preface (h2spec 3.5/2)",
        b"INVALID CONNECTION PREFACE\r\n\r\n",
        Closed,
    ),
    (
        "h2 preface line with a bad continuation",
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
        Closed,
    ),
    (
        "version HTTP/1.2",
        b"GET /a HTTP/1.2\r\nHost: a.example\r\n\r\n",
        Closed,
    ),
    (
        "version HTTP/2.0 on a request line",
        b"GET /a HTTP/2.0\r\nHost: a.example\r\n\r\n",
        Closed,
    ),
    (
        "version HTTX/1.1",
        b"GET /a HTTX/1.1\r\nHost: a.example\r\n\r\n",
        Closed,
    ),
    (
        "space before a header colon",
        b"GET /a HTTP/1.1\r\nHost : a.example\r\n\r\n",
        Refused,
    ),
    (
        "NUL in a header value",
        b"GET /a HTTP/1.1\r\nHost: a.example\r\nX: a\0b\r\n\r\n",
        Refused,
    ),
    // ---- path traversal (normalized before routing; the backend never sees a dot segment)
    (
        "/../etc/passwd",
        b"GET /../etc/passwd HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        NotFound,
    ),
    (
        "/a/%2e%2e/b",
        b"GET /a/%2e%2e/b HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        NotFound,
    ),
    (
        "/a/../a/x",
        b"GET /a/../a/x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        Forwarded("/a/x"),
    ),
    (
        "/a%2fb",
        b"GET /a%2fb HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        BadPath,
    ),
    (
        "/a/..%5c..%5cetc",
        b"GET /a/..%5c..%5cetc HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        BadPath,
    ),
];

async fn harness(config: ProxyConfig) -> (Harness, Backend) {
    let a = Backend::start("a").await;
    let h = Harness::start(config).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/a", "a")
            .host("*")
            .respond("/anyhost", 200, "any")
            .build(),
    );
    (h, a)
}

/// Runs one probe; `Err` says what went wrong.
async fn probe(h: &Harness, a: &Backend, bytes: &[u8], outcome: Outcome) -> Result<(), String> {
    let hits = a.hits();
    let (out, closing) = raw_exchange_closing(h.http, bytes).await;
    let closed = closing != Closing::Open;
    let text = String::from_utf8_lossy(&out).into_owned();
    let forwarded = a.hits() - hits;
    let status = status_line(&out);
    let fail = |why: &str| {
        Err(format!(
            "{why}; got {text:?}, closed {closed}, {forwarded} forwarded"
        ))
    };
    if !closed {
        return fail("connection left open");
    }
    match outcome {
        Refused | BadPath if status != "HTTP/1.1 400 Bad Request" => fail("want 400"),
        Closed if !out.is_empty() => fail("want no answer"),
        // An HTTP/2 client takes only a clean close for "connection closed" (h2spec 3.5/2).
        Closed if closing != Closing::Fin => fail("want a clean close, not a reset"),
        NotFound if status != "HTTP/1.1 404 Not Found" => fail("want 404"),
        // The request's own version: HTTP/1.0.
        Answered if !status.ends_with(" 200 OK") || !text.ends_with("any") => fail("want 200 any"),
        Forwarded(path) if status != "HTTP/1.1 200 OK" || forwarded != 1 => {
            fail(&format!("want {path} forwarded"))
        }
        Forwarded(path) if !text.contains(&format!("x-seen-path: {path}\r\n")) => {
            fail(&format!("want the backend to see {path}"))
        }
        ServedThenRefused(n)
            if text.matches("HTTP/1.1 200 OK").count() as u64 != n
                || !text.contains("HTTP/1.1 400 Bad Request")
                || forwarded != n =>
        {
            fail(&format!("want {n} forwarded then 400"))
        }
        Forwarded(_) | ServedThenRefused(_) => Ok(()),
        _ if forwarded != 0 => fail("want nothing forwarded"),
        _ => Ok(()),
    }
}

#[tokio::test]
async fn hostile_http1_probes() {
    let (h, a) = harness(ProxyConfig::default()).await;
    let mut failed = Vec::new();
    for (name, bytes, outcome) in PROBES {
        if let Err(why) = probe(&h, &a, bytes, *outcome).await {
            failed.push(format!("{name}: {why}"));
        }
    }
    println!(
        "http1 probes: {}/{} pass",
        PROBES.len() - failed.len(),
        PROBES.len()
    );
    assert!(failed.is_empty(), "failed probes:\n{}", failed.join("\n"));
}

#[tokio::test]
async fn refusals_are_counted_as_downstream_rejections() {
    let (h, a) = harness(ProxyConfig::default()).await;
    let sent: &[(&[u8], &str)] = &[
        (b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad_chunk"),
        (b"POST /a HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "ambiguous_framing"),
        (b"GET /a HTTP/1.1\r\n\r\n", "bad_host"),
        (b"GET /a%2fb HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n", "bad_path"),
        (b"INVALID CONNECTION PREFACE\r\n\r\n", "bad_request_line"),
    ];
    for (bytes, reason) in sent {
        assert_eq!(h.rejected(reason), 0, "{reason}");
        raw_exchange(h.http, bytes).await;
        // The bad request line is counted when its connection task ends.
        wait_until(reason, || h.rejected(reason) == 1).await;
    }
    assert_eq!(a.hits(), 0);
}

/// A request whose head was forwarded before its body turned out malformed: the body fails
/// mid-stream, which is the client's fault (400, closed), not the upstream's (502) — over an
/// HTTP/1.1 upstream (hyper's client says the body failed) and over h2c (weir's own stream
/// pump resets the stream).
async fn bad_chunk_after_the_head(protocol: UpstreamProtocol) {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/a", "a")
            .protocol("a", protocol)
            .build(),
    );
    let mut tcp = TcpStream::connect(h.http).await.expect("connect");
    tcp.write_all(
        b"POST /a HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await
    .expect("head");
    wait_until("the backend has the head", || a.hits() == 1).await;
    tcp.write_all(b"zz\r\n").await.expect("bad chunk");
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out))
        .await
        .is_ok();
    assert_eq!(
        status_line(&out),
        "HTTP/1.1 400 Bad Request",
        "{protocol:?}: {:?}",
        String::from_utf8_lossy(&out)
    );
    assert!(closed);
    assert_eq!(h.rejected("request_body"), 1);
    let mut metrics = String::new();
    h.proxy.render_metrics(&mut metrics);
    assert!(
        metrics
            .lines()
            .filter(|l| l.starts_with("weir_upstream_errors_total"))
            .all(|l| l.ends_with(" 0")),
        "{protocol:?}: not an upstream error:\n{metrics}"
    );
}

#[tokio::test]
async fn a_bad_chunk_after_the_head_was_forwarded_is_the_clients_fault() {
    bad_chunk_after_the_head(UpstreamProtocol::Http1).await;
}

#[tokio::test]
async fn a_bad_chunk_after_the_head_was_forwarded_over_h2c_is_the_clients_fault() {
    bad_chunk_after_the_head(UpstreamProtocol::H2c).await;
}

/// Writes `bytes` one a second until the peer closes; returns what came back and when the
/// connection closed, from `start`.
async fn trickle(addr: std::net::SocketAddr, bytes: &[u8]) -> (Vec<u8>, Duration) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let start = Instant::now();
    let (mut rd, mut wr) = tcp.into_split();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = rd.read_to_end(&mut out).await;
        (out, start.elapsed())
    });
    for b in bytes {
        if reader.is_finished() || wr.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _keep_open = wr;
    reader.await.expect("reader")
}

#[tokio::test(start_paused = true)]
async fn slow_headers_are_cut_at_the_header_read_timeout() {
    let (h, a) = harness(ProxyConfig::default()).await;
    // 60 bytes at one a second: it would take a minute.
    let head = b"GET /a HTTP/1.1\r\nHost: a.example\r\nX-Slow: 0123456789abcdef\r\n\r\n";
    assert!(head.len() > 50);
    let (out, closed_after) = trickle(h.http, head).await;
    assert!(
        out.is_empty(),
        "no answer: {:?}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        closed_after >= Duration::from_secs(10) && closed_after < Duration::from_secs(11),
        "closed after {closed_after:?}, the default header read timeout is 10 s"
    );
    assert_eq!(a.hits(), 0);
    assert_eq!(h.rejected("header_timeout"), 1);
}

#[tokio::test(start_paused = true)]
async fn connections_that_send_nothing_or_half_a_preface_are_closed_at_the_timeout() {
    let config = ProxyConfig {
        header_read_timeout: Duration::from_secs(3),
        ..ProxyConfig::default()
    };
    let (h, _a) = harness(config).await;
    // Nothing at all, and the first line of the HTTP/2 preface: hyper's HTTP/1 parser never
    // sees either (the protocol is not decided yet), so its own header timeout cannot help.
    for bytes in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
        let mut tcp = TcpStream::connect(h.http).await.expect("connect");
        tcp.write_all(bytes).await.expect("write");
        let start = Instant::now();
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "closed");
        assert!(out.is_empty());
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
    // A complete HTTP/2 preface and SETTINGS, then no request: the same.
    let mut tcp = TcpStream::connect(h.http).await.expect("connect");
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("write");
    let start = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "closed");
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(h.rejected("header_timeout"), 3);
}

#[tokio::test(start_paused = true)]
async fn a_request_in_time_is_served_and_the_next_head_is_timed_too() {
    let (h, a) = harness(ProxyConfig::default()).await;
    let mut tcp = TcpStream::connect(h.http).await.expect("connect");
    tokio::time::sleep(Duration::from_secs(9)).await;
    tcp.write_all(b"GET /anyhost HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    while !out.ends_with(b"any") {
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await.expect("read");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK");
    // Past the first request, hyper times the next head with the same setting (and so the
    // idle keep-alive connection).
    let start = Instant::now();
    tcp.write_all(b"GET /a HTTP/1.1\r\n").await.expect("write");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "closed");
    assert!(rest.is_empty());
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(a.hits(), 0);
    assert_eq!(
        h.rejected("header_timeout"),
        0,
        "only first heads are weir's to count"
    );
}

#[tokio::test]
async fn past_the_cap_the_oldest_half_received_connection_is_closed() {
    let config = ProxyConfig {
        max_half_received: 2,
        ..ProxyConfig::default()
    };
    let (h, a) = harness(config).await;
    let half = "weir_downstream_half_received{listener=\"http\"}";
    let mut oldest = TcpStream::connect(h.http).await.expect("connect");
    oldest.write_all(b"GET /a HTT").await.expect("write");
    wait_until("one half-received", || h.metric(half) == 1).await;
    let mut second = TcpStream::connect(h.http).await.expect("connect");
    wait_until("two half-received", || h.metric(half) == 2).await;
    // A third connection evicts the oldest and is served.
    let (out, _) = raw_exchange(
        h.http,
        b"GET /a HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK");
    let mut evicted = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), oldest.read_to_end(&mut evicted)).await;
    assert!(read.is_ok(), "the oldest is closed");
    assert!(evicted.is_empty());
    assert_eq!(h.rejected("half_received_limit"), 1);
    // The second one kept its place.
    second
        .write_all(b"GET /a HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut out))
        .await
        .expect("answered")
        .expect("read");
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK");
    assert_eq!(a.hits(), 2);
    assert_eq!(h.metric(half), 0);
}
