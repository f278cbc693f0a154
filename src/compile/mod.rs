//! `compile(&Objects, &CompileConfig) -> Compiled`: a pure, deterministic function from
//! Kubernetes objects to a [`crate::snapshot::Snapshot`] and per-object status.
//!
//! No IO, no clock (the current time for certificate expiry is an input), no randomness.
//! Bad input never aborts compile: the offending object gets a [`Condition`] and only that
//! piece is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::Serialize;

use crate::snapshot::Snapshot;
use crate::store::{ObjectKey, Objects};

/// Settings of compile that come from the command line, not from objects.
#[derive(Debug, Clone)]
pub struct CompileConfig {
    /// IngressClass `spec.controller` value that marks weir's classes.
    pub controller_name: String,
    /// Address of the plain HTTP listener.
    pub http_addr: SocketAddr,
    /// Address of the HTTPS listener (`None`: no HTTPS listener).
    pub https_addr: Option<SocketAddr>,
    /// Controller-wide default backend (`namespace/service:port`), used when no Ingress
    /// declares `spec.defaultBackend`.
    pub default_backend: Option<DefaultBackend>,
    /// "Now" as seconds since the Unix epoch, for certificate expiry (an input, so compile
    /// stays pure).
    pub now_unix: i64,
}

/// A controller-wide default backend: a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultBackend {
    /// The Service.
    pub service: ObjectKey,
    /// Its port, by number or by name.
    pub port: String,
}

/// The output of [`compile`].
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// The routing model.
    pub snapshot: Snapshot,
    /// What compile has to say about each object.
    pub status: StatusReport,
}

/// Per-object diagnostics plus the set of Ingresses weir owns.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusReport {
    /// Conditions per object; objects with nothing to report are absent.
    pub conditions: BTreeMap<ObjectRef, Vec<Condition>>,
    /// Ingresses that belong to weir's class (whether or not all their rules were accepted):
    /// the ones whose `status.loadBalancer` weir writes.
    pub owned_ingresses: BTreeSet<ObjectKey>,
}

impl StatusReport {
    /// Whether any object or piece of one was rejected.
    pub fn has_rejections(&self) -> bool {
        self.conditions
            .values()
            .flatten()
            .any(|c| c.severity == Severity::Error)
    }
}

/// Kind plus key of an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    /// Kubernetes kind (`Ingress`, `Service`, `Secret`, `IngressClass`, ...).
    pub kind: &'static str,
    /// Namespace and name.
    #[serde(flatten)]
    pub key: ObjectKey,
}

/// One diagnostic about an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// Condition type, e.g. `Accepted`, `ResolvedRefs`, `TLSValid`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `Error` when something was rejected (skipped), `Warning` when it was accepted with a
    /// caveat.
    pub severity: Severity,
    /// CamelCase reason constant (see `crate::api::reasons`).
    pub reason: &'static str,
    /// Human-readable explanation naming the offending field.
    pub message: String,
}

/// How bad a [`Condition`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Severity {
    /// Accepted, with a caveat.
    Warning,
    /// Rejected: the piece was skipped.
    Error,
}

/// Compile objects into a snapshot and status. Pure and deterministic.
pub fn compile(objects: &Objects, config: &CompileConfig) -> Compiled {
    let _ = (objects, config);
    Compiled::default()
}
