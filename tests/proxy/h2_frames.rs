//! HTTP/2 conformance and abuse, frame by frame: a raw client over TCP (or TLS with ALPN
//! `h2`) writes the preface, SETTINGS and hand-built HEADERS (a tiny HPACK encoder: literal
//! fields, with or without indexing) and reads the frames weir sends back.
//!
//! - malformed requests (RFC 9113 §8.1.1, §8.2) are stream errors: that stream gets
//!   RST_STREAM(PROTOCOL_ERROR) or a 400, and a second stream on the same connection still
//!   gets its 200;
//! - frame errors are connection errors with the code the RFC names (GOAWAY);
//! - floods (rapid reset, SETTINGS, PING, empty DATA, CONTINUATION, malformed streams) end in
//!   a bounded way while other connections carry on;
//! - HEAD responses carry no DATA, whatever the upstream sends; weir's own answers to HEAD
//!   neither;
//! - an idle HTTP/2 connection is closed with GOAWAY, and keepalive PINGs are sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use weir::proxy::ProxyConfig;
use weir::snapshot::UpstreamProtocol;

// ---------------------------------------------------------------- frames and codes

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

const NO_ERROR: u32 = 0x0;
const PROTOCOL_ERROR: u32 = 0x1;
const FLOW_CONTROL_ERROR: u32 = 0x3;
const FRAME_SIZE_ERROR: u32 = 0x6;
const CANCEL: u32 = 0x8;
const COMPRESSION_ERROR: u32 = 0x9;
const ENHANCE_YOUR_CALM: u32 = 0xb;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a test waits for the next frame before calling it a timeout.
const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// What became of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Response HEADERS with this status (0: a status outside the HPACK static table).
    Status(u16),
    Reset(u32),
    /// The connection went away (GOAWAY with this code) before the stream got an answer.
    GoAway(u32),
    Closed,
    Timeout,
}

/// The status of a response header block: h2 encodes `:status` first, fully indexed when
/// the static table has it (RFC 7541 Appendix A).
fn status_of(block: &[u8]) -> u16 {
    match block.first() {
        Some(0x88) => 200,
        Some(0x89) => 204,
        Some(0x8a) => 206,
        Some(0x8b) => 304,
        Some(0x8c) => 400,
        Some(0x8d) => 404,
        Some(0x8e) => 500,
        _ => 0,
    }
}

// ---------------------------------------------------------------- HPACK, by hand

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); `first` holds the flag bits.
fn int(out: &mut Vec<u8>, n: u8, first: u8, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A string literal, not Huffman-coded.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    int(out, 7, 0, s.len());
    out.extend_from_slice(s);
}

/// Literal header field without indexing, new name (RFC 7541 §6.2.2).
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    string(out, name);
    string(out, value);
}

/// Literal header field with incremental indexing, new name (RFC 7541 §6.2.1): it enters
/// the dynamic table.
fn literal_indexed(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x40);
    string(out, name);
    string(out, value);
}

/// A header block of literals without indexing.
fn block(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        literal(&mut out, n, v);
    }
    out
}

/// A header block of literals with incremental indexing (what most encoders send).
fn block_indexed(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        literal_indexed(&mut out, n, v);
    }
    out
}

/// The pseudo-headers of a GET for `path` on `a.example`.
fn get(path: &str) -> Vec<(&'static [u8], Vec<u8>)> {
    method("GET", path)
}

fn method(m: &str, path: &str) -> Vec<(&'static [u8], Vec<u8>)> {
    vec![
        (&b":method"[..], m.as_bytes().to_vec()),
        (b":scheme", b"http".to_vec()),
        (b":path", path.as_bytes().to_vec()),
        (b":authority", b"a.example".to_vec()),
    ]
}

fn fields<'a>(list: &'a [(&'static [u8], Vec<u8>)]) -> Vec<(&'static [u8], &'a [u8])> {
    list.iter().map(|(n, v)| (*n, &v[..])).collect()
}

/// A valid GET's header block.
fn get_block(path: &str) -> Vec<u8> {
    block(&fields(&get(path)))
}

// ---------------------------------------------------------------- the raw client

struct Raw<S> {
    io: S,
    buf: Vec<u8>,
}

type RawTcp = Raw<TcpStream>;

impl RawTcp {
    /// Preface, an empty SETTINGS, and the ACK of the server's SETTINGS.
    async fn connect(addr: SocketAddr) -> RawTcp {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Raw::handshake(tcp).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    async fn handshake(io: S) -> Raw<S> {
        let mut c = Raw::bare(io);
        c.write(PREFACE).await;
        c.send(SETTINGS, 0, 0, &[]).await;
        loop {
            match c.next().await {
                Some(f) if f.kind == SETTINGS && f.flags & ACK == 0 => break,
                Some(_) => {}
                None => panic!("no SETTINGS from the server"),
            }
        }
        c.send(SETTINGS, ACK, 0, &[]).await;
        c
    }

    fn bare(io: S) -> Raw<S> {
        Raw {
            io,
            buf: Vec::new(),
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        // The server may already have closed (a flood test): writes then fail, reads tell.
        let _ = self.io.write_all(bytes).await;
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = Vec::with_capacity(9 + payload.len());
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let f = Self::frame(kind, flags, stream, payload);
        self.write(&f).await;
    }

    /// HEADERS with END_HEADERS (and END_STREAM: a request without a body).
    async fn request(&mut self, stream: u32, block: &[u8]) {
        self.send(HEADERS, END_HEADERS | END_STREAM, stream, block)
            .await;
    }

    /// The next frame; `None` when the peer closed or nothing came within [`WAIT`].
    async fn next(&mut self) -> Option<Frame> {
        self.next_within(WAIT).await.ok().flatten()
    }

    /// `Err(())` on timeout, `Ok(None)` when the peer closed.
    async fn next_within(&mut self, wait: Duration) -> Result<Option<Frame>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let rest = self.buf.split_off(9 + len);
                    let raw = std::mem::replace(&mut self.buf, rest);
                    return Ok(Some(Frame {
                        kind: raw[3],
                        flags: raw[4],
                        stream: u32::from_be_bytes([raw[5], raw[6], raw[7], raw[8]]) & 0x7fff_ffff,
                        payload: raw[9..].to_vec(),
                    }));
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await {
                Err(_) => return Err(()),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until a GOAWAY and returns its error code; `None` if the connection closed (or
    /// went quiet) without one.
    async fn goaway(&mut self) -> Option<u32> {
        while let Some(f) = self.next().await {
            if f.kind == GOAWAY {
                return Some(u32::from_be_bytes([
                    f.payload[4],
                    f.payload[5],
                    f.payload[6],
                    f.payload[7],
                ]));
            }
        }
        None
    }

    /// Whether the peer closes the connection within [`WAIT`] (frames before are fine).
    async fn closes(&mut self) -> bool {
        loop {
            match self.next_within(WAIT).await {
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(()) => return false,
            }
        }
    }

    /// What became of each of `streams`: reads until each has a response HEADERS or a
    /// RST_STREAM, or the connection ends. Response frames of a stream (its HEADERS, DATA)
    /// are kept in `seen` for checks on the shape of the answer.
    async fn outcomes(&mut self, streams: &[u32]) -> (Vec<Outcome>, Vec<Frame>) {
        let mut got: HashMap<u32, Outcome> = HashMap::new();
        let mut seen = Vec::new();
        let end = loop {
            if streams.iter().all(|s| got.contains_key(s)) {
                break None;
            }
            match self.next_within(WAIT).await {
                Err(()) => break Some(Outcome::Timeout),
                Ok(None) => break Some(Outcome::Closed),
                Ok(Some(f)) => {
                    if f.kind == GOAWAY {
                        let code = u32::from_be_bytes([
                            f.payload[4],
                            f.payload[5],
                            f.payload[6],
                            f.payload[7],
                        ]);
                        break Some(Outcome::GoAway(code));
                    }
                    if !streams.contains(&f.stream) {
                        continue;
                    }
                    match f.kind {
                        HEADERS => {
                            got.entry(f.stream)
                                .or_insert(Outcome::Status(status_of(&f.payload)));
                        }
                        RST_STREAM => {
                            let code = u32::from_be_bytes([
                                f.payload[0],
                                f.payload[1],
                                f.payload[2],
                                f.payload[3],
                            ]);
                            got.entry(f.stream).or_insert(Outcome::Reset(code));
                        }
                        _ => {}
                    }
                    seen.push(f);
                }
            }
        };
        let out = streams
            .iter()
            .map(|s| match (got.get(s), end) {
                (Some(o), _) => *o,
                (None, Some(e)) => e,
                (None, None) => Outcome::Timeout,
            })
            .collect();
        (out, seen)
    }

    /// Reads the rest of `stream`'s response (until END_STREAM or RST_STREAM) and returns
    /// its frames.
    async fn rest_of(&mut self, stream: u32) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = self.next().await {
            if f.stream != stream {
                continue;
            }
            let done = f.flags & END_STREAM != 0 && matches!(f.kind, HEADERS | DATA)
                || f.kind == RST_STREAM;
            out.push(f);
            if done {
                break;
            }
        }
        out
    }
}

// ---------------------------------------------------------------- fixtures

async fn harness_with(config: ProxyConfig) -> (Harness, Backend) {
    let a = Backend::start("a").await;
    let h = Harness::start(config).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(snapshot().host("a.example").prefix("/", "a").build());
    (h, a)
}

async fn harness() -> (Harness, Backend) {
    harness_with(ProxyConfig::default()).await
}

/// Sends `bad` as stream 1 and a valid GET as stream 3 on one connection: stream 1 must be
/// refused on its own (RST_STREAM PROTOCOL_ERROR, or a 400) and stream 3 answered 200.
async fn assert_stream_error(bad: Vec<u8>, case: &str) {
    let (h, a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    c.request(1, &bad).await;
    c.request(3, &get_block("/second")).await;
    let (o, _) = c.outcomes(&[1, 3]).await;
    assert!(
        matches!(o[0], Outcome::Reset(PROTOCOL_ERROR) | Outcome::Status(400)),
        "{case}: the malformed stream gets RST_STREAM(PROTOCOL_ERROR) or 400, got {:?}",
        o[0]
    );
    assert_eq!(
        o[1],
        Outcome::Status(200),
        "{case}: the connection's other stream is served"
    );
    assert_eq!(
        a.hits(),
        1,
        "{case}: nothing of the malformed request is forwarded"
    );
}

/// A GET with `extra` fields after the pseudo-headers, as literals with incremental
/// indexing (the malformed field enters the dynamic table, as it would from most encoders)
/// and again without indexing.
async fn assert_extra_fields_are_stream_errors(extra: &[(&[u8], &[u8])], case: &str) {
    let base = get("/bad");
    let mut all = fields(&base);
    all.extend_from_slice(extra);
    assert_stream_error(block_indexed(&all), &format!("{case} (indexed)")).await;
    assert_stream_error(block(&all), &format!("{case} (not indexed)")).await;
}

/// Sends `frame` after the handshake; the connection must end with GOAWAY(`code`) while
/// another connection carries on.
async fn assert_connection_error(frame: Vec<u8>, code: u32, case: &str) {
    let (h, a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    c.write(&frame).await;
    assert_eq!(c.goaway().await, Some(code), "{case}: GOAWAY code");
    assert!(c.closes().await, "{case}: the connection is closed");
    let mut other = h.client(Proto::H2).await;
    assert_eq!(other.get("a.example", "/").await.status, 200, "{case}");
    assert_eq!(a.hits(), 1);
}

// ---------------------------------------------------------------- §8.1.1 malformed requests

#[tokio::test]
async fn uppercase_header_name_is_a_stream_error() {
    assert_extra_fields_are_stream_errors(&[(b"X-Upper", b"1")], "uppercase name").await;
}

#[tokio::test]
async fn invalid_characters_in_a_header_name_are_a_stream_error() {
    assert_extra_fields_are_stream_errors(&[(b"x a", b"1")], "space in name").await;
    assert_extra_fields_are_stream_errors(&[(b"x:a", b"1")], "colon in name").await;
    assert_extra_fields_are_stream_errors(&[(b"", b"1")], "empty name").await;
}

#[tokio::test]
async fn cr_lf_nul_in_a_header_value_are_a_stream_error() {
    assert_extra_fields_are_stream_errors(&[(b"x-a", b"1\r\nx-b: 2")], "CRLF in value").await;
    assert_extra_fields_are_stream_errors(&[(b"x-a", b"1\nx")], "LF in value").await;
    assert_extra_fields_are_stream_errors(&[(b"x-a", b"1\0x")], "NUL in value").await;
}

#[tokio::test]
async fn leading_or_trailing_whitespace_in_a_value_is_a_stream_error() {
    assert_extra_fields_are_stream_errors(&[(b"x-a", b" 1")], "leading space").await;
    assert_extra_fields_are_stream_errors(&[(b"x-a", b"1\t")], "trailing tab").await;
}

#[tokio::test]
async fn unknown_pseudo_header_is_a_stream_error() {
    let mut f = get("/bad");
    f.insert(0, (&b":foo"[..], b"bar".to_vec()));
    assert_stream_error(block_indexed(&fields(&f)), ":foo (indexed)").await;
    assert_stream_error(block(&fields(&f)), ":foo").await;
}

#[tokio::test]
async fn misplaced_or_repeated_pseudo_headers_are_a_stream_error() {
    // A pseudo-header after a regular field.
    let base = get("/bad");
    let mut after = fields(&base);
    after.insert(3, (b"x-a", b"1"));
    assert_stream_error(block(&after), "pseudo after regular").await;
    // Twice the same pseudo-header.
    let mut twice = fields(&base);
    twice.push((b":path", b"/again"));
    twice.rotate_right(1);
    assert_stream_error(block(&twice), "repeated :path").await;
    // A response pseudo-header in a request.
    let mut status = fields(&base);
    status.insert(0, (b":status", b"200"));
    assert_stream_error(block(&status), ":status in a request").await;
}

#[tokio::test]
async fn missing_or_empty_pseudo_headers_are_a_stream_error() {
    let base = get("/bad");
    let all = fields(&base);
    for (skip, case) in [(0, "no :method"), (1, "no :scheme"), (2, "no :path")] {
        let mut f = all.clone();
        f.remove(skip);
        assert_stream_error(block(&f), case).await;
    }
    let mut empty = all.clone();
    empty[2] = (b":path", b"");
    assert_stream_error(block(&empty), "empty :path").await;
    let mut bad_method = all.clone();
    bad_method[0] = (b":method", b"G ET");
    assert_stream_error(block(&bad_method), "invalid :method").await;
}

#[tokio::test]
async fn connection_specific_headers_are_a_stream_error() {
    for (name, value) in [
        (&b"connection"[..], &b"keep-alive"[..]),
        (b"keep-alive", b"timeout=5"),
        (b"proxy-connection", b"keep-alive"),
        (b"transfer-encoding", b"chunked"),
        (b"upgrade", b"websocket"),
        (b"te", b"gzip"),
    ] {
        let case = String::from_utf8_lossy(name).into_owned();
        assert_extra_fields_are_stream_errors(&[(name, value)], &case).await;
    }
}

#[tokio::test]
async fn te_trailers_is_allowed() {
    let (h, a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    let base = get("/");
    let mut f = fields(&base);
    f.push((b"te", b"trailers"));
    c.request(1, &block(&f)).await;
    assert_eq!(c.outcomes(&[1]).await.0, vec![Outcome::Status(200)]);
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn host_that_disagrees_with_authority_is_a_stream_error() {
    let base = get("/bad");
    let mut f = fields(&base);
    f.push((b"host", b"b.example"));
    assert_stream_error(block(&f), "Host differs from :authority").await;
}

#[tokio::test]
async fn userinfo_in_authority_is_a_stream_error() {
    let base = get("/bad");
    let mut f = fields(&base);
    f[3] = (b":authority", b"user@a.example");
    assert_stream_error(block(&f), "userinfo in :authority").await;
}

#[tokio::test]
async fn body_longer_than_content_length_is_a_stream_error() {
    let (h, a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    let base = method("POST", "/bad");
    let mut f = fields(&base);
    f.push((b"content-length", b"2"));
    c.send(HEADERS, END_HEADERS, 1, &block(&f)).await;
    c.send(DATA, END_STREAM, 1, b"too long").await;
    c.request(3, &get_block("/second")).await;
    let (o, _) = c.outcomes(&[1, 3]).await;
    assert!(
        matches!(o[0], Outcome::Reset(PROTOCOL_ERROR) | Outcome::Status(400)),
        "{:?}",
        o[0]
    );
    assert_eq!(o[1], Outcome::Status(200));
    assert!(a.hits() >= 1);
}

#[tokio::test]
async fn malformed_field_keeps_the_hpack_table_in_sync() {
    // Stream 1 inserts `:authority: a.example` and then a malformed `X-Upper: 1` into the
    // dynamic table (indexes 63 and 62). Stream 3 refers to index 63 for its authority: it is
    // only `a.example` if the malformed entry took its place in the table. Stream 5 refers to
    // index 62, the malformed field itself: malformed again.
    let (h, a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    let mut b1 = block(&[
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
    ]);
    literal_indexed(&mut b1, b":authority", b"a.example");
    literal_indexed(&mut b1, b"X-Upper", b"1");
    c.request(1, &b1).await;
    // :method GET (2), :scheme http (6), :path / (4), then dynamic index 63.
    c.request(3, &[0x82, 0x86, 0x84, 0xbf]).await;
    c.request(5, &[0x82, 0x86, 0x84, 0xbf, 0xbe]).await;
    let (o, _) = c.outcomes(&[1, 3, 5]).await;
    assert!(
        matches!(o[0], Outcome::Reset(PROTOCOL_ERROR)),
        "stream 1: {:?}",
        o[0]
    );
    assert_eq!(o[1], Outcome::Status(200), "stream 3 (index 63)");
    assert!(
        matches!(o[2], Outcome::Reset(PROTOCOL_ERROR)),
        "stream 5 (index 62): {:?}",
        o[2]
    );
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn malformed_header_block_over_continuation_is_a_stream_error() {
    // The malformed field is in the CONTINUATION, the block's start in HEADERS.
    let (h, a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    let start = get_block("/bad");
    let mut rest = Vec::new();
    literal_indexed(&mut rest, b"X-Upper", b"1");
    literal(&mut rest, b"x-b", b"2");
    c.send(HEADERS, END_STREAM, 1, &start).await;
    c.send(CONTINUATION, END_HEADERS, 1, &rest).await;
    // And split in the middle of a field: a connection-specific header cut in two.
    let mut split = get_block("/bad");
    literal(&mut split, b"connection", b"close");
    let cut = split.len() - 3;
    c.send(HEADERS, END_STREAM, 3, &split[..cut]).await;
    c.send(CONTINUATION, END_HEADERS, 3, &split[cut..]).await;
    c.request(5, &get_block("/second")).await;
    let (o, _) = c.outcomes(&[1, 3, 5]).await;
    assert!(matches!(o[0], Outcome::Reset(PROTOCOL_ERROR)), "{:?}", o[0]);
    assert!(matches!(o[1], Outcome::Reset(PROTOCOL_ERROR)), "{:?}", o[1]);
    assert_eq!(o[2], Outcome::Status(200));
    assert_eq!(a.hits(), 1);
}

// ---------------------------------------------------------------- frame errors

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    RawTcp::frame(kind, flags, stream, payload)
}

#[tokio::test]
async fn settings_with_a_bad_length_is_frame_size_error() {
    assert_connection_error(
        frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0]),
        FRAME_SIZE_ERROR,
        "SETTINGS length 5",
    )
    .await;
    assert_connection_error(
        frame(SETTINGS, ACK, 0, &[0, 0, 0, 0, 0, 0]),
        FRAME_SIZE_ERROR,
        "SETTINGS ACK with payload",
    )
    .await;
}

#[tokio::test]
async fn ping_with_a_bad_length_is_frame_size_error() {
    assert_connection_error(
        frame(PING, 0, 0, &[0; 7]),
        FRAME_SIZE_ERROR,
        "PING length 7",
    )
    .await;
    assert_connection_error(
        frame(PING, 0, 0, &[0; 9]),
        FRAME_SIZE_ERROR,
        "PING length 9",
    )
    .await;
}

#[tokio::test]
async fn other_frames_with_a_bad_length_are_frame_size_error() {
    assert_connection_error(
        frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1]),
        FRAME_SIZE_ERROR,
        "WINDOW_UPDATE length 3",
    )
    .await;
    assert_connection_error(
        frame(RST_STREAM, 0, 1, &[0, 0, 0]),
        FRAME_SIZE_ERROR,
        "RST_STREAM length 3",
    )
    .await;
    // Larger than SETTINGS_MAX_FRAME_SIZE (16 KiB by default).
    assert_connection_error(
        frame(DATA, 0, 1, &vec![0; 16 * 1024 + 1]),
        FRAME_SIZE_ERROR,
        "DATA over max frame size",
    )
    .await;
}

#[tokio::test]
async fn initial_window_size_over_the_maximum_is_flow_control_error() {
    // SETTINGS_INITIAL_WINDOW_SIZE (0x4) = 2^31.
    assert_connection_error(
        frame(SETTINGS, 0, 0, &[0, 4, 0x80, 0, 0, 0]),
        FLOW_CONTROL_ERROR,
        "INITIAL_WINDOW_SIZE 2^31",
    )
    .await;
}

#[tokio::test]
async fn window_update_overflowing_the_connection_window_is_flow_control_error() {
    assert_connection_error(
        frame(WINDOW_UPDATE, 0, 0, &[0x7f, 0xff, 0xff, 0xff]),
        FLOW_CONTROL_ERROR,
        "connection window over 2^31-1",
    )
    .await;
}

#[tokio::test]
async fn invalid_settings_values_are_protocol_error() {
    // SETTINGS_ENABLE_PUSH (0x2) = 2; SETTINGS_MAX_FRAME_SIZE (0x5) below 2^14.
    assert_connection_error(
        frame(SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 2]),
        PROTOCOL_ERROR,
        "ENABLE_PUSH 2",
    )
    .await;
    assert_connection_error(
        frame(SETTINGS, 0, 0, &[0, 5, 0, 0, 0x3f, 0xff]),
        PROTOCOL_ERROR,
        "MAX_FRAME_SIZE 16383",
    )
    .await;
}

#[tokio::test]
async fn connection_frames_on_a_stream_are_protocol_error() {
    assert_connection_error(
        frame(SETTINGS, 0, 1, &[]),
        PROTOCOL_ERROR,
        "SETTINGS on stream 1",
    )
    .await;
    assert_connection_error(
        frame(PING, 0, 1, &[0; 8]),
        PROTOCOL_ERROR,
        "PING on stream 1",
    )
    .await;
    assert_connection_error(frame(DATA, 0, 0, b"x"), PROTOCOL_ERROR, "DATA on stream 0").await;
    assert_connection_error(
        frame(HEADERS, END_HEADERS, 0, &get_block("/")),
        PROTOCOL_ERROR,
        "HEADERS on stream 0",
    )
    .await;
}

#[tokio::test]
async fn stream_id_errors_are_protocol_error() {
    assert_connection_error(
        frame(HEADERS, END_HEADERS | END_STREAM, 2, &get_block("/")),
        PROTOCOL_ERROR,
        "HEADERS on an even stream",
    )
    .await;
    let mut two = frame(HEADERS, END_HEADERS | END_STREAM, 5, &get_block("/"));
    two.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &get_block("/")));
    // The first request is served (one backend hit expected by the helper).
    let (h, _a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    c.write(&two).await;
    assert_eq!(
        c.goaway().await,
        Some(PROTOCOL_ERROR),
        "decreasing stream id"
    );
    let mut c = RawTcp::connect(h.http).await;
    c.send(CONTINUATION, END_HEADERS, 1, &get_block("/")).await;
    assert_eq!(
        c.goaway().await,
        Some(PROTOCOL_ERROR),
        "CONTINUATION without HEADERS"
    );
    let mut c = RawTcp::connect(h.http).await;
    c.send(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 0]).await;
    assert_eq!(
        c.goaway().await,
        Some(PROTOCOL_ERROR),
        "connection WINDOW_UPDATE of 0"
    );
}

#[tokio::test]
async fn hpack_decoding_errors_are_compression_error() {
    // Indexed field with index 0 (RFC 7541 §6.1).
    let mut zero = get_block("/");
    zero.push(0x80);
    assert_connection_error(
        frame(HEADERS, END_HEADERS | END_STREAM, 1, &zero),
        COMPRESSION_ERROR,
        "index 0",
    )
    .await;
    // An index past the end of both tables.
    let mut past = get_block("/");
    past.push(0xff);
    past.push(0x10);
    assert_connection_error(
        frame(HEADERS, END_HEADERS | END_STREAM, 1, &past),
        COMPRESSION_ERROR,
        "index past the table",
    )
    .await;
    // A dynamic table size update above SETTINGS_HEADER_TABLE_SIZE (4096).
    let mut update = Vec::new();
    int(&mut update, 5, 0x20, 8192);
    update.extend(get_block("/"));
    assert_connection_error(
        frame(HEADERS, END_HEADERS | END_STREAM, 1, &update),
        COMPRESSION_ERROR,
        "table size update over the limit",
    )
    .await;
    // A truncated block (a string longer than what follows).
    let mut cut = get_block("/");
    cut.extend_from_slice(&[0x00, 0x05, b'x']);
    assert_connection_error(
        frame(HEADERS, END_HEADERS | END_STREAM, 1, &cut),
        COMPRESSION_ERROR,
        "truncated block",
    )
    .await;
}

#[tokio::test]
async fn invalid_preface_is_closed_on_the_tls_listener() {
    let cert = certificate(&["a.example"]);
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "a")
            .cert("a.example", cert.clone())
            .build(),
    );
    let mut tls = tls_h2(h.https, &cert).await;
    tls.write_all(b"INVALID CONNECTION PREFACE\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut out)).await;
    assert!(
        !out.starts_with(b"HTTP/1.1"),
        "an ALPN h2 connection never answers HTTP/1.1: {:?}",
        String::from_utf8_lossy(&out)
    );
    // Whatever came before the close parses as HTTP/2 frames.
    let mut at = 0;
    while out.len() >= at + 9 {
        at += 9 + u32::from_be_bytes([0, out[at], out[at + 1], out[at + 2]]) as usize;
    }
    assert_eq!(at, out.len(), "not HTTP/2 frames: {out:?}");
    // And a good TLS h2 connection is served.
    let tls = tls_h2(h.https, &cert).await;
    let mut c = Raw::handshake(tls).await;
    c.request(1, &get_block("/")).await;
    assert_eq!(c.outcomes(&[1]).await.0, vec![Outcome::Status(200)]);
}

/// A TLS connection to `addr` that negotiated ALPN `h2`, trusting `cert`.
async fn tls_h2(
    addr: SocketAddr,
    cert: &weir::snapshot::Certificate,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.key.cert[0].clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("a.example").expect("sni");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    stream
}

// ---------------------------------------------------------------- floods

/// After a flood on one connection, another connection is served.
async fn others_carry_on(h: &Harness) {
    let mut other = h.client(Proto::H2).await;
    assert_eq!(other.get("a.example", "/").await.status, 200);
}

#[tokio::test]
async fn rapid_reset_flood_is_bounded() {
    // CVE-2023-44487: open streams and reset them at once, as fast as the socket takes it.
    let (h, a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    let mut burst = Vec::new();
    let n = 5_000u32;
    for i in 0..n {
        let id = 2 * i + 1;
        burst.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &get_block("/slow/200"),
        ));
        burst.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
    }
    c.write(&burst).await;
    assert_eq!(c.goaway().await, Some(ENHANCE_YOUR_CALM));
    assert!(c.closes().await);
    assert!(
        a.hits() < u64::from(n) / 10,
        "{} of {n} reached the backend",
        a.hits()
    );
    others_carry_on(&h).await;
}

#[tokio::test]
async fn paced_rapid_reset_is_bounded() {
    // The slower form: each stream is reset once the server has started on it (its request
    // is on the way upstream), so the reset never meets a stream still waiting to be accepted.
    let (h, a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    let n = 2_000u32;
    let mut ended = false;
    for i in 0..n {
        let id = 2 * i + 1;
        c.send(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &get_block("/slow/1000"),
        )
        .await;
        // Let weir accept it and send it upstream.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        c.send(RST_STREAM, 0, id, &CANCEL.to_be_bytes()).await;
        if let Ok(None) = c.next_within(Duration::from_millis(0)).await {
            ended = true;
            break;
        }
    }
    if !ended {
        let code = c.goaway().await;
        assert!(
            matches!(code, Some(ENHANCE_YOUR_CALM)) || c.closes().await,
            "paced rapid reset is stopped: {code:?}"
        );
    }
    assert!(
        a.hits() < u64::from(n),
        "{} of {n} reached the backend",
        a.hits()
    );
    others_carry_on(&h).await;
}

#[tokio::test]
async fn malformed_stream_flood_is_bounded() {
    // Each malformed request costs weir a RST_STREAM; a connection that keeps sending them is
    // closed (h2's local reset limit).
    let (h, a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    let base = get("/bad");
    let mut bad = fields(&base);
    bad.push((b"connection", b"close"));
    let bad = block(&bad);
    let mut burst = Vec::new();
    for i in 0..5_000u32 {
        burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, &bad));
    }
    c.write(&burst).await;
    assert_eq!(c.goaway().await, Some(ENHANCE_YOUR_CALM));
    assert_eq!(a.hits(), 0);
    others_carry_on(&h).await;
}

#[tokio::test]
async fn continuation_flood_is_bounded() {
    // A header block that never ends: CONTINUATION frames without END_HEADERS.
    let (h, _a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    c.send(HEADERS, END_STREAM, 1, &get_block("/")).await;
    let mut burst = Vec::new();
    for _ in 0..10_000 {
        burst.extend(frame(CONTINUATION, 0, 1, &block(&[(b"x-a", b"1")])));
    }
    c.write(&burst).await;
    let code = c.goaway().await;
    assert!(
        matches!(code, Some(ENHANCE_YOUR_CALM | COMPRESSION_ERROR)),
        "{code:?}"
    );
    assert!(c.closes().await);
    others_carry_on(&h).await;
}

#[tokio::test]
async fn empty_data_flood_is_bounded() {
    let (h, _a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    c.send(
        HEADERS,
        END_HEADERS,
        1,
        &block(&fields(&method("POST", "/"))),
    )
    .await;
    let mut burst = Vec::new();
    for _ in 0..100_000 {
        burst.extend(frame(DATA, 0, 1, &[]));
    }
    c.write(&burst).await;
    assert_eq!(c.goaway().await, Some(ENHANCE_YOUR_CALM));
    others_carry_on(&h).await;
}

#[tokio::test]
async fn settings_flood_is_bounded() {
    // A client that sends SETTINGS without end and never reads the ACKs: weir stops reading
    // it (one pending ACK at a time), so its memory stays bounded, and serves others.
    let (h, _a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    let one = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
    let written = flood(&mut c, &one).await;
    // Either weir stopped reading (the write blocked: backpressure) or it closed.
    assert!(
        written.is_err() || c.closes().await,
        "2M SETTINGS frames all accepted"
    );
    others_carry_on(&h).await;
}

/// Writes `one` frame 2,000,000 times (100 bursts of 20,000) for at most 2 s; `Err` when the
/// writes blocked (weir stopped reading: backpressure).
async fn flood(c: &mut RawTcp, one: &[u8]) -> Result<(), tokio::time::error::Elapsed> {
    let burst: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * 20_000)
        .collect();
    tokio::time::timeout(Duration::from_secs(2), async {
        for _ in 0..100 {
            if c.io.write_all(&burst).await.is_err() {
                break;
            }
        }
    })
    .await
}

#[tokio::test]
async fn ping_flood_is_bounded() {
    let (h, _a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    let one = frame(PING, 0, 0, &[1; 8]);
    let written = flood(&mut c, &one).await;
    assert!(
        written.is_err() || c.closes().await,
        "2M PING frames all accepted"
    );
    others_carry_on(&h).await;
}

#[tokio::test]
async fn too_many_concurrent_streams_are_refused() {
    // Beyond SETTINGS_MAX_CONCURRENT_STREAMS a stream is refused (REFUSED_STREAM), the
    // connection and its other streams carry on.
    let (h, _a) = harness().await;
    let mut c = RawTcp::connect(h.http).await;
    let mut burst = Vec::new();
    for i in 0..300u32 {
        burst.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            2 * i + 1,
            &get_block("/slow/300"),
        ));
    }
    c.write(&burst).await;
    let ids: Vec<u32> = (0..300).map(|i| 2 * i + 1).collect();
    let (o, _) = c.outcomes(&ids).await;
    let ok = o.iter().filter(|o| **o == Outcome::Status(200)).count();
    let refused = o.iter().filter(|o| **o == Outcome::Reset(0x7)).count();
    assert!(ok >= 100, "{o:?}");
    assert_eq!(ok + refused, 300, "{o:?}");
}

// ---------------------------------------------------------------- HEAD

/// A HEAD answer: HEADERS with END_STREAM, no DATA.
fn assert_no_body(frames: &[Frame], case: &str) {
    let headers = frames
        .iter()
        .find(|f| f.kind == HEADERS)
        .unwrap_or_else(|| panic!("{case}: no HEADERS in {frames:?}"));
    assert!(
        headers.flags & END_STREAM != 0,
        "{case}: HEAD response HEADERS carries END_STREAM ({frames:?})"
    );
    assert!(
        !frames
            .iter()
            .any(|f| f.kind == DATA || f.kind == RST_STREAM),
        "{case}: no DATA nor RST_STREAM after a HEAD response ({frames:?})"
    );
}

async fn head_raw(addr: SocketAddr, host: &str, path: &str) -> (Outcome, Vec<Frame>) {
    let mut c = RawTcp::connect(addr).await;
    let f = [
        (&b":method"[..], &b"HEAD"[..]),
        (b":scheme", b"http"),
        (b":path", path.as_bytes()),
        (b":authority", host.as_bytes()),
    ];
    c.request(1, &block(&f)).await;
    let (o, mut seen) = c.outcomes(&[1]).await;
    if !seen
        .iter()
        .any(|f| f.flags & END_STREAM != 0 || f.kind == RST_STREAM)
    {
        seen.extend(c.rest_of(1).await);
    }
    // Whatever comes right after (a stray DATA, a RST_STREAM).
    while let Ok(Some(f)) = c.next_within(Duration::from_millis(200)).await {
        if f.stream == 1 {
            seen.push(f);
        }
    }
    (o[0], seen)
}

#[tokio::test]
async fn head_with_a_body_from_the_upstream_carries_no_data() {
    // Backends that wrongly send a body with HEAD, over h2c and HTTP/1.1.
    let h2 = Backend::start("h2").await;
    let h1 = head_body_backend().await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(Arc::new(
        [(key("h2"), set([h2.addr])), (key("h1"), set([h1]))]
            .into_iter()
            .collect(),
    ));
    h.publish(
        snapshot()
            .host("h2.example")
            .prefix("/", "h2")
            .protocol("h2", UpstreamProtocol::H2c)
            .host("h1.example")
            .prefix("/", "h1")
            .build(),
    );
    for host in ["h2.example", "h1.example"] {
        let (o, frames) = head_raw(h.http, host, "/head-body").await;
        assert_eq!(o, Outcome::Status(200), "{host}");
        assert_no_body(&frames, host);
        // A curl -I --http2-prior-knowledge-like client: hyper's h2 client resets a HEAD
        // stream that gets DATA.
        let mut c = h.client(Proto::H2).await;
        let req = c.request("HEAD", host, "/head-body", empty());
        let resp = c.send(req).await.expect("HEAD response");
        assert_eq!(resp.status(), 200, "{host}");
        assert_eq!(
            resp.headers().get("content-length").map(|v| v.as_bytes()),
            Some(&b"10"[..]),
            "{host}: the Content-Length a GET would have"
        );
        let r = collect(resp).await;
        assert!(r.body.is_empty());
        // And over HTTP/1.1: the same head, no body.
        let mut c = h.client(Proto::H1).await;
        let req = c.request("HEAD", host, "/head-body", empty());
        let r = c.answer(req).await;
        assert_eq!(r.status, 200, "{host} h1");
        assert_eq!(r.header("content-length"), Some("10"), "{host} h1");
    }
}

#[tokio::test]
async fn local_replies_to_head_carry_no_data() {
    let (h, _a) = harness().await;
    let mut snap = snapshot()
        .host("a.example")
        .respond("/down", 503, "down for maintenance\n");
    snap = snap.route_with(
        weir::snapshot::RouteMatch::path(weir::snapshot::PathMatch::Prefix("/old".into())),
        Vec::new(),
        weir::snapshot::RouteAction::Redirect(Box::new(weir::snapshot::Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path: Some(weir::snapshot::PathRewrite::ReplaceFullPath("/new".into())),
            query: None,
            status: 302,
        })),
    );
    h.publish(snap.build());
    for (host, path, status) in [
        ("nope.example", "/", 404),
        ("a.example", "/down", 503),
        ("a.example", "/old", 302),
    ] {
        let (o, frames) = head_raw(h.http, host, path).await;
        assert!(
            matches!(o, Outcome::Status(s) if s == status || s == 0),
            "{host}{path}: {o:?}"
        );
        assert_no_body(&frames, &format!("{host}{path}"));
        for proto in BOTH {
            let mut c = h.client(proto).await;
            let req = c.request("HEAD", host, path, empty());
            let r = c.answer(req).await;
            assert_eq!(r.status, status, "{proto:?} {host}{path}");
            assert!(r.body.is_empty());
            let get = c.get(host, path).await;
            assert_eq!(
                r.header("content-length"),
                Some(get.body.len().to_string().as_str()),
                "{proto:?} {host}{path}: the Content-Length of the GET answer"
            );
        }
    }
}

// ---------------------------------------------------------------- idle connections

#[tokio::test]
async fn idle_h2_connection_is_closed_with_goaway() {
    let config = ProxyConfig {
        h2_idle_timeout: Duration::from_millis(300),
        h2_keepalive_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let (h, _a) = harness_with(config).await;
    let mut c = RawTcp::connect(h.http).await;
    c.request(1, &get_block("/")).await;
    assert_eq!(c.outcomes(&[1]).await.0, vec![Outcome::Status(200)]);
    // A stream open longer than the idle timeout keeps the connection.
    c.request(3, &get_block("/slow/600")).await;
    let (o, mut frames) = c.outcomes(&[3]).await;
    assert_eq!(o, vec![Outcome::Status(200)]);
    if !frames.iter().any(|f| f.flags & END_STREAM != 0) {
        frames.extend(c.rest_of(3).await);
    }
    assert!(!frames.iter().any(|f| f.kind == GOAWAY), "{frames:?}");
    // Then nothing: GOAWAY(NO_ERROR), and the close once the PING that follows it is
    // answered, as any client does.
    assert_eq!(c.goaway().await, Some(NO_ERROR));
    loop {
        match c.next().await {
            Some(f) if f.kind == PING && f.flags & ACK == 0 => {
                c.send(PING, ACK, 0, &f.payload).await;
            }
            Some(_) => {}
            None => break,
        }
    }
    // A client that does not answer it is dropped all the same.
    let mut c = RawTcp::connect(h.http).await;
    c.request(1, &get_block("/")).await;
    assert_eq!(c.outcomes(&[1]).await.0, vec![Outcome::Status(200)]);
    assert_eq!(c.goaway().await, Some(NO_ERROR));
    assert!(c.closes().await, "closed without the PING's ACK");
}

#[tokio::test]
async fn idle_timeout_applies_to_tls_h2_and_not_to_http1() {
    let config = ProxyConfig {
        h2_idle_timeout: Duration::from_millis(300),
        h2_keepalive_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let cert = certificate(&["a.example"]);
    let a = Backend::start("a").await;
    let h = Harness::start(config).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "a")
            .cert("a.example", cert.clone())
            .build(),
    );
    let tls = tls_h2(h.https, &cert).await;
    let mut c = Raw::handshake(tls).await;
    c.request(1, &get_block("/")).await;
    assert_eq!(c.outcomes(&[1]).await.0, vec![Outcome::Status(200)]);
    assert_eq!(c.goaway().await, Some(NO_ERROR), "TLS h2");
    // An HTTP/1.1 keep-alive connection is not HTTP/2: no GOAWAY, still usable after the
    // HTTP/2 idle timeout.
    let mut tcp = TcpStream::connect(h.http).await.expect("connect");
    let get = b"GET / HTTP/1.1\r\nhost: a.example\r\n\r\n";
    tcp.write_all(get).await.expect("write");
    let mut buf = [0u8; 4096];
    let n = tcp.read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    tcp.write_all(get).await.expect("write");
    let n = tcp.read(&mut buf).await.expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "HTTP/1 keep-alive untouched"
    );
}

#[tokio::test]
async fn keepalive_pings_are_sent_and_unanswered_ones_close_the_connection() {
    let config = ProxyConfig {
        h2_keepalive_interval: Some(Duration::from_millis(200)),
        h2_keepalive_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let (h, _a) = harness_with(config).await;
    let mut c = RawTcp::connect(h.http).await;
    // A PING comes; answered, the connection stays.
    let ping = loop {
        let f = c.next().await.expect("a keepalive PING");
        if f.kind == PING && f.flags & ACK == 0 {
            break f;
        }
    };
    c.send(PING, ACK, 0, &ping.payload).await;
    c.request(1, &get_block("/")).await;
    assert_eq!(c.outcomes(&[1]).await.0, vec![Outcome::Status(200)]);
    // Not answered: closed.
    assert!(
        c.closes().await,
        "a peer that stops answering PINGs is dropped"
    );
}
