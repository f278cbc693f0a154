//! The HTTP clients behind the pools: hyper's HTTP/1.1 client, the `h2` crate driven
//! directly for HTTP/2, TCP and TLS connecting, and the response body they hand back.
//!
//! This file is the only place that names an HTTP client's types. HTTP/2 requests are sent
//! from the request's own task on a shared `h2::client::SendRequest` — no task spawned and no
//! channel hop per request (hyper's HTTP/2 client spawns one per request); only a request body
//! that is not complete at once gets a task to pump it. The pools (`super`) and the request
//! path see [`Conn`] (a checked-out connection that sends one `Request<Body>` and returns a
//! `Response<Body>`), [`H1Conn`], [`H2Conn`] and [`UpstreamBody`]. Each connection kind
//! implements [`Exchange`], the seam another client implementation would implement; [`Conn`]
//! dispatches to them statically, so the per-request call costs no allocation.
//!
//! **A new connection is not connected until the peer has acknowledged something.** A listener
//! whose accept queue is full still completes TCP handshakes in the kernel (SYN cookies), then
//! drops what is sent: `connect` returns at once and the request waits for a response that never
//! comes. So a new connection carries `TCP_USER_TIMEOUT` = the connect timeout until the first
//! byte arrives from the peer: sent data left unacknowledged that long makes the kernel abort it
//! with `ETIMEDOUT`, which [`classify`] reports as not processed (the peer never took a byte of
//! the request) — a connect timeout, failed over like one.
//!
//! Upstream TLS (`appProtocol: https`) does not verify the server certificate, as Envoy and
//! Contour do by default: in-cluster backends mostly have self-signed certificates. The
//! handshake signature is still verified, and ALPN offers `h2` then `http/1.1`. A cluster
//! with TLS settings (a `BackendPolicy`'s `tls`: [`UpstreamTls`]) gets its own client
//! configurations, built once per snapshot: the certificate verified against its CAs and
//! hostname (WebPKI), its client certificate presented, its hostname sent as SNI or not.
//! Active health checks of such a cluster use the same configurations.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Pool, Slot};
use crate::proxy::body::{Body, BodyError};
use crate::proxy::error::Failure;
use crate::snapshot::{UpstreamProtocol, UpstreamTls, UpstreamTlsConfigs};

/// Largest response head accepted from an HTTP/2 upstream (hyper's default is 16 KiB; this
/// matches the downstream default).
const UPSTREAM_MAX_HEADER_LIST: u32 = 64 * 1024;

/// Why a request did not get a response.
pub(crate) enum SendError {
    /// Nothing of the request left: it comes back for another attempt.
    NotSent(Box<Request<Body>>, Failure),
    /// It left, but the upstream provably did not process it: an HTTP/2 stream refused
    /// (`RST_STREAM(REFUSED_STREAM)`, or cut by a graceful GOAWAY whose last-stream-id is below
    /// it), or a new connection whose peer never acknowledged a byte within the connect
    /// timeout. Safe to send again, whatever the method, from a copy the caller kept.
    NotProcessed(Failure),
    /// It may have been (partly) processed: never retried.
    Failed(Failure),
}

impl SendError {
    /// Maps a failed exchange: hyper gives the request back when none of it left; otherwise
    /// the error says whether the upstream processed it.
    fn classify(mut e: hyper::client::conn::TrySendError<Request<Body>>, heard: bool) -> Self {
        if let Some(back) = e.take_message() {
            return SendError::NotSent(
                Box::new(back),
                Failure::Connect(std::io::Error::other(e.into_error())),
            );
        }
        let error = e.into_error();
        match unprocessed(&error, heard) {
            Some(failure) => SendError::NotProcessed(failure),
            None => SendError::Failed(sent_failure(error)),
        }
    }
}

/// Whether `error` (hyper's, or anything in its source chain) proves the upstream did not
/// process the request, and as what failure:
/// - an HTTP/2 stream reset by the peer with `REFUSED_STREAM` (RFC 9113 §8.7);
/// - an HTTP/2 stream the peer's graceful GOAWAY (`NO_ERROR`) left out: h2 reports a remote
///   GOAWAY on a stream only for streams above the frame's last-stream-id (a connection that
///   ends with an error GOAWAY reports the same error on the streams it did process, so only
///   the graceful kind is unambiguous);
/// - `ETIMEDOUT` on a connection that never heard from the peer: `TCP_USER_TIMEOUT` expired
///   with nothing acknowledged (see the module docs).
pub(crate) fn unprocessed(
    error: &(dyn std::error::Error + 'static),
    heard: bool,
) -> Option<Failure> {
    let timed_out = |io: &std::io::Error| !heard && io.kind() == std::io::ErrorKind::TimedOut;
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            if h2.is_remote() && h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return Some(Failure::Refused);
            }
            if h2.is_remote() && h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR) {
                return Some(Failure::Refused);
            }
            if h2.get_io().is_some_and(timed_out) {
                return Some(Failure::ConnectTimeout);
            }
        }
        if e.downcast_ref::<std::io::Error>().is_some_and(timed_out) {
            return Some(Failure::ConnectTimeout);
        }
        next = e.source();
    }
    None
}

/// One exchange on a checked-out connection: the seam between the pools and an HTTP client
/// implementation.
pub(crate) trait Exchange {
    /// The HTTP version the connection speaks (decides the request target's form).
    fn version(&self) -> Version;

    /// Sends `req` and waits for the response head, up to `timeout` (zero: no limit).
    fn exchange(
        self,
        req: Request<Body>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response<Body>, SendError>> + Send;
}

/// A connection checked out for one request.
pub(crate) enum Conn {
    /// An HTTP/1.1 connection, exclusively this request's until its response ends.
    H1(H1Conn),
    /// One stream on a shared HTTP/2 connection.
    H2(H2Stream),
}

impl Conn {
    /// The HTTP version the connection speaks.
    pub(crate) fn version(&self) -> Version {
        match self {
            Conn::H1(c) => c.version(),
            Conn::H2(c) => c.version(),
        }
    }

    /// Whether an exchange on it can end in [`SendError::NotProcessed`], so that a copy of
    /// the request is worth keeping: every HTTP/2 stream (refusals), and an HTTP/1 connection
    /// that has not heard from its peer yet (a new one).
    pub(crate) fn may_refuse(&self) -> bool {
        match self {
            Conn::H1(c) => !c.heard.load(Ordering::Relaxed),
            Conn::H2(_) => true,
        }
    }

    /// Sends `req` on it (see [`Exchange::exchange`]).
    pub(crate) async fn send(
        self,
        req: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Body>, SendError> {
        match self {
            Conn::H1(c) => c.exchange(req, timeout).await,
            Conn::H2(c) => c.exchange(req, timeout).await,
        }
    }
}

/// An HTTP/1.1 client connection.
pub(crate) struct H1Conn {
    sender: http1::SendRequest<Body>,
    /// Its place in its pool, held for its whole life; where it goes back after a clean
    /// response (`None`: never pooled, e.g. upgrades).
    slot: Option<Slot>,
    /// Whether the peer has sent a byte yet.
    heard: Arc<AtomicBool>,
}

impl H1Conn {
    /// The pool it goes back to after a clean response.
    pub(crate) fn home(&self) -> Option<&Arc<Pool>> {
        self.slot.as_ref().and_then(Slot::pool)
    }

    /// Whether hyper knows the connection is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Waits until the connection can take a request; `false` when it cannot any more.
    pub(crate) async fn ready(&mut self) -> bool {
        self.sender.ready().await.is_ok()
    }
}

impl Exchange for H1Conn {
    fn version(&self) -> Version {
        Version::HTTP_11
    }

    async fn exchange(
        mut self,
        req: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Body>, SendError> {
        // A HEAD response never has a body hyper would read, whatever its Content-Length; an
        // upstream that wrongly sends one anyway leaves it on the connection, where it would be
        // read as the next response's head. Such a connection is never pooled again.
        let head = req.method() == http::Method::HEAD;
        let fut = self.sender.try_send_request(req);
        match with_timeout(timeout, fut).await {
            None => Err(SendError::Failed(Failure::Timeout)),
            Some(Ok(resp)) => Ok(resp.map(|body| {
                Body::upstream(UpstreamBody {
                    inner: Inner::H1(body),
                    release: Release::H1((!head).then_some(self)),
                    ended: false,
                })
            })),
            Some(Err(e)) => Err(SendError::classify(e, self.heard.load(Ordering::Relaxed))),
        }
    }
}

/// A multiplexed upstream HTTP/2 connection (the `h2` crate, driven directly: a request is
/// sent from its own task, with no task spawned and no channel hop per request) and the
/// streams weir has open on it.
pub(crate) struct H2Conn {
    sender: h2::client::SendRequest<Bytes>,
    streams: AtomicUsize,
    /// When a stream was last opened, in milliseconds since [`now_ms`]'s epoch.
    last_used: AtomicU64,
    /// Set by the connection's task when the connection ended.
    closed: Arc<AtomicBool>,
    /// Whether the peer has sent a byte yet.
    heard: Arc<AtomicBool>,
}

impl H2Conn {
    /// Whether the connection ended (GOAWAY received and drained, an error, EOF).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Streams weir has open on it.
    pub(crate) fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// Milliseconds (on [`now_ms`]'s clock) since a stream was last opened.
    pub(crate) fn idle_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_used.load(Ordering::Relaxed))
    }

    /// The peer's current `SETTINGS_MAX_CONCURRENT_STREAMS` (always fresh: the `h2` crate
    /// keeps it where every handle can read it).
    pub(crate) fn peer_limit(&self) -> (usize, bool) {
        (self.sender.current_max_send_streams(), true)
    }

    /// Opens the first stream of a new connection (before it is shared).
    pub(crate) fn first_stream(self: &Arc<Self>) -> H2Stream {
        self.streams.fetch_add(1, Ordering::Relaxed);
        self.last_used.store(now_ms(), Ordering::Relaxed);
        H2Stream(self.clone())
    }

    /// Opens one stream if fewer than `limit` are open and the connection is alive.
    pub(crate) fn try_open(self: &Arc<Self>, limit: usize) -> Option<H2Stream> {
        if self.is_closed() {
            return None;
        }
        let open = self.streams.fetch_add(1, Ordering::Relaxed);
        if open >= limit {
            self.streams.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        self.last_used.store(now_ms(), Ordering::Relaxed);
        Some(H2Stream(self.clone()))
    }
}

/// Counts one open stream on an [`H2Conn`] until dropped (with the response body).
pub(crate) struct H2Stream(Arc<H2Conn>);

impl Drop for H2Stream {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Exchange for H2Stream {
    fn version(&self) -> Version {
        Version::HTTP_2
    }

    async fn exchange(
        self,
        req: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Body>, SendError> {
        let mut sender = self.0.sender.clone();
        // Ready first: a connection that received GOAWAY or failed says so here, before
        // anything of the request left, so the request comes back for another attempt.
        if let Err(e) = std::future::poll_fn(|cx| sender.poll_ready(cx)).await {
            return Err(SendError::NotSent(
                Box::new(req),
                Failure::Connect(std::io::Error::other(e)),
            ));
        }
        let (parts, body) = req.into_parts();
        let eos = body.is_end_stream();
        let (response, send) = match sender.send_request(Request::from_parts(parts, ()), eos) {
            Ok(pair) => pair,
            // Refused before a frame was queued (a GOAWAY that arrived since `poll_ready`,
            // the stream limit): nothing reached the peer.
            Err(e) => {
                return Err(SendError::NotProcessed(Failure::Connect(
                    std::io::Error::other(e),
                )));
            }
        };
        if !eos {
            send_body(body, send);
        }
        let resp = match with_timeout(timeout, response).await {
            None => return Err(SendError::Failed(Failure::Timeout)),
            Some(Ok(resp)) => resp,
            Some(Err(e)) => {
                let heard = self.0.heard.load(Ordering::Relaxed);
                return Err(match unprocessed(&e, heard) {
                    Some(failure) => SendError::NotProcessed(failure),
                    None => SendError::Failed(h2_failure(e)),
                });
            }
        };
        let (parts, recv) = resp.into_parts();
        let length = content_length(&parts.headers);
        Ok(Response::from_parts(
            parts,
            Body::upstream(UpstreamBody {
                inner: Inner::H2 { recv, length },
                release: Release::H2(self),
                ended: false,
            }),
        ))
    }
}

/// An `h2` stream error as a failure. A reset weir made itself (`CANCEL`, neither from the
/// peer nor from the library) is `pump_body`'s: the request body failed, the client's fault.
fn h2_failure(e: h2::Error) -> Failure {
    if e.reason() == Some(h2::Reason::CANCEL) && !e.is_remote() && !e.is_library() {
        Failure::RequestBody(Box::new(e))
    } else {
        Failure::Upstream(Box::new(e))
    }
}

/// A request that failed after (maybe partly) leaving: the client's fault when hyper says
/// the request body failed (a malformed chunk that came after the head, a client gone
/// mid-body: a user error, the body being weir's "user" body), the upstream's otherwise.
fn sent_failure(e: hyper::Error) -> Failure {
    if e.is_user() || e.is_body_write_aborted() {
        Failure::RequestBody(e.into())
    } else {
        Failure::Upstream(e.into())
    }
}

/// `Content-Length` of a response head, for the body's size hint.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Streams the request body (and trailers) into the HTTP/2 stream. Polled once here: a body
/// that is already complete (a small POST) is sent without a task; otherwise the rest is
/// pumped by a task of its own, since it may go on after the response headers (gRPC
/// streaming).
fn send_body(body: Body, send: h2::SendStream<Bytes>) {
    let mut pump = Box::pin(pump_body(body, send));
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    if pump.as_mut().poll(&mut cx).is_pending() {
        tokio::spawn(pump);
    }
}

async fn pump_body(mut body: Body, mut send: h2::SendStream<Bytes>) {
    use http_body_util::BodyExt as _;
    loop {
        let frame = match body.frame().await {
            None => {
                let _ = send.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "request body failed; resetting the upstream stream");
                send.send_reset(h2::Reason::CANCEL);
                return;
            }
            Some(Ok(frame)) => frame,
        };
        let frame = match frame.into_data() {
            Ok(mut data) => {
                while !data.is_empty() {
                    send.reserve_capacity(data.len());
                    let granted = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
                        Some(Ok(n)) => n,
                        _ => return, // the stream was reset or the connection closed
                    };
                    let chunk = data.split_to(granted.min(data.len()));
                    if send.send_data(chunk, false).is_err() {
                        return;
                    }
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(trailers) = frame.into_trailers() {
            let _ = send.send_trailers(trailers);
            return;
        }
    }
}

/// A response body from an upstream. When it ends cleanly its HTTP/1.1 connection goes back
/// to the pool; an HTTP/2 stream is counted until it is dropped.
pub(crate) struct UpstreamBody {
    inner: Inner,
    release: Release,
    ended: bool,
}

enum Inner {
    /// hyper's HTTP/1.1 client body.
    H1(Incoming),
    /// An `h2` stream: data (whose flow-control capacity is released as it is passed on),
    /// then trailers.
    H2 {
        recv: h2::RecvStream,
        /// The response's `Content-Length`, for the size hint.
        length: Option<u64>,
    },
}

enum Release {
    H1(Option<H1Conn>),
    H2(#[allow(dead_code, reason = "held for its Drop: the open-stream count")] H2Stream),
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::H1(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as BodyError),
            Inner::H2 { recv, .. } => poll_h2(recv, cx),
        };
        if let Poll::Ready(None) = polled {
            this.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::H1(body) => body.is_end_stream(),
            Inner::H2 { recv, .. } => recv.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::H1(body) => body.size_hint(),
            Inner::H2 { recv, length } => match (recv.is_end_stream(), length) {
                (true, _) => SizeHint::with_exact(0),
                (false, Some(n)) => SizeHint::with_exact(*n),
                (false, None) => SizeHint::default(),
            },
        }
    }
}

/// The next frame of an `h2` response body.
fn poll_h2(
    recv: &mut h2::RecvStream,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
    match recv.poll_data(cx) {
        Poll::Ready(Some(Ok(data))) => {
            // Passed on: let the peer send as much again.
            let _ = recv.flow_control().release_capacity(data.len());
            Poll::Ready(Some(Ok(Frame::data(data))))
        }
        Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
        Poll::Ready(None) => match recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Pending => Poll::Pending,
        },
        Poll::Pending => Poll::Pending,
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Release::H1(conn) = &mut self.release
            && let Some(conn) = conn.take()
            && (self.ended || self.is_end_stream())
        {
            super::release_h1(conn);
        }
    }
}

/// A new connection, before it is handed to a pool or a request.
pub(crate) enum Connected {
    /// HTTP/1.1 (cleartext, or TLS that negotiated `http/1.1`).
    H1(H1Conn),
    /// HTTP/2 (h2c, or TLS that negotiated `h2`).
    H2(Arc<H2Conn>),
}

/// How to connect.
pub(crate) struct ConnectOptions {
    /// Protocol of the cluster.
    pub(crate) protocol: UpstreamProtocol,
    /// HTTP/1.1 only and upgradable (a WebSocket tunnel): never pooled.
    pub(crate) upgrade: bool,
    /// The HTTP/1.1 pool slot the connection takes (and where it goes back after a clean
    /// response); dropped if the connection turns out to be HTTP/2.
    pub(crate) slot: Option<Slot>,
    /// Streams to assume before the peer's SETTINGS arrive (0: hyper's default of 100).
    pub(crate) h2_streams_hint: usize,
    /// How long sent data may stay unacknowledged before the peer has answered anything (the
    /// connect timeout; zero: the system's default).
    pub(crate) ack_timeout: Duration,
    /// The cluster's upstream TLS settings (`None`: TLS unverified, no client certificate).
    pub(crate) tls: Option<Arc<UpstreamTls>>,
}

/// Opens a TCP (and maybe TLS) connection to `address` and does the HTTP handshake.
pub(crate) async fn connect(
    address: SocketAddr,
    opts: ConnectOptions,
) -> Result<Connected, Failure> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(Failure::Connect)?;
    let _ = tcp.set_nodelay(true);
    let tcp = Tcp::new(tcp, opts.ack_timeout);
    let heard = tcp.heard.clone();
    let slot = if opts.upgrade { None } else { opts.slot };
    match opts.protocol {
        UpstreamProtocol::H2c if !opts.upgrade => {
            h2_handshake(tcp, opts.h2_streams_hint, heard).await
        }
        UpstreamProtocol::Http1 | UpstreamProtocol::H2c => {
            h1_handshake(TokioIo::new(tcp), opts.upgrade, slot, heard).await
        }
        UpstreamProtocol::Tls => {
            let (connector, name) = match &opts.tls {
                None => (
                    tls_connector(opts.upgrade),
                    rustls::pki_types::ServerName::IpAddress(address.ip().into()),
                ),
                Some(tls) => (
                    cluster_connector(tls, opts.upgrade).map_err(Failure::Connect)?,
                    tls.hostname.clone(),
                ),
            };
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(Failure::Connect)?;
            if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                h2_handshake(tls, opts.h2_streams_hint, heard).await
            } else {
                h1_handshake(TokioIo::new(tls), opts.upgrade, slot, heard).await
            }
        }
    }
}

/// An upstream TCP stream that carries `TCP_USER_TIMEOUT` until the peer's first byte (see
/// the module docs).
struct Tcp {
    stream: TcpStream,
    /// Set on the first byte read; shared with the connection, which reads it to classify
    /// its failures.
    heard: Arc<AtomicBool>,
}

impl Tcp {
    fn new(stream: TcpStream, ack_timeout: Duration) -> Self {
        if !ack_timeout.is_zero() {
            set_user_timeout(&stream, Some(ack_timeout));
        }
        Tcp {
            stream,
            heard: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// `TCP_USER_TIMEOUT` where the platform has it (Linux, Android); elsewhere new
/// connections rely on the request timeout alone.
fn set_user_timeout(stream: &TcpStream, timeout: Option<Duration>) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_user_timeout(timeout) {
        tracing::debug!(%error, "TCP_USER_TIMEOUT not set");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (stream, timeout);
}

impl tokio::io::AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before && !this.heard.load(Ordering::Relaxed) {
            // The peer is there and answering: from now on a stall is the request timeout's
            // business, not the connect timeout's.
            this.heard.store(true, Ordering::Relaxed);
            set_user_timeout(&this.stream, None);
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

async fn h1_handshake<T>(
    io: T,
    upgrade: bool,
    slot: Option<Slot>,
    heard: Arc<AtomicBool>,
) -> Result<Connected, Failure>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| Failure::Connect(std::io::Error::other(e)))?;
    if upgrade {
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, "upstream upgradable connection ended");
            }
        });
    } else {
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, "upstream h1 connection ended");
            }
        });
    }
    Ok(Connected::H1(H1Conn {
        sender,
        slot,
        heard,
    }))
}

async fn h2_handshake<T>(io: T, hint: usize, heard: Arc<AtomicBool>) -> Result<Connected, Failure>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Flow-control windows as hyper's client had them (2 MiB per stream, 5 MiB per
    // connection), so a stream is not held back by a slow reader elsewhere.
    let (sender, conn) = h2::client::Builder::new()
        .initial_max_send_streams(if hint == 0 { 100 } else { hint })
        .max_header_list_size(UPSTREAM_MAX_HEADER_LIST)
        .initial_window_size(2 * 1024 * 1024)
        .initial_connection_window_size(5 * 1024 * 1024)
        .max_send_buffer_size(1024 * 1024)
        .enable_push(false)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| Failure::Connect(std::io::Error::other(e)))?;
    let closed = Arc::new(AtomicBool::new(false));
    let ended = closed.clone();
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, "upstream h2 connection ended");
        }
        ended.store(true, Ordering::Relaxed);
    });
    Ok(Connected::H2(Arc::new(H2Conn {
        sender,
        streams: AtomicUsize::new(0),
        last_used: AtomicU64::new(now_ms()),
        closed,
        heard,
    })))
}

async fn with_timeout<F: Future>(timeout: Duration, fut: F) -> Option<F::Output> {
    if timeout.is_zero() {
        Some(fut.await)
    } else {
        tokio::time::timeout(timeout, fut).await.ok()
    }
}

/// Milliseconds since the first call: a cheap, monotonic timestamp for atomics.
pub(crate) fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

pub(super) fn tls_connector(http1_only: bool) -> tokio_rustls::TlsConnector {
    static BOTH: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    static H1: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let cell = if http1_only { &H1 } else { &BOTH };
    let config = cell.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("invariant: ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
            .with_no_client_auth();
        cfg.alpn_protocols = if http1_only {
            vec![b"http/1.1".to_vec()]
        } else {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        };
        Arc::new(cfg)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}
/// The connector of a cluster with TLS settings: its configurations are built on the first
/// connection and cached in the snapshot's [`UpstreamTls`] (so once per snapshot, not per
/// request or connection).
pub(super) fn cluster_connector(
    tls: &UpstreamTls,
    http1_only: bool,
) -> Result<tokio_rustls::TlsConnector, std::io::Error> {
    let configs = tls
        .configs
        .get_or_init(|| cluster_configs(tls).map_err(|e| e.to_string()));
    match configs {
        Ok(c) => Ok(tokio_rustls::TlsConnector::from(if http1_only {
            c.http1.clone()
        } else {
            c.both.clone()
        })),
        Err(e) => Err(std::io::Error::other(format!(
            "upstream TLS settings of Secret {} unusable: {e}",
            tls.secret
        ))),
    }
}

/// The rustls configurations of `tls`: a WebPKI verifier over its CAs (or, unverified,
/// [`AnyServerCert`]), its client certificate, SNI on or off.
pub(crate) fn cluster_configs(tls: &UpstreamTls) -> Result<UpstreamTlsConfigs, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if tls.verify {
        let mut roots = rustls::RootCertStore::empty();
        for cert in &tls.roots {
            roots.add(cert.clone())?;
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?
    } else {
        Arc::new(AnyServerCert(provider.clone()))
    };
    let build = |alpn: Vec<Vec<u8>>| -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
        let mut cfg = match &tls.client {
            Some((chain, key)) => builder.with_client_auth_cert(chain.clone(), key.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        cfg.enable_sni = tls.sni;
        cfg.alpn_protocols = alpn;
        Ok(Arc::new(cfg))
    };
    Ok(UpstreamTlsConfigs {
        both: build(vec![b"h2".to_vec(), b"http/1.1".to_vec()])?,
        http1: build(vec![b"http/1.1".to_vec()])?,
    })
}

/// Accepts any upstream certificate (see the module docs) but checks handshake signatures.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
