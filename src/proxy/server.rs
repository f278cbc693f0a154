//! Listeners and downstream connections.
//!
//! The listeners are the snapshot's: on every publish the server diffs the snapshot's
//! listeners (name, address, protocol) against the sockets it serves. A listener that is new
//! (or whose address or protocol changed) is bound and served at once; one that is gone stops
//! accepting, and its connections are asked to finish (GOAWAY on HTTP/2; HTTP/1 closes once
//! its current response is sent, idle ones at once) while every other listener carries on. A
//! listener that cannot be bound is logged and retried on the next publish and every few
//! seconds. Sockets bound before `serve` ([`super::BoundListener`]) are served from the start
//! and kept when the snapshot has a listener with their name, address and protocol.
//!
//! Each accepted connection speaks HTTP/1.1 and HTTP/2 (prior knowledge on cleartext, ALPN on
//! TLS) and routes with its listener's current view. Until its first request head arrives it
//! is half-received (`admission`: the header read deadline, the per-listener cap); HTTP/1 is
//! read through the framing guard (`framing`). A TLS connection that negotiated ALPN `h2` is
//! HTTP/2 only (RFC 9113 §3.3): an invalid preface is a connection error, never an HTTP/1.1
//! answer. Downstream HTTP/2 connections get keepalive PINGs, are closed after an idle
//! timeout without open streams, and are dropped when they turn out to be a reset flood
//! (`h2_conn`).
//!
//! Shutdown: stop accepting everywhere, ask every connection to finish, wait for them (and
//! for tunnels) up to `ProxyConfig::drain_timeout`, return.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::admission::Admission;
use super::error::ProxyError;
use super::framing::{Findings, FramingGuard};
use super::h2_conn::{Sniff, Tracked};
use super::metrics::{ListenerStats, Rejection};
use super::pipeline::{self, ConnInfo};
use super::{BoundListener, Inner, ListenerSlot, tls};
use crate::snapshot::ListenerProtocol;

type Builder = auto::Builder<TokioExecutor>;

/// How often listeners that failed to bind are retried (besides every publish).
const REBIND_INTERVAL: Duration = Duration::from_secs(5);

/// One listener being served.
struct Served {
    slot: Arc<ListenerSlot>,
    address: SocketAddr,
    protocol: ListenerProtocol,
    local: SocketAddr,
    /// Dropping it stops accepting (the task owns the socket).
    accept: JoinHandle<()>,
    /// Set to `true` to ask the listener's connections to finish.
    drain: watch::Sender<bool>,
}

impl Served {
    fn close(self) {
        self.accept.abort();
        let _ = self.drain.send(true);
    }
}

/// State shared by every accept loop.
struct Shared {
    inner: Arc<Inner>,
    /// HTTP/1.1, and HTTP/2 with prior knowledge (cleartext, TLS without ALPN `h2`).
    builder: Builder,
    /// HTTP/2 only: TLS connections that negotiated ALPN `h2`.
    h2: http2::Builder<TokioExecutor>,
    /// Every connection (and tunnel) task holds a clone; `recv` returns `None` once all ended.
    alive: mpsc::Sender<()>,
}

pub(crate) async fn serve(
    inner: Arc<Inner>,
    prebound: Vec<BoundListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError> {
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let shared = Arc::new(Shared {
        builder: builder(&inner),
        h2: h2_builder(&inner),
        inner: inner.clone(),
        alive: alive_tx,
    });
    let mut served: HashMap<String, Served> = HashMap::new();
    for b in prebound {
        let address = b.socket.local_addr().map_err(ProxyError::Listener)?;
        let slot = inner.slot(&b.name);
        let s = start(&shared, slot, b.socket, address, b.protocol)?;
        served.insert(b.name, s);
    }
    let mut changes = inner.listeners_changed.subscribe();
    changes.mark_changed();
    let mut health = super::upstream::health::subscribe();
    let mut sweep = tokio::time::interval(REBIND_INTERVAL);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                reconcile(&shared, &mut served).await?;
            }
            _ = health.changed() => {
                inner.publish_lock().registry.refresh_health();
                continue;
            }
            _ = sweep.tick() => {
                inner.publish_lock().registry.sweep();
                reconcile(&shared, &mut served).await?;
            }
        }
        record_bound(&inner, &served);
    }
    // Stop accepting everywhere; connections are asked to finish.
    for (_, s) in served.drain() {
        s.close();
    }
    record_bound(&inner, &served);
    drop(shared);
    let drained = tokio::time::timeout(inner.config.drain_timeout, alive_rx.recv()).await;
    if drained.is_err() {
        tracing::warn!(
            timeout = ?inner.config.drain_timeout,
            "drain timeout: closing connections with requests still in flight"
        );
    }
    Ok(())
}

/// Brings the served listeners in line with the current snapshot.
async fn reconcile(
    shared: &Arc<Shared>,
    served: &mut HashMap<String, Served>,
) -> Result<(), ProxyError> {
    // Until the first snapshot is published there is nothing to diff against: the pre-bound
    // sockets serve (404 for everything) and must not be closed.
    if shared.inner.generation.load(Ordering::Relaxed) == 0 {
        return Ok(());
    }
    let snapshot = shared.inner.runtime.load().snapshot.clone();
    let wanted: HashMap<&str, _> = snapshot
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l))
        .collect();
    // Removed, or changed address/protocol: close (a changed one is bound again below).
    let gone: Vec<String> = served
        .iter()
        .filter(|(name, s)| {
            wanted
                .get(name.as_str())
                .is_none_or(|l| l.address != s.address || l.protocol != s.protocol)
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in gone {
        if let Some(s) = served.remove(&name) {
            tracing::info!(listener = %name, address = %s.local, "listener removed: draining its connections");
            shared.inner.forget_slot(&s.slot);
            s.close();
        }
    }
    for l in &snapshot.listeners {
        if served.contains_key(&l.name) {
            continue;
        }
        match TcpListener::bind(l.address).await {
            Ok(socket) => {
                let slot = shared.inner.slot(&l.name);
                let s = start(shared, slot, socket, l.address, l.protocol)?;
                tracing::info!(listener = %l.name, address = %s.local, "listening");
                served.insert(l.name.clone(), s);
            }
            Err(error) => {
                tracing::error!(%error, listener = %l.name, address = %l.address, "cannot bind listener; retrying");
            }
        }
    }
    Ok(())
}

fn record_bound(inner: &Inner, served: &HashMap<String, Served>) {
    let mut bound: Vec<(String, SocketAddr)> = served
        .iter()
        .map(|(name, s)| (name.clone(), s.local))
        .collect();
    bound.sort();
    *inner.bound.lock().unwrap_or_else(|p| p.into_inner()) = bound;
}

/// The listeners served now, with their local addresses.
pub(crate) fn bound_addresses(inner: &Inner) -> Vec<(String, SocketAddr)> {
    inner
        .bound
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Starts serving `socket` as the listener of `slot`.
fn start(
    shared: &Arc<Shared>,
    slot: Arc<ListenerSlot>,
    socket: TcpListener,
    address: SocketAddr,
    protocol: ListenerProtocol,
) -> Result<Served, ProxyError> {
    let local = socket.local_addr().map_err(ProxyError::Listener)?;
    let tls = match protocol {
        ListenerProtocol::Https => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(
            slot.clone(),
        )?)),
        ListenerProtocol::Http => None,
    };
    let (drain, drain_rx) = watch::channel(false);
    let slot_for_served = slot.clone();
    let accept = tokio::spawn(accept_loop(shared.clone(), slot, socket, tls, drain_rx));
    Ok(Served {
        slot: slot_for_served,
        address,
        protocol,
        local,
        accept,
        drain,
    })
}

fn builder(inner: &Inner) -> Builder {
    let cfg = &inner.config;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(
            (!cfg.header_read_timeout.is_zero()).then_some(cfg.header_read_timeout),
        )
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .max_headers(cfg.max_headers);
    h2_settings!(b.http2(), cfg);
    b
}

/// The HTTP/2 settings of both builders (hyper-util's auto builder and hyper's HTTP/2 one
/// have the same methods but no common trait).
macro_rules! h2_settings {
    ($b:expr, $cfg:expr) => {
        $b.timer(TokioTimer::new())
            .enable_connect_protocol()
            .max_header_list_size(u32::try_from($cfg.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval($cfg.h2_keepalive_interval)
            .keep_alive_timeout($cfg.h2_keepalive_timeout)
    };
}
use h2_settings;

fn h2_builder(inner: &Inner) -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    h2_settings!(b, &inner.config);
    b
}

/// Which protocols a connection may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnMode {
    /// HTTP/1.1, or HTTP/2 when the client starts with the preface.
    Auto,
    /// HTTP/2 only (ALPN `h2`).
    Http2,
}

async fn accept_loop(
    shared: Arc<Shared>,
    slot: Arc<ListenerSlot>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    drain: watch::Receiver<bool>,
) {
    let cfg = &shared.inner.config;
    let admission = Admission::new(slot.clone(), cfg.max_half_received, cfg.header_read_timeout);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(error) => {
                // Out of file descriptors and the like: back off briefly, keep serving.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let local_port = tcp.local_addr().map(|a| a.port()).unwrap_or_default();
        // Admitted here, in accept order, so that at the cap the oldest is evicted.
        let (pending, mut watch) = admission.admit();
        let shared = shared.clone();
        let slot = slot.clone();
        let drain = drain.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            slot.stats.active.fetch_add(1, Ordering::Relaxed);
            slot.stats.total.fetch_add(1, Ordering::Relaxed);
            let _guard = ActiveGuard(&slot.stats);
            let findings = Arc::new(Findings::default());
            let conn = |tls: bool| ConnInfo {
                listener: slot.clone(),
                peer,
                peer_ip: http::HeaderValue::from_str(&peer.ip().to_string())
                    .expect("invariant: an IP address is a valid header value"),
                tls,
                local_port,
                framing: findings.clone(),
                requests: AtomicU64::new(0),
                pending: pending.clone(),
                streams: Arc::default(),
                alive: shared.alive.clone(),
                drain: drain.clone(),
            };
            let served = match tls {
                None => {
                    let io = FramingGuard::new(tcp, findings.clone());
                    watch
                        .serve(serve_conn(&shared, io, conn(false), drain, ConnMode::Auto))
                        .await
                }
                Some(acceptor) => {
                    let hs = watch
                        .before_http(tokio::time::timeout(
                            shared.inner.config.tls_handshake_timeout,
                            acceptor.accept(tcp),
                        ))
                        .await;
                    match hs {
                        Ok(Ok(Ok(stream))) => {
                            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                                watch
                                    .serve(serve_conn(
                                        &shared,
                                        stream,
                                        conn(true),
                                        drain,
                                        ConnMode::Http2,
                                    ))
                                    .await
                            } else {
                                let io = FramingGuard::new(stream, findings.clone());
                                watch
                                    .serve(serve_conn(
                                        &shared,
                                        io,
                                        conn(true),
                                        drain,
                                        ConnMode::Auto,
                                    ))
                                    .await
                            }
                        }
                        Ok(Ok(Err(error))) => {
                            tracing::debug!(%error, %peer, "TLS handshake failed");
                            Ok(())
                        }
                        Ok(Err(_)) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                        Err(reason) => Err(reason),
                    }
                }
            };
            if let Err(reason) = served {
                tracing::debug!(%peer, reason = reason.as_str(), "closed a half-received connection");
                slot.stats.rejected(reason);
            }
            if findings.cut() {
                slot.stats.rejected(Rejection::BadRequestLine);
            }
        });
    }
}

struct ActiveGuard<'a>(&'a ListenerStats);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection until it ends, its listener drains, it stays idle (HTTP/2), or it
/// turns out to be a reset flood.
async fn serve_conn<I>(
    shared: &Arc<Shared>,
    io: I,
    info: ConnInfo,
    drain: watch::Receiver<bool>,
    mode: ConnMode,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = info.peer;
    let streams = info.streams.clone();
    let info = Arc::new(info);
    let handler = shared.inner.clone();
    let opener = streams.clone();
    let service = service_fn(move |req| {
        let inner = handler.clone();
        let info = info.clone();
        // Open from here until the response body is done; dropped early when the client
        // resets the stream before the response.
        let stream = opener.open();
        async move {
            let resp = pipeline::handle(inner, info, req).await;
            Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, stream)))
        }
    });
    let idle = shared.inner.config.h2_idle_timeout;
    // The graceful close of an idle connection waits for the ACK of a PING: as long as a
    // keepalive PING may wait.
    let close_wait = shared.inner.config.h2_keepalive_timeout;
    match mode {
        ConnMode::Http2 => {
            streams.set_h2();
            let conn = shared.h2.serve_connection(TokioIo::new(io), service);
            drive!(conn, peer, drain, streams, idle, close_wait);
        }
        ConnMode::Auto => {
            let io = TokioIo::new(Sniff::new(io, streams.clone()));
            let conn = shared.builder.serve_connection_with_upgrades(io, service);
            drive!(conn, peer, drain, streams, idle, close_wait);
        }
    }
}

/// Runs a hyper connection (either kind: they share `graceful_shutdown` but no trait) until
/// it ends; a drain or the idle timeout shut it down gracefully (HTTP/2: GOAWAY, then the
/// open streams finish), a reset flood drops it.
macro_rules! drive {
    ($conn:expr, $peer:expr, $drain:expr, $streams:expr, $idle:expr, $close_wait:expr) => {{
        let peer = $peer;
        let mut drain = $drain;
        let conn = $conn;
        tokio::pin!(conn);
        let idle = async {
            if $idle.is_zero() {
                std::future::pending::<()>().await
            } else {
                $streams.idle($idle).await
            }
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(error) = res {
                    tracing::debug!(%error, %peer, "downstream connection error");
                }
            }
            _ = async { let _ = drain.wait_for(|d| *d).await; } => {
                conn.as_mut().graceful_shutdown();
                if let Err(error) = conn.await {
                    tracing::debug!(%error, %peer, "downstream connection error while draining");
                }
            }
            () = idle => {
                tracing::debug!(%peer, timeout = ?$idle, "closing idle HTTP/2 connection");
                conn.as_mut().graceful_shutdown();
                // GOAWAY, a PING, and the final GOAWAY once it is answered (RFC 9113 §6.8); a
                // peer that never answers is dropped.
                match tokio::time::timeout($close_wait, conn).await {
                    Ok(Err(error)) => {
                        tracing::debug!(%error, %peer, "downstream connection error while closing");
                    }
                    Ok(Ok(())) => {}
                    Err(_) => tracing::debug!(%peer, "idle HTTP/2 connection did not answer GOAWAY's PING"),
                }
            }
            () = $streams.flood() => {
                // Dropped without a GOAWAY: hyper cannot send ENHANCE_YOUR_CALM itself.
                tracing::warn!(%peer, "closing downstream connection: most of its streams were reset by the client (rapid reset)");
            }
        }
    }};
}
use drive;
