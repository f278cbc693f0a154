//! Refusal of ambiguous HTTP/1 framing (request smuggling defence).
//!
//! hyper, seeing both `Content-Length` and `Transfer-Encoding`, frames by
//! `Transfer-Encoding`, drops `Content-Length` and closes the connection afterwards (allowed
//! by RFC 9112 §6.1) — but it hides that the request was ambiguous, and weir refuses such
//! requests outright (400, connection closed), as Envoy and HAProxy do. [`FramingGuard`]
//! sits under hyper on cleartext/`http/1.1` connections and follows the request stream just
//! enough to find each request head (skipping `Content-Length` and chunked bodies); when a
//! head carries both headers it raises a flag the request handler checks before forwarding.
//! Once the connection turns out to be HTTP/2 (prior-knowledge preface) or is upgraded, or
//! the input is malformed (hyper answers that itself), the guard steps aside.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest line or head the guard buffers before stepping aside (hyper refuses larger
/// heads with 431 anyway).
const MAX_BUFFER: usize = 128 * 1024;

/// Set once a request head on the connection had ambiguous framing.
#[derive(Debug, Default)]
pub(crate) struct Ambiguous(AtomicBool);

impl Ambiguous {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

enum State {
    /// Reading a request head (bytes kept in `buf` until the blank line).
    Head,
    /// Skipping a body of known length.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping chunk data plus its CRLF.
    ChunkData(u64),
    /// Reading trailer lines until an empty one.
    Trailers,
    /// Not following any more.
    Off,
}

/// An IO wrapper that watches request framing; see the module docs.
pub(crate) struct FramingGuard<T> {
    io: T,
    state: State,
    buf: Vec<u8>,
    flag: Arc<Ambiguous>,
}

impl<T> FramingGuard<T> {
    pub(crate) fn new(io: T, flag: Arc<Ambiguous>) -> Self {
        FramingGuard {
            io,
            state: State::Head,
            buf: Vec::new(),
            flag,
        }
    }

    fn observe(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Off => return,
                State::Body(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.state = State::Head;
                    }
                }
                State::ChunkData(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.state = State::ChunkSize;
                    }
                }
                State::Head => {
                    // Leading blank lines between requests are ignored (as hyper does).
                    if self.buf.is_empty() {
                        let skip = data
                            .iter()
                            .take_while(|b| matches!(b, b'\r' | b'\n'))
                            .count();
                        data = &data[skip..];
                        if data.is_empty() {
                            return;
                        }
                    }
                    let start = self.buf.len().saturating_sub(3);
                    self.buf.extend_from_slice(data);
                    match find(&self.buf[start..], b"\r\n\r\n") {
                        Some(i) => {
                            let end = start + i + 4;
                            let consumed = data.len() - (self.buf.len() - end);
                            data = &data[consumed..];
                            self.state = self.head_done(end);
                            self.buf.clear();
                        }
                        None => {
                            self.check_size();
                            return;
                        }
                    }
                }
                State::ChunkSize | State::Trailers => {
                    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                        self.buf.extend_from_slice(data);
                        self.check_size();
                        return;
                    };
                    self.buf.extend_from_slice(&data[..=nl]);
                    data = &data[nl + 1..];
                    let line = std::mem::take(&mut self.buf);
                    let line = trim_crlf(&line);
                    self.state = match self.state {
                        State::ChunkSize => match chunk_size(line) {
                            Some(0) => State::Trailers,
                            Some(n) => State::ChunkData(n + 2),
                            None => State::Off,
                        },
                        _ if line.is_empty() => State::Head,
                        _ => State::Trailers,
                    };
                }
            }
        }
    }

    fn check_size(&mut self) {
        if self.buf.len() > MAX_BUFFER {
            self.state = State::Off;
            self.buf = Vec::new();
        }
    }

    /// Inspects the head in `buf[..end]`; returns the state for what follows it.
    fn head_done(&mut self, end: usize) -> State {
        let head = &self.buf[..end];
        if head.starts_with(b"PRI * HTTP/2.0") {
            return State::Off;
        }
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut te = false;
        let mut cl = false;
        let mut upgrade = false;
        for line in head.split(|&b| b == b'\n').skip(1) {
            let line = trim_crlf(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = &line[..colon];
            let value = trim(&line[colon + 1..]);
            if name.eq_ignore_ascii_case(b"content-length") {
                cl = true;
                length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                te = true;
                chunked = value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| trim(last).eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                upgrade = true;
            }
        }
        if te && cl {
            self.flag.0.store(true, Ordering::Relaxed);
            return State::Off;
        }
        if upgrade || (te && !chunked) {
            return State::Off;
        }
        if chunked {
            return State::ChunkSize;
        }
        match (cl, length) {
            (false, _) | (true, Some(0)) => State::Head,
            (true, Some(n)) => State::Body(n),
            // An unparsable length: hyper answers 400 itself.
            (true, None) => State::Off,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
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

fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next().map(trim)?;
    let s = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(s, 16).ok()
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && !matches!(this.state, State::Off)
        {
            this.observe(&buf.filled()[before..]);
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
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> bool {
        let flag = Arc::new(Ambiguous::default());
        let mut g = FramingGuard::new((), flag.clone());
        for c in chunks {
            g.observe(c);
        }
        flag.is_set()
    }

    #[test]
    fn flags_content_length_with_transfer_encoding() {
        assert!(run(&[
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
    }

    #[test]
    fn follows_bodies_to_find_the_next_head_even_across_reads() {
        let stream: &[u8] = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nCL: 1\r\n0\r\nX: y\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(run(&[stream]));
        // Byte by byte gives the same answer.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert!(run(&bytes));
        // Header-looking bytes inside bodies are not heads.
        assert!(!run(&[b"POST / HTTP/1.1\r\nContent-Length: 55\r\n\r\nX: 1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"]));
    }

    #[test]
    fn steps_aside_for_http2() {
        assert!(!run(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"]));
    }
}
