//! The machinery behind the kind table in [`crate::store`]: the [`StoreKind`] trait every kept
//! kind implements, and the `kinds!` macro that turns the one table into [`Kind`],
//! [`KubeObject`], the maps of [`Objects`] and the dispatch between them.
//!
//! What a kind *is* comes from its type's [`kube::Resource`] impl (API version, kind name,
//! plural, namespaced or cluster-scoped), so k8s-openapi types and kube `CustomResource` types
//! enter the table the same way. What a kind *does differently* is the body of its table
//! entry, a few [`StoreKind`] items with defaults: a server-side field selector for its
//! watcher, a check before storing, and what counts as a change of compile input.
//!
//! [`Kind`]: super::Kind
//! [`KubeObject`]: super::KubeObject
//! [`Objects`]: super::Objects

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ByteString, ClusterResourceScope, NamespaceResourceScope};
use kube::Resource;
use serde::de::DeserializeOwned;

use super::{Kind, KubeObject, ObjectKey, Objects};
use crate::api::values;

/// One kind of object weir keeps: a Kubernetes resource type with its place in the table.
///
/// `KIND`, `LABEL`, `into_object`, `map` and `map_mut` are written by `kinds!`; the
/// provided items are what a table entry may override.
pub trait StoreKind:
    Resource<DynamicType = (), Scope: KindScope>
    + DeserializeOwned
    + Clone
    + Debug
    + Send
    + Sync
    + 'static
{
    /// Its entry in [`Kind`].
    const KIND: Kind;
    /// Its `kind` label in the `weir_watch_*` metrics.
    const LABEL: &'static str;
    /// Whether objects of this kind live in a namespace (from the type's resource scope).
    const NAMESPACED: bool = <Self::Scope as KindScope>::NAMESPACED;
    /// Server-side field selector of its watcher in Kubernetes mode (`None`: every object).
    /// The file source has no server to ask, so [`StoreKind::admit`] must enforce the same.
    const FIELD_SELECTOR: Option<&'static str> = None;
    /// Whether the kind's API may be absent from a cluster (CRDs weir does not ship: the
    /// Gateway API). In Kubernetes mode such a kind is watched only when the API server
    /// serves its API version at start, and is otherwise empty.
    const OPTIONAL: bool = false;

    /// Wrap it in the enum of every kind.
    fn into_object(self) -> KubeObject;

    /// The map of this kind in `objects`.
    fn map(objects: &Objects) -> &BTreeMap<ObjectKey, Box<Self>>;

    /// The map of this kind in `objects`, mutably.
    fn map_mut(objects: &mut Objects) -> &mut BTreeMap<ObjectKey, Box<Self>>;

    /// Normalise an object before it is stored; `false` if the store does not keep it (an
    /// object stored earlier under the same key is then removed, since its type changed).
    /// Called after the metadata is normalised.
    fn admit(&mut self) -> bool {
        true
    }

    /// Whether replacing `old` with `new` leaves compile's input unchanged, so the change
    /// needs no compile (weir's own status writes, echoed back by the watch, would otherwise
    /// compile once each). The default is the safe answer: every change compiles.
    fn same_compile_input(old: &Self, new: &Self) -> bool {
        let _ = (old, new);
        false
    }
}

/// Whether a resource scope is namespaced; implemented for the scopes of k8s-openapi (which
/// kube's `CustomResource` derive reuses).
pub trait KindScope {
    /// `true` for namespaced resources, `false` for cluster-scoped ones.
    const NAMESPACED: bool;
}

impl KindScope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl KindScope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// Code that needs a kind's Rust type, called through [`Kind::visit`] (Rust has no generic
/// closures; this is the one-method trait that stands in for one).
pub trait KindVisitor {
    /// What the visit returns.
    type Output;
    /// Run with the type of the visited kind.
    fn visit<K: StoreKind>(self) -> Self::Output;
}

/// Whether two objects have the same compile-relevant metadata: labels, annotations and uid
/// (a deleted and re-created object is a different object), ignoring resourceVersion,
/// generation, managed fields and status.
pub fn same_meta(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.labels == b.labels && a.annotations == b.annotations && a.uid == b.uid
}

/// [`StoreKind::same_compile_input`] for kinds whose compile input is their metadata and
/// their `spec` (the status is weir's output, not its input).
pub fn same_spec<K: Resource, S: PartialEq>(old: &K, new: &K, spec: impl Fn(&K) -> &S) -> bool {
    same_meta(old.meta(), new.meta()) && spec(old) == spec(new)
}

/// [`StoreKind::admit`] of Secrets: keep `kubernetes.io/tls` ones (certificates) and those of
/// any other type that have an `auth` key (the htpasswd lines of `BasicAuth` filters),
/// reduced to that key, or a `ca.crt` key (a `BackendPolicy`'s upstream TLS: the CA, and
/// optionally the client certificate `tls.crt` + `tls.key`; not service-account tokens),
/// reduced to those keys (and `auth`), so no other secret value is held; and those whose
/// every value is a password hash (`$2y$`/`$2a$`/`$2b$` bcrypt, `{SHA}`, `$apr1$`): the user-per-key
/// `auth-map` form of ingress-nginx's basic auth, which holds nothing but hashes. Drop the
/// rest. `stringData` is merged into `data` first, as the API server would (manifest files
/// may use either).
///
/// Every Secret is listed and watched (no field selector: one selector cannot say "TLS, or
/// has key `auth` or `ca.crt`"); those not kept are dropped on arrival.
pub fn admit_secret(secret: &mut k8s_openapi::api::core::v1::Secret) -> bool {
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in string_data {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
    if secret.type_.as_deref() == Some(values::SECRET_TYPE_TLS) {
        return true;
    }
    let has = |k: &str| secret.data.as_ref().is_some_and(|d| d.contains_key(k));
    // Service-account token Secrets carry the cluster's CA as `ca.crt` too: never an
    // upstream's, and there are many of them.
    let ca = has(values::CA_CERT_KEY)
        && secret.type_.as_deref() != Some("kubernetes.io/service-account-token");
    if has(values::SECRET_KEY_AUTH) || ca {
        let kept: &[&str] = if ca {
            &[
                values::SECRET_KEY_AUTH,
                values::CA_CERT_KEY,
                values::TLS_CERT_KEY,
                values::TLS_PRIVATE_KEY,
            ]
        } else {
            &[values::SECRET_KEY_AUTH]
        };
        if let Some(d) = secret.data.as_mut() {
            d.retain(|k, _| kept.contains(&k.as_str()));
        }
        return true;
    }
    match secret.data.as_ref() {
        Some(d) => {
            !d.is_empty()
                && d.values().all(|v| {
                    ["$2y$", "$2a$", "$2b$", "{SHA}", "$apr1$"]
                        .iter()
                        .any(|p| v.0.starts_with(p.as_bytes()))
                })
        }
        None => false,
    }
}

/// Generate [`Kind`], [`KubeObject`], [`Objects`] and the [`StoreKind`] impls from the kind
/// table. One entry per kind:
///
/// ```text
/// /// doc (used for the Kind variant, the KubeObject variant and the Objects field)
/// Variant(RustType) in objects_field, label "metric_label" { StoreKind overrides }
/// ```
///
/// The variant name is the Kubernetes kind name (checked against the type by the table
/// tests); the entries' order is the order of [`Kind::ALL`] and of the metric labels.
macro_rules! kinds {
    ($(
        $(#[$doc:meta])*
        $variant:ident($ty:ty) in $field:ident, label $label:literal { $($body:tt)* }
    )*) => {
        /// The kinds of object weir keeps, in table order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $($(#[$doc])* $variant,)*
        }

        impl Kind {
            /// Every kind, in table order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The Kubernetes kind name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => stringify!($variant),)*
                }
            }

            /// Its label in the `weir_watch_*` metrics.
            pub fn label(self) -> &'static str {
                match self {
                    $(Kind::$variant => <$ty as $crate::store::StoreKind>::LABEL,)*
                }
            }

            /// Its `apiVersion` (`group/version`, or `v1` for the core group).
            pub fn api_version(self) -> ::std::borrow::Cow<'static, str> {
                match self {
                    $(Kind::$variant => <$ty as ::kube::Resource>::api_version(&()),)*
                }
            }

            /// Whether the kind's API may be absent from a cluster ([`StoreKind::OPTIONAL`]).
            pub fn is_optional(self) -> bool {
                match self {
                    $(Kind::$variant => <$ty as $crate::store::StoreKind>::OPTIONAL,)*
                }
            }

            /// Whether objects of this kind live in a namespace.
            pub fn is_namespaced(self) -> bool {
                match self {
                    $(Kind::$variant => <$ty as $crate::store::StoreKind>::NAMESPACED,)*
                }
            }

            /// Call `visitor` with this kind's Rust type.
            pub fn visit<V: $crate::store::KindVisitor>(self, visitor: V) -> V::Output {
                match self {
                    $(Kind::$variant => visitor.visit::<$ty>(),)*
                }
            }
        }

        /// One object of a kind weir keeps.
        #[derive(Debug, Clone)]
        #[allow(
            clippy::large_enum_variant,
            reason = "moved once into the store, which keeps the unboxed object; boxing adds an allocation"
        )]
        pub enum KubeObject {
            $($(#[$doc])* $variant($ty),)*
        }

        impl KubeObject {
            /// Its kind.
            pub fn kind(&self) -> Kind {
                match self {
                    $(KubeObject::$variant(_) => Kind::$variant,)*
                }
            }

            /// Its metadata.
            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(KubeObject::$variant(o) => ::kube::Resource::meta(o),)*
                }
            }

            /// Deserialize a JSON value of the given kind (its `apiVersion` and `kind` fields
            /// must be present, as in any manifest).
            pub fn from_value(
                kind: Kind,
                value: serde_json::Value,
            ) -> Result<KubeObject, serde_json::Error> {
                Ok(match kind {
                    $(Kind::$variant => KubeObject::$variant(serde_json::from_value(value)?),)*
                })
            }
        }

        /// Every object weir compiles from, keyed deterministically; one map per kind.
        ///
        /// Values are boxed: a B-tree node holds eleven entries inline and is often little
        /// more than half full, so unboxed objects of 500 bytes and more (an Ingress is 584)
        /// would leave hundreds of bytes unused per object.
        #[derive(Debug, Clone, Default)]
        pub struct Objects {
            $($(#[$doc])* pub $field: BTreeMap<ObjectKey, Box<$ty>>,)*
        }

        impl Objects {
            /// Insert or replace one object, normalised (see [`Objects::apply_one`]).
            pub fn apply(&mut self, object: KubeObject) -> Result<Applied, StoreError> {
                match object {
                    $(KubeObject::$variant(o) => self.apply_one(o),)*
                }
            }

            /// Whether storing `object` can change what compile produces (see
            /// [`StoreKind::same_compile_input`]).
            pub fn changes_compile_input(&self, object: &KubeObject) -> bool {
                match object {
                    $(KubeObject::$variant(o) => self.changes_compile_input_of(o),)*
                }
            }

            /// Remove one object; returns whether it was there.
            pub fn delete(&mut self, kind: Kind, key: &ObjectKey) -> bool {
                match kind {
                    $(Kind::$variant => self.$field.remove(key).is_some(),)*
                }
            }

            /// Remove every object of `kind` (before a re-list refills it).
            pub fn clear(&mut self, kind: Kind) {
                match kind {
                    $(Kind::$variant => self.$field.clear(),)*
                }
            }

            /// The metadata of one stored object.
            pub fn meta(&self, kind: Kind, key: &ObjectKey) -> Option<&ObjectMeta> {
                match kind {
                    $(Kind::$variant => self.$field.get(key).map(|o| ::kube::Resource::meta(&**o)),)*
                }
            }

            /// Number of objects of every kind.
            pub fn len(&self) -> usize {
                0 $(+ self.$field.len())*
            }
        }

        $(
            impl $crate::store::StoreKind for $ty {
                const KIND: Kind = Kind::$variant;
                const LABEL: &'static str = $label;

                fn into_object(self) -> KubeObject {
                    KubeObject::$variant(self)
                }

                fn map(objects: &Objects) -> &BTreeMap<ObjectKey, Box<Self>> {
                    &objects.$field
                }

                fn map_mut(objects: &mut Objects) -> &mut BTreeMap<ObjectKey, Box<Self>> {
                    &mut objects.$field
                }

                $($body)*
            }
        )*
    };
}

pub(crate) use kinds;
