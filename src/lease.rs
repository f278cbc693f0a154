//! Leader election over a `coordination.k8s.io/v1` Lease: one replica writes status and
//! Events; every replica serves traffic.
//!
//! client-go's algorithm, by hand: every `retry_period` read the Lease; take it when it is
//! free or has not changed for its `leaseDurationSeconds` (measured on *our* clock from when
//! we last saw it change, so clock skew between replicas does not matter), renew it when we
//! hold it. Every write is a `replace` carrying the `resourceVersion` we read, so two
//! replicas racing for an expired Lease cannot both win: the loser gets 409 Conflict.
//!
//! Leadership is valid until `renew_deadline` after the start of the last successful
//! acquire/renew. [`Leadership::is_leader`] checks that deadline itself, so a replica whose
//! renewals hang or fail stops writing within its renew deadline even if this task is stuck
//! in a request; with `renew_deadline < duration` it stops before anyone else can take over.
//! On shutdown the leader releases the Lease so another replica takes over at once.
//!
//! Written by hand rather than with `kube-lease-manager` to get exactly these semantics
//! (renew-deadline fencing checked at the point of each write) in ~200 lines without another
//! dependency.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::kube::Client;
use ::kube::api::{Api, PostParams};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;

/// Leader election's metrics: whether this replica holds the Lease (`weir_leader`). Put it in
/// an `Arc` shared by the election task and the admin page.
#[derive(Debug, Default)]
pub struct LeaseMetrics {
    leader: AtomicBool,
}

impl LeaseMetrics {
    /// Set whether this replica holds the leader lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Append the metrics in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let leader = u8::from(self.leader.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP weir_leader 1 when this replica holds the leader lease."
        );
        let _ = writeln!(out, "# TYPE weir_leader gauge");
        let _ = writeln!(out, "weir_leader {leader}");
    }
}

/// Where the Lease lives and how it is timed.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// Namespace of the Lease (weir's own namespace).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (pod name or hostname); must be unique per replica.
    pub identity: String,
    /// How long a Lease lasts without renewal before another replica may take it.
    pub duration: Duration,
    /// How long the leader keeps writing without a successful renewal; less than `duration`.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseOptions {
    /// client-go's defaults (15 s / 10 s / 2 s) for the given Lease and identity.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaseOptions {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The options are inconsistent.
    #[error("invalid lease options: {0}")]
    Options(&'static str),
}

/// Whether this replica may write. Cheap to clone; readable from any task.
#[derive(Clone)]
pub struct Leadership {
    valid_until: Arc<Mutex<Option<Instant>>>,
    changes: watch::Receiver<bool>,
}

impl Leadership {
    /// A handle that is never leader (for tests and for runs without election).
    pub fn never() -> Self {
        let (_tx, rx) = watch::channel(false);
        Leadership {
            valid_until: Arc::new(Mutex::new(None)),
            changes: rx,
        }
    }

    /// Whether this replica holds the Lease right now (checked against the renew deadline
    /// at the moment of the call).
    pub fn is_leader(&self) -> bool {
        match *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(until) => Instant::now() < until,
            None => false,
        }
    }

    /// Wait until leadership may have changed.
    pub async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            // The lease task is gone: leadership can only lapse now; wake at the deadline.
            let until = *self.valid_until.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => std::future::pending::<()>().await,
            }
        }
    }
}

/// The writing side of [`Leadership`], owned by the election task.
struct Elector {
    valid_until: Arc<Mutex<Option<Instant>>>,
    changes: watch::Sender<bool>,
    metrics: Arc<LeaseMetrics>,
}

impl Elector {
    fn set(&self, until: Option<Instant>) {
        *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) = until;
        self.publish();
    }

    fn publish(&self) {
        let leader = match *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(until) => Instant::now() < until,
            None => false,
        };
        self.metrics.set_leader(leader);
        self.changes.send_if_modified(|current| {
            let changed = *current != leader;
            *current = leader;
            changed
        });
    }
}

/// Start election: returns the handle and the future that runs it until `shutdown`.
pub fn elect(
    client: Client,
    opts: LeaseOptions,
    metrics: Arc<LeaseMetrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Leadership, impl Future<Output = ()> + Send + 'static), LeaseError> {
    if opts.renew_deadline >= opts.duration {
        return Err(LeaseError::Options(
            "renew deadline must be shorter than the lease duration",
        ));
    }
    if opts.retry_period >= opts.renew_deadline {
        return Err(LeaseError::Options(
            "retry period must be shorter than the renew deadline",
        ));
    }
    if opts.identity.is_empty() {
        return Err(LeaseError::Options("identity must not be empty"));
    }
    let valid_until = Arc::new(Mutex::new(None));
    let (tx, rx) = watch::channel(false);
    let handle = Leadership {
        valid_until: valid_until.clone(),
        changes: rx,
    };
    let elector = Elector {
        valid_until,
        changes: tx,
        metrics,
    };
    let api: Api<Lease> = Api::namespaced(client, &opts.namespace);
    Ok((handle, run(api, opts, elector, shutdown)))
}

/// What we last saw of the Lease, and when (on our clock).
struct Observed {
    record: (Option<String>, Option<MicroTime>, Option<i32>),
    at: Instant,
}

async fn run(
    api: Api<Lease>,
    opts: LeaseOptions,
    elector: Elector,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut observed: Option<Observed> = None;
    tokio::pin!(shutdown);
    loop {
        let started = Instant::now();
        match try_acquire_or_renew(&api, &opts, &mut observed, started).await {
            Ok(true) => elector.set(Some(started + opts.renew_deadline)),
            Ok(false) => elector.set(None),
            Err(error) => {
                // Keep whatever validity is left; it lapses at the renew deadline.
                tracing::warn!(%error, lease = %opts.name, "lease acquire/renew failed");
                elector.publish();
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(opts.retry_period) => {}
        }
    }
    if elector
        .valid_until
        .lock()
        .map(|u| u.is_some())
        .unwrap_or(false)
    {
        elector.set(None);
        if let Err(error) = release(&api, &opts).await {
            tracing::warn!(%error, lease = %opts.name, "releasing the lease failed");
        }
    }
}

/// One round of client-go's `tryAcquireOrRenew`. `Ok(true)`: we hold the Lease.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    opts: &LeaseOptions,
    observed: &mut Option<Observed>,
    now: Instant,
) -> Result<bool, ::kube::Error> {
    let duration_secs = i32::try_from(opts.duration.as_secs())
        .unwrap_or(i32::MAX)
        .max(1);
    let wall_now = MicroTime(Timestamp::now());
    let Some(current) = api.get_opt(&opts.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(opts.name.clone()),
                namespace: Some(opts.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(opts.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(wall_now.clone()),
                renew_time: Some(wall_now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => {
                tracing::info!(lease = %opts.name, identity = %opts.identity, "acquired the lease");
                Ok(true)
            }
            Err(::kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
            Err(error) => Err(error),
        };
    };
    let spec = current.spec.clone().unwrap_or_default();
    let record = (
        spec.holder_identity.clone(),
        spec.renew_time.clone(),
        spec.lease_duration_seconds,
    );
    if observed.as_ref().is_none_or(|o| o.record != record) {
        *observed = Some(Observed { record, at: now });
    }
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    let ours = holder == opts.identity;
    if !ours && !holder.is_empty() {
        let held_for = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(duration_secs)).unwrap_or(0),
        );
        let seen_at = observed.as_ref().map_or(now, |o| o.at);
        if now < seen_at + held_for {
            return Ok(false); // held by someone else and not expired
        }
    }
    let mut next = current.clone();
    let transitions = spec.lease_transitions.unwrap_or(0);
    next.spec = Some(LeaseSpec {
        holder_identity: Some(opts.identity.clone()),
        lease_duration_seconds: Some(duration_secs),
        acquire_time: if ours {
            spec.acquire_time.clone()
        } else {
            Some(wall_now.clone())
        },
        renew_time: Some(wall_now),
        lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
        ..spec
    });
    // `next` carries the resourceVersion we read: a concurrent writer makes this a 409.
    match api.replace(&opts.name, &PostParams::default(), &next).await {
        Ok(_) => {
            if !ours {
                tracing::info!(lease = %opts.name, identity = %opts.identity, previous = holder, "took over the lease");
            }
            Ok(true)
        }
        Err(::kube::Error::Api(status)) if status.is_conflict() => Ok(false),
        Err(error) => Err(error),
    }
}

/// Give the Lease up (empty holder, 1 s duration) so another replica takes over at once.
async fn release(api: &Api<Lease>, opts: &LeaseOptions) -> Result<(), ::kube::Error> {
    let Some(mut lease) = api.get_opt(&opts.name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(opts.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    api.replace(&opts.name, &PostParams::default(), &lease)
        .await?;
    tracing::info!(lease = %opts.name, "released the lease");
    Ok(())
}
