//! Downstream HTTP/2 connection policy that hyper and the `h2` crate leave to the server:
//!
//! - **open streams** ([`Streams`]): every request on a connection holds an [`OpenStream`]
//!   from its HEADERS until its response body is done (or the client reset it); a WebSocket
//!   tunnel holds one until it ends. `server::serve_conn` closes an HTTP/2 connection that
//!   has had no open stream for `ProxyConfig::h2_idle_timeout` with GOAWAY (hyper's HTTP/2
//!   server has keepalive PINGs but no idle timeout).
//! - **premature resets**: a stream whose response was not complete when it went away was
//!   reset by the client (or lost with its connection). A connection on which at least
//!   [`RESET_FLOOD_MIN`] streams, and at least half of all its streams, ended that way is a
//!   rapid-reset attack (CVE-2023-44487) paced so that every reset meets a stream already
//!   accepted — which h2's own limit (`max_pending_accept_reset_streams`) does not see — and
//!   is closed. Envoy's `premature_reset_total_stream_count` is the same rule.
//! - **HTTP/2 detection** on the cleartext port ([`Sniff`]): a connection is HTTP/2 once the
//!   client's first bytes are the connection preface; only those get the idle timeout
//!   (HTTP/1 keep-alive connections have the header read timeout).
//! - **request checks** RFC 9113 makes malformed but the `h2` crate does not check
//!   ([`check_request`]): leading or trailing whitespace in a field value (§8.2.1), a `Host`
//!   that disagrees with `:authority` (§8.3.1), userinfo in `:authority` (§8.3.1); each is a
//!   400 on that stream only.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Fewest prematurely reset streams on one connection before it can count as a reset flood.
pub(crate) const RESET_FLOOD_MIN: u32 = 100;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The streams of one downstream connection.
#[derive(Default)]
pub(crate) struct Streams {
    open: AtomicU32,
    opened: AtomicU32,
    premature: AtomicU32,
    /// The connection speaks HTTP/2 (ALPN `h2`, or the preface was seen).
    h2: AtomicBool,
    /// Woken when the idle state may have changed: the first stream opened, the last one
    /// done, HTTP/2 detected. Only sent on HTTP/2 connections (nobody waits on others).
    changed: Notify,
    /// Woken (with a stored permit) when the connection turns out to be a reset flood.
    flood: Notify,
}

impl Streams {
    /// A stream starts (its request HEADERS arrived).
    pub(crate) fn open(self: &Arc<Self>) -> OpenStream {
        self.opened.fetch_add(1, Ordering::Relaxed);
        if self.open.fetch_add(1, Ordering::AcqRel) == 0 && self.is_h2() {
            self.changed.notify_waiters();
        }
        OpenStream {
            streams: self.clone(),
            complete: false,
        }
    }

    /// A stream held open by something other than a response body (a tunnel): never
    /// counted as reset by the client.
    pub(crate) fn hold(self: &Arc<Self>) -> OpenStream {
        let mut s = self.open();
        s.complete = true;
        s
    }

    /// Marks the connection as HTTP/2.
    pub(crate) fn set_h2(&self) {
        if !self.h2.swap(true, Ordering::AcqRel) {
            self.changed.notify_waiters();
        }
    }

    fn is_h2(&self) -> bool {
        self.h2.load(Ordering::Acquire)
    }

    fn open_now(&self) -> u32 {
        self.open.load(Ordering::Acquire)
    }

    /// Returns once the connection is HTTP/2 and has had no open stream for `timeout`.
    pub(crate) async fn idle(&self, timeout: Duration) {
        loop {
            // Registered before the state is read, so no change in between is missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.is_h2() && self.open_now() == 0 {
                tokio::select! {
                    () = tokio::time::sleep(timeout) => {
                        if self.open_now() == 0 {
                            return;
                        }
                    }
                    () = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }

    /// Returns when the connection has been found to be a reset flood.
    pub(crate) async fn flood(&self) {
        self.flood.notified().await;
    }

    fn closed(&self, complete: bool) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 && self.is_h2() {
            self.changed.notify_waiters();
        }
        if !complete {
            let premature = self.premature.fetch_add(1, Ordering::Relaxed) + 1;
            if premature >= RESET_FLOOD_MIN
                && u64::from(premature) * 2 >= u64::from(self.opened.load(Ordering::Relaxed))
            {
                self.flood.notify_one();
            }
        }
    }
}

/// One open stream; dropping it closes the stream (prematurely unless marked complete).
pub(crate) struct OpenStream {
    streams: Arc<Streams>,
    complete: bool,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.streams.closed(self.complete);
    }
}

/// A response body holding its stream open until it is done.
pub(crate) struct Tracked<B: HttpBody> {
    inner: B,
    stream: OpenStream,
}

impl<B: HttpBody> Tracked<B> {
    /// `inner`, holding `stream` open until it ends or is dropped.
    pub(crate) fn new(inner: B, stream: OpenStream) -> Self {
        Tracked { inner, stream }
    }
}

impl<B> HttpBody for Tracked<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // Ended, or failed on the upstream side: either way the client did not cancel it.
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.stream.complete = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: HttpBody> Drop for Tracked<B> {
    fn drop(&mut self) {
        // hyper drops a body it has sent completely without polling it to `None` when it
        // reports its end itself.
        if self.inner.is_end_stream() {
            self.stream.complete = true;
        }
    }
}

/// Watches the first bytes a client sends on the cleartext port: when they are the HTTP/2
/// preface, the connection is marked HTTP/2. Costs one comparison per read until the first
/// 24 bytes are in.
pub(crate) struct Sniff<I> {
    inner: I,
    /// Bytes of the preface matched so far; `None` once decided.
    matched: Option<usize>,
    streams: Arc<Streams>,
}

impl<I> Sniff<I> {
    pub(crate) fn new(inner: I, streams: Arc<Streams>) -> Self {
        Sniff {
            inner,
            matched: Some(0),
            streams,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Sniff<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(at) = this.matched {
            let new = &buf.filled()[before..];
            let n = new.len().min(PREFACE.len() - at);
            this.matched = if new[..n] != PREFACE[at..at + n] {
                None
            } else if at + n == PREFACE.len() {
                this.streams.set_h2();
                None
            } else if new.is_empty() {
                // End of stream (or nothing read yet).
                Some(at)
            } else {
                Some(at + n)
            };
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Sniff<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// What RFC 9113 makes malformed in an HTTP/2 request and the `h2` crate lets through;
/// `Err` is the 400's body. Other versions pass.
pub(crate) fn check_request<B>(req: &Request<B>) -> Result<(), &'static str> {
    if req.version() != Version::HTTP_2 {
        return Ok(());
    }
    // §8.2.1: a field value must not start or end with whitespace (h2 already refuses NUL,
    // CR and LF, and names that are not lowercase tokens).
    let padded = |v: &[u8]| {
        matches!(v.first(), Some(b' ' | b'\t')) || matches!(v.last(), Some(b' ' | b'\t'))
    };
    if req.headers().values().any(|v| padded(v.as_bytes())) {
        return Err("malformed header value\n");
    }
    // §8.3.1 (userinfo in `:authority`, a `Host` naming another authority) is `host`'s, the
    // same for both versions.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn h2(build: impl FnOnce(http::request::Builder) -> http::request::Builder) -> Request<()> {
        build(Request::builder().version(Version::HTTP_2))
            .body(())
            .expect("request")
    }

    #[test]
    fn padded_values_are_malformed() {
        let ok = h2(|b| b.uri("http://a.example/").header("x-a", "1 2"));
        assert_eq!(check_request(&ok), Ok(()));
        for bad in [
            h2(|b| b.uri("http://a.example/").header("x-a", " 1")),
            h2(|b| b.uri("http://a.example/").header("x-a", "1\t")),
        ] {
            assert!(check_request(&bad).is_err(), "{bad:?}");
        }
        // HTTP/1 is the HTTP/1 code's business.
        let h1 = Request::builder()
            .uri("/")
            .header("x-a", " 1")
            .body(())
            .expect("request");
        assert_eq!(check_request(&h1), Ok(()));
    }

    #[tokio::test]
    async fn the_preface_marks_a_connection_http2_even_split_across_reads() {
        let streams = Arc::new(Streams::default());
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut sniff = Sniff::new(rx, streams.clone());
        let mut buf = [0u8; 64];
        tokio::io::AsyncWriteExt::write_all(&mut tx, &PREFACE[..10])
            .await
            .expect("write");
        let n = sniff.read(&mut buf).await.expect("read");
        assert_eq!(n, 10);
        assert!(!streams.is_h2());
        tokio::io::AsyncWriteExt::write_all(&mut tx, &PREFACE[10..])
            .await
            .expect("write");
        let _ = sniff.read(&mut buf).await.expect("read");
        assert!(streams.is_h2());

        let other = Arc::new(Streams::default());
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut sniff = Sniff::new(rx, other.clone());
        tokio::io::AsyncWriteExt::write_all(&mut tx, b"GET / HTTP/1.1\r\n\r\nPRI * HTTP/2.0")
            .await
            .expect("write");
        let _ = sniff.read(&mut buf).await.expect("read");
        assert!(!other.is_h2());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_fires_only_after_the_timeout_with_no_open_stream() {
        let streams = Arc::new(Streams::default());
        let timeout = Duration::from_secs(10);
        // Not HTTP/2 (yet): never idle.
        assert!(
            tokio::time::timeout(Duration::from_secs(60), streams.idle(timeout))
                .await
                .is_err()
        );
        streams.set_h2();
        let s = streams.open();
        // A stream open for longer than the timeout keeps the connection.
        assert!(
            tokio::time::timeout(Duration::from_secs(60), streams.idle(timeout))
                .await
                .is_err()
        );
        let watcher = {
            let streams = streams.clone();
            tokio::spawn(async move { streams.idle(timeout).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(s);
        // 9 s after the last stream closed: still not idle; a new stream restarts the clock.
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!watcher.is_finished());
        drop(streams.open());
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!watcher.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(watcher.is_finished());
    }

    #[tokio::test]
    async fn half_the_streams_reset_after_the_minimum_is_a_flood() {
        let streams = Arc::new(Streams::default());
        // Completed streams and a few resets: fine.
        for _ in 0..RESET_FLOOD_MIN {
            streams.open().complete = true;
        }
        for _ in 0..RESET_FLOOD_MIN - 1 {
            drop(streams.open());
        }
        let flood = streams.flood();
        tokio::pin!(flood);
        assert!(futures::poll!(flood.as_mut()).is_pending());
        // One more reset: half of 200 streams.
        drop(streams.open());
        assert!(futures::poll!(flood.as_mut()).is_ready());
    }
}
