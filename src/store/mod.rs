//! The objects weir compiles from, and the sources that fill them.
//!
//! [`Objects`] is the same whichever source filled it (a manifests directory or the
//! Kubernetes API), so nothing downstream knows where an object came from.

pub mod kube;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::Serialize;

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
