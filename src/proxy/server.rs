//! Listeners and downstream connections: accept, TLS, HTTP/1.1 and HTTP/2 (prior knowledge
//! on the cleartext port, ALPN on TLS) on one socket each, and graceful shutdown.
//!
//! Shutdown: stop accepting, ask every connection to finish (`GOAWAY` on HTTP/2; HTTP/1
//! closes once its current request is answered, idle ones at once), wait for them up to
//! `ProxyConfig::drain_timeout`, return.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::error::ProxyError;
use super::forward::{self, ConnInfo};
use super::framing::{Ambiguous, FramingGuard};
use super::metrics::ListenerStats;
use super::{Inner, Listeners, tls};

type Builder = auto::Builder<TokioExecutor>;

pub(crate) async fn serve(
    inner: Arc<Inner>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError> {
    let builder = Arc::new(builder(&inner));
    let tls = match &listeners.https {
        Some(_) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(
            inner.clone(),
        )?)),
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone; `recv` returns `None` once all have ended.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);

    let accept_http = accept_loop(
        listeners.http,
        None,
        inner.clone(),
        builder.clone(),
        stop_rx.clone(),
        alive_tx.clone(),
    );
    let accept_https = accept_loop(
        listeners.https,
        tls,
        inner.clone(),
        builder,
        stop_rx,
        alive_tx.clone(),
    );
    drop(alive_tx);
    tokio::select! {
        _ = shutdown => {}
        _ = async { tokio::join!(accept_http, accept_https) } => {}
        _ = sweep_idle(&inner) => {}
    }
    // The accept loops (and listeners) are dropped here: new connections are refused.
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(inner.config.drain_timeout, alive_rx.recv()).await;
    if drained.is_err() {
        tracing::warn!(
            timeout = ?inner.config.drain_timeout,
            "drain timeout: closing connections with requests still in flight"
        );
    }
    Ok(())
}

/// Closes idle upstream connections periodically (checkout also skips expired ones).
async fn sweep_idle(inner: &Inner) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        inner
            .publish
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .registry
            .sweep();
    }
}

fn builder(inner: &Inner) -> Builder {
    let cfg = &inner.config;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .max_headers(cfg.max_headers);
    b.http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX));
    b
}

async fn accept_loop(
    listener: Option<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    inner: Arc<Inner>,
    builder: Arc<Builder>,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let Some(listener) = listener else { return };
    let stats_index = usize::from(tls.is_some());
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(error) => {
                // Out of file descriptors and the like: back off briefly, keep serving.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let inner = inner.clone();
        let builder = builder.clone();
        let stop = stop.clone();
        let alive = alive.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let stats = &inner.listener_stats[stats_index];
            stats.active.fetch_add(1, Ordering::Relaxed);
            stats.total.fetch_add(1, Ordering::Relaxed);
            let _guard = ActiveGuard(stats);
            match tls {
                None => {
                    let flag = Arc::new(Ambiguous::default());
                    let io = FramingGuard::new(tcp, flag.clone());
                    serve_conn(&inner, &builder, io, peer, false, flag, stop).await
                }
                Some(acceptor) => {
                    let hs = tokio::time::timeout(
                        inner.config.tls_handshake_timeout,
                        acceptor.accept(tcp),
                    )
                    .await;
                    match hs {
                        Ok(Ok(stream)) => {
                            let flag = Arc::new(Ambiguous::default());
                            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                                serve_conn(&inner, &builder, stream, peer, true, flag, stop).await
                            } else {
                                let io = FramingGuard::new(stream, flag.clone());
                                serve_conn(&inner, &builder, io, peer, true, flag, stop).await
                            }
                        }
                        Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(alive);
        });
    }
}

struct ActiveGuard<'a>(&'a ListenerStats);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_conn<I>(
    inner: &Arc<Inner>,
    builder: &Builder,
    io: I,
    peer: SocketAddr,
    tls: bool,
    ambiguous: Arc<Ambiguous>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let info = Arc::new(ConnInfo {
        listener: if tls { "https" } else { "http" },
        peer,
        peer_ip: http::HeaderValue::from_str(&peer.ip().to_string())
            .expect("invariant: an IP address is a valid header value"),
        tls,
        ambiguous,
    });
    let handler = inner.clone();
    let service = service_fn(move |req| {
        let inner = handler.clone();
        let info = info.clone();
        async move { Ok::<_, Infallible>(forward::handle(inner, info, req).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(error) = res {
                tracing::debug!(%error, %peer, "downstream connection error");
            }
        }
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            if let Err(error) = conn.await {
                tracing::debug!(%error, %peer, "downstream connection error while draining");
            }
        }
    }
}
