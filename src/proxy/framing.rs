//! The HTTP/1 request-stream guard: what hyper's parser hides or lets through, refused.
//!
//! [`FramingGuard`] sits under hyper on cleartext and `http/1.1` connections and follows the
//! request stream as it is read — before hyper parses it — just enough to find each request
//! line, each head and the end of each body (`Content-Length` and chunked bodies). It refuses
//! three things hyper does not:
//!
//! - **Ambiguous framing**: a head with both `Content-Length` and `Transfer-Encoding`. hyper
//!   frames by `Transfer-Encoding`, drops `Content-Length` and closes the connection
//!   afterwards (allowed by RFC 9112 §6.1), hiding that the request was ambiguous; weir
//!   refuses it (400, connection closed), as Envoy and HAProxy do.
//! - **A malformed chunked body**: a chunk-size line that is not `1*HEXDIG *( BWS ";" BWS
//!   token [ BWS "=" BWS ( token / quoted-string ) ] ) BWS CRLF` (RFC 9112 §7.1: a size that
//!   is not hex or overflows 64 bits, a bare LF, an extension without a name), chunk data not
//!   followed by CRLF, or a trailer line ending in a bare LF. hyper fails the body only when
//!   it reads that far — after weir forwarded the head, so the upstream got the blame (502).
//!   Flagged here, the request is refused before anything is forwarded whenever the bad
//!   chunk came with the head (the usual case: one read).
//! - **A request line that is not HTTP/1.0 or HTTP/1.1**: `method SP target SP version` with
//!   any other version, except the HTTP/2 preface as the connection's first bytes. The read
//!   that brings the first impossible byte fails and hyper never sees it: the connection
//!   closes without an answer (RFC 9112 §2.2 lets a server close on a malformed request
//!   line). It is what an HTTP/2 client with a bad preface must see (RFC 9113 §3.4; h2spec
//!   3.5/2): on the shared cleartext port weir cannot know which protocol a client meant, and
//!   an HTTP/1 answer would be garbage to it. A line without two spaces is left to hyper (400).
//!
//! Flaws go to [`Findings`], read by the pipeline's accept phase: a flaw refuses the request
//! it belongs to and every later one on the connection (the ones before it are served). Once
//! the connection turns out to be HTTP/2 or is upgraded, or the input is something hyper
//! refuses itself (an unparsable `Content-Length`, a `Transfer-Encoding` that does not end in
//! chunked), the guard steps aside.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest head the guard buffers before stepping aside (hyper refuses larger heads with 431
/// anyway).
const MAX_BUFFER: usize = 128 * 1024;

/// Longest chunk-size or trailer line (hyper's limit on a body's chunk extensions).
const MAX_CHUNK_LINE: usize = 16 * 1024;

/// The HTTP/2 connection preface (RFC 9113 §3.4): its first line, then the rest.
const PREFACE_LINE: &[u8] = b"PRI * HTTP/2.0\r\n";
const PREFACE_REST: &[u8] = b"\r\nSM\r\n\r\n";

/// What makes the guard refuse requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flaw {
    /// `Content-Length` with `Transfer-Encoding`.
    Ambiguous,
    /// A malformed chunked body.
    BadChunk,
}

/// What the guard found on one connection; shared with the requests' accept phase.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// 0: nothing; otherwise `(request index + 1) << 2 | flaw code`, the first flaw only.
    flaw: AtomicU64,
    /// The connection was cut at a request line weir cannot read.
    cut: AtomicBool,
}

impl Findings {
    /// The flaw that refuses the connection's request number `request` (0-based, in the
    /// order the requests came), if any.
    pub(crate) fn refuses(&self, request: u64) -> Option<Flaw> {
        // Relaxed: on HTTP/1 the guard and the request handler run in the connection's task.
        let v = self.flaw.load(Ordering::Relaxed);
        if v == 0 || request < (v >> 2) - 1 {
            return None;
        }
        Some(if v & 3 == 1 {
            Flaw::Ambiguous
        } else {
            Flaw::BadChunk
        })
    }

    /// Whether the guard cut the connection at a request line it cannot read.
    pub(crate) fn cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    fn flag(&self, flaw: Flaw, request: u64) {
        let code = match flaw {
            Flaw::Ambiguous => 1,
            Flaw::BadChunk => 2,
        };
        let v = ((request + 1) << 2) | code;
        let _ = self
            .flaw
            .compare_exchange(0, v, Ordering::Relaxed, Ordering::Relaxed);
    }
}

enum State {
    /// Reading a request line (blank lines before it are skipped, as hyper does).
    Line(Line),
    /// Reading header lines; the head so far is in `buf`, the current line starts at the
    /// index.
    Headers(usize),
    /// The HTTP/2 preface after its first line: how much of the rest has matched.
    Preface(usize),
    /// Skipping a body of known length.
    Body(u64),
    /// Reading a chunk-size line (kept in `buf`).
    ChunkSize,
    /// Skipping chunk data.
    ChunkData(u64),
    /// The CRLF after chunk data: `false` before the CR, `true` before the LF.
    ChunkEnd(bool),
    /// Reading trailer lines (the current one in `buf`) until an empty one.
    Trailers,
    /// Not following any more.
    Off,
    /// Cut at a request line weir cannot read: every read fails.
    Cut,
}

/// Where a chunk-size or trailer line leads.
enum Next {
    Data(u64),
    Trailers,
    Message,
}

/// What reading a request line so far says.
enum Step {
    /// Not finished.
    More,
    /// An HTTP/1.0 or HTTP/1.1 request line, finished.
    Http1,
    /// The first line of the HTTP/2 preface.
    Preface,
    /// A line without a version to judge: hyper answers it.
    Unjudged,
    /// A version that is not HTTP/1.0 or HTTP/1.1.
    Cut,
}

/// Incremental check of a request line, `method SP target SP version CRLF`, one byte at a
/// time (a slow client must not cost a rescan per byte).
#[derive(Default)]
struct Line {
    /// Bytes of the line seen (leading blank lines not counted).
    len: usize,
    spaces: u8,
    /// The version token (and its CR) so far; no valid one is longer.
    version: [u8; 9],
    version_len: usize,
    /// It may still be the HTTP/2 preface (the connection's first line, matching so far).
    preface: bool,
}

impl Line {
    fn push(&mut self, b: u8) -> Step {
        if self.preface && PREFACE_LINE.get(self.len) != Some(&b) {
            self.preface = false;
        }
        self.len += 1;
        if b == b'\n' {
            if self.preface {
                return Step::Preface;
            }
            if self.spaces < 2 {
                return Step::Unjudged;
            }
            let v = &self.version[..self.version_len];
            let v = v.strip_suffix(b"\r").unwrap_or(v);
            return if v == b"HTTP/1.1" || v == b"HTTP/1.0" {
                Step::Http1
            } else {
                Step::Cut
            };
        }
        if self.spaces < 2 {
            if b == b' ' {
                self.spaces += 1;
            }
            return Step::More;
        }
        if self.version_len == self.version.len() {
            return Step::Cut;
        }
        self.version[self.version_len] = b;
        self.version_len += 1;
        let v = &self.version[..self.version_len];
        let possible = b"HTTP/1.0\r".starts_with(v)
            || b"HTTP/1.1\r".starts_with(v)
            || (self.preface && b"HTTP/2.0\r".starts_with(v));
        if possible { Step::More } else { Step::Cut }
    }
}

/// An IO wrapper that watches the request stream; see the module docs.
pub(crate) struct FramingGuard<T> {
    io: T,
    state: State,
    buf: Vec<u8>,
    /// Index of the request being read (0-based).
    request: u64,
    findings: Arc<Findings>,
}

impl<T> FramingGuard<T> {
    pub(crate) fn new(io: T, findings: Arc<Findings>) -> Self {
        FramingGuard {
            io,
            state: State::Line(Line {
                preface: true,
                ..Line::default()
            }),
            buf: Vec::new(),
            request: 0,
            findings,
        }
    }

    /// Follows `data`, the next bytes of the stream; `Err` when the connection must be cut.
    fn observe(&mut self, mut data: &[u8]) -> Result<(), ()> {
        while !data.is_empty() {
            match &mut self.state {
                State::Off => return Ok(()),
                State::Cut => return Err(()),
                State::Line(line) => {
                    if line.len == 0 {
                        let skip = data
                            .iter()
                            .take_while(|b| matches!(b, b'\r' | b'\n'))
                            .count();
                        if skip > 0 {
                            // The preface is the connection's very first bytes.
                            line.preface = false;
                            data = &data[skip..];
                            continue;
                        }
                    }
                    let mut step = Step::More;
                    let mut used = 0;
                    for &b in data {
                        used += 1;
                        step = line.push(b);
                        if !matches!(step, Step::More) {
                            break;
                        }
                    }
                    data = &data[used..];
                    match step {
                        Step::More => {}
                        Step::Http1 => {
                            self.buf.clear();
                            self.state = State::Headers(0);
                        }
                        Step::Preface => self.state = State::Preface(0),
                        Step::Unjudged => self.state = State::Off,
                        Step::Cut => {
                            self.state = State::Cut;
                            return Err(());
                        }
                    }
                }
                State::Preface(matched) => {
                    let want = &PREFACE_REST[*matched..];
                    let n = want.len().min(data.len());
                    if data[..n] != want[..n] {
                        self.state = State::Cut;
                        return Err(());
                    }
                    *matched += n;
                    data = &data[n..];
                    if *matched == PREFACE_REST.len() {
                        self.state = State::Off;
                    }
                }
                State::Headers(line_start) => {
                    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                        self.buf.extend_from_slice(data);
                        if self.buf.len() > MAX_BUFFER {
                            self.step_aside();
                        }
                        return Ok(());
                    };
                    self.buf.extend_from_slice(&data[..=nl]);
                    data = &data[nl + 1..];
                    if matches!(&self.buf[*line_start..], b"\n" | b"\r\n") {
                        self.state = self.head_done();
                        self.buf.clear();
                    } else {
                        *line_start = self.buf.len();
                    }
                }
                State::Body(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.state = self.next_message();
                    }
                }
                State::ChunkData(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.state = State::ChunkEnd(false);
                    }
                }
                State::ChunkEnd(cr_seen) => {
                    let cr_seen = *cr_seen;
                    if data[0] != if cr_seen { b'\n' } else { b'\r' } {
                        self.bad_chunk();
                        return Ok(());
                    }
                    data = &data[1..];
                    self.state = if cr_seen {
                        State::ChunkSize
                    } else {
                        State::ChunkEnd(true)
                    };
                }
                State::ChunkSize | State::Trailers => {
                    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                        self.buf.extend_from_slice(data);
                        if self.buf.len() > MAX_CHUNK_LINE {
                            self.bad_chunk();
                        }
                        return Ok(());
                    };
                    self.buf.extend_from_slice(&data[..=nl]);
                    data = &data[nl + 1..];
                    let in_size = matches!(self.state, State::ChunkSize);
                    // `None`: malformed. A bare LF is: hyper wants CRLF here, as RFC 9112 does.
                    let next = match self.buf.strip_suffix(b"\r\n") {
                        None => None,
                        Some(line) if in_size => chunk_size(line).map(|n| match n {
                            0 => Next::Trailers,
                            n => Next::Data(n),
                        }),
                        Some([]) => Some(Next::Message),
                        Some(_) => Some(Next::Trailers),
                    };
                    self.buf.clear();
                    self.state = match next {
                        None => {
                            self.bad_chunk();
                            return Ok(());
                        }
                        Some(Next::Trailers) => State::Trailers,
                        Some(Next::Data(n)) => State::ChunkData(n),
                        Some(Next::Message) => self.next_message(),
                    };
                }
            }
        }
        Ok(())
    }

    fn step_aside(&mut self) {
        self.state = State::Off;
        self.buf = Vec::new();
    }

    fn bad_chunk(&mut self) {
        self.findings.flag(Flaw::BadChunk, self.request);
        self.step_aside();
    }

    /// The state for the next request on the connection.
    fn next_message(&mut self) -> State {
        self.request += 1;
        State::Line(Line::default())
    }

    /// Inspects the head in `buf` (header lines and the empty line); returns the state for
    /// what follows it.
    fn head_done(&mut self) -> State {
        let mut cl = false;
        // `None` once a value does not parse or disagrees with an earlier one.
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut te = false;
        let mut upgrade = false;
        for line in self.buf.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = &line[..colon];
            let value = trim(&line[colon + 1..]);
            if name.eq_ignore_ascii_case(b"content-length") {
                let this = content_length(value);
                length = if cl && length != this { None } else { this };
                cl = true;
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                te = true;
                // hyper reads the last coding of the last header.
                chunked = value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| trim(last).eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                upgrade = true;
            }
        }
        if te && cl {
            self.findings.flag(Flaw::Ambiguous, self.request);
            return State::Off;
        }
        if upgrade || (te && !chunked) {
            return State::Off;
        }
        if chunked {
            return State::ChunkSize;
        }
        match (cl, length) {
            (false, _) | (true, Some(0)) => self.next_message(),
            (true, Some(n)) => State::Body(n),
            // An unparsable or conflicting length: hyper answers 400 itself.
            (true, None) => State::Off,
        }
    }
}

/// One `Content-Length` value read the way hyper reads it: comma-separated elements that
/// must all be the same run of digits.
fn content_length(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for element in value.split(|&b| b == b',') {
        let digits = trim(element);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The size of a chunk-size line (without its CRLF), or `None` when the line is malformed:
/// `1*HEXDIG *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ) BWS`.
/// Whitespace after the size is accepted, as hyper does.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return None;
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16)?;
        size = size.checked_mul(16)?.checked_add(u64::from(d))?;
    }
    let mut rest = &line[digits..];
    let bws = |r: &mut &[u8]| {
        let n = r.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
        *r = &r[n..];
    };
    let token = |r: &mut &[u8]| -> bool {
        let n = r.iter().take_while(|&&b| is_tchar(b)).count();
        *r = &r[n..];
        n > 0
    };
    loop {
        bws(&mut rest);
        let Some((&first, after)) = rest.split_first() else {
            return Some(size);
        };
        if first != b';' {
            return None;
        }
        rest = after;
        bws(&mut rest);
        if !token(&mut rest) {
            return None;
        }
        let mut value = rest;
        bws(&mut value);
        if let Some(after) = value.strip_prefix(b"=") {
            rest = after;
            bws(&mut rest);
            if rest.first() == Some(&b'"') {
                rest = quoted_string(&rest[1..])?;
            } else if !token(&mut rest) {
                return None;
            }
        }
    }
}

/// Skips a quoted-string's content after its opening quote; returns what follows the closing
/// quote.
fn quoted_string(mut s: &[u8]) -> Option<&[u8]> {
    loop {
        match *s.first()? {
            b'"' => return Some(&s[1..]),
            b'\\' => {
                let escaped = *s.get(1)?;
                if !(escaped == b'\t' || escaped == b' ' || escaped >= 0x21) || escaped == 0x7f {
                    return None;
                }
                s = &s[2..];
            }
            b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80.. => s = &s[1..],
            _ => return None,
        }
    }
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "not an HTTP/1.0 or HTTP/1.1 request line",
    )
}

impl<T: AsyncRead + Unpin> FramingGuard<T> {
    /// Reads and drops what the client already sent past the cut (hyper-util's protocol
    /// detection may have read only part of the line): a socket closed with unread input
    /// sends a reset instead of a clean close, and a reset is not "connection closed" to an
    /// HTTP/2 client (h2spec 3.5/2). Bounded; what arrives later may still meet a reset.
    fn discard_pending(&mut self, cx: &mut Context<'_>) {
        let mut scratch = [0u8; 4096];
        for _ in 0..16 {
            let mut rb = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if !rb.filled().is_empty() => {}
                _ => return,
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.state, State::Cut) {
            return Poll::Ready(Err(cut_error()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && !matches!(this.state, State::Off)
            && this.observe(&buf.filled()[before..]).is_err()
        {
            // Nothing of this read reaches hyper, so it cannot answer: the connection closes.
            buf.set_filled(before);
            this.findings.cut.store(true, Ordering::Relaxed);
            this.discard_pending(cx);
            return Poll::Ready(Err(cut_error()));
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FramingGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
