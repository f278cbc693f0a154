//! The upstream registry: clusters, the endpoints they balance over, per-endpoint connection
//! pools, and checking a connection out for one request.
//!
//! Runtime state outlives snapshots. [`Registry::reconcile`] folds a new snapshot and
//! endpoint sets into it: a cluster that remains keeps its [`ClusterState`] (balancer state
//! included); an endpoint address that remains keeps its [`EndpointState`] (pools, counters,
//! load). **Endpoint state is shared by address**: two clusters that reach the same pod
//! address (the same Service port under two policy variants, or two Services selecting the
//! same pods) share one `EndpointState`, so its load, counters and health are one. Active
//! health checks run one prober per (address, check), counted like the memberships: the
//! first cluster that probes an address with a check starts it, the last one stops it
//! ([`health::active`]).
//! Clusters with upstream TLS settings (a CA to verify, a client certificate) share endpoint
//! state only with clusters of the same settings (the address and [`UpstreamTls::identity`](crate::snapshot::UpstreamTls::identity)
//! key it), so a connection is never reused under settings it was not made with.
//! Each endpoint has one pool per upstream protocol; a pool no cluster uses any more is
//! emptied, and an address no cluster uses any more is marked draining: requests already
//! holding its connections finish normally, nothing is pooled again.
//!
//! Pools: HTTP/1.1 keeps a LIFO stack of idle keep-alive connections, dropped once idle
//! longer than the cluster's idle timeout; HTTP/2 keeps a few multiplexed connections and
//! opens another only when every one carries as many streams as the peer allows
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`, capped by `ProxyConfig::upstream_h2_max_streams`).
//!
//! **The work given to one endpoint is bounded** (the cluster's [`Limits`], HAProxy's
//! `maxconn` + `timeout queue`): at most `max_connections` HTTP/1.1 connections are open at
//! once; a request finding them all busy waits in the endpoint's FIFO pending queue (up to
//! `max_pending` requests, each for up to `queue_timeout`) and is handed the next connection
//! whose response ends, or the slot of one that closes. An endpoint that answers but times
//! out new connections is overloaded, not gone: it gets a smaller learned window instead of
//! more half-open connections (see `H1Pool`). Waiting for an HTTP/2 connect in progress is
//! bounded by the connect timeout, so a black-holed endpoint costs each request one connect
//! timeout, not one per request queued before it.
//!
//! The HTTP clients (hyper's HTTP/1.1, `h2` for HTTP/2) are an implementation detail of
//! [`client`]; [`replay`] keeps a request that may need sending again.

mod client;
pub(crate) mod health;
mod replay;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::oneshot;

pub(crate) use client::{Conn, SendError, UpstreamBody};
use client::{ConnectOptions, Connected, H1Conn, H2Conn, now_ms};
use health::active::{Prober, ProberKey};
pub(crate) use replay::{REPLAY_LIMIT, Replay, TeeBody};

use super::error::Failure;
use super::metrics::ClusterStats;
use crate::balance::{self, Balancer, EndpointLoad, Outcome, Target};
use crate::snapshot::{
    ActiveCheck, Cluster, ClusterKey, EndpointSet, EndpointSets, Limits, Snapshot,
    UpstreamProtocol, UpstreamTls,
};

/// Number of upstream protocols, one pool each per endpoint.
const PROTOCOLS: usize = 3;

/// The pool of an endpoint a cluster uses: one per protocol.
fn protocol_index(cfg: &Cluster) -> usize {
    match cfg.protocol {
        UpstreamProtocol::Http1 => 0,
        UpstreamProtocol::H2c => 1,
        UpstreamProtocol::Tls => 2,
    }
}

/// Which endpoint state a cluster's members share: `None` (plain, or TLS without settings of
/// its own), or the identity of the cluster's upstream TLS settings
/// ([`UpstreamTls::identity`](crate::snapshot::UpstreamTls::identity)), so that a
/// connection made under other TLS settings (unverified, another CA, client certificate or
/// name) is never reused. Shared, so that the 20,000 endpoints of a large cluster set carry
/// a pointer each rather than 32 bytes.
pub(crate) type TlsIdentity = Option<Arc<[u8; 32]>>;

fn tls_identity(cfg: &Cluster) -> TlsIdentity {
    match &cfg.tls {
        Some(tls) if cfg.protocol == UpstreamProtocol::Tls => Some(Arc::new(tls.identity())),
        _ => None,
    }
}

/// Every cluster of the current snapshot with its live endpoints. Written only by the
/// publishing side (under `Proxy`'s publish lock); read by requests through the route table.
#[derive(Default)]
pub(crate) struct Registry {
    clusters: HashMap<ClusterKey, Arc<ClusterState>>,
    /// Endpoint state by address and TLS identity ([`tls_identity`]), with how many cluster
    /// memberships use each protocol.
    endpoints: HashMap<(SocketAddr, TlsIdentity), Shared>,
    /// Active-check probers, one per (address, check), with how many memberships use each.
    probers: HashMap<ProberKey, (usize, Prober)>,
    h2_max_streams: usize,
}

struct Shared {
    state: Arc<EndpointState>,
    uses: [u32; PROTOCOLS],
}

impl Registry {
    /// An empty registry whose HTTP/2 pools open at most `h2_max_streams` streams per
    /// connection.
    pub(crate) fn new(h2_max_streams: usize) -> Self {
        Registry {
            h2_max_streams,
            ..Registry::default()
        }
    }

    /// Folds `snapshot` and `sets` in; returns the cluster states by key.
    pub(crate) fn reconcile(
        &mut self,
        snapshot: &Snapshot,
        sets: &EndpointSets,
    ) -> &HashMap<ClusterKey, Arc<ClusterState>> {
        let mut next = HashMap::with_capacity(snapshot.clusters.len());
        let mut old = std::mem::take(&mut self.clusters);
        for (key, cluster) in &snapshot.clusters {
            let state = match old.remove(key) {
                Some(state) => {
                    let policy_changed = state.config.load().lb != cluster.lb;
                    state.config.store(cluster.clone());
                    if policy_changed {
                        state.rebuild_balancer();
                    }
                    state
                }
                None => Arc::new(ClusterState::new(cluster.clone())),
            };
            self.set_members(&state, sets.get(key).map(|s| s.as_ref()));
            next.insert(key.clone(), state);
        }
        for (_, gone) in old {
            self.set_members(&gone, None);
        }
        self.clusters = next;
        &self.clusters
    }

    /// Applies a new endpoint set to one cluster (the EndpointSlice fast path).
    pub(crate) fn update_endpoints(&mut self, key: &ClusterKey, set: Option<&EndpointSet>) {
        if let Some(state) = self.clusters.get(key).cloned() {
            self.set_members(&state, set);
        }
    }

    /// Replaces a cluster's members: addresses that remain keep their state, new ones share
    /// the state other clusters have for that address, and removed ones are released.
    fn set_members(&mut self, cluster: &ClusterState, set: Option<&EndpointSet>) {
        let cfg = cluster.config.load();
        let protocol = protocol_index(&cfg);
        let identity = tls_identity(&cfg);
        let settings = cfg.tls.clone().filter(|_| identity.is_some());
        let check = cfg
            .health
            .active
            .as_deref()
            .map(|c| (c.clone(), cfg.protocol == UpstreamProtocol::Tls));
        let current = cluster.members.load();
        let wanted = set.map(|s| s.endpoints.as_slice()).unwrap_or(&[]);
        let unchanged = current.protocol == protocol
            && current.check == check
            && wanted.len() == current.endpoints.len()
            && wanted.iter().zip(&current.endpoints).all(|(w, c)| {
                w.address == c.state.address && w.weight == c.weight && c.state.tls == identity
            });
        if unchanged {
            return;
        }
        // Slow start: an address new to a cluster that already had endpoints joins now; the
        // first endpoints of a cluster (and every endpoint at start-up) are at full share.
        let seeded = cluster.seeded.load(Ordering::Relaxed);
        if !wanted.is_empty() {
            cluster.seeded.store(true, Ordering::Relaxed);
        }
        let now = Instant::now();
        let members: Vec<Member> = wanted
            .iter()
            .map(|w| {
                let kept = current
                    .endpoints
                    .iter()
                    .find(|c| c.state.address == w.address);
                let state = self.acquire(w.address, (&identity, &settings), protocol);
                if let Some(check) = &check {
                    self.acquire_prober(&state, check);
                }
                Member {
                    state,
                    weight: w.weight,
                    preferred: w.preferred,
                    joined: match kept {
                        Some(c) => c.joined,
                        None => seeded.then_some(now),
                    },
                }
            })
            .collect();
        // Release after acquiring, so an address that stays is never drained in between.
        for old in &current.endpoints {
            if let Some(check) = &current.check {
                self.release_prober(&old.state, check);
            }
            self.release(old.state.address, &old.state.tls, current.protocol);
        }
        cluster
            .stats
            .endpoints
            .store(members.len() as u64, Ordering::Relaxed);
        cluster.members.store(Arc::new(Members::new(
            &cfg,
            members,
            protocol,
            check,
            cluster.stats.outlier_ejections.clone(),
        )));
    }

    /// One more membership probed with `check`: starts its prober when it is the first.
    fn acquire_prober(&mut self, state: &Arc<EndpointState>, check: &(ActiveCheck, bool)) {
        let key = ProberKey {
            address: state.address,
            identity: state.tls.clone(),
            check: check.0.clone(),
            tls: check.1,
        };
        self.probers
            .entry(key)
            .or_insert_with_key(|key| (0, Prober::start(key, state.clone())))
            .0 += 1;
    }

    /// One membership less probed with `check`: the last one stops its prober.
    fn release_prober(&mut self, state: &EndpointState, check: &(ActiveCheck, bool)) {
        let key = ProberKey {
            address: state.address,
            identity: state.tls.clone(),
            check: check.0.clone(),
            tls: check.1,
        };
        if let Some((uses, _)) = self.probers.get_mut(&key) {
            *uses = uses.saturating_sub(1);
            if *uses == 0 {
                // Dropping the prober aborts its task and takes back its verdict.
                self.probers.remove(&key);
            }
        }
    }

    /// Probers running (one per address and check in use).
    #[cfg(test)]
    fn prober_count(&self) -> usize {
        self.probers.len()
    }

    /// One more membership of `address` under the TLS identity and settings `tls`.
    fn acquire(
        &mut self,
        address: SocketAddr,
        tls: (&TlsIdentity, &Option<Arc<UpstreamTls>>),
        protocol: usize,
    ) -> Arc<EndpointState> {
        let h2_max_streams = self.h2_max_streams;
        let (identity, settings) = tls;
        let shared = self
            .endpoints
            .entry((address, identity.clone()))
            .or_insert_with(|| Shared {
                state: Arc::new(EndpointState::new(
                    address,
                    (identity.clone(), settings.clone()),
                    h2_max_streams,
                )),
                uses: [0; PROTOCOLS],
            });
        shared.uses[protocol] += 1;
        shared.state.clone()
    }

    fn release(&mut self, address: SocketAddr, tls: &TlsIdentity, protocol: usize) {
        let key = (address, tls.clone());
        let Some(shared) = self.endpoints.get_mut(&key) else {
            return;
        };
        shared.uses[protocol] = shared.uses[protocol].saturating_sub(1);
        if shared.uses[protocol] == 0 {
            // No cluster speaks this protocol to the address any more: close its idle
            // connections (those in use finish their requests).
            if let Some(pool) = shared.state.pools[protocol].get() {
                pool.clear();
            }
        }
        if shared.uses.iter().all(|&n| n == 0) {
            shared.state.drain();
            self.endpoints.remove(&key);
        }
    }

    /// Closes pooled connections idle longer than the idle timeout of a cluster using them.
    pub(crate) fn sweep(&self) {
        for c in self.clusters.values() {
            let idle = c.config.load().timeouts.idle;
            let members = c.members.load();
            for m in &members.endpoints {
                if let Some(pool) = m.state.pools[members.protocol].get() {
                    pool.sweep(idle);
                }
            }
        }
    }

    /// Rebuilds the balancers whose usable subset changed with some endpoint's health (called
    /// on every `health::changed`, off the request path).
    pub(crate) fn refresh_health(&self) {
        for c in self.clusters.values() {
            c.refresh_health();
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
    pub(crate) config: ArcSwap<Cluster>,
    /// Written only under the proxy's publish lock (`Registry`), read by every request.
    members: ArcSwap<Members>,
    /// Whether the cluster ever had endpoints (see slow start in `set_members`).
    seeded: AtomicBool,
    pub(crate) stats: ClusterStats,
}

/// The endpoints of a cluster at one instant, with the balancer built over the usable ones.
pub(crate) struct Members {
    /// Every endpoint of the set (Kubernetes-ready), usable or not.
    pub(crate) endpoints: Vec<Member>,
    /// Balances over [`Members::usable`].
    pub(crate) balancer: Box<dyn Balancer>,
    /// Member indices the balancer balances over: the healthy ones (topology-preferred ones
    /// when any of those is healthy), or all of them in panic.
    pub(crate) usable: Vec<usize>,
    /// Fewer endpoints were healthy than the panic threshold: balancing over all.
    pub(crate) panic: bool,
    /// The health epoch the usable subset was computed at.
    epoch: u64,
    /// Index of the protocol the memberships were counted under.
    protocol: usize,
    /// The active check (and whether over TLS) the memberships' probers were acquired
    /// under.
    check: Option<(ActiveCheck, bool)>,
    /// The cluster's outlier ejection counter.
    ejections: Arc<AtomicU64>,
}

/// One endpoint of a cluster: the shared state of its address, and its place in this
/// cluster.
pub(crate) struct Member {
    pub(crate) state: Arc<EndpointState>,
    pub(crate) weight: u32,
    /// Preferred by topology (see [`crate::snapshot::Endpoint::preferred`]).
    pub(crate) preferred: bool,
    /// When it joined the cluster (`None`: with the cluster's first endpoints).
    pub(crate) joined: Option<Instant>,
}

impl Members {
    /// Members over `endpoints`, with the usable subset and its balancer as of now.
    fn new(
        cfg: &Cluster,
        endpoints: Vec<Member>,
        protocol: usize,
        check: Option<(ActiveCheck, bool)>,
        ejections: Arc<AtomicU64>,
    ) -> Self {
        let epoch = health::epoch();
        let (usable, panic) = usable_subset(cfg, &endpoints);
        let targets = usable
            .iter()
            .map(|&i| {
                let m = &endpoints[i];
                Target {
                    member: i,
                    address: m.state.address,
                    weight: m.weight.max(1),
                    load: m.state.load.clone(),
                    joined: m.joined,
                }
            })
            .collect();
        Members {
            balancer: balance::build(&cfg.lb, targets),
            endpoints,
            usable,
            panic,
            epoch,
            protocol,
            check,
            ejections,
        }
    }

    /// The same endpoints, with the usable subset and balancer computed again.
    fn rebuilt(&self, cfg: &Cluster) -> Self {
        let endpoints = self
            .endpoints
            .iter()
            .map(|m| Member {
                state: m.state.clone(),
                weight: m.weight,
                preferred: m.preferred,
                joined: m.joined,
            })
            .collect();
        Members::new(
            cfg,
            endpoints,
            self.protocol,
            self.check.clone(),
            self.ejections.clone(),
        )
    }

    /// Records how an attempt to member `i` ended: its load (latency-aware balancers) and
    /// its health (passive outlier detection under `cfg`).
    pub(crate) fn observe(&self, i: usize, cfg: &Cluster, outcome: &Outcome) {
        let ep = &self.endpoints[i].state;
        ep.load.complete(outcome);
        let ejected = ep.health.observe(cfg.health.passive.as_ref(), outcome, || {
            let limit = cfg
                .health
                .passive
                .map_or(0, |p| usize::from(p.max_ejection_percent));
            let ejected = self
                .endpoints
                .iter()
                .filter(|m| m.state.health.state() == health::HealthState::Ejected)
                .count();
            // At least one endpoint may always be ejected.
            ejected == 0 || (ejected + 1) * 100 <= limit * self.endpoints.len()
        });
        if ejected {
            self.ejections.fetch_add(1, Ordering::Relaxed);
            tracing::info!(endpoint = %ep.address, "outlier detection ejected endpoint");
        }
    }
}

/// The member indices to balance over, and whether that is all of them in panic: healthy
/// members (the topology-preferred ones, when any of those is healthy); all members when the
/// healthy share is below the panic threshold.
fn usable_subset(cfg: &Cluster, endpoints: &[Member]) -> (Vec<usize>, bool) {
    let healthy: Vec<usize> = (0..endpoints.len())
        .filter(|&i| endpoints[i].state.health.usable())
        .collect();
    let threshold = usize::from(cfg.lb.panic_threshold);
    if healthy.len() * 100 < threshold * endpoints.len() || healthy.is_empty() {
        return ((0..endpoints.len()).collect(), !endpoints.is_empty());
    }
    let preferred: Vec<usize> = healthy
        .iter()
        .copied()
        .filter(|&i| endpoints[i].preferred)
        .collect();
    if preferred.is_empty() {
        (healthy, false)
    } else {
        (preferred, false)
    }
}

impl ClusterState {
    fn new(config: Arc<Cluster>) -> Self {
        let stats = ClusterStats::default();
        let members = Members::new(
            &config,
            Vec::new(),
            protocol_index(&config),
            None,
            stats.outlier_ejections.clone(),
        );
        ClusterState {
            name: Arc::from(config.key.to_string()),
            key: config.key.clone(),
            config: ArcSwap::new(config),
            members: ArcSwap::from_pointee(members),
            seeded: AtomicBool::new(false),
            stats,
        }
    }

    /// The current members and their balancer.
    pub(crate) fn members(&self) -> Arc<Members> {
        self.members.load_full()
    }

    /// Rebuilds the balancer when the usable subset changed since it was built (an endpoint's
    /// health changed, or an ejection ended).
    fn refresh_health(&self) {
        let current = self.members.load();
        if current.epoch == health::epoch() {
            return;
        }
        let cfg = self.config.load();
        if usable_subset(&cfg, &current.endpoints) == (current.usable.clone(), current.panic) {
            return;
        }
        let fresh = current.rebuilt(&cfg);
        self.members.store(Arc::new(fresh));
    }

    fn rebuild_balancer(&self) {
        let fresh = self.members.load().rebuilt(&self.config.load());
        self.members.store(Arc::new(fresh));
    }
}

/// One endpoint address: its pools and counters, shared by every cluster that uses it.
/// Survives reconfiguration while any cluster keeps the address.
pub(crate) struct EndpointState {
    pub(crate) address: SocketAddr,
    /// The TLS identity of the clusters sharing it ([`tls_identity`]).
    pub(crate) tls: TlsIdentity,
    /// Their TLS settings (equal for one identity), for active checks.
    pub(crate) upstream_tls: Option<Arc<UpstreamTls>>,
    pub(crate) load: Arc<EndpointLoad>,
    /// Active and passive health, one per address.
    pub(crate) health: health::Health,
    /// Requests ever sent to it.
    pub(crate) total: AtomicU64,
    /// No cluster uses it any more: finish what is in flight, pool nothing.
    draining: Arc<AtomicBool>,
    /// One pool per upstream protocol, made on first use (most addresses are only ever
    /// spoken to in one protocol, and an idle endpoint needs none: 20,000 endpoints hold no
    /// pool until traffic reaches them).
    pools: [OnceLock<Arc<Pool>>; PROTOCOLS],
    h2_max_streams: usize,
}

impl EndpointState {
    fn new(
        address: SocketAddr,
        tls: (TlsIdentity, Option<Arc<UpstreamTls>>),
        h2_max_streams: usize,
    ) -> Self {
        let (tls, upstream_tls) = tls;
        EndpointState {
            address,
            tls,
            upstream_tls,
            load: Arc::new(EndpointLoad::default()),
            health: health::Health::default(),
            total: AtomicU64::new(0),
            pools: Default::default(),
            h2_max_streams,
            draining: Arc::default(),
        }
    }

    /// The pool of upstream protocol `protocol` ([`protocol_index`]).
    fn pool(&self, protocol: usize) -> &Arc<Pool> {
        self.pools[protocol].get_or_init(|| {
            Arc::new(Pool {
                draining: self.draining.clone(),
                h1: Mutex::new(H1Pool::default()),
                h2: Mutex::new(Vec::new()),
                h2_connect: tokio::sync::Mutex::new(()),
                h2_max_streams: self.h2_max_streams,
                h2_limit_hint: AtomicUsize::new(0),
                tls_http1: AtomicBool::new(false),
            })
        })
    }

    /// The pools made so far.
    fn made_pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.pools.iter().filter_map(OnceLock::get)
    }

    fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        for pool in self.made_pools() {
            pool.clear();
        }
    }

    /// Whether no cluster uses the address any more.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Idle HTTP/1 connections plus open HTTP/2 connections, for `/clusters`.
    pub(crate) fn pooled_connections(&self) -> usize {
        self.made_pools().map(|p| p.len()).sum()
    }

    /// Open HTTP/1 connections (idle, busy or connecting) and requests waiting for one, for
    /// `/clusters`.
    pub(crate) fn h1_load(&self) -> (usize, usize) {
        self.made_pools().fold((0, 0), |(open, pending), p| {
            let h1 = lock(&p.h1);
            (open + h1.open, pending + h1.waiters.len())
        })
    }

    /// A new connection to it timed out unacknowledged after the request was sent
    /// ([`SendError::NotProcessed`] with a connect timeout): counted like a connect timeout.
    pub(crate) fn connect_timed_out(&self, cfg: &Cluster) {
        self.pool(protocol_index(cfg))
            .connect_failed(true, cfg.timeouts.connect);
    }

    /// Whether it answered a response recently: a connect that times out means it is
    /// overloaded rather than gone.
    pub(crate) fn overloaded(&self, cfg: &Cluster) -> bool {
        let h1 = lock(&self.pool(protocol_index(cfg)).h1);
        h1.answered.is_some_and(|t| t.elapsed() < ALIVE)
    }

    /// A connection for one request to a cluster of `cfg`: pooled when possible, else a new
    /// one. An HTTP/1 pool at its connection cap makes the request wait in its pending queue
    /// (up to the cluster's queue timeout) when `wait` is true; when it is false the answer
    /// is `Ok(None)` at once, so the caller can try another endpoint first.
    pub(crate) async fn checkout(
        &self,
        cfg: &Cluster,
        wait: bool,
    ) -> Result<Option<Conn>, Failure> {
        let pool = self.pool(protocol_index(cfg));
        if cfg.protocol != UpstreamProtocol::Http1
            && let Some(stream) = pool.h2_stream()
        {
            return Ok(Some(Conn::H2(stream)));
        }
        if cfg.protocol == UpstreamProtocol::Http1 || pool.tls_http1.load(Ordering::Relaxed) {
            return self.checkout_h1(cfg, pool, wait).await;
        }
        // HTTP/2 (or TLS that may negotiate it): one connect at a time, then look again.
        // Waiting for the connect in progress is part of this attempt's connect time, so the
        // whole of it is bounded by the connect timeout: behind a black-holed endpoint each
        // waiter gives up at its own deadline and fails over, instead of taking the lock in
        // turn for a connect timeout each. Boxed, like `connect`: rare, and it keeps every
        // request's future small.
        let bounded = tokio::time::timeout(
            cfg.timeouts.connect,
            Box::pin(async {
                let _connecting = pool.h2_connect.lock().await;
                if let Some(stream) = pool.h2_stream() {
                    return Ok(Conn::H2(stream));
                }
                self.connect(cfg, pool, None, false).await
            }),
        );
        match bounded.await {
            Ok(conn) => conn.map(Some),
            Err(_) => Err(Failure::ConnectTimeout),
        }
    }

    async fn checkout_h1(
        &self,
        cfg: &Cluster,
        pool: &Arc<Pool>,
        wait: bool,
    ) -> Result<Option<Conn>, Failure> {
        let mut deadline = None;
        loop {
            let grant = match pool.take_h1(&cfg.limits, cfg.timeouts.idle, wait) {
                Take::Now(grant) => grant,
                Take::Busy => return Ok(None),
                Take::Full => return Err(Failure::QueueFull),
                Take::Wait(mut granted) => {
                    // One deadline for the whole wait, however often it is re-entered.
                    let until = *deadline.get_or_insert_with(|| {
                        tokio::time::Instant::now() + cfg.limits.queue_timeout
                    });
                    match tokio::time::timeout_at(until, &mut granted).await {
                        Ok(Ok(grant)) => grant,
                        // The pool let go of the waiter without an answer: look again.
                        Ok(Err(_)) => continue,
                        Err(_) => {
                            // A grant may have raced the deadline: use it rather than lose it.
                            granted.close();
                            match granted.try_recv() {
                                Ok(grant) => grant,
                                Err(_) => return Err(Failure::QueueTimeout),
                            }
                        }
                    }
                }
            };
            match grant {
                Grant::Conn(mut conn) => {
                    if !conn.is_closed() && conn.ready().await {
                        return Ok(Some(Conn::H1(conn)));
                    }
                    // Closed while idle: dropping it frees its slot; look again.
                }
                Grant::Slot(slot) => {
                    return self.connect(cfg, pool, Some(slot), false).await.map(Some);
                }
                Grant::Down(timed_out) => {
                    return Err(if timed_out {
                        Failure::ConnectTimeout
                    } else {
                        Failure::Connect(std::io::Error::other("endpoint unreachable"))
                    });
                }
            }
        }
    }

    /// A new HTTP/1.1 connection for an upgrade (a WebSocket tunnel): never pooled, and not
    /// counted against the connection cap (a tunnel lives as long as its session).
    pub(crate) async fn connect_upgrade(&self, cfg: &Cluster) -> Result<Conn, Failure> {
        let pool = self.pool(protocol_index(cfg));
        self.connect(cfg, pool, None, true).await
    }

    async fn connect(
        &self,
        cfg: &Cluster,
        pool: &Arc<Pool>,
        slot: Option<Slot>,
        upgrade: bool,
    ) -> Result<Conn, Failure> {
        let opts = ConnectOptions {
            protocol: cfg.protocol,
            upgrade,
            slot,
            h2_streams_hint: pool.h2_limit_hint.load(Ordering::Relaxed),
            ack_timeout: cfg.timeouts.connect,
            tls: cfg.tls.clone(),
        };
        // Boxed: the handshake futures (TLS, HTTP/2) are kilobytes, and an unboxed one would
        // make every request's future that large — tokio and hyper move it several times per
        // request, though connecting is rare.
        let fut = Box::pin(client::connect(self.address, opts));
        let connected = match tokio::time::timeout(cfg.timeouts.connect, fut).await {
            Ok(Ok(connected)) => connected,
            Ok(Err(f)) => {
                pool.connect_failed(false, cfg.timeouts.connect);
                return Err(f);
            }
            Err(_) => {
                pool.connect_failed(true, cfg.timeouts.connect);
                return Err(Failure::ConnectTimeout);
            }
        };
        match connected {
            Connected::H1(conn) => {
                if cfg.protocol == UpstreamProtocol::Tls && !upgrade {
                    pool.tls_http1.store(true, Ordering::Relaxed);
                }
                Ok(Conn::H1(conn))
            }
            Connected::H2(conn) => {
                let stream = conn.first_stream();
                if !self.is_draining() {
                    lock(&pool.h2).push(conn);
                }
                Ok(Conn::H2(stream))
            }
        }
    }
}

/// The connections of one endpoint for one protocol.
pub(crate) struct Pool {
    /// The endpoint's draining flag (shared by its pools).
    draining: Arc<AtomicBool>,
    h1: Mutex<H1Pool>,
    h2: Mutex<Vec<Arc<H2Conn>>>,
    /// Serializes opening HTTP/2 connections so a burst of streams shares one connection
    /// instead of opening one each.
    h2_connect: tokio::sync::Mutex<()>,
    h2_max_streams: usize,
    /// The peer's stream limit as last seen on any of its HTTP/2 connections (0: unknown).
    /// A new connection starts with it instead of the default 100, so a peer allowing
    /// fewer streams does not refuse the ones sent before its SETTINGS arrive.
    h2_limit_hint: AtomicUsize,
    /// A TLS endpoint that negotiated `http/1.1`: connect without the HTTP/2 single-flight.
    tls_http1: AtomicBool,
}

/// An HTTP/1 pool: idle keep-alive connections, the count of open ones, and the requests
/// waiting for one.
///
/// Invariant: `open` is the number of live [`Slot`]s. A slot is taken to connect and lives
/// in the connection until it closes, whether busy or idle; a connection that ends cleanly
/// goes to the oldest waiter first, then to `idle`; a slot that is freed goes to the oldest
/// waiter first, then back to the count. Nothing that owns a slot is dropped while `h1` is
/// locked (a slot's drop locks it).
#[derive(Default)]
struct H1Pool {
    idle: Vec<IdleH1>,
    open: usize,
    waiters: VecDeque<oneshot::Sender<Grant>>,
    /// The connection window learned from the endpoint (0: none, the cluster's cap alone
    /// applies). An endpoint that answers but times out new connections (its accept queue is
    /// full: the kernel leaves them half open) is overloaded, not gone: the window halves, at
    /// most once per connect timeout, and grows by one for every window's worth of answered
    /// responses (AIMD, as TCP does). The requests over it wait in the pending queue instead
    /// of piling more half-open connections onto the endpoint.
    window: usize,
    /// Answered responses since the window last grew.
    grown: usize,
    /// When the endpoint last answered a response to its end.
    answered: Option<Instant>,
    /// When the window last shrank.
    shrunk: Option<Instant>,
}

/// An endpoint that answered a response this recently is alive: a connect that times out
/// means it is overloaded.
const ALIVE: Duration = Duration::from_secs(10);
/// The smallest learned window.
const MIN_WINDOW: usize = 2;

impl H1Pool {
    /// The connection cap in force: the cluster's, and the learned window (zero: none).
    fn cap(&self, limits: &Limits) -> usize {
        match (limits.max_connections as usize, self.window) {
            (max, 0) => max,
            (0, window) => window,
            (max, window) => max.min(window),
        }
    }

    /// A response was answered to its end: the endpoint is alive, and the window grows.
    fn answered(&mut self) {
        self.answered = Some(Instant::now());
        if self.window > 0 {
            self.grown += 1;
            if self.grown >= self.window {
                self.grown = 0;
                self.window = (self.window + 1).min(u32::MAX as usize);
            }
        }
    }
}

/// What a waiting request is handed.
enum Grant {
    /// A connection whose response just ended, to reuse.
    Conn(H1Conn),
    /// Room to open a connection.
    Slot(Slot),
    /// A connect to the endpoint failed (`true`: timed out): try another endpoint rather than
    /// wait for this one.
    Down(bool),
}

impl Grant {
    /// Lets go of a grant no waiter took without giving its slot back a second time (the
    /// caller has already accounted for it).
    fn forget_slot(&mut self) {
        if let Grant::Slot(slot) = self {
            slot.0 = None;
        }
    }
}

/// What [`Pool::take_h1`] found.
enum Take {
    Now(Grant),
    /// At the cap, and the caller would rather not wait.
    Busy,
    /// At the cap with the pending queue full.
    Full,
    Wait(oneshot::Receiver<Grant>),
}

/// One of an HTTP/1 pool's connection slots: held by a connection for its whole life (busy
/// or idle), or by a request about to connect. Dropping it hands the slot to the oldest
/// waiting request, or frees it.
pub(crate) struct Slot(Option<Arc<Pool>>);

impl Slot {
    /// The pool the slot belongs to (where its connection goes back).
    pub(crate) fn pool(&self) -> Option<&Arc<Pool>> {
        self.0.as_ref()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            pool.free_slot();
        }
    }
}

struct IdleH1 {
    conn: H1Conn,
    since: Instant,
}

/// Gives an HTTP/1 connection back after its response ended cleanly: to the oldest request
/// waiting for one, else to the idle stack. A closed connection, or one of a draining
/// endpoint, is dropped instead (which frees its slot).
pub(crate) fn release_h1(conn: H1Conn) {
    let Some(pool) = conn.home().cloned() else {
        return;
    };
    lock(&pool.h1).answered();
    if pool.draining.load(Ordering::Relaxed) || conn.is_closed() {
        return;
    }
    let mut grant = Grant::Conn(conn);
    let mut h1 = lock(&pool.h1);
    while let Some(waiter) = h1.waiters.pop_front() {
        match waiter.send(grant) {
            Ok(()) => return,
            Err(back) => grant = back,
        }
    }
    if let Grant::Conn(conn) = grant {
        h1.idle.push(IdleH1 {
            conn,
            since: Instant::now(),
        });
    }
}

impl Pool {
    /// An idle connection, or a slot to connect with, or a place in the pending queue.
    /// Idle connections past `idle` (or closed) are dropped on the way, after the lock is
    /// released: their slots go to waiters or back to the count, which takes the lock.
    fn take_h1(self: &Arc<Self>, limits: &Limits, idle: Duration, wait: bool) -> Take {
        loop {
            let mut expired = Vec::new();
            {
                let mut h1 = lock(&self.h1);
                while let Some(c) = h1.idle.pop() {
                    if c.since.elapsed() > idle || c.conn.is_closed() {
                        expired.push(c);
                    } else {
                        return Take::Now(Grant::Conn(c.conn));
                    }
                }
                if expired.is_empty() {
                    return self.room(&mut h1, limits, wait);
                }
            }
            drop(expired);
        }
    }

    /// No idle connection: a slot if under the cap, else a place in the queue.
    fn room(self: &Arc<Self>, h1: &mut H1Pool, limits: &Limits, wait: bool) -> Take {
        let cap = h1.cap(limits);
        if cap == 0 || h1.open < cap {
            h1.open += 1;
            return Take::Now(Grant::Slot(Slot(Some(self.clone()))));
        }
        if !wait {
            return Take::Busy;
        }
        if h1.waiters.len() >= limits.max_pending as usize {
            // Waiters that gave up (timed out, or their client went away) leave their
            // senders behind; count only the live ones.
            h1.waiters.retain(|w| !w.is_closed());
            if h1.waiters.len() >= limits.max_pending as usize {
                return Take::Full;
            }
        }
        let (tx, rx) = oneshot::channel();
        h1.waiters.push_back(tx);
        Take::Wait(rx)
    }

    /// A slot was let go: the oldest waiter gets it, else the count drops.
    fn free_slot(self: &Arc<Self>) {
        let mut grant = Grant::Slot(Slot(Some(self.clone())));
        let mut h1 = lock(&self.h1);
        if h1.window > 0 && h1.open > h1.window {
            // Over a window that shrank: the slot is not handed on.
            h1.open -= 1;
            grant.forget_slot();
            return;
        }
        while let Some(waiter) = h1.waiters.pop_front() {
            match waiter.send(grant) {
                Ok(()) => return,
                Err(back) => grant = back,
            }
        }
        h1.open = h1.open.saturating_sub(1);
        grant.forget_slot();
    }

    /// A connect failed (`timed_out`: timed out, `every`: the connect timeout). An endpoint
    /// that answered recently is overloaded: its window shrinks and its waiters keep
    /// waiting. Otherwise it is unreachable, and the requests waiting for it try another
    /// endpoint rather than queue for connects that are failing too.
    fn connect_failed(&self, timed_out: bool, every: Duration) {
        let waiters = {
            let mut h1 = lock(&self.h1);
            let alive = h1.answered.is_some_and(|t| t.elapsed() < ALIVE);
            if timed_out && alive {
                if h1.shrunk.is_none_or(|t| t.elapsed() >= every) {
                    let current = if h1.window == 0 {
                        h1.open
                    } else {
                        h1.window.min(h1.open)
                    };
                    h1.window = (current / 2).max(MIN_WINDOW);
                    h1.grown = 0;
                    h1.shrunk = Some(Instant::now());
                    tracing::debug!(window = h1.window, "endpoint overloaded; fewer connections");
                }
                return;
            }
            std::mem::take(&mut h1.waiters)
        };
        for waiter in waiters {
            let _ = waiter.send(Grant::Down(timed_out));
        }
    }

    fn h2_stream(&self) -> Option<client::H2Stream> {
        let mut conns = lock(&self.h2);
        conns.retain(|c| !c.is_closed());
        for c in conns.iter() {
            let (peer, fresh) = c.peer_limit();
            if fresh {
                self.h2_limit_hint.store(peer, Ordering::Relaxed);
            }
            if let Some(stream) = c.try_open(peer.min(self.h2_max_streams)) {
                return Some(stream);
            }
        }
        None
    }

    fn clear(&self) {
        // Dropping the pool's handles lets each connection close once its last request ends.
        // Idle HTTP/1 connections are dropped after the lock is released (their slots lock it).
        let idle = std::mem::take(&mut lock(&self.h1).idle);
        drop(idle);
        lock(&self.h2).clear();
    }

    fn sweep(&self, idle: Duration) {
        let expired: Vec<IdleH1> = {
            let mut h1 = lock(&self.h1);
            let (keep, expired) = std::mem::take(&mut h1.idle)
                .into_iter()
                .partition(|c| c.since.elapsed() <= idle && !c.conn.is_closed());
            h1.idle = keep;
            expired
        };
        drop(expired);
        let idle_ms = idle.as_millis() as u64;
        let now = now_ms();
        lock(&self.h2).retain(|c| !c.is_closed() && (c.streams() > 0 || c.idle_ms(now) <= idle_ms));
    }

    fn len(&self) -> usize {
        lock(&self.h1).idle.len() + lock(&self.h2).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these short critical sections leaves plain data behind.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Endpoint;

    fn cluster(service: &str, variant: &str, protocol: UpstreamProtocol) -> Cluster {
        let key = ClusterKey::new("default", service, 80).with_variant(variant);
        Cluster::new(key, "", protocol)
    }

    fn set(addrs: &[&str]) -> Arc<EndpointSet> {
        Arc::new(EndpointSet {
            endpoints: addrs
                .iter()
                .map(|a| Endpoint::new(a.parse().expect("addr")))
                .collect(),
        })
    }

    fn snapshot(clusters: &[Cluster]) -> Snapshot {
        Snapshot {
            clusters: clusters
                .iter()
                .map(|c| (c.key.clone(), Arc::new(c.clone())))
                .collect(),
            ..Snapshot::default()
        }
    }

    fn state_of(reg: &Registry, key: &ClusterKey, i: usize) -> Arc<EndpointState> {
        reg.clusters[key].members.load().endpoints[i].state.clone()
    }

    #[test]
    fn clusters_of_one_address_share_its_endpoint_state() {
        let a = cluster("web", "", UpstreamProtocol::Http1);
        let b = cluster("web", "ewma", UpstreamProtocol::Http1);
        let snap = snapshot(&[a.clone(), b.clone()]);
        let sets: EndpointSets = [
            (a.key.clone(), set(&["10.0.0.1:80"])),
            (b.key.clone(), set(&["10.0.0.1:80"])),
        ]
        .into();
        let mut reg = Registry::new(100);
        reg.reconcile(&snap, &sets);
        let sa = state_of(&reg, &a.key, 0);
        let sb = state_of(&reg, &b.key, 0);
        assert!(Arc::ptr_eq(&sa, &sb), "one state per address");

        // One cluster drops the address: it stays alive for the other.
        reg.update_endpoints(&a.key, Some(&set(&[])));
        assert!(!sb.is_draining());
        // The last user drops it: it drains, and a later user gets a fresh state.
        reg.update_endpoints(&b.key, Some(&set(&[])));
        assert!(sb.is_draining());
        reg.update_endpoints(&a.key, Some(&set(&["10.0.0.1:80"])));
        assert!(!Arc::ptr_eq(&state_of(&reg, &a.key, 0), &sb));
    }

    #[test]
    fn protocol_change_keeps_the_cluster_and_the_address_state() {
        let a = cluster("web", "", UpstreamProtocol::Http1);
        let sets: EndpointSets = [(a.key.clone(), set(&["10.0.0.1:80"]))].into();
        let mut reg = Registry::new(100);
        reg.reconcile(&snapshot(std::slice::from_ref(&a)), &sets);
        let before = state_of(&reg, &a.key, 0);
        let h2 = cluster("web", "", UpstreamProtocol::H2c);
        reg.reconcile(&snapshot(&[h2]), &sets);
        let after = state_of(&reg, &a.key, 0);
        assert!(Arc::ptr_eq(&before, &after));
        assert!(!after.is_draining());
        let shared = &reg.endpoints[&(after.address, None)];
        assert_eq!(shared.uses, [0, 1, 0]);
    }

    #[test]
    fn one_prober_per_address_and_check() {
        let check = |ms| crate::snapshot::ActiveCheck {
            kind: crate::snapshot::CheckKind::Tcp,
            interval: Duration::from_millis(ms),
            timeout: Duration::from_millis(ms),
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        };
        let with = |service: &str, c: Option<crate::snapshot::ActiveCheck>| {
            let mut cl = cluster(service, "", UpstreamProtocol::Http1);
            cl.health.active = c.map(Box::new);
            cl
        };
        let (a, b) = (with("a", Some(check(100))), with("b", Some(check(100))));
        let sets: EndpointSets = [
            (a.key.clone(), set(&["10.0.0.1:80", "10.0.0.2:80"])),
            (b.key.clone(), set(&["10.0.0.1:80"])),
        ]
        .into();
        let mut reg = Registry::new(100);
        reg.reconcile(&snapshot(&[a.clone(), b.clone()]), &sets);
        // 10.0.0.1 is shared by both clusters under one check.
        assert_eq!(reg.prober_count(), 2);
        // b's check changes: 10.0.0.1 gets a second prober, for the other check.
        let b2 = with("b", Some(check(50)));
        reg.reconcile(&snapshot(&[a.clone(), b2.clone()]), &sets);
        assert_eq!(reg.prober_count(), 3);
        // a drops its check: only b's remains.
        reg.reconcile(&snapshot(&[with("a", None), b2]), &sets);
        assert_eq!(reg.prober_count(), 1);
        reg.reconcile(&Snapshot::default(), &EndpointSets::new());
        assert_eq!(reg.prober_count(), 0);
    }

    #[test]
    fn removed_cluster_releases_its_addresses() {
        let a = cluster("web", "", UpstreamProtocol::Http1);
        let sets: EndpointSets = [(a.key.clone(), set(&["10.0.0.1:80", "10.0.0.2:80"]))].into();
        let mut reg = Registry::new(100);
        reg.reconcile(&snapshot(std::slice::from_ref(&a)), &sets);
        let kept = state_of(&reg, &a.key, 1);
        reg.reconcile(&Snapshot::default(), &EndpointSets::new());
        assert!(kept.is_draining());
        assert!(reg.endpoints.is_empty());
    }
}
