//! The objects weir compiles from, the sources that fill them, and the one table of kinds.
//!
//! [`Objects`] is the same whichever source filled it (a manifests directory or the
//! Kubernetes API), so nothing downstream knows where an object came from. Both sources insert
//! through [`Objects::apply`] and [`Objects::delete`], which normalise objects the same way
//! (default namespace, no `managedFields`, no last-applied annotation, only TLS Secrets,
//! `auth` Secrets reduced to that key and Secrets of password hashes, only ConfigMaps that
//! are sets of HTTP headers).
//!
//! # The kind table
//!
//! The `kinds!` table below is the only list of kinds: [`Kind`], [`KubeObject`], the
//! maps of [`Objects`], the watchers of [`kube`] (one per kind, with the entry's field
//! selector), the file source, the `weir_watch_*` metric labels ([`Source`]) and the kind names
//! status writes all come from it. Adding a kind is one entry (plus the `use` of its type):
//!
//! ```text
//! /// gateway.networking.k8s.io/v1 HTTPRoute.
//! HTTPRoute(HTTPRoute) in http_routes, label "httproute" {
//!     fn same_compile_input(old: &Self, new: &Self) -> bool {
//!         same_spec(old, new, |o| &o.spec)
//!     }
//! }
//! ```
//!
//! and, outside the code, its `list`/`watch` RBAC rule (`docs/rbac.yaml` and the chart;
//! `tests/kube_kinds.rs` fails until both have it). Compile then reads `objects.http_routes`.

pub mod files;
mod kinds;
pub mod kube;
pub mod metrics;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::api::backendpolicy::BackendPolicy;
use crate::api::endpointslice::EndpointSlice;
use crate::api::gateway::{GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use crate::api::httpfilter::HTTPFilter;
use crate::api::ingress::Ingress;
use crate::api::service::Service;

use crate::api::annotations;

use self::kinds::kinds;
pub use self::kinds::{KindScope, KindVisitor, StoreKind, admit_secret, same_meta, same_spec};
pub use self::metrics::WatchMetrics;

kinds! {
    /// networking.k8s.io/v1 Ingress, as weir's own [`Ingress`]: every field, with the rare
    /// resource and default backends behind a pointer.
    Ingress(Ingress) in ingresses, label "ingress" {
        fn same_compile_input(old: &Self, new: &Self) -> bool {
            same_spec(old, new, |o| &o.spec)
        }
    }
    /// networking.k8s.io/v1 IngressClass (cluster-scoped: empty namespace).
    IngressClass(IngressClass) in ingress_classes, label "ingressclass" {}
    /// v1 Service, as weir's own [`Service`]: the type, the ports, the ClusterIP and the
    /// traffic distribution, which is what compile reads.
    Service(Service) in services, label "service" {
        fn admit(&mut self) -> bool {
            Service::admit(self);
            true
        }
        fn same_compile_input(old: &Self, new: &Self) -> bool {
            same_spec(old, new, |o| &o.spec)
        }
    }
    /// discovery.k8s.io/v1 EndpointSlice (its changes take reconcile's endpoints fast path),
    /// as weir's own [`EndpointSlice`]: what [`crate::endpoints`] reads (the Service, the
    /// address type, the ports, and each endpoint's addresses, conditions, zone and zone
    /// hints) and nothing else: a pod's `targetRef`, `nodeName` and `hostname` are never
    /// deserialized.
    EndpointSlice(EndpointSlice) in endpoint_slices, label "endpointslice" {
        fn admit(&mut self) -> bool {
            EndpointSlice::admit(self);
            true
        }
    }
    /// weir.dev/v1alpha1 HTTPFilter.
    HTTPFilter(HTTPFilter) in http_filters, label "httpfilter" {
        fn same_compile_input(old: &Self, new: &Self) -> bool {
            same_spec(old, new, |o| &o.spec)
        }
    }
    /// weir.dev/v1alpha1 BackendPolicy.
    BackendPolicy(BackendPolicy) in backend_policies, label "backendpolicy" {
        fn same_compile_input(old: &Self, new: &Self) -> bool {
            same_spec(old, new, |o| &o.spec)
        }
    }
    /// gateway.networking.k8s.io/v1 GatewayClass (cluster-scoped; optional API).
    GatewayClass(GatewayClass) in gateway_classes, label "gatewayclass" {
        const OPTIONAL: bool = true;
        fn same_compile_input(old: &Self, new: &Self) -> bool {
            same_spec(old, new, |o| &o.spec)
        }
    }
    /// gateway.networking.k8s.io/v1 Gateway (optional API).
    Gateway(Gateway) in gateways, label "gateway" {
        const OPTIONAL: bool = true;
        fn same_compile_input(old: &Self, new: &Self) -> bool {
            same_spec(old, new, |o| &o.spec)
        }
    }
    /// gateway.networking.k8s.io/v1 HTTPRoute (optional API).
    HTTPRoute(HTTPRoute) in http_routes, label "httproute" {
        const OPTIONAL: bool = true;
        fn same_compile_input(old: &Self, new: &Self) -> bool {
            same_spec(old, new, |o| &o.spec)
        }
    }
    /// gateway.networking.k8s.io/v1 GRPCRoute (optional API).
    GRPCRoute(GRPCRoute) in grpc_routes, label "grpcroute" {
        const OPTIONAL: bool = true;
        fn same_compile_input(old: &Self, new: &Self) -> bool {
            same_spec(old, new, |o| &o.spec)
        }
    }
    /// gateway.networking.k8s.io/v1beta1 ReferenceGrant (optional API).
    ReferenceGrant(ReferenceGrant) in reference_grants, label "referencegrant" {
        const OPTIONAL: bool = true;
        fn same_compile_input(old: &Self, new: &Self) -> bool {
            same_spec(old, new, |o| &o.spec)
        }
    }
    /// v1 Namespace, kept as its name and labels (a Gateway listener's `allowedRoutes`
    /// selects namespaces by label).
    Namespace(Namespace) in namespaces, label "namespace" {
        fn admit(&mut self) -> bool {
            self.spec = None;
            self.status = None;
            self.metadata.annotations = None;
            self.metadata.managed_fields = None;
            true
        }
    }
    /// v1 Secret: of type `kubernetes.io/tls`, or any other with an `auth` key (htpasswd
    /// lines of `BasicAuth` filters, kept reduced to that key); no other Secret is kept.
    Secret(Secret) in secrets, label "secret" {
        fn admit(&mut self) -> bool {
            admit_secret(self)
        }
    }
    /// v1 ConfigMap that can be a set of HTTP headers (ingress-nginx's `custom-headers` names
    /// one): `data` of at most 64 entries, each key a header name and each value a header
    /// value. Every other ConfigMap (certificates, configuration files: most of a cluster's)
    /// is dropped on arrival, so watching them costs no memory.
    ConfigMap(ConfigMap) in config_maps, label "configmap" {
        fn admit(&mut self) -> bool {
            self.binary_data = None;
            self.data.as_ref().is_some_and(|d| {
                !d.is_empty()
                    && d.len() <= 64
                    && d.iter().all(|(k, v)| {
                        http::HeaderName::from_bytes(k.as_bytes()).is_ok()
                            && http::HeaderValue::from_str(v).is_ok()
                    })
            })
        }
    }
}

/// Namespace and name of a namespaced object (cluster-scoped objects use an empty namespace).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKey {
    /// Namespace (`default` when a manifest omits it; empty for cluster-scoped kinds).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// A key from namespace and name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

impl Kind {
    /// The kind for an `apiVersion` and `kind` pair, if weir keeps it.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == kind && k.api_version() == api_version)
    }

    /// The kind with this Kubernetes kind name, if weir keeps it.
    pub fn from_name(kind: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == kind)
    }

    /// Its position in [`Kind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a change comes from, as labelled in the `weir_watch_*` metrics (`kind="…"`): the
/// watcher of one kind, the `--publish-service` Service (watched on its own, kept apart from
/// [`Objects`]), or the manifests directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The watcher of one kind.
    Kind(Kind),
    /// The `--publish-service` Service, watched on its own.
    PublishService,
    /// The manifests directory (file mode).
    Manifests,
}

impl Source {
    /// Number of sources: one per kind, the publish Service and the manifests directory.
    pub const COUNT: usize = Kind::ALL.len() + 2;

    /// Every source, in label order (the kinds in table order, then the other two).
    pub fn all() -> impl Iterator<Item = Source> {
        Kind::ALL
            .iter()
            .copied()
            .map(Source::Kind)
            .chain([Source::PublishService, Source::Manifests])
    }

    /// Metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Source::Kind(kind) => kind.label(),
            Source::PublishService => "publish_service",
            Source::Manifests => "manifests",
        }
    }

    /// Its position in [`Source::all`], below [`Source::COUNT`].
    pub fn index(self) -> usize {
        match self {
            Source::Kind(kind) => kind.index(),
            Source::PublishService => Kind::ALL.len(),
            Source::Manifests => Kind::ALL.len() + 1,
        }
    }

    /// The kind of object in the store this source fills (`None` for the publish Service,
    /// kept apart, and the manifests directory, which fills every kind).
    pub fn store_kind(self) -> Option<Kind> {
        match self {
            Source::Kind(kind) => Some(kind),
            Source::PublishService | Source::Manifests => None,
        }
    }
}

impl From<Kind> for Source {
    fn from(kind: Kind) -> Self {
        Source::Kind(kind)
    }
}

/// Errors of [`Objects::apply`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object has no `metadata.name`.
    #[error("{kind} has no metadata.name")]
    MissingName {
        /// Its kind.
        kind: Kind,
    },
}

/// What [`Objects::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Inserted (`replaced: false`) or replaced an object with this key.
    Stored {
        /// The object's key.
        key: ObjectKey,
        /// Whether an object with the same key was already there.
        replaced: bool,
    },
    /// Not kept by its kind's [`StoreKind::admit`] (a Secret that is not of type
    /// `kubernetes.io/tls`); any object previously stored under the same key was removed,
    /// since its type changed.
    Ignored {
        /// The object's key.
        key: ObjectKey,
    },
}

impl Objects {
    /// Insert or replace one object, normalised: a namespaced object without namespace goes
    /// to `default`, cluster-scoped objects get an empty namespace, `managedFields` and the
    /// last-applied annotation are dropped (memory), then the kind's [`StoreKind::admit`]
    /// decides (a Secret's `stringData` is merged into `data`, as the API server does, and
    /// Secrets not of type `kubernetes.io/tls` are not kept). Both the file source and the
    /// Kubernetes watcher insert through here ([`Objects::apply`] for a [`KubeObject`]).
    pub fn apply_one<K: StoreKind>(&mut self, mut object: K) -> Result<Applied, StoreError> {
        let meta = object.meta_mut();
        let key = normalise(K::KIND, meta)?;
        if !object.admit() {
            K::map_mut(self).remove(&key);
            return Ok(Applied::Ignored { key });
        }
        let replaced = K::map_mut(self)
            .insert(key.clone(), Box::new(object))
            .is_some();
        Ok(Applied::Stored { key, replaced })
    }

    fn changes_compile_input_of<K: StoreKind>(&self, new: &K) -> bool {
        let Ok(key) = store_key(K::KIND, new.meta()) else {
            return true; // refused by the store anyway
        };
        K::map(self)
            .get(&key)
            .is_none_or(|old| !K::same_compile_input(old, new))
    }

    /// Whether there is no object at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key an object of `kind` is stored under: a namespaced object without namespace goes
/// to `default`, a cluster-scoped one has an empty namespace.
fn store_key(kind: Kind, meta: &ObjectMeta) -> Result<ObjectKey, StoreError> {
    let name = match meta.name.as_deref() {
        Some(name) if !name.is_empty() => name,
        _ => return Err(StoreError::MissingName { kind }),
    };
    let namespace = match meta.namespace.as_deref() {
        _ if !kind.is_namespaced() => "",
        Some(namespace) if !namespace.is_empty() => namespace,
        _ => "default",
    };
    Ok(ObjectKey::new(namespace, name))
}

/// Normalise the metadata of an object of `kind` the way it is stored; returns its key.
fn normalise(kind: Kind, meta: &mut ObjectMeta) -> Result<ObjectKey, StoreError> {
    let key = store_key(kind, meta)?;
    meta.namespace = (!key.namespace.is_empty()).then(|| key.namespace.clone());
    slim(meta);
    Ok(key)
}

/// Drop `managedFields` and the last-applied annotation: often most of an object's bytes,
/// and never read by weir.
pub fn slim(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(annotations::LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;

    fn secret(type_: &str) -> KubeObject {
        KubeObject::Secret(Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                ..Default::default()
            },
            type_: Some(type_.into()),
            string_data: Some([("tls.crt".to_owned(), "x".to_owned())].into()),
            ..Default::default()
        })
    }

    #[test]
    fn apply_defaults_namespace_and_merges_string_data() {
        let mut objects = Objects::default();
        let applied = objects.apply(secret("kubernetes.io/tls")).expect("valid");
        let key = ObjectKey::new("default", "s");
        assert_eq!(
            applied,
            Applied::Stored {
                key: key.clone(),
                replaced: false
            }
        );
        let data = objects.secrets[&key].data.as_ref().expect("data");
        assert_eq!(data["tls.crt"].0, b"x");
    }

    #[test]
    fn apply_drops_non_tls_secret_and_replaced_type() {
        let mut objects = Objects::default();
        objects.apply(secret("kubernetes.io/tls")).expect("valid");
        let applied = objects.apply(secret("Opaque")).expect("valid");
        assert!(matches!(applied, Applied::Ignored { .. }));
        assert!(objects.secrets.is_empty());
    }

    #[test]
    fn auth_secrets_are_kept_reduced_to_their_auth_key() {
        let mut objects = Objects::default();
        let KubeObject::Secret(mut s) = secret("Opaque") else {
            unreachable!("a Secret")
        };
        s.string_data = Some(
            [
                ("auth".to_owned(), "alice:{SHA}x".to_owned()),
                ("other".to_owned(), "private".to_owned()),
            ]
            .into(),
        );
        let applied = objects.apply(KubeObject::Secret(s)).expect("valid");
        assert!(matches!(applied, Applied::Stored { .. }));
        let data = objects.secrets[&ObjectKey::new("default", "s")]
            .data
            .as_ref()
            .expect("data");
        assert_eq!(data.keys().collect::<Vec<_>>(), ["auth"]);
    }

    #[test]
    fn ca_secrets_are_kept_reduced_to_their_certificate_keys() {
        let mut objects = Objects::default();
        let KubeObject::Secret(mut s) = secret("Opaque") else {
            unreachable!("a Secret")
        };
        s.string_data = Some(
            [
                ("ca.crt".to_owned(), "CA".to_owned()),
                ("tls.crt".to_owned(), "CERT".to_owned()),
                ("tls.key".to_owned(), "KEY".to_owned()),
                ("password".to_owned(), "private".to_owned()),
            ]
            .into(),
        );
        let applied = objects.apply(KubeObject::Secret(s)).expect("valid");
        assert!(matches!(applied, Applied::Stored { .. }));
        let data = objects.secrets[&ObjectKey::new("default", "s")]
            .data
            .as_ref()
            .expect("data");
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            ["ca.crt", "tls.crt", "tls.key"]
        );
        let KubeObject::Secret(mut token) = secret("kubernetes.io/service-account-token") else {
            unreachable!("a Secret")
        };
        token.string_data = Some([("ca.crt".to_owned(), "CA".to_owned())].into());
        let applied = objects.apply(KubeObject::Secret(token)).expect("valid");
        assert!(matches!(applied, Applied::Ignored { .. }));
    }

    #[test]
    fn only_config_maps_of_headers_are_kept() {
        let kept = |pairs: &[(&str, &str)]| {
            let mut objects = Objects::default();
            let cm = k8s_openapi::api::core::v1::ConfigMap {
                metadata: ObjectMeta {
                    name: Some("c".into()),
                    ..Default::default()
                },
                data: Some(
                    pairs
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..Default::default()
            };
            objects.apply(KubeObject::ConfigMap(cm)).expect("valid");
            objects.config_maps.len() == 1
        };
        assert!(kept(&[
            ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff")
        ]));
        // kube-root-ca.crt, in every namespace: a multi-line value is no header.
        assert!(!kept(&[("ca.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n")]));
        assert!(!kept(&[("nginx.conf", "a b;\n")]));
        assert!(!kept(&[("not a header", "x")]));
        assert!(!kept(&[]));
    }

    #[test]
    fn auth_map_secrets_are_kept_only_when_every_value_is_a_hash() {
        let with = |pairs: &[(&str, &str)]| {
            let KubeObject::Secret(mut s) = secret("Opaque") else {
                unreachable!("a Secret")
            };
            s.string_data = Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
            let mut objects = Objects::default();
            objects.apply(KubeObject::Secret(s)).expect("valid");
            objects.secrets.len()
        };
        assert_eq!(with(&[("alice", "{SHA}x"), ("bob", "$apr1$s$d")]), 1);
        assert_eq!(with(&[("alice", "{SHA}x"), ("token", "private")]), 0);
    }

    #[test]
    fn apply_clears_namespace_of_cluster_scoped_and_drops_managed_fields() {
        let mut objects = Objects::default();
        let class = IngressClass {
            metadata: ObjectMeta {
                name: Some("weir".into()),
                namespace: Some("x".into()),
                managed_fields: Some(vec![Default::default()]),
                annotations: Some([(annotations::LAST_APPLIED.to_owned(), "{}".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        objects
            .apply(KubeObject::IngressClass(class))
            .expect("valid");
        let stored = &objects.ingress_classes[&ObjectKey::new("", "weir")];
        assert!(stored.metadata.managed_fields.is_none());
        assert!(stored.metadata.annotations.is_none());
        assert!(objects.delete(Kind::IngressClass, &ObjectKey::new("", "weir")));
        assert!(!objects.delete(Kind::IngressClass, &ObjectKey::new("", "weir")));
    }

    #[test]
    fn apply_rejects_nameless_object() {
        let mut objects = Objects::default();
        let err = objects
            .apply(KubeObject::Service(Service::default()))
            .expect_err("no name");
        assert!(matches!(
            err,
            StoreError::MissingName {
                kind: Kind::Service
            }
        ));
    }
}
