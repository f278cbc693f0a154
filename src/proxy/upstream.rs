//! The upstream registry: clusters, their endpoints, per-endpoint connection pools, and
//! connecting.
//!
//! Runtime state outlives snapshots. [`Registry::reconcile`] folds a new snapshot and
//! endpoint sets into it: a cluster whose protocol is unchanged keeps its [`ClusterState`];
//! an endpoint whose address remains keeps its [`EndpointState`] (pool, counters, load);
//! removed endpoints are marked draining and their idle connections closed, while requests
//! already holding them finish normally (connections in use are dropped, not pooled, when
//! those requests end).
//!
//! Pools: HTTP/1.1 keeps a LIFO stack of idle keep-alive connections, dropped once idle
//! longer than the cluster's idle timeout; HTTP/2 keeps a few multiplexed connections and
//! opens another only when every one carries as many streams as the peer allows
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`, capped by `ProxyConfig::upstream_h2_max_streams`).
//!
//! Upstream TLS (`appProtocol: https`) does not verify the server certificate, as Envoy and
//! Contour do by default: in-cluster backends mostly have self-signed certificates. The
//! handshake signature is still verified, and ALPN offers `h2` then `http/1.1`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::error::Failure;
use super::metrics::ClusterStats;
use crate::balance::{self, Balancer, EndpointLoad};
use crate::snapshot::{Cluster, ClusterKey, EndpointSet, EndpointSets, Snapshot, UpstreamProtocol};

/// Every cluster of the current snapshot with its live endpoints. Written only by the
/// publishing side (under `Proxy`'s publish lock); read by requests through the route table.
#[derive(Default)]
pub(crate) struct Registry {
    clusters: HashMap<ClusterKey, Arc<ClusterState>>,
}

impl Registry {
    /// Folds `snapshot` and `sets` in; returns the cluster states by key.
    pub(crate) fn reconcile(
        &mut self,
        snapshot: &Snapshot,
        sets: &EndpointSets,
        h2_max_streams: usize,
    ) -> &HashMap<ClusterKey, Arc<ClusterState>> {
        let mut next = HashMap::with_capacity(snapshot.clusters.len());
        for (key, cluster) in &snapshot.clusters {
            let state = match self.clusters.remove(key) {
                Some(old) if old.protocol == cluster.protocol => {
                    let policy_changed = old.config.load().lb_policy != cluster.lb_policy;
                    old.config.store(Arc::new(cluster.clone()));
                    if policy_changed {
                        old.rebuild_balancer();
                    }
                    old
                }
                other => {
                    // New cluster, or its protocol changed: fresh pools; the old endpoints drain.
                    if let Some(old) = other {
                        old.drain_all();
                    }
                    Arc::new(ClusterState::new(cluster.clone(), h2_max_streams))
                }
            };
            state.set_endpoints(sets.get(key).map(|s| s.as_ref()));
            next.insert(key.clone(), state);
        }
        for (_, gone) in self.clusters.drain() {
            gone.drain_all();
        }
        self.clusters = next;
        &self.clusters
    }

    /// Applies a new endpoint set to one cluster (the EndpointSlice fast path).
    pub(crate) fn update_endpoints(&self, key: &ClusterKey, set: Option<&EndpointSet>) {
        if let Some(state) = self.clusters.get(key) {
            state.set_endpoints(set);
        }
    }

    /// Closes pooled connections idle longer than their cluster's idle timeout.
    pub(crate) fn sweep(&self) {
        for c in self.clusters.values() {
            let idle = c.config.load().timeouts.idle;
            for e in &c.members.load().endpoints {
                e.sweep(idle);
            }
        }
    }

    /// The current clusters, sorted by key.
    pub(crate) fn clusters(&self) -> Vec<Arc<ClusterState>> {
        let mut all: Vec<_> = self.clusters.values().cloned().collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }
}

/// One cluster's runtime state.
pub(crate) struct ClusterState {
    pub(crate) key: ClusterKey,
    /// `namespace/service:port`, for logs and metric labels.
    pub(crate) name: Arc<str>,
    pub(crate) protocol: UpstreamProtocol,
    pub(crate) config: ArcSwap<Cluster>,
    pub(crate) members: ArcSwap<Members>,
    pub(crate) stats: ClusterStats,
    h2_max_streams: usize,
}

/// The endpoints of a cluster at one instant, with the balancer built over them.
pub(crate) struct Members {
    pub(crate) endpoints: Vec<Arc<EndpointState>>,
    pub(crate) balancer: Box<dyn Balancer>,
}

impl ClusterState {
    fn new(config: Cluster, h2_max_streams: usize) -> Self {
        let balancer = balance::build(&config.lb_policy, &[], &[]);
        ClusterState {
            name: Arc::from(config.key.to_string()),
            key: config.key.clone(),
            protocol: config.protocol,
            config: ArcSwap::from_pointee(config),
            members: ArcSwap::from_pointee(Members {
                endpoints: Vec::new(),
                balancer,
            }),
            stats: ClusterStats::default(),
            h2_max_streams,
        }
    }

    /// Replaces the endpoint set: addresses that remain keep their state, removed ones drain.
    fn set_endpoints(&self, set: Option<&EndpointSet>) {
        let current = self.members.load();
        let wanted = set.map(|s| s.endpoints.as_slice()).unwrap_or(&[]);
        let unchanged = wanted.len() == current.endpoints.len()
            && wanted.iter().zip(&current.endpoints).all(|(w, c)| {
                w.address == c.address && w.weight == c.weight.load(Ordering::Relaxed)
            });
        if unchanged {
            return;
        }
        let mut old: HashMap<SocketAddr, Arc<EndpointState>> = current
            .endpoints
            .iter()
            .map(|e| (e.address, e.clone()))
            .collect();
        let endpoints: Vec<Arc<EndpointState>> = wanted
            .iter()
            .map(|w| match old.remove(&w.address) {
                Some(kept) => {
                    kept.weight.store(w.weight, Ordering::Relaxed);
                    kept
                }
                None => Arc::new(EndpointState::new(w.address, w.weight, self.h2_max_streams)),
            })
            .collect();
        for (_, removed) in old {
            removed.drain();
        }
        let balancer = build_balancer(&self.config.load(), &endpoints);
        self.stats
            .endpoints
            .store(endpoints.len() as u64, Ordering::Relaxed);
        self.members.store(Arc::new(Members {
            endpoints,
            balancer,
        }));
    }

    fn rebuild_balancer(&self) {
        let current = self.members.load();
        let balancer = build_balancer(&self.config.load(), &current.endpoints);
        self.members.store(Arc::new(Members {
            endpoints: current.endpoints.clone(),
            balancer,
        }));
    }

    fn drain_all(&self) {
        for e in &self.members.load().endpoints {
            e.drain();
        }
    }
}

fn build_balancer(cluster: &Cluster, endpoints: &[Arc<EndpointState>]) -> Box<dyn Balancer> {
    let eps: Vec<crate::snapshot::Endpoint> = endpoints
        .iter()
        .map(|e| crate::snapshot::Endpoint {
            address: e.address,
            weight: e.weight.load(Ordering::Relaxed),
        })
        .collect();
    let loads: Vec<Arc<EndpointLoad>> = endpoints.iter().map(|e| e.load.clone()).collect();
    balance::build(&cluster.lb_policy, &eps, &loads)
}

/// One endpoint: its pool and counters. Survives reconfiguration while its address remains.
pub(crate) struct EndpointState {
    pub(crate) address: SocketAddr,
    pub(crate) weight: AtomicU32,
    pub(crate) load: Arc<EndpointLoad>,
    /// Requests ever sent to it.
    pub(crate) total: AtomicU64,
    /// Removed from its cluster: finish what is in flight, pool nothing.
    pub(crate) draining: AtomicBool,
    /// A TLS endpoint that negotiated `http/1.1`: connect without the HTTP/2 single-flight.
    tls_http1: AtomicBool,
    /// The peer's stream limit as last seen on any of its HTTP/2 connections (0: unknown).
    /// A new connection starts with it instead of the default 100, so a peer allowing
    /// fewer streams does not refuse the ones sent before its SETTINGS arrive.
    h2_limit_hint: AtomicUsize,
    pool: Pool,
}

struct Pool {
    idle_h1: Mutex<Vec<IdleH1>>,
    h2: Mutex<Vec<Arc<H2Conn>>>,
    /// Serializes opening HTTP/2 connections so a burst of streams shares one connection
    /// instead of opening one each.
    h2_connect: tokio::sync::Mutex<()>,
    h2_max_streams: usize,
}

struct IdleH1 {
    sender: http1::SendRequest<Incoming>,
    since: Instant,
}

/// A multiplexed upstream HTTP/2 connection and the streams weir has open on it.
pub(crate) struct H2Conn {
    sender: http2::SendRequest<Incoming>,
    streams: AtomicUsize,
    /// When a stream was last opened, in milliseconds since [`epoch`].
    last_used: AtomicU64,
    /// Reads the peer's current `SETTINGS_MAX_CONCURRENT_STREAMS` (`None` when the
    /// connection's task is polling it at that instant).
    peer_max_streams: PeerLimit,
    /// The last value read.
    peer_max_cached: AtomicUsize,
}

type PeerLimit = Box<dyn Fn() -> Option<usize> + Send + Sync>;

impl EndpointState {
    fn new(address: SocketAddr, weight: u32, h2_max_streams: usize) -> Self {
        EndpointState {
            address,
            weight: AtomicU32::new(weight),
            load: Arc::new(EndpointLoad::default()),
            total: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            tls_http1: AtomicBool::new(false),
            h2_limit_hint: AtomicUsize::new(0),
            pool: Pool {
                idle_h1: Mutex::new(Vec::new()),
                h2: Mutex::new(Vec::new()),
                h2_connect: tokio::sync::Mutex::new(()),
                h2_max_streams,
            },
        }
    }

    fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        // Dropping the pool's handles lets each connection close once its last request ends.
        lock(&self.pool.idle_h1).clear();
        lock(&self.pool.h2).clear();
    }

    fn sweep(&self, idle: std::time::Duration) {
        lock(&self.pool.idle_h1).retain(|c| c.since.elapsed() <= idle && !c.sender.is_closed());
        let idle_ms = idle.as_millis() as u64;
        let now = now_ms();
        lock(&self.pool.h2).retain(|c| {
            !c.sender.is_closed()
                && (c.streams.load(Ordering::Relaxed) > 0
                    || now.saturating_sub(c.last_used.load(Ordering::Relaxed)) <= idle_ms)
        });
    }

    /// Whether the endpoint was removed from its cluster.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Gives an HTTP/1 connection back after its response ended cleanly.
    pub(crate) fn release_h1(&self, sender: http1::SendRequest<Incoming>) {
        if self.is_draining() || sender.is_closed() {
            return;
        }
        lock(&self.pool.idle_h1).push(IdleH1 {
            sender,
            since: Instant::now(),
        });
    }

    /// Idle HTTP/1 connections plus open HTTP/2 connections, for `/clusters`.
    pub(crate) fn pooled_connections(&self) -> usize {
        lock(&self.pool.idle_h1).len() + lock(&self.pool.h2).len()
    }

    /// A connection for one request: pooled when possible, else a new one.
    pub(crate) async fn checkout(&self, cluster: &ClusterState) -> Result<Lease, Failure> {
        let cfg = cluster.config.load();
        if cluster.protocol != UpstreamProtocol::Http1
            && let Some(lease) = self.h2_lease()
        {
            return Ok(lease);
        }
        if cluster.protocol != UpstreamProtocol::H2c {
            loop {
                let idle = lock(&self.pool.idle_h1).pop();
                let Some(mut idle) = idle else { break };
                if idle.since.elapsed() > cfg.timeouts.idle || idle.sender.is_closed() {
                    continue;
                }
                if idle.sender.ready().await.is_ok() {
                    return Ok(Lease::H1 {
                        sender: idle.sender,
                    });
                }
            }
        }
        if cluster.protocol == UpstreamProtocol::Http1 || self.tls_http1.load(Ordering::Relaxed) {
            return self.connect(&cfg, false).await;
        }
        // HTTP/2 (or TLS that may negotiate it): one connect at a time, then look again.
        // Boxed, like `connect`: rare, and it keeps every request's future small.
        Box::pin(async {
            let _connecting = self.pool.h2_connect.lock().await;
            if let Some(lease) = self.h2_lease() {
                return Ok(lease);
            }
            self.connect(&cfg, false).await
        })
        .await
    }

    fn h2_lease(&self) -> Option<Lease> {
        let mut conns = lock(&self.pool.h2);
        conns.retain(|c| !c.sender.is_closed());
        for c in conns.iter() {
            let peer = match (c.peer_max_streams)() {
                Some(fresh) => {
                    c.peer_max_cached.store(fresh, Ordering::Relaxed);
                    self.h2_limit_hint.store(fresh, Ordering::Relaxed);
                    fresh
                }
                None => c.peer_max_cached.load(Ordering::Relaxed),
            };
            let limit = peer.min(self.pool.h2_max_streams);
            let open = c.streams.load(Ordering::Relaxed);
            if open < limit && c.sender.is_ready() {
                c.streams.fetch_add(1, Ordering::Relaxed);
                c.last_used.store(now_ms(), Ordering::Relaxed);
                return Some(Lease::H2 {
                    sender: c.sender.clone(),
                    conn: H2Stream(c.clone()),
                });
            }
        }
        None
    }

    /// Opens a new connection. `upgrade`: HTTP/1.1 only, not pooled, upgrades allowed.
    pub(crate) async fn connect(&self, cfg: &Cluster, upgrade: bool) -> Result<Lease, Failure> {
        let timeout = cfg.timeouts.connect;
        // Boxed: the handshake futures (TLS, HTTP/2) are kilobytes, and an unboxed one would
        // make every request's future that large — tokio and hyper move it several times per
        // request, though connecting is rare.
        let fut = Box::pin(self.connect_inner(cfg, upgrade));
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Failure::ConnectTimeout),
        }
    }

    async fn connect_inner(&self, cfg: &Cluster, upgrade: bool) -> Result<Lease, Failure> {
        let tcp = TcpStream::connect(self.address)
            .await
            .map_err(Failure::Connect)?;
        let _ = tcp.set_nodelay(true);
        match cfg.protocol {
            UpstreamProtocol::Http1 => h1_handshake(TokioIo::new(tcp), upgrade).await,
            UpstreamProtocol::H2c if !upgrade => self.h2_handshake(TokioIo::new(tcp)).await,
            UpstreamProtocol::H2c => h1_handshake(TokioIo::new(tcp), upgrade).await,
            UpstreamProtocol::Tls => {
                let connector = tls_connector(upgrade);
                let name = rustls::pki_types::ServerName::IpAddress(self.address.ip().into());
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(Failure::Connect)?;
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                if h2 {
                    self.h2_handshake(TokioIo::new(tls)).await
                } else {
                    if !upgrade {
                        self.tls_http1.store(true, Ordering::Relaxed);
                    }
                    h1_handshake(TokioIo::new(tls), upgrade).await
                }
            }
        }
    }

    async fn h2_handshake<T>(&self, io: T) -> Result<Lease, Failure>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let hint = self.h2_limit_hint.load(Ordering::Relaxed);
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_max_send_streams(if hint == 0 { 100 } else { hint })
            .max_header_list_size(UPSTREAM_MAX_HEADER_LIST)
            .handshake(io)
            .await
            .map_err(|e| Failure::Connect(std::io::Error::other(e)))?;
        // hyper keeps the peer's SETTINGS on the connection object, which its task must
        // poll: share it behind a mutex the task takes to poll and a lease only tries.
        let initial = conn.current_max_send_streams();
        let conn = Arc::new(Mutex::new(Box::pin(conn)));
        let driver = conn.clone();
        let peer_max_streams: PeerLimit =
            Box::new(move || conn.try_lock().ok().map(|c| c.current_max_send_streams()));
        let c = Arc::new(H2Conn {
            sender: sender.clone(),
            streams: AtomicUsize::new(1),
            last_used: AtomicU64::new(now_ms()),
            peer_max_streams,
            peer_max_cached: AtomicUsize::new(initial),
        });
        tokio::spawn(async move {
            let ended = std::future::poll_fn(|cx| lock(&driver).as_mut().poll(cx)).await;
            if let Err(error) = ended {
                tracing::debug!(%error, "upstream h2 connection ended");
            }
        });
        if !self.is_draining() {
            lock(&self.pool.h2).push(c.clone());
        }
        Ok(Lease::H2 {
            sender,
            conn: H2Stream(c),
        })
    }
}

async fn h1_handshake<T>(io: T, upgrade: bool) -> Result<Lease, Failure>
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
    Ok(Lease::H1 { sender })
}

/// A connection checked out for one request.
pub(crate) enum Lease {
    /// An HTTP/1.1 connection, exclusively ours until the response ends.
    H1 {
        sender: http1::SendRequest<Incoming>,
    },
    /// One stream on a shared HTTP/2 connection.
    H2 {
        sender: http2::SendRequest<Incoming>,
        conn: H2Stream,
    },
}

/// Counts one open stream on an [`H2Conn`] until dropped.
pub(crate) struct H2Stream(Arc<H2Conn>);

impl Drop for H2Stream {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Largest response head accepted from an HTTP/2 upstream (hyper's default is 16 KiB;
/// this matches the downstream default).
const UPSTREAM_MAX_HEADER_LIST: u32 = 64 * 1024;

/// Milliseconds since the first call: a cheap, monotonic timestamp for atomics.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these short critical sections leaves plain data behind.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn tls_connector(http1_only: bool) -> tokio_rustls::TlsConnector {
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
