//! The objects weir compiles from, and the sources that fill them.
//!
//! [`Objects`] is the same whichever source filled it (a manifests directory or the
//! Kubernetes API), so nothing downstream knows where an object came from. Both sources insert
//! through [`Objects::apply`] and [`Objects::delete`], which normalise objects the same way
//! (default namespace, no `managedFields`, no last-applied annotation, TLS Secrets only).

pub mod files;

pub mod kube;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::api::{annotations, values};

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

/// Every object weir compiles from, keyed deterministically.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// networking.k8s.io/v1 Ingress.
    pub ingresses: BTreeMap<ObjectKey, Ingress>,
    /// networking.k8s.io/v1 IngressClass (cluster-scoped: empty namespace).
    pub ingress_classes: BTreeMap<ObjectKey, IngressClass>,
    /// v1 Service.
    pub services: BTreeMap<ObjectKey, Service>,
    /// discovery.k8s.io/v1 EndpointSlice.
    pub endpoint_slices: BTreeMap<ObjectKey, EndpointSlice>,
    /// v1 Secret of type `kubernetes.io/tls`.
    pub secrets: BTreeMap<ObjectKey, Secret>,
}

/// The kinds of object weir keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// networking.k8s.io/v1 Ingress.
    Ingress,
    /// networking.k8s.io/v1 IngressClass (cluster-scoped).
    IngressClass,
    /// v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// v1 Secret.
    Secret,
}

impl Kind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ingress => "Ingress",
            Kind::IngressClass => "IngressClass",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Secret => "Secret",
        }
    }

    /// The kind for an `apiVersion` and `kind` pair, if weir keeps it.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        match (api_version, kind) {
            ("networking.k8s.io/v1", "Ingress") => Some(Kind::Ingress),
            ("networking.k8s.io/v1", "IngressClass") => Some(Kind::IngressClass),
            ("v1", "Service") => Some(Kind::Service),
            ("discovery.k8s.io/v1", "EndpointSlice") => Some(Kind::EndpointSlice),
            ("v1", "Secret") => Some(Kind::Secret),
            _ => None,
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        self != Kind::IngressClass
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object of a kind weir keeps.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "moved once into the store, which keeps the unboxed object; boxing adds an allocation"
)]
pub enum KubeObject {
    /// An Ingress.
    Ingress(Ingress),
    /// An IngressClass.
    IngressClass(IngressClass),
    /// A Service.
    Service(Service),
    /// An EndpointSlice.
    EndpointSlice(EndpointSlice),
    /// A Secret (only `kubernetes.io/tls` ones are kept).
    Secret(Secret),
}

impl KubeObject {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            KubeObject::Ingress(_) => Kind::Ingress,
            KubeObject::IngressClass(_) => Kind::IngressClass,
            KubeObject::Service(_) => Kind::Service,
            KubeObject::EndpointSlice(_) => Kind::EndpointSlice,
            KubeObject::Secret(_) => Kind::Secret,
        }
    }

    /// Deserialize a JSON value of the given kind (its `apiVersion` and `kind` fields must be
    /// present, as in any manifest).
    pub fn from_value(
        kind: Kind,
        value: serde_json::Value,
    ) -> Result<KubeObject, serde_json::Error> {
        Ok(match kind {
            Kind::Ingress => KubeObject::Ingress(serde_json::from_value(value)?),
            Kind::IngressClass => KubeObject::IngressClass(serde_json::from_value(value)?),
            Kind::Service => KubeObject::Service(serde_json::from_value(value)?),
            Kind::EndpointSlice => KubeObject::EndpointSlice(serde_json::from_value(value)?),
            Kind::Secret => KubeObject::Secret(serde_json::from_value(value)?),
        })
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            KubeObject::Ingress(o) => &mut o.metadata,
            KubeObject::IngressClass(o) => &mut o.metadata,
            KubeObject::Service(o) => &mut o.metadata,
            KubeObject::EndpointSlice(o) => &mut o.metadata,
            KubeObject::Secret(o) => &mut o.metadata,
        }
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
    /// Not kept (a Secret that is not of type `kubernetes.io/tls`); any object previously
    /// stored under the same key was removed, since its type changed.
    Ignored {
        /// The object's key.
        key: ObjectKey,
    },
}

impl Objects {
    /// Insert or replace one object, normalised: a namespaced object without namespace goes
    /// to `default`, cluster-scoped objects get an empty namespace, `managedFields` and the
    /// last-applied annotation are dropped (memory), a Secret's `stringData` is merged into
    /// `data` (as the API server does) and Secrets not of type `kubernetes.io/tls` are not
    /// kept. Both the file source and the Kubernetes watcher insert through here.
    pub fn apply(&mut self, mut object: KubeObject) -> Result<Applied, StoreError> {
        let kind = object.kind();
        let meta = object.metadata_mut();
        let name = match meta.name.as_deref() {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => return Err(StoreError::MissingName { kind }),
        };
        if kind.is_namespaced() {
            if meta.namespace.as_deref().is_none_or(str::is_empty) {
                meta.namespace = Some("default".to_owned());
            }
        } else {
            meta.namespace = None;
        }
        meta.managed_fields = None;
        if let Some(annotations) = meta.annotations.as_mut() {
            annotations.remove(annotations::LAST_APPLIED);
            if annotations.is_empty() {
                meta.annotations = None;
            }
        }
        let key = ObjectKey::new(meta.namespace.clone().unwrap_or_default(), name);
        let replaced = match object {
            KubeObject::Ingress(o) => self.ingresses.insert(key.clone(), o).is_some(),
            KubeObject::IngressClass(o) => self.ingress_classes.insert(key.clone(), o).is_some(),
            KubeObject::Service(o) => self.services.insert(key.clone(), o).is_some(),
            KubeObject::EndpointSlice(o) => self.endpoint_slices.insert(key.clone(), o).is_some(),
            KubeObject::Secret(mut o) => {
                if o.type_.as_deref() != Some(values::SECRET_TYPE_TLS) {
                    self.secrets.remove(&key);
                    return Ok(Applied::Ignored { key });
                }
                if let Some(string_data) = o.string_data.take() {
                    let data = o.data.get_or_insert_with(BTreeMap::new);
                    for (k, v) in string_data {
                        data.insert(k, ByteString(v.into_bytes()));
                    }
                }
                self.secrets.insert(key.clone(), o).is_some()
            }
        };
        Ok(Applied::Stored { key, replaced })
    }

    /// Remove one object; returns whether it was there.
    pub fn delete(&mut self, kind: Kind, key: &ObjectKey) -> bool {
        match kind {
            Kind::Ingress => self.ingresses.remove(key).is_some(),
            Kind::IngressClass => self.ingress_classes.remove(key).is_some(),
            Kind::Service => self.services.remove(key).is_some(),
            Kind::EndpointSlice => self.endpoint_slices.remove(key).is_some(),
            Kind::Secret => self.secrets.remove(key).is_some(),
        }
    }

    /// Number of objects of every kind.
    pub fn len(&self) -> usize {
        self.ingresses.len()
            + self.ingress_classes.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.secrets.len()
    }

    /// Whether there is no object at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
