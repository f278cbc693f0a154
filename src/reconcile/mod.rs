//! Debounce → compile → publish, from a manifests directory or the Kubernetes API.
//!
//! One task owns the [`Objects`] and applies every change to them, so nothing is shared and
//! nothing is locked. Changes take one of two paths:
//!
//! - **EndpointSlice changes** go straight to the endpoint sets: the clusters of the slice's
//!   Service are looked up in an index rebuilt on every compile, their
//!   [`EndpointSet`](crate::snapshot::EndpointSet)s are recomputed from that Service's
//!   slices only, and the changed ones are handed to [`Proxy::update_endpoints`]. No
//!   compile, no debounce.
//! - **Every other kind of the table** marks the store dirty in a [`debounce::Debounce`]
//!   (quiet period plus a maximum delay), unless [`Objects::changes_compile_input`] says the
//!   change cannot alter compile's output (a status write echoed back). When it fires,
//!   compile runs over the whole store on a blocking thread (in Kubernetes mode), taking the
//!   compile input with it: EndpointSlices are kept apart, so their fast path goes on
//!   meanwhile, and other changes wait until the objects come back. Then endpoint sets for
//!   the new clusters are published, then the snapshot (in that order, so a new route never
//!   points at a cluster whose endpoints are not there yet).
//!
//! Nothing is compiled before every watched kind has listed once (`/readyz` reports ready
//! when the proxy has a snapshot, so it stays 503 until then). While the API server is
//! unreachable the watchers retry with backoff and the last snapshot keeps serving;
//! `/readyz` stays 200 once a snapshot is live, and `weir_watch_errors_total` rises.
//!
//! Certificate validity depends on the clock, so it is re-checked while running: after every
//! compile a recompile is scheduled one second after the earliest `notAfter` among the
//! certificates the snapshot serves, and at least every [`ReconcileConfig::certificate_recheck`]
//! while any HTTPS listener exists (for a certificate that becomes valid, and for wall-clock
//! jumps the monotonic timer does not see). A certificate that expired mid-run then gets its
//! `TLSValid` condition and its hosts fall back to the default certificate, exactly as at
//! start-up. A re-check whose conditions equal the last compile's publishes nothing (the clock
//! reaches compile's output only through those conditions).
//!
//! In Kubernetes mode every compile also produces a [`StatusPlan`] for the status writer,
//! which writes only while this replica holds the leader Lease.

pub mod debounce;
pub mod metrics;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::api::service::Service;
use ::kube::Client;
use ::kube::runtime::events::Reporter;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::api::endpointslice::EndpointSlice;
use crate::compile::{CompileConfig, Condition, ObjectRef, StatusReport, compile};
use crate::endpoints;
use crate::lease::{self, LeaseError, LeaseOptions};
use crate::proxy::Proxy;
use crate::snapshot::{Cluster, EndpointSets};
use crate::status::{self, PublishSource, StatusPlan};
use crate::store::files;
use crate::store::kube::{Change, StoreEvent, WatchScope, object_key};
use crate::store::{Kind, KubeObject, ObjectKey, Objects, Source};

use self::debounce::{Debounce, Pending};
use self::metrics::{CertificateExpiry, ControlPlaneMetrics, Propagation};

/// Settings of the reconcile loop.
#[derive(Clone)]
pub struct ReconcileConfig {
    /// Compile settings (`now_unix` is refreshed before every compile).
    pub compile: CompileConfig,
    /// Quiet period: build once no change arrived for this long.
    pub quiet: Duration,
    /// Maximum delay: build at the latest this long after the first change of a burst.
    pub max_delay: Duration,
    /// Metrics handles of every control-plane component, shared with the admin server.
    pub metrics: ControlPlaneMetrics,
    /// The longest time between two certificate validity checks while an HTTPS listener
    /// exists (the check also runs just after the earliest expiry).
    pub certificate_recheck: Duration,
    /// The zone weir runs in (`--zone`), for topology-aware endpoint preference.
    pub zone: Option<String>,
}

impl ReconcileConfig {
    /// Defaults: 100 ms quiet period, 1 s maximum delay, certificates re-checked at least
    /// hourly, fresh metrics.
    pub fn new(compile: CompileConfig) -> Self {
        ReconcileConfig {
            compile,
            quiet: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            metrics: ControlPlaneMetrics::default(),
            certificate_recheck: Duration::from_secs(3600),
            zone: None,
        }
    }
}

/// Settings of Kubernetes mode.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// Watch namespaced kinds in this namespace only (`None`: all namespaces).
    pub watch_namespace: Option<String>,
    /// `--publish-service NS/NAME`: publish that Service's addresses in Ingress status.
    pub publish_service: Option<ObjectKey>,
    /// `--publish-address`: fixed addresses to publish when no Service is given.
    pub publish_addresses: Vec<String>,
    /// Leader election.
    pub lease: LeaseOptions,
    /// `reportingController` of Events (e.g. `weir.dev/ingress-controller`).
    pub event_controller: String,
}

/// Errors of the reconcile loop.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// API discovery (which optional kinds the cluster serves) failed at start-up.
    #[error("asking the API server which optional APIs it serves")]
    Discovery(#[source] ::kube::Error),
    /// The manifests directory could not be loaded at start-up.
    #[error("loading manifests from {dir}")]
    Load {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: files::LoadError,
    },
    /// The manifests directory could not be watched.
    #[error("watching manifests directory {dir}")]
    Notify {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: notify::Error,
    },
    /// Leader election could not start.
    #[error("leader election")]
    Lease(#[source] LeaseError),
}

/// Serve from a manifests directory: load, compile and publish, then reload on every change
/// (debounced). A reload that fails to read the directory keeps the last snapshot.
pub async fn run_files(
    dir: PathBuf,
    cfg: ReconcileConfig,
    proxy: Proxy,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ReconcileError> {
    use notify::Watcher as _;

    let started = Instant::now();
    let (objects, diagnostics) = files::load_dir(&dir).map_err(|source| ReconcileError::Load {
        dir: dir.clone(),
        source,
    })?;
    log_load_diagnostics(&diagnostics);
    let mut debounce = Debounce::new(cfg.quiet, cfg.max_delay);
    cfg.metrics.watch.set_synced(Source::Manifests);
    let mut core = Core::new(cfg, proxy);
    core.set_objects(objects);
    core.build(Pending {
        compile: true,
        status: false,
        first_arrival: Some(started),
    });
    debounce.mark_synced(started);
    let _ = debounce.fire(started); // the initial build is done

    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    // Symlinked directories are not loaded (`files::load_dir`), so not watched either. A
    // ConfigMap volume's update swaps its `..data` symlink in the watched directory itself,
    // and that event triggers the reload.
    let mut watcher = notify::RecommendedWatcher::new(
        move |event: notify::Result<notify::Event>| match event {
            Ok(event) if event.kind.is_access() => {}
            Ok(_) => {
                let _ = tx.send(());
            }
            Err(error) => tracing::warn!(%error, "manifests watch error"),
        },
        notify::Config::default().with_follow_symlinks(false),
    )
    .map_err(|source| ReconcileError::Notify {
        dir: dir.clone(),
        source,
    })?;
    watcher
        .watch(&dir, notify::RecursiveMode::Recursive)
        .map_err(|source| ReconcileError::Notify {
            dir: dir.clone(),
            source,
        })?;

    tokio::pin!(shutdown);
    loop {
        let deadline = debounce.deadline();
        tokio::select! {
            biased;
            () = &mut shutdown => return Ok(()),
            () = sleep_until(deadline) => {
                let Some(pending) = debounce.fire(Instant::now()) else { continue };
                match files::load_dir(&dir) {
                    Ok((objects, diagnostics)) => {
                        log_load_diagnostics(&diagnostics);
                        core.set_objects(objects);
                        core.build(pending);
                    }
                    Err(error) => {
                        core.cfg.metrics.watch.watch_error(Source::Manifests);
                        tracing::warn!(error = %error_chain(&error), dir = %dir.display(), "reloading manifests failed; keeping the last snapshot");
                    }
                }
            }
            () = sleep_until(core.recheck_at) => core.recheck_certificates(),
            change = rx.recv() => {
                if change.is_none() {
                    return Ok(()); // the watcher is gone
                }
                let now = Instant::now();
                debounce.change(now, now, true);
            }
        }
    }
}

/// Run as an ingress controller: watch the API, compile, publish; write status and Events
/// while holding the leader Lease. Returns when `shutdown` completes (releasing the Lease).
pub async fn run_kube(
    client: Client,
    opts: KubeOptions,
    cfg: ReconcileConfig,
    proxy: Proxy,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ReconcileError> {
    let metrics = cfg.metrics.clone();
    let absent = crate::store::kube::absent_kinds(&client)
        .await
        .map_err(ReconcileError::Discovery)?;
    if !absent.is_empty() {
        tracing::info!(
            kinds = ?absent.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "the API server does not serve these optional kinds (Gateway API CRDs not installed): not watched"
        );
    }
    let scope = WatchScope {
        namespace: opts.watch_namespace.clone(),
        publish_service: opts.publish_service.clone(),
        absent,
    };
    let (stop_lease, lease_stopped) = tokio::sync::oneshot::channel::<()>();
    let (leadership, election) = lease::elect(
        client.clone(),
        opts.lease.clone(),
        metrics.lease.clone(),
        async move {
            let _ = lease_stopped.await;
        },
    )
    .map_err(ReconcileError::Lease)?;
    let election = tokio::spawn(election);

    let (plan_tx, plan_rx) = watch::channel(Arc::new(StatusPlan::default()));
    let reporter = Reporter {
        controller: opts.event_controller.clone(),
        instance: Some(opts.lease.identity.clone()),
    };
    let writer = tokio::spawn(status::run_writer(
        client.clone(),
        plan_rx,
        leadership,
        reporter,
        metrics.status.clone(),
        opts.lease.retry_period,
    ));

    let (tx, rx) = mpsc::channel(4096);
    let watchers = crate::store::kube::spawn_watchers(&client, &scope, tx, metrics.watch);

    let mut core = Core::new(cfg, proxy);
    core.status = Some(StatusState {
        plans: plan_tx,
        publish: PublishSource {
            service: opts.publish_service.clone(),
            addresses: opts.publish_addresses.clone(),
        },
        publish_service: None,
        ours: BTreeSet::new(),
    });
    drive(&mut core, rx, &scope.required_kinds(), shutdown).await;

    drop(watchers); // aborts the watcher tasks
    writer.abort();
    let _ = stop_lease.send(());
    // Releasing the Lease is best effort and bounded.
    let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
    Ok(())
}

/// The reconcile loop over a channel of store events, until `shutdown` or the channel closes.
/// Compiles only once every source in `required` has listed.
pub async fn drive(
    core: &mut Core,
    mut rx: mpsc::Receiver<StoreEvent>,
    required: &[Source],
    shutdown: impl Future<Output = ()>,
) {
    let mut debounce = Debounce::new(core.cfg.quiet, core.cfg.max_delay);
    let mut synced: BTreeSet<Source> = BTreeSet::new();
    // The compile running on its blocking thread, and what it was started for.
    let mut compiling: Option<(tokio::task::JoinHandle<_>, Pending)> = None;
    tokio::pin!(shutdown);
    loop {
        let deadline = debounce.deadline();
        let idle = compiling.is_none();
        // Biased, timer before events: a stream of events must not starve the build.
        tokio::select! {
            biased;
            () = &mut shutdown => return,
            done = async { (&mut compiling.as_mut().expect("guarded").0).await }, if !idle => {
                let (_, pending) = compiling.take().expect("guarded");
                match done {
                    Ok(done) => core.finish_compile(done, pending, &mut debounce),
                    // Cancelled: only at runtime shutdown.
                    Err(error) => {
                        tracing::warn!(%error, "compile task gone");
                        return;
                    }
                }
            }
            () = sleep_until(deadline), if idle => {
                if let Some(pending) = debounce.fire(Instant::now()) {
                    if pending.compile {
                        compiling = Some((core.start_compile(), pending));
                    } else {
                        core.update_status_plan();
                    }
                }
            }
            () = sleep_until(core.recheck_at), if idle => core.recheck_certificates(),
            event = rx.recv() => {
                let Some(event) = event else { return };
                let source = event.source;
                let replaced = matches!(event.change, Change::Replace(_));
                core.apply(event, &mut debounce);
                if replaced && synced.insert(source) && !debounce.is_synced()
                    && required.iter().all(|k| synced.contains(k))
                {
                    tracing::info!("every watched kind has listed; compiling");
                    debounce.mark_synced(Instant::now());
                }
            }
        }
    }
}

/// The certificates each HTTPS listener of `snapshot` serves (SNI entries and the default),
/// each source once per listener.
fn served_certificates(snapshot: &crate::snapshot::Snapshot) -> Vec<CertificateExpiry> {
    let mut served = BTreeSet::new();
    for listener in &snapshot.listeners {
        let Some(tls) = &listener.tls else { continue };
        for cert in tls.sni.values().chain(&tls.default) {
            // compile wrote `not_after` as RFC 3339 from the certificate's own timestamp.
            let Ok(not_after) = cert.not_after.parse::<k8s_openapi::jiff::Timestamp>() else {
                continue;
            };
            served.insert(CertificateExpiry {
                listener: listener.name.clone(),
                source: cert.source.clone(),
                not_after: not_after.as_second(),
            });
        }
    }
    served.into_iter().collect()
}

/// How long until compile must look at the clock again: one second past the earliest
/// `notAfter` served (compile rejects a certificate once `notAfter < now`), but never later
/// than `cap` while an HTTPS listener exists, and never sooner than a second. `None`: no
/// HTTPS listener, nothing depends on the clock.
fn next_certificate_check(
    now_unix: i64,
    served: &[CertificateExpiry],
    has_https: bool,
    cap: Duration,
) -> Option<Duration> {
    if !has_https {
        return None;
    }
    let Some(earliest) = served.iter().map(|c| c.not_after).min() else {
        return Some(cap);
    };
    let secs = earliest.saturating_add(1).saturating_sub(now_unix).max(1);
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX)).min(cap))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Status bookkeeping of Kubernetes mode.
struct StatusState {
    plans: watch::Sender<Arc<StatusPlan>>,
    publish: PublishSource,
    /// `None` until the publish Service has listed; then `Some(None)` if it does not exist.
    publish_service: Option<Option<Service>>,
    ours: BTreeSet<ObjectKey>,
}

/// The state the reconcile loop owns: the objects, the last compile's index and report,
/// and the endpoint sets last handed to the proxy.
pub struct Core {
    /// The compile input, as the source last reported it (every kind but EndpointSlices).
    /// Handed to the compile thread while a compile runs ([`Core::start_compile`]).
    objects: Objects,
    /// The EndpointSlices (only that kind): the endpoints fast path's own, never waiting for
    /// a compile.
    slices: Objects,
    /// A compile is running: compile-input changes wait here (in arrival order) until its
    /// objects come back.
    deferred: Option<Vec<(Kind, Change, Instant)>>,
    cfg: ReconcileConfig,
    proxy: Proxy,
    /// Service → its clusters in the current snapshot (rebuilt on every compile).
    service_clusters: HashMap<ObjectKey, Vec<Arc<Cluster>>>,
    /// Service → the keys of its EndpointSlices.
    slices_by_service: HashMap<ObjectKey, BTreeSet<ObjectKey>>,
    /// What the proxy holds.
    endpoints: EndpointSets,
    /// Conditions of the last compile (to log only what changed).
    conditions: BTreeMap<ObjectRef, Vec<Condition>>,
    report: StatusReport,
    status: Option<StatusState>,
    /// When to compile again because a certificate's validity may have changed.
    recheck_at: Option<Instant>,
}

impl Core {
    /// An empty core publishing into `proxy`.
    pub fn new(cfg: ReconcileConfig, proxy: Proxy) -> Self {
        Core {
            objects: Objects::default(),
            slices: Objects::default(),
            deferred: None,
            cfg,
            proxy,
            service_clusters: HashMap::new(),
            slices_by_service: HashMap::new(),
            endpoints: EndpointSets::new(),
            conditions: BTreeMap::new(),
            report: StatusReport::default(),
            status: None,
            recheck_at: None,
        }
    }

    /// Replace every object (a manifests directory's load): the compile input and the
    /// EndpointSlices.
    pub fn set_objects(&mut self, mut objects: Objects) {
        self.slices.endpoint_slices = std::mem::take(&mut objects.endpoint_slices);
        self.objects = objects;
        self.rebuild_slice_index();
    }

    /// Apply one store event; EndpointSlice changes are published at once.
    pub fn apply(&mut self, event: StoreEvent, debounce: &mut Debounce) {
        let StoreEvent {
            source,
            change,
            arrived,
        } = event;
        match source {
            Source::PublishService => self.apply_publish_service(change, arrived, debounce),
            Source::Kind(Kind::EndpointSlice) => self.apply_endpoint_slice(change, arrived),
            Source::Kind(kind) => self.apply_compile_input(kind, change, arrived, debounce),
            Source::Manifests => {} // file mode reloads the whole directory, never sends events
        }
    }

    /// The publish Service only feeds the status plan: no compile.
    fn apply_publish_service(&mut self, change: Change, arrived: Instant, debounce: &mut Debounce) {
        let Some(status) = &mut self.status else {
            return;
        };
        let service = |object: KubeObject| match object {
            KubeObject::Service(svc) => Some(svc),
            _ => None,
        };
        let current = status.publish_service.get_or_insert(None);
        *current = match change {
            Change::Apply(object) => service(*object),
            Change::Replace(list) => list.into_iter().find_map(service),
            Change::Delete(_) => None,
        };
        debounce.change(Instant::now(), arrived, false);
    }

    /// Any kind but EndpointSlices: store, then compile after the debounce if the change can
    /// alter compile's output.
    fn apply_compile_input(
        &mut self,
        kind: Kind,
        change: Change,
        arrived: Instant,
        debounce: &mut Debounce,
    ) {
        if let Some(deferred) = &mut self.deferred {
            deferred.push((kind, change, arrived));
            return;
        }
        let now = Instant::now();
        match change {
            Change::Replace(list) => {
                self.objects.clear(kind);
                for object in list {
                    self.store(object);
                }
                debounce.change(now, arrived, true);
            }
            Change::Apply(object) => {
                let compile = self.objects.changes_compile_input(&object);
                self.store(*object);
                debounce.change(now, arrived, compile);
            }
            Change::Delete(key) => {
                if self.objects.delete(kind, &key) {
                    debounce.change(now, arrived, true);
                }
            }
        }
    }

    /// The endpoints fast path: recompute and publish the endpoint sets of the Services whose
    /// slices changed; no compile.
    fn apply_endpoint_slice(&mut self, change: Change, arrived: Instant) {
        match change {
            Change::Replace(list) => {
                self.slices.clear(Kind::EndpointSlice);
                for object in list {
                    self.store(object);
                }
                self.rebuild_slice_index();
                self.publish_all_endpoints(arrived);
            }
            Change::Apply(object) => {
                let object = *object;
                let key = object_key(&object);
                let new_service = match &object {
                    KubeObject::EndpointSlice(slice) => slice_service(&key, slice),
                    _ => None,
                };
                let old_service = self
                    .slices
                    .endpoint_slices
                    .get(&key)
                    .and_then(|slice| slice_service(&key, slice));
                self.store(object);
                self.index_slice(&key, old_service.as_ref(), new_service.as_ref());
                if old_service != new_service
                    && let Some(old) = &old_service
                {
                    self.publish_service_endpoints(old, arrived);
                }
                if let Some(service) = &new_service {
                    self.publish_service_endpoints(service, arrived);
                }
            }
            Change::Delete(key) => {
                let service = self
                    .slices
                    .endpoint_slices
                    .get(&key)
                    .and_then(|slice| slice_service(&key, slice));
                self.slices.delete(Kind::EndpointSlice, &key);
                self.index_slice(&key, service.as_ref(), None);
                if let Some(service) = service {
                    self.publish_service_endpoints(&service, arrived);
                }
            }
        }
    }

    /// Store one object through [`Objects::apply`] (the same normalisation as the file source).
    fn store(&mut self, object: KubeObject) {
        let store = match object {
            KubeObject::EndpointSlice(_) => &mut self.slices,
            _ => &mut self.objects,
        };
        if let Err(error) = store.apply(object) {
            tracing::warn!(%error, "skipping an object the store refuses");
        }
    }

    /// Compile (when asked) on this thread, publish, and recompute the status plan.
    pub fn build(&mut self, pending: Pending) {
        if pending.compile {
            let compiled = self.compile();
            self.finish(compiled, pending.first_arrival);
        }
        self.update_status_plan();
    }

    /// Start compiling on a blocking thread: the objects go with it, and compile-input
    /// changes wait in `deferred` until [`Core::finish_compile`] takes them back, while
    /// EndpointSlice changes keep their fast path (a compile of 50,000 routes must not
    /// delay an endpoint change behind it).
    fn start_compile(&mut self) -> tokio::task::JoinHandle<CompileDone> {
        let now_unix = unix_now();
        self.cfg.compile.now_unix = now_unix;
        let config = self.cfg.compile.clone();
        let objects = std::mem::take(&mut self.objects);
        self.deferred = Some(Vec::new());
        tokio::task::spawn_blocking(move || {
            // compile is pure and total, so a panic is a bug; the objects still come back and
            // the last snapshot keeps serving.
            let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                compile(&objects, &config)
            }))
            .ok();
            (objects, compiled)
        })
    }

    /// A compile started by [`Core::start_compile`] is done: take the objects back, publish,
    /// then apply the changes that arrived meanwhile (they schedule the next compile).
    fn finish_compile(
        &mut self,
        (objects, compiled): CompileDone,
        pending: Pending,
        debounce: &mut Debounce,
    ) {
        self.objects = objects;
        match compiled {
            Some(compiled) => {
                self.after_compile(self.cfg.compile.now_unix, &compiled);
                self.finish(compiled, pending.first_arrival);
                self.update_status_plan();
            }
            None => tracing::error!("compile panicked; keeping the last snapshot"),
        }
        for (kind, change, arrived) in self.deferred.take().unwrap_or_default() {
            self.apply_compile_input(kind, change, arrived, debounce);
        }
    }

    fn finish(&mut self, compiled: crate::compile::Compiled, first_arrival: Option<Instant>) {
        self.publish(compiled);
        if let Some(first) = first_arrival {
            self.cfg
                .metrics
                .reconcile
                .observe_propagation(Propagation::Routes, first.elapsed());
        }
    }

    /// The certificate timer fired: compile again, and publish only if the clock changed
    /// something (a certificate expired or became valid), which always shows as a condition.
    pub fn recheck_certificates(&mut self) {
        let compiled = self.compile();
        if compiled.status.conditions == self.report.conditions {
            tracing::debug!("certificate re-check: nothing changed");
            return;
        }
        tracing::info!("certificate re-check: validity changed; publishing");
        self.publish(compiled);
        self.update_status_plan();
    }

    /// Compile the objects at the current time, and schedule the next certificate re-check.
    fn compile(&mut self) -> crate::compile::Compiled {
        let now_unix = unix_now();
        self.cfg.compile.now_unix = now_unix;
        let started = std::time::Instant::now();
        let compiled = compile(&self.objects, &self.cfg.compile);
        tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "compiled");
        self.after_compile(now_unix, &compiled);
        compiled
    }

    /// What every compile's result sets: the next certificate re-check and the certificate
    /// metrics.
    fn after_compile(&mut self, now_unix: i64, compiled: &crate::compile::Compiled) {
        let served = served_certificates(&compiled.snapshot);
        let has_https = compiled.snapshot.listeners.iter().any(|l| l.tls.is_some());
        self.recheck_at =
            next_certificate_check(now_unix, &served, has_https, self.cfg.certificate_recheck)
                .map(|delay| Instant::now() + delay);
        let expired = compiled
            .status
            .conditions
            .values()
            .flatten()
            .filter(|c| c.reason == crate::api::reasons::CERTIFICATE_EXPIRED)
            .count();
        self.cfg
            .metrics
            .reconcile
            .set_certificates(served, u64::try_from(expired).unwrap_or(u64::MAX));
    }

    /// Publish a compile's endpoint sets, then its snapshot; keep its report.
    fn publish(&mut self, compiled: crate::compile::Compiled) {
        self.log_conditions(&compiled.status);
        self.service_clusters.clear();
        for cluster in compiled.snapshot.clusters.values() {
            self.service_clusters
                .entry(ObjectKey::new(
                    cluster.key.namespace(),
                    cluster.key.service(),
                ))
                .or_default()
                .push(cluster.clone());
        }
        // Endpoints first: a new route must never point at a cluster with no endpoint
        // set yet.
        let started = std::time::Instant::now();
        self.endpoints = endpoints::build(
            &self.slices,
            &compiled.snapshot.clusters,
            self.cfg.zone.as_deref(),
        );
        let built = started.elapsed();
        self.proxy
            .publish_endpoints(Arc::new(self.endpoints.clone()));
        let endpoints_published = started.elapsed();
        self.proxy.publish_snapshot(Arc::new(compiled.snapshot));
        tracing::debug!(
            endpoint_sets_ms = built.as_secs_f64() * 1e3,
            endpoints_published_ms = endpoints_published.as_secs_f64() * 1e3,
            snapshot_published_ms = started.elapsed().as_secs_f64() * 1e3,
            "published"
        );
        self.proxy.report_diagnostics(diagnostics(&compiled.status));
        self.report = compiled.status;
        self.cfg.metrics.reconcile.reconciled();
    }

    fn update_status_plan(&mut self) {
        let Some(status) = &mut self.status else {
            return;
        };
        let started = std::time::Instant::now();
        let addresses = status.publish.resolve(status.publish_service.as_ref());
        let plan = status::plan(
            &self.objects,
            &self.report,
            addresses.as_deref(),
            &mut status.ours,
        );
        tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "status plan");
        status.plans.send_if_modified(|current| {
            if **current == plan {
                false
            } else {
                *current = Arc::new(plan);
                true
            }
        });
    }

    fn log_conditions(&mut self, report: &StatusReport) {
        for (object, conditions) in &report.conditions {
            if self.conditions.get(object) == Some(conditions) {
                continue;
            }
            for c in conditions {
                tracing::warn!(
                    kind = object.kind,
                    object = %object.key,
                    condition = c.type_,
                    reason = c.reason,
                    severity = ?c.severity,
                    "{}", c.message
                );
            }
        }
        self.conditions = report.conditions.clone();
    }

    fn rebuild_slice_index(&mut self) {
        self.slices_by_service.clear();
        for (key, slice) in &self.slices.endpoint_slices {
            if let Some(service) = slice_service(key, slice) {
                self.slices_by_service
                    .entry(service)
                    .or_default()
                    .insert(key.clone());
            }
        }
    }

    fn index_slice(&mut self, slice: &ObjectKey, old: Option<&ObjectKey>, new: Option<&ObjectKey>) {
        if old == new {
            return;
        }
        if let Some(old) = old
            && let Some(set) = self.slices_by_service.get_mut(old)
        {
            set.remove(slice);
            if set.is_empty() {
                self.slices_by_service.remove(old);
            }
        }
        if let Some(new) = new {
            self.slices_by_service
                .entry(new.clone())
                .or_default()
                .insert(slice.clone());
        }
    }

    /// The fast path: recompute the endpoint sets of one Service's clusters.
    fn publish_service_endpoints(&mut self, service: &ObjectKey, arrived: Instant) {
        let Some(clusters) = self.service_clusters.get(service) else {
            return; // no route uses this Service
        };
        let slices: Vec<&EndpointSlice> = self
            .slices_by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|key| self.slices.endpoint_slices.get(key).map(|s| &**s))
            .collect();
        let mut changed = false;
        for cluster in clusters {
            let set =
                endpoints::endpoint_set(cluster, slices.iter().copied(), self.cfg.zone.as_deref());
            if self
                .endpoints
                .get(&cluster.key)
                .is_some_and(|current| **current == set)
            {
                continue;
            }
            let set = Arc::new(set);
            self.endpoints.insert(cluster.key.clone(), set.clone());
            self.proxy.update_endpoints(&cluster.key, Some(set));
            changed = true;
        }
        if changed {
            self.cfg
                .metrics
                .reconcile
                .observe_propagation(Propagation::Endpoints, arrived.elapsed());
        }
    }

    /// After a re-list of EndpointSlices: recompute every endpoint set.
    fn publish_all_endpoints(&mut self, arrived: Instant) {
        if self.service_clusters.is_empty() {
            return; // nothing compiled yet
        }
        let clusters: BTreeMap<_, _> = self
            .service_clusters
            .values()
            .flatten()
            .map(|c| (c.key.clone(), c.clone()))
            .collect();
        let sets = endpoints::build(&self.slices, &clusters, self.cfg.zone.as_deref());
        if sets != self.endpoints {
            self.endpoints = sets;
            self.proxy
                .publish_endpoints(Arc::new(self.endpoints.clone()));
            self.cfg
                .metrics
                .reconcile
                .observe_propagation(Propagation::Endpoints, arrived.elapsed());
        }
    }
}

/// What a compile thread hands back: the objects it borrowed, and its result (`None`: it
/// panicked).
type CompileDone = (Objects, Option<crate::compile::Compiled>);

/// Seconds since the Unix epoch (compile's clock, for certificate validity).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The Service an EndpointSlice belongs to (`None` for slices not managed for a Service).
fn slice_service(key: &ObjectKey, slice: &EndpointSlice) -> Option<ObjectKey> {
    Some(ObjectKey::new(&key.namespace, slice.service()?))
}

/// A compile's conditions as the plain text the debug listener's status page shows.
fn diagnostics(report: &StatusReport) -> Vec<crate::proxy::history::Diagnostic> {
    report
        .conditions
        .iter()
        .flat_map(|(object, conditions)| {
            conditions
                .iter()
                .map(move |c| crate::proxy::history::Diagnostic {
                    object: format!("{} {}", object.kind, object.key),
                    severity: match c.severity {
                        crate::compile::Severity::Error => "Error",
                        crate::compile::Severity::Warning => "Warning",
                    },
                    type_: c.type_.to_owned(),
                    reason: c.reason.to_owned(),
                    message: c.message.clone(),
                })
        })
        .collect()
}

fn log_load_diagnostics(diagnostics: &[files::LoadDiagnostic]) {
    for d in diagnostics {
        tracing::warn!(diagnostic = %d, "manifest skipped");
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests;
