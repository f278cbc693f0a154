//! The Kubernetes source of [`Objects`]: one kube-runtime watcher per kind of the kind table
//! (see [`crate::store`]), plus one for the `--publish-service` Service.
//!
//! Each watcher lists, then watches with bookmarks; kube-runtime re-lists on 410 Gone and
//! the stream is wrapped in the default backoff, so an unreachable or restarting API server
//! only delays events (every error is counted in `weir_watch_errors_total` and logged).
//!
//! Objects are watched as [`DynamicObject`] and decoded into their Rust type one by one:
//! kube-runtime fails a whole list page when one typed object does not decode, so a single
//! bad object would otherwise stall a kind forever. An object that does not decode
//! is skipped with a warning (and treated as absent). `managedFields` and the
//! `last-applied-configuration` annotation are dropped before decoding to keep memory small,
//! and a kind's [`StoreKind::FIELD_SELECTOR`], when it has one, is asked of the API server.
//!
//! Decoded objects are [`KubeObject`]s, stored through [`Objects::apply`] like the file
//! source's. The watchers do not touch [`Objects`]: they send [`StoreEvent`]s, stamped with their
//! arrival time, to the reconcile loop, which owns the objects. A (re-)list is buffered and
//! sent as one [`Change::Replace`], so objects deleted while a watch was down disappear.
//!
//! [`Objects`]: crate::store::Objects
//! [`Objects::apply`]: crate::store::Objects::apply

use std::sync::Arc;

use crate::api::service::Service;
use ::kube::api::{ApiResource, DynamicObject};
use ::kube::runtime::WatchStreamExt;
use ::kube::runtime::watcher::{self, Event};
use ::kube::{Api, Client};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::store::{
    Kind, KindVisitor, KubeObject, ObjectKey, Source, StoreKind, WatchMetrics, slim,
};

/// Namespace and name of an object as the API server sent it.
pub fn object_key(object: &KubeObject) -> ObjectKey {
    key_of(object.meta())
}

/// A change to the store.
#[derive(Debug, Clone)]
pub enum Change {
    /// An object was added or modified (boxed: events queue in a channel).
    Apply(Box<KubeObject>),
    /// An object was deleted (or stopped decoding).
    Delete(ObjectKey),
    /// A complete (re-)list: the kind now holds exactly these objects.
    Replace(Vec<KubeObject>),
}

/// A change from one source, stamped with when it reached weir.
#[derive(Debug, Clone)]
pub struct StoreEvent {
    /// The watcher it came from.
    pub source: Source,
    /// The change.
    pub change: Change,
    /// When the watch event arrived (start of the propagation measurement).
    pub arrived: Instant,
}

/// What to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchScope {
    /// Watch namespaced kinds in this namespace only (`None`: all namespaces).
    pub namespace: Option<String>,
    /// Also watch this one Service, for the addresses written into Ingress status.
    pub publish_service: Option<ObjectKey>,
    /// Optional kinds whose API the cluster does not serve ([`absent_kinds`]): not watched,
    /// and empty.
    pub absent: Vec<Kind>,
}

impl WatchScope {
    /// The kinds watched: the table's, less the absent ones.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        Kind::ALL
            .iter()
            .copied()
            .filter(|k| !self.absent.contains(k))
    }

    /// The sources that must list before anything is compiled: every watched kind (the
    /// publish Service only delays status, which waits for it on its own).
    pub fn required_kinds(&self) -> Vec<Source> {
        self.kinds().map(Source::Kind).collect()
    }
}

/// The optional kinds of the table ([`crate::store::StoreKind::OPTIONAL`]: the Gateway API)
/// whose API version the API server does not serve, asked once at start: a cluster without
/// the Gateway API's CRDs runs weir for Ingress alone (install the CRDs, then restart weir).
/// A discovery error other than "not found" is returned.
pub async fn absent_kinds(client: &Client) -> Result<Vec<Kind>, ::kube::Error> {
    let mut absent = Vec::new();
    for kind in Kind::ALL.iter().copied().filter(|k| k.is_optional()) {
        let api_version = kind.api_version();
        match client.list_api_group_resources(&api_version).await {
            Ok(list) if list.resources.iter().any(|r| r.kind == kind.as_str()) => {}
            Ok(_) => absent.push(kind),
            Err(::kube::Error::Api(e)) if e.code == 404 => absent.push(kind),
            Err(e) => return Err(e),
        }
    }
    Ok(absent)
}

/// Start one watcher task per kind of the table (in the scope's namespace unless the kind is
/// cluster-scoped, with the kind's field selector), plus one for the publish Service, sending
/// into `tx`. Dropping the returned set stops them.
pub fn spawn_watchers(
    client: &Client,
    scope: &WatchScope,
    tx: mpsc::Sender<StoreEvent>,
    metrics: Arc<WatchMetrics>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for kind in scope.kinds() {
        kind.visit(SpawnWatcher {
            client,
            namespace: scope.namespace.as_deref(),
            tx: &tx,
            metrics: &metrics,
            tasks: &mut tasks,
        });
    }
    if let Some(svc) = &scope.publish_service {
        tasks.spawn(watch_kind::<Service>(
            namespaced_api::<Service>(client, Some(&svc.namespace)),
            watcher::Config::default().fields(&format!("metadata.name={}", svc.name)),
            Source::PublishService,
            tx,
            metrics,
        ));
    }
    tasks
}

/// Spawns the watcher of one kind of the table.
struct SpawnWatcher<'a> {
    client: &'a Client,
    namespace: Option<&'a str>,
    tx: &'a mpsc::Sender<StoreEvent>,
    metrics: &'a Arc<WatchMetrics>,
    tasks: &'a mut JoinSet<()>,
}

impl KindVisitor for SpawnWatcher<'_> {
    type Output = ();

    fn visit<K: StoreKind>(self) {
        let namespace = if K::NAMESPACED { self.namespace } else { None };
        let config = match K::FIELD_SELECTOR {
            Some(fields) => watcher::Config::default().fields(fields),
            None => watcher::Config::default(),
        };
        self.tasks.spawn(watch_kind::<K>(
            namespaced_api::<K>(self.client, namespace),
            config,
            K::KIND.into(),
            self.tx.clone(),
            self.metrics.clone(),
        ));
    }
}

/// A dynamic API for the typed kind `K`, in one namespace or all.
pub fn namespaced_api<K>(client: &Client, namespace: Option<&str>) -> Api<DynamicObject>
where
    K: kube::Resource<DynamicType = ()>,
{
    let resource = ApiResource::erase::<K>(&());
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Run one watcher until `tx` closes, decoding each object into `K`; its events and metrics
/// are labelled `source`.
pub async fn watch_kind<K: StoreKind>(
    api: Api<DynamicObject>,
    config: watcher::Config,
    source: Source,
    tx: mpsc::Sender<StoreEvent>,
    metrics: Arc<WatchMetrics>,
) {
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut listing: Vec<KubeObject> = Vec::new();
    while let Some(item) = stream.next().await {
        let arrived = Instant::now();
        let change = match item {
            Err(error) => {
                metrics.watch_error(source);
                tracing::warn!(%error, kind = source.label(), "watch failed; retrying with backoff");
                continue;
            }
            Ok(Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(Event::InitApply(obj)) => {
                if let Some(obj) = decode::<K>(source, obj, &metrics) {
                    listing.push(obj.into_object());
                }
                continue;
            }
            Ok(Event::InitDone) => {
                metrics.set_synced(source);
                tracing::debug!(kind = source.label(), objects = listing.len(), "listed");
                Change::Replace(std::mem::take(&mut listing))
            }
            Ok(Event::Apply(obj)) => {
                let key = key_of(&obj.metadata);
                match decode::<K>(source, obj, &metrics) {
                    Some(obj) => Change::Apply(Box::new(obj.into_object())),
                    // An object that stops decoding is treated as gone, as a re-list would.
                    None => Change::Delete(key),
                }
            }
            Ok(Event::Delete(obj)) => Change::Delete(key_of(&obj.metadata)),
        };
        let event = StoreEvent {
            source,
            change,
            arrived,
        };
        if tx.send(event).await.is_err() {
            return; // reconcile stopped
        }
    }
}

/// Decode one dynamic object into `K` after dropping what weir never reads; `None` (with a
/// warning and a metric) when it does not decode.
pub fn decode<K: StoreKind>(
    source: Source,
    mut obj: DynamicObject,
    metrics: &WatchMetrics,
) -> Option<K> {
    slim(&mut obj.metadata);
    let key = key_of(&obj.metadata);
    let decoded = serde_json::to_value(&obj.metadata).and_then(|meta| {
        let mut data = std::mem::take(&mut obj.data);
        match &mut data {
            serde_json::Value::Object(map) => {
                map.insert("metadata".to_owned(), meta);
            }
            other => *other = serde_json::json!({ "metadata": meta }),
        }
        serde_json::from_value::<K>(data)
    });
    match decoded {
        Ok(k) => Some(k),
        Err(error) => {
            metrics.skipped_object(source);
            tracing::warn!(%error, kind = source.label(), object = %key, "skipping an object that does not decode");
            None
        }
    }
}

/// Namespace and name of an object.
pub fn key_of(meta: &ObjectMeta) -> ObjectKey {
    ObjectKey::new(
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}
