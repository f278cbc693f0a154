//! The Kubernetes source of [`Objects`]: one kube-runtime watcher per kind.
//!
//! Each watcher lists, then watches with bookmarks; kube-runtime re-lists on 410 Gone and
//! the stream is wrapped in the default backoff, so an unreachable or restarting API server
//! only delays events (every error is counted in `weir_watch_errors_total` and logged).
//!
//! Objects are watched as [`DynamicObject`] and decoded into their k8s-openapi type one by
//! one: kube-runtime fails a whole list page when one typed object does not decode, so a
//! single bad object would otherwise stall a kind forever. An object that does not decode
//! is skipped with a warning (and treated as absent). `managedFields` and the
//! `last-applied-configuration` annotation are dropped before decoding to keep memory small,
//! and only Secrets of type `kubernetes.io/tls` are watched.
//!
//! Decoded objects are [`KubeObject`]s, stored through [`Objects::apply`] like the file
//! source's. The watchers do not touch [`Objects`]: they send [`StoreEvent`]s, stamped with their
//! arrival time, to the reconcile loop, which owns the objects. A (re-)list is buffered and
//! sent as one [`Change::Replace`], so objects deleted while a watch was down disappear.

use std::fmt::Debug;
use std::sync::Arc;

use ::kube::api::{ApiResource, DynamicObject};
use ::kube::runtime::WatchStreamExt;
use ::kube::runtime::watcher::{self, Event};
use ::kube::{Api, Client};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::reconcile::metrics::{ControlPlaneMetrics, WatchKind};
use crate::store::{Kind, KubeObject, ObjectKey, Objects};

/// Annotation `kubectl apply` leaves behind: a full copy of the object, never read by weir.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Namespace and name of an object as the API server sent it.
pub fn object_key(object: &KubeObject) -> ObjectKey {
    let meta = match object {
        KubeObject::Ingress(o) => &o.metadata,
        KubeObject::IngressClass(o) => &o.metadata,
        KubeObject::Service(o) => &o.metadata,
        KubeObject::EndpointSlice(o) => &o.metadata,
        KubeObject::Secret(o) => &o.metadata,
    };
    key_of(meta)
}

/// Empty the map of `kind` in `objects` (before a re-list refills it).
pub fn clear_kind(objects: &mut Objects, kind: Kind) {
    match kind {
        Kind::Ingress => objects.ingresses.clear(),
        Kind::IngressClass => objects.ingress_classes.clear(),
        Kind::Service => objects.services.clear(),
        Kind::EndpointSlice => objects.endpoint_slices.clear(),
        Kind::Secret => objects.secrets.clear(),
    }
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

/// A change of one kind, stamped with when it reached weir.
#[derive(Debug, Clone)]
pub struct StoreEvent {
    /// The kind.
    pub kind: WatchKind,
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
}

impl WatchScope {
    /// The kinds that must list before anything is compiled.
    pub fn required_kinds(&self) -> Vec<WatchKind> {
        vec![
            WatchKind::Ingress,
            WatchKind::IngressClass,
            WatchKind::Service,
            WatchKind::EndpointSlice,
            WatchKind::Secret,
        ]
    }
}

/// Start one watcher task per kind, sending into `tx`. Dropping the returned set stops them.
pub fn spawn_watchers(
    client: &Client,
    scope: &WatchScope,
    tx: mpsc::Sender<StoreEvent>,
    metrics: Arc<ControlPlaneMetrics>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let base = watcher::Config::default();
    let ns = scope.namespace.as_deref();
    tasks.spawn(watch_kind::<Ingress>(
        namespaced_api::<Ingress>(client, ns),
        base.clone(),
        WatchKind::Ingress,
        KubeObject::Ingress,
        tx.clone(),
        metrics.clone(),
    ));
    tasks.spawn(watch_kind::<IngressClass>(
        namespaced_api::<IngressClass>(client, None),
        base.clone(),
        WatchKind::IngressClass,
        KubeObject::IngressClass,
        tx.clone(),
        metrics.clone(),
    ));
    tasks.spawn(watch_kind::<Service>(
        namespaced_api::<Service>(client, ns),
        base.clone(),
        WatchKind::Service,
        KubeObject::Service,
        tx.clone(),
        metrics.clone(),
    ));
    tasks.spawn(watch_kind::<EndpointSlice>(
        namespaced_api::<EndpointSlice>(client, ns),
        base.clone(),
        WatchKind::EndpointSlice,
        KubeObject::EndpointSlice,
        tx.clone(),
        metrics.clone(),
    ));
    tasks.spawn(watch_kind::<Secret>(
        namespaced_api::<Secret>(client, ns),
        base.clone().fields("type=kubernetes.io/tls"),
        WatchKind::Secret,
        KubeObject::Secret,
        tx.clone(),
        metrics.clone(),
    ));
    if let Some(svc) = &scope.publish_service {
        tasks.spawn(watch_kind::<Service>(
            namespaced_api::<Service>(client, Some(&svc.namespace)),
            base.fields(&format!("metadata.name={}", svc.name)),
            WatchKind::PublishService,
            KubeObject::Service,
            tx,
            metrics,
        ));
    }
    tasks
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

/// Run one watcher until `tx` closes, decoding each object into `K`.
pub async fn watch_kind<K>(
    api: Api<DynamicObject>,
    config: watcher::Config,
    kind: WatchKind,
    wrap: fn(K) -> KubeObject,
    tx: mpsc::Sender<StoreEvent>,
    metrics: Arc<ControlPlaneMetrics>,
) where
    K: DeserializeOwned + Debug,
{
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut listing: Vec<KubeObject> = Vec::new();
    while let Some(item) = stream.next().await {
        let arrived = Instant::now();
        let change = match item {
            Err(error) => {
                metrics.watch_error(kind);
                tracing::warn!(%error, kind = kind.as_str(), "watch failed; retrying with backoff");
                continue;
            }
            Ok(Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(Event::InitApply(obj)) => {
                if let Some(obj) = decode::<K>(kind, obj, &metrics) {
                    listing.push(wrap(obj));
                }
                continue;
            }
            Ok(Event::InitDone) => {
                metrics.set_synced(kind);
                tracing::debug!(kind = kind.as_str(), objects = listing.len(), "listed");
                Change::Replace(std::mem::take(&mut listing))
            }
            Ok(Event::Apply(obj)) => {
                let key = key_of(&obj.metadata);
                match decode::<K>(kind, obj, &metrics) {
                    Some(obj) => Change::Apply(Box::new(wrap(obj))),
                    // An object that stops decoding is treated as gone, as a re-list would.
                    None => Change::Delete(key),
                }
            }
            Ok(Event::Delete(obj)) => Change::Delete(key_of(&obj.metadata)),
        };
        let event = StoreEvent {
            kind,
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
pub fn decode<K: DeserializeOwned>(
    kind: WatchKind,
    mut obj: DynamicObject,
    metrics: &ControlPlaneMetrics,
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
            metrics.skipped_object(kind);
            tracing::warn!(%error, kind = kind.as_str(), object = %key, "skipping an object that does not decode");
            None
        }
    }
}

/// Drop `managedFields` and the last-applied annotation: often most of an object's bytes.
pub fn slim(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
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
