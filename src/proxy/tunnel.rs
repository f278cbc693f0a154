//! Upgraded connections: which upgrades weir tunnels ([`classify_upgrade`],
//! [`classify_extended_connect`]) and the byte tunnel that carries them ([`run`]).
//!
//! Only WebSocket is tunnelled (HTTP/1.1 `Upgrade: websocket`, and HTTP/2 extended CONNECT
//! with `:protocol websocket`, RFC 8441). Any other upgrade would hand the rest of the
//! connection to the backend, past routing and filters: `h2c` is the known case, since a
//! lenient backend then serves any request on that connection ("h2c smuggling").
//!
//! A tunnel copies bytes both ways until both directions have ended, half-closing as it goes;
//! it closes both sides when no byte moved either way for the idle timeout; at shutdown it is
//! drained, not cut: it keeps copying and closes at its first quiet moment ([`DRAIN_QUIET`]),
//! while the caller bounds the whole drain.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, header};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// What to do with a request's upgrade headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpgradeDecision {
    /// Not an upgrade request: no `Upgrade` header, or `Connection` does not list `upgrade`
    /// (RFC 9110 §7.8: then `Upgrade` is ignored). Forward as a normal request; `Upgrade` is
    /// hop-by-hop and must be stripped.
    NotRequested,
    /// `Upgrade: websocket` (case-insensitive) and nothing else: tunnel.
    Tunnel,
    /// `Upgrade: h2c` and nothing else, which `curl --http2 http://…` and other clients send
    /// hoping to switch to cleartext HTTP/2 (RFC 7540 §3.2, dropped by RFC 9113). Ignore the
    /// upgrade, as a server may (RFC 9110 §7.8) and as Envoy does: forward as a normal
    /// HTTP/1.1 request with `Upgrade`, `HTTP2-Settings` and the `Connection` tokens removed.
    IgnoreH2c,
    /// Any other upgrade (an unknown protocol, or a list such as `websocket, h2c`): answer
    /// locally, never forward.
    Refuse,
}

/// Decides what to do with an HTTP/1.1 request's `Upgrade` and `Connection` headers (every
/// field line of each; list elements are comma-separated, empty ones ignored).
pub(crate) fn classify_upgrade(headers: &HeaderMap) -> UpgradeDecision {
    let mut upgrade = headers.get_all(header::UPGRADE).iter().peekable();
    if upgrade.peek().is_none() {
        return UpgradeDecision::NotRequested;
    }
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return UpgradeDecision::NotRequested;
    }
    // The single protocol asked for, or `None` when there are several (or none).
    let mut only: Option<&str> = None;
    let mut count = 0;
    for value in upgrade {
        let Ok(value) = value.to_str() else {
            return UpgradeDecision::Refuse;
        };
        for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            count += 1;
            only = Some(token);
        }
    }
    match only {
        Some(token) if count == 1 && token.eq_ignore_ascii_case("websocket") => {
            UpgradeDecision::Tunnel
        }
        Some(token) if count == 1 && token.eq_ignore_ascii_case("h2c") => {
            UpgradeDecision::IgnoreH2c
        }
        _ => UpgradeDecision::Refuse,
    }
}

/// Decides what to do with an HTTP/2 extended CONNECT (RFC 8441) by its `:protocol`:
/// [`UpgradeDecision::Tunnel`] for `websocket`, [`UpgradeDecision::Refuse`] otherwise.
pub(crate) fn classify_extended_connect(protocol: &str) -> UpgradeDecision {
    if protocol.eq_ignore_ascii_case("websocket") {
        UpgradeDecision::Tunnel
    } else {
        UpgradeDecision::Refuse
    }
}

/// After shutdown starts, a tunnel closes once no byte has moved for this long (or for its
/// idle timeout, if shorter): long enough not to cut a message in flight, short enough to end
/// well within the drain timeout.
pub(crate) const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// Why a tunnel ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TunnelEnd {
    /// Both directions reached end of stream.
    Closed,
    /// No byte moved either way for the idle timeout.
    Idle,
    /// Shutdown had started and the tunnel went quiet for [`DRAIN_QUIET`].
    Drained,
    /// A read, write or shutdown failed on either side.
    Error(io::ErrorKind),
}

impl TunnelEnd {
    /// A stable label for the access log and metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TunnelEnd::Closed => "closed",
            TunnelEnd::Idle => "idle",
            TunnelEnd::Drained => "drained",
            TunnelEnd::Error(_) => "error",
        }
    }
}

/// What a tunnel did, for the access log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TunnelSummary {
    /// Bytes written to the upstream (sent by the client).
    pub(crate) to_upstream: u64,
    /// Bytes written to the client (sent by the upstream).
    pub(crate) to_downstream: u64,
    /// Why it ended.
    pub(crate) end: TunnelEnd,
}

/// Copies bytes between the client's connection `down` and the upstream's `up` until the
/// tunnel ends, then closes both (by dropping them).
///
/// End of stream on one side shuts down the write half of the other, and the other direction
/// keeps going; the tunnel is [`TunnelEnd::Closed`] when both have ended. It is
/// [`TunnelEnd::Idle`] when no byte moved either way for `idle_timeout` (zero: no idle
/// timeout). Once `drain` resolves (shutdown started), it keeps copying and ends
/// [`TunnelEnd::Drained`] at the first [`DRAIN_QUIET`] without traffic; an active tunnel is
/// never cut here, the caller bounds the drain.
pub(crate) async fn run<D, U>(
    mut down: D,
    mut up: U,
    idle_timeout: Duration,
    drain: impl Future<Output = ()>,
) -> TunnelSummary
where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let end = {
        let mut down = Metered {
            io: &mut down,
            activity: &activity,
            written: &activity.to_downstream,
        };
        let mut up = Metered {
            io: &mut up,
            activity: &activity,
            written: &activity.to_upstream,
        };
        // tokio's copy does the half-closing: on EOF from one side it shuts down the other's
        // write half and goes on with the other direction until that ends too.
        let copy = tokio::io::copy_bidirectional(&mut down, &mut up);
        tokio::select! {
            // A tunnel that finished in the same poll as the watchdog fired is Closed.
            biased;
            result = copy => match result {
                Ok(_) => TunnelEnd::Closed,
                Err(error) => TunnelEnd::Error(error.kind()),
            },
            end = watchdog(&activity, idle_timeout, drain) => end,
        }
    };
    TunnelSummary {
        to_upstream: activity.to_upstream.load(Ordering::Relaxed),
        to_downstream: activity.to_downstream.load(Ordering::Relaxed),
        end,
    }
}

/// Resolves when the tunnel has been quiet for too long: `idle_timeout` (if not zero), or,
/// once `drain` resolved, the shorter of it and [`DRAIN_QUIET`]. It sleeps until the deadline
/// computed from the last activity and re-arms if traffic moved meanwhile, so it wakes once
/// per quiet period, not once per byte.
async fn watchdog(
    activity: &Activity,
    idle_timeout: Duration,
    drain: impl Future<Output = ()>,
) -> TunnelEnd {
    let mut drain = std::pin::pin!(drain);
    let mut draining = false;
    loop {
        let quiet = match (draining, idle_timeout.is_zero()) {
            (false, true) => None,
            (false, false) => Some(idle_timeout),
            (true, true) => Some(DRAIN_QUIET),
            (true, false) => Some(idle_timeout.min(DRAIN_QUIET)),
        };
        let deadline = quiet.map(|q| activity.last() + q);
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut drain, if !draining => draining = true,
            () = sleep => {
                if let Some(q) = quiet
                    && activity.last() + q <= Instant::now()
                {
                    return if draining { TunnelEnd::Drained } else { TunnelEnd::Idle };
                }
            }
        }
    }
}

/// When bytes last moved and how many, shared by both directions and the watchdog. They all
/// run in one task, but atomics (relaxed) rather than `Cell`s keep the tunnel future `Send`.
struct Activity {
    start: Instant,
    /// Nanoseconds from `start` to the last read or write that moved a byte.
    last: AtomicU64,
    to_upstream: AtomicU64,
    to_downstream: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
            to_upstream: AtomicU64::new(0),
            to_downstream: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(nanos, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }
}

/// One side of the tunnel: records activity on every read or write that moves a byte and
/// counts the bytes written to it.
struct Metered<'a, T> {
    io: &'a mut T,
    activity: &'a Activity,
    written: &'a AtomicU64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut *this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut *this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll
            && n > 0
        {
            this.activity.touch();
            this.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
    use tokio::task::JoinHandle;

    const IDLE: Duration = Duration::from_secs(60);

    fn headers(upgrade: &[&str], connection: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in upgrade {
            h.append(header::UPGRADE, HeaderValue::from_str(v).expect("valid"));
        }
        for v in connection {
            h.append(header::CONNECTION, HeaderValue::from_str(v).expect("valid"));
        }
        h
    }

    #[test]
    fn upgrade_allow_list() {
        use UpgradeDecision::*;
        let cases: &[(&[&str], &[&str], UpgradeDecision)] = &[
            (&["websocket"], &["Upgrade"], Tunnel),
            (&["WebSocket"], &["keep-alive, upgrade"], Tunnel),
            (&["websocket, "], &["upgrade"], Tunnel),
            (&["websocket"], &["keep-alive", "Upgrade"], Tunnel),
            (&["h2c"], &["Upgrade, HTTP2-Settings"], IgnoreH2c),
            (&["H2C"], &["upgrade"], IgnoreH2c),
            (&["websocket, h2c"], &["upgrade"], Refuse),
            (&["websocket", "h2c"], &["upgrade"], Refuse),
            (&["h2c, websocket"], &["upgrade"], Refuse),
            (&["foo"], &["upgrade"], Refuse),
            (&["websocket/13"], &["upgrade"], Refuse),
            (&[""], &["upgrade"], Refuse),
            // Without `Connection: upgrade` the Upgrade header means nothing.
            (&["websocket"], &[], NotRequested),
            (&["h2c"], &["keep-alive"], NotRequested),
            (&["foo"], &["upgraded"], NotRequested),
            (&[], &["upgrade"], NotRequested),
            (&[], &[], NotRequested),
        ];
        for (upgrade, connection, expected) in cases {
            assert_eq!(
                classify_upgrade(&headers(upgrade, connection)),
                *expected,
                "Upgrade {upgrade:?}, Connection {connection:?}"
            );
        }
        let mut opaque = headers(&[], &["upgrade"]);
        opaque.insert(
            header::UPGRADE,
            HeaderValue::from_bytes(b"web\xffsocket").expect("obs-text is a valid value"),
        );
        assert_eq!(classify_upgrade(&opaque), Refuse);
    }

    #[test]
    fn extended_connect_allow_list() {
        assert_eq!(
            classify_extended_connect("websocket"),
            UpgradeDecision::Tunnel
        );
        assert_eq!(
            classify_extended_connect("WebSocket"),
            UpgradeDecision::Tunnel
        );
        assert_eq!(
            classify_extended_connect("connect-udp"),
            UpgradeDecision::Refuse
        );
        assert_eq!(classify_extended_connect(""), UpgradeDecision::Refuse);
    }

    /// A tunnel between two duplex pipes; returns the client's and the upstream's ends.
    fn start(
        idle: Duration,
        drain: impl Future<Output = ()> + Send + 'static,
    ) -> (DuplexStream, DuplexStream, JoinHandle<TunnelSummary>) {
        let (client, down) = duplex(1024);
        let (up, upstream) = duplex(1024);
        let task = tokio::spawn(run(down, up, idle, drain));
        (client, upstream, task)
    }

    async fn read_exact(io: &mut DuplexStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        io.read_exact(&mut buf).await.expect("read");
        buf
    }

    async fn assert_eof(io: &mut DuplexStream) {
        let mut buf = [0; 1];
        assert_eq!(io.read(&mut buf).await.expect("read"), 0, "end of stream");
    }

    #[tokio::test(start_paused = true)]
    async fn copies_both_ways_and_closes_when_both_end() {
        let (mut client, mut upstream, task) = start(IDLE, std::future::pending());
        client.write_all(b"hello").await.expect("write");
        assert_eq!(read_exact(&mut upstream, 5).await, b"hello");
        upstream.write_all(b"world!").await.expect("write");
        assert_eq!(read_exact(&mut client, 6).await, b"world!");
        client.shutdown().await.expect("shutdown");
        upstream.shutdown().await.expect("shutdown");
        let summary = task.await.expect("join");
        assert_eq!(
            summary,
            TunnelSummary {
                to_upstream: 5,
                to_downstream: 6,
                end: TunnelEnd::Closed
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn half_close_propagates_and_the_other_direction_goes_on() {
        let (mut client, mut upstream, task) = start(IDLE, std::future::pending());
        client.write_all(b"request").await.expect("write");
        client.shutdown().await.expect("shutdown");
        assert_eq!(read_exact(&mut upstream, 7).await, b"request");
        // The client's EOF reaches the upstream as EOF…
        assert_eof(&mut upstream).await;
        // …and the upstream can still answer over the half that is open.
        upstream.write_all(b"late answer").await.expect("write");
        assert_eq!(read_exact(&mut client, 11).await, b"late answer");
        assert!(!task.is_finished(), "one direction is still open");
        upstream.shutdown().await.expect("shutdown");
        assert_eof(&mut client).await;
        let summary = task.await.expect("join");
        assert_eq!(summary.end, TunnelEnd::Closed);
        assert_eq!((summary.to_upstream, summary.to_downstream), (7, 11));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_closes_both_sides() {
        let started = Instant::now();
        let (mut client, mut upstream, task) = start(IDLE, std::future::pending());
        let summary = task.await.expect("join");
        assert_eq!(summary.end, TunnelEnd::Idle);
        assert!(started.elapsed() >= IDLE, "not before the idle timeout");
        assert_eof(&mut client).await;
        assert_eof(&mut upstream).await;
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_in_either_direction_keeps_the_tunnel_open() {
        let started = Instant::now();
        let (mut client, mut upstream, task) = start(IDLE, std::future::pending());
        // Ten rounds, each 40 s apart: 400 s in all, far beyond the 60 s idle timeout, but
        // never 60 s without a byte. Odd rounds go upstream → client.
        for round in 0..10u8 {
            tokio::time::sleep(Duration::from_secs(40)).await;
            let (from, to) = if round % 2 == 0 {
                (&mut client, &mut upstream)
            } else {
                (&mut upstream, &mut client)
            };
            from.write_all(&[round]).await.expect("write");
            assert_eq!(read_exact(to, 1).await, [round], "round {round}");
        }
        let quiet_from = Instant::now();
        let summary = task.await.expect("join");
        assert_eq!(summary.end, TunnelEnd::Idle);
        assert_eq!((summary.to_upstream, summary.to_downstream), (5, 5));
        assert!(quiet_from.duration_since(started) >= Duration::from_secs(400));
        assert!(
            quiet_from.elapsed() >= IDLE,
            "idle counts from the last byte"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_idle_timeout_means_none() {
        let (mut client, mut upstream, task) = start(Duration::ZERO, std::future::pending());
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
        client.write_all(b"still here").await.expect("write");
        assert_eq!(read_exact(&mut upstream, 10).await, b"still here");
        assert!(!task.is_finished());
        drop((client, upstream));
        assert_eq!(task.await.expect("join").end, TunnelEnd::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_lets_an_active_tunnel_finish() {
        let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
        let (mut client, mut upstream, task) = start(IDLE, async move {
            let _ = drain_rx.await;
        });
        let _ = drain_tx.send(());
        // Traffic every half DRAIN_QUIET after shutdown started: nothing is cut.
        for round in 0..20u8 {
            tokio::time::sleep(DRAIN_QUIET / 2).await;
            client.write_all(&[round]).await.expect("write");
            assert_eq!(read_exact(&mut upstream, 1).await, [round], "round {round}");
        }
        // The exchange ends normally: the tunnel reports Closed, not Drained.
        client.shutdown().await.expect("shutdown");
        upstream.shutdown().await.expect("shutdown");
        let summary = task.await.expect("join");
        assert_eq!(summary.end, TunnelEnd::Closed);
        assert_eq!(summary.to_upstream, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_closes_at_the_first_quiet_moment() {
        let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
        let (mut client, mut upstream, task) = start(IDLE, async move {
            let _ = drain_rx.await;
        });
        client.write_all(b"before").await.expect("write");
        assert_eq!(read_exact(&mut upstream, 6).await, b"before");
        let _ = drain_tx.send(());
        for _ in 0..3 {
            tokio::time::sleep(DRAIN_QUIET / 2).await;
            upstream.write_all(b"x").await.expect("write");
            assert_eq!(read_exact(&mut client, 1).await, b"x");
        }
        let quiet_from = Instant::now();
        let summary = task.await.expect("join");
        assert_eq!(summary.end, TunnelEnd::Drained);
        assert_eq!((summary.to_upstream, summary.to_downstream), (6, 3));
        let waited = quiet_from.elapsed();
        assert!(
            waited >= DRAIN_QUIET && waited < IDLE,
            "closed after {waited:?}"
        );
        assert_eof(&mut client).await;
        assert_eof(&mut upstream).await;
    }

    /// An upstream whose reads fail.
    struct Broken;

    impl AsyncRead for Broken {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        }
    }

    impl AsyncWrite for Broken {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_io_error_ends_the_tunnel_and_closes_the_other_side() {
        let (mut client, down) = duplex(64);
        let task = tokio::spawn(run(down, Broken, IDLE, std::future::pending()));
        let summary = task.await.expect("join");
        assert_eq!(
            summary.end,
            TunnelEnd::Error(io::ErrorKind::ConnectionReset)
        );
        assert_eof(&mut client).await;
    }
}
