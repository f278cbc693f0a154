//! Bad input on raw TCP: malformed HTTP/1 → 400 and a clean close; oversized headers → 431;
//! Content-Length with Transfer-Encoding refused; HTTP/2 protocol errors → GOAWAY with the
//! right code while other connections carry on; unknown host → 404.

use std::time::Duration;

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir::proxy::ProxyConfig;

async fn harness() -> (Harness, Backend) {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(snapshot().host("a.example").prefix("/", "a").build());
    (h, a)
}

#[tokio::test]
async fn malformed_http1_gets_400_and_the_connection_closes() {
    let (h, a) = harness().await;
    let (out, closed) = raw_exchange(h.http, b"GET / HTTP/1.1\r\nHost a.example\r\n\r\n").await;
    assert_eq!(status_line(&out), "HTTP/1.1 400 Bad Request");
    assert!(closed);
    let (out, closed) = raw_exchange(h.http, b"\x16\x03\x01garbage\r\n\r\n").await;
    assert!(status_line(&out).starts_with("HTTP/1.1 400"), "{out:?}");
    assert!(closed);
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let (h, a) = harness().await;
    let big = "x".repeat(80 * 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: a.example\r\nX-Big: {big}\r\n\r\n");
    let (out, _) = raw_exchange(h.http, req.as_bytes()).await;
    assert_eq!(
        status_line(&out),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // Just under the limit is fine.
    let ok = "x".repeat(32 * 1024);
    let req =
        format!("GET / HTTP/1.1\r\nHost: a.example\r\nX-Big: {ok}\r\nConnection: close\r\n\r\n");
    let (out, _) = raw_exchange(h.http, req.as_bytes()).await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK");
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn oversized_headers_over_h2_are_refused() {
    let (h, a) = harness().await;
    let mut c = h.client(Proto::H2).await;
    let mut req = c.request("GET", "a.example", "/", empty());
    req.headers_mut()
        .insert("x-big", "x".repeat(80 * 1024).parse().expect("v"));
    // hyper answers 431 itself when the peer ignores SETTINGS_MAX_HEADER_LIST_SIZE.
    let resp = c.send(req).await.expect("response");
    assert_eq!(resp.status(), 431);
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_refused() {
    let (h, a) = harness().await;
    for req in [
        &b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    ] {
        let (out, closed) = raw_exchange(h.http, req).await;
        assert_eq!(status_line(&out), "HTTP/1.1 400 Bad Request", "{}", String::from_utf8_lossy(&out));
        assert!(closed);
    }
    // Smuggling attempt after a well-formed keep-alive request: the first is served, the
    // ambiguous one refused, nothing of it reaches the backend.
    let two = b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\nPOST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.example\r\n\r\n";
    let (out, closed) = raw_exchange(h.http, two).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("400 Bad Request"), "{text}");
    assert!(closed);
    assert!(
        a.hits() <= 1,
        "the ambiguous request and what follows never reach the backend"
    );
    // Chunked bodies and keep-alive still work for well-formed requests.
    let ok = b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n";
    let (out, _) = raw_exchange(h.http, ok).await;
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
}

#[tokio::test]
async fn unknown_host_gets_404() {
    let (h, _a) = harness().await;
    let (out, _) = raw_exchange(
        h.http,
        b"GET / HTTP/1.1\r\nHost: nope.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&out), "HTTP/1.1 404 Not Found");
}

/// Reads HTTP/2 frames until a GOAWAY; returns its error code.
async fn read_goaway(tcp: &mut TcpStream) -> Option<u32> {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while buf.len() >= at + 9 {
            let len = u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
            let kind = buf[at + 3];
            if buf.len() < at + 9 + len {
                break;
            }
            if kind == 0x7 {
                let p = &buf[at + 9..at + 9 + len];
                return Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
            }
            at += 9 + len;
        }
    }
}

#[tokio::test]
async fn h2_protocol_error_gets_goaway_and_other_connections_carry_on() {
    let (h, a) = harness().await;
    let mut healthy = h.client(Proto::H2).await;
    assert_eq!(healthy.get("a.example", "/").await.status, 200);

    let mut tcp = TcpStream::connect(h.http).await.expect("connect");
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    tcp.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0])
        .await
        .expect("settings");
    // A DATA frame on stream 0 is a connection error of type PROTOCOL_ERROR (RFC 9113 §6.1).
    tcp.write_all(&[0, 0, 1, 0x0, 0, 0, 0, 0, 0, b'x'])
        .await
        .expect("bad frame");
    assert_eq!(
        read_goaway(&mut tcp).await,
        Some(0x1),
        "GOAWAY(PROTOCOL_ERROR)"
    );

    assert_eq!(healthy.get("a.example", "/").await.status, 200);
    let mut fresh = h.client(Proto::H2).await;
    assert_eq!(fresh.get("a.example", "/").await.status, 200);
    assert_eq!(a.hits(), 3);
}
