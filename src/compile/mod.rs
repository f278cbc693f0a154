//! `compile(&Objects, &CompileConfig) -> Compiled`: a pure, deterministic function from
//! Kubernetes objects to a [`crate::snapshot::Snapshot`] and per-object status.
//!
//! No IO, no clock (the current time for certificate expiry is an input), no randomness.
//! Bad input never aborts compile: the offending object gets a [`Condition`] and only that
//! piece is skipped.
//!
//! # Front ends, one intermediate form, shared passes
//!
//! A **front end** reads the objects of one API and produces the intermediate form
//! (`ir.rs`: listeners; per route table the routes by host with their match, filters, backend
//! *references*, source object, field and source order; default-route candidates; certificate
//! references per listener). The Ingress front end (`ingress/`) is the only one today;
//! weir's CRDs, ingress-nginx annotations and the Gateway API will be more, producing the
//! same form. Front ends report what cannot enter the IR (an invalid host or path); nothing
//! in the shared passes knows which front end a piece came from.
//!
//! The **shared passes**, one file each, run in this order:
//!
//! 1. **backends** (`backends.rs`) — resolves every backend reference (once per distinct
//!    reference) into a cluster or an unresolved outcome. First, because the conflicts pass
//!    needs to know which routes can actually serve. Filters that send to a Service
//!    (`ExternalAuth`, `RequestMirror`) checked theirs when they compiled, with the same
//!    rules; assemble asks the resolver for their clusters too.
//! 2. **tls** (`tls.rs`) — parses and checks each referenced Secret once, and builds each
//!    certificate set's SNI map. Independent of routes; it runs before conflicts so that all
//!    of an object's TLS conditions come before its route conflicts in the report.
//! 3. **conflicts** (`conflicts.rs`) — sorts each host's routes by precedence and settles
//!    identical matches and competing default routes: a route whose backends resolved beats
//!    one that did not, then source order. After backends, so that an older Ingress whose
//!    backend is invalid cannot hide a valid route of a younger one.
//! 4. **assemble** (`assemble.rs`) — builds route tables and virtual hosts in precedence
//!    order, reports each surviving route's unresolved references in that order (a route that
//!    lost a conflict reports only the conflict), keeps only the clusters some served route
//!    uses (through a backend or a filter), attaches certificates, and numbers the routes.
//!
//! Conditions are collected by the `status.rs` accumulator.
//!
//! # Conditions: every diagnostic, and one summary per type
//!
//! A [`Condition`] is one diagnostic about one piece of an object, shaped as the Gateway API
//! wants conditions (`type`, `status`, `reason`, `message`, `observedGeneration`) plus
//! weir's [`Severity`] (what `weir validate` prints and exits on). Compile keeps **every**
//! diagnostic, in report order, in [`StatusReport::conditions`]: `weir validate`, logs and
//! Events list them all. A status writer needs one condition per type per object instead:
//! [`StatusReport::summary`] folds an object's diagnostics of one type into one — the worst
//! status wins (`False`, then `Unknown`, then `True`), its first diagnostic gives reason and
//! message, and the message counts the others.
//!
//! # Choices where the Ingress spec leaves room
//!
//! - `pathType: ImplementationSpecific` is matched as `Prefix` (as Contour, and ingress-nginx
//!   without regex, do); an empty ImplementationSpecific path means `/`.
//! - A backend Service of type `ExternalName` is not proxied to (weir does not resolve DNS
//!   names in this version): its routes answer 503 with `ExternalNameNotSupported`.
//! - `resource` backends are skipped with `ResourceBackendNotSupported`.
//! - A missing Service or Service port makes the route answer 503 (never 404, never the
//!   default backend), with `ServiceNotFound` / `ServicePortNotFound`.
//! - Conflicts (same host, path and path type; two default backends; two certificates for
//!   one host) go to the route whose backends resolved, then to the oldest Ingress, then the
//!   first in namespace/name order; the loser gets an `Error` condition naming the winner.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

pub use ingress::nginx;

mod assemble;
mod backends;
mod conflicts;
mod filters;
pub mod gateway;
mod ingress;
mod ir;
mod policy;
mod status;
#[cfg(test)]
pub(crate) mod testing;
mod tls;

use crate::snapshot::Snapshot;
use crate::store::{ObjectKey, Objects};
use ir::Ir;

/// Name of the route table both Ingress listeners serve.
pub const INGRESS_ROUTE_TABLE: &str = "ingress";

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
    /// IngressClass names weir serves whatever their controller, and whether or not such an
    /// IngressClass exists (`--ingress-class`, e.g. `nginx` to take over from ingress-nginx
    /// without editing an Ingress): by `spec.ingressClassName` or the legacy annotation.
    pub ingress_classes: Vec<String>,
    /// Prefix of the ingress-nginx annotations weir reads (`--annotations-prefix`, default
    /// [`nginx::DEFAULT_PREFIX`]).
    pub annotations_prefix: String,
    /// The Gateway API front end's settings.
    pub gateway: gateway::GatewayConfig,
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
    /// Per `HTTPFilter` (every one in the input), the objects whose routes name it, sorted
    /// (its `status.usedBy`).
    pub filter_users: BTreeMap<ObjectKey, Vec<ObjectRef>>,
    /// The Gateway API's structured status (GatewayClasses, Gateways and their listeners,
    /// HTTPRoute parents).
    pub gateway_api: gateway::GatewayApiReport,
}

impl StatusReport {
    /// One condition per type for `object` (sorted by type), for status writers that must
    /// publish one condition of each type (the Gateway API): the worst status among the
    /// object's diagnostics of that type wins, the first diagnostic with that status gives
    /// the reason and message (which then counts the others), the severity is the highest.
    /// Types the object has no diagnostic of are absent; a writer that must publish them
    /// fills them in as `True`.
    pub fn summary(&self, object: &ObjectRef) -> Vec<Condition> {
        let mut by_type: BTreeMap<&'static str, Vec<&Condition>> = BTreeMap::new();
        for condition in self.conditions.get(object).into_iter().flatten() {
            by_type.entry(condition.type_).or_default().push(condition);
        }
        by_type
            .into_values()
            .map(|conditions| {
                let worst = conditions
                    .iter()
                    .copied()
                    .reduce(|worst, c| {
                        if c.status.badness() > worst.status.badness() {
                            c
                        } else {
                            worst
                        }
                    })
                    .expect("invariant: every type in the map has a condition");
                let mut summary = worst.clone();
                summary.severity = conditions
                    .iter()
                    .map(|c| c.severity)
                    .max()
                    .unwrap_or(worst.severity);
                let others = conditions.len() - 1;
                if others > 0 {
                    summary.message.push_str(&format!(
                        " (and {others} more {} diagnostic{})",
                        worst.type_,
                        if others == 1 { "" } else { "s" }
                    ));
                }
                summary
            })
            .collect()
    }

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

/// One diagnostic about an object, in the shape of a Kubernetes (Gateway API) condition plus
/// weir's severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// Condition type, e.g. `Accepted`, `ResolvedRefs`, `TLSValid`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// Whether the condition holds for the piece diagnosed: `False` for a rejection,
    /// `True` for a piece accepted with a caveat.
    pub status: ConditionStatus,
    /// `Error` when something was rejected (skipped), `Warning` when it was accepted with a
    /// caveat.
    pub severity: Severity,
    /// CamelCase reason constant (see `crate::api::reasons`).
    pub reason: &'static str,
    /// Human-readable explanation naming the offending field.
    pub message: String,
    /// The object's `metadata.generation` the condition was computed from, when it has one
    /// (objects from manifest files often do not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The status of a [`Condition`], as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// It does not.
    False,
    /// Not known (yet).
    Unknown,
}

impl ConditionStatus {
    /// How bad a status is for summaries: `False` is worst, then `Unknown`, then `True`.
    fn badness(self) -> u8 {
        match self {
            ConditionStatus::True => 0,
            ConditionStatus::Unknown => 1,
            ConditionStatus::False => 2,
        }
    }
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
    let mut status = status::Status::default();
    let mut filters = filters::FilterSet::compile(objects, &mut status);
    let policies = policy::Policies::compile(objects, &mut status);
    let grpc = gateway::as_http_routes(objects);
    let mut ir = ingress::front_end(objects, config, &mut filters, &mut status);
    gateway::front_end(objects, &grpc, config, &mut filters, &mut ir, &mut status);
    let snapshot = passes(ir, objects, &policies, config.now_unix, &mut status);
    let mut users = filters.into_users();
    for key in objects.http_filters.keys() {
        users.entry(key.clone()).or_default();
    }
    status.report.filter_users = users;
    gateway::finish(&mut status.report);
    Compiled {
        snapshot,
        status: status.report,
    }
}

/// Whether `name` is a lower-case DNS name (RFC 1123): labels of `a-z`, `0-9` and `-`, each
/// 1–63 characters and not starting or ending with `-`, at most 253 characters in all. Every
/// front end and filter that takes a host checks it with this.
pub(crate) fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A Gateway API duration (GEP-2257): one to four `<number><unit>` parts, each number at most
/// five digits, units `h`, `m`, `s`, `ms` (`1h30m`, `2s`, `500ms`).
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let mut rest = s;
    let mut total = Duration::ZERO;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(n), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(n * 3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(n * 60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(n), 1)
        } else {
            return None;
        };
        rest = &rest[len..];
        total += unit;
        parts += 1;
    }
    (1..=4).contains(&parts).then_some(total)
}

/// The shared passes over a front end's IR, in the order the module docs explain.
fn passes<'a>(
    mut ir: Ir<'a>,
    objects: &'a Objects,
    policies: &'a policy::Policies<'a>,
    now_unix: i64,
    status: &mut status::Status,
) -> Snapshot {
    let mut resolver = backends::resolve(&mut ir, objects, policies);
    let tls = tls::certificates(&ir, objects, now_unix, status);
    conflicts::settle(&mut ir, &resolver, status);
    assemble::snapshot(ir, &mut resolver, &tls, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &'static str, status: ConditionStatus, reason: &'static str) -> Condition {
        Condition {
            type_,
            status,
            severity: match status {
                ConditionStatus::False => Severity::Error,
                _ => Severity::Warning,
            },
            reason,
            message: reason.to_lowercase(),
            observed_generation: Some(5),
        }
    }

    #[test]
    fn the_worst_status_of_a_type_gives_the_summary() {
        let object = ObjectRef {
            kind: "Gateway",
            key: ObjectKey::new("default", "gw"),
        };
        let mut report = StatusReport::default();
        report.conditions.insert(
            object.clone(),
            vec![
                condition("TLSValid", ConditionStatus::True, "HostMismatch"),
                condition("Programmed", ConditionStatus::Unknown, "Pending"),
                condition("TLSValid", ConditionStatus::Unknown, "Pending"),
                condition("TLSValid", ConditionStatus::False, "Expired"),
                condition("TLSValid", ConditionStatus::False, "NotFound"),
                condition("Programmed", ConditionStatus::True, "Caveat"),
            ],
        );
        let summary = report.summary(&object);
        let brief: Vec<_> = summary
            .iter()
            .map(|c| (c.type_, c.status, c.reason, c.severity, c.message.as_str()))
            .collect();
        assert_eq!(
            brief,
            [
                (
                    "Programmed",
                    ConditionStatus::Unknown,
                    "Pending",
                    Severity::Warning,
                    "pending (and 1 more Programmed diagnostic)"
                ),
                (
                    "TLSValid",
                    ConditionStatus::False,
                    "Expired",
                    Severity::Error,
                    "expired (and 3 more TLSValid diagnostics)"
                ),
            ]
        );
        assert!(summary.iter().all(|c| c.observed_generation == Some(5)));
    }
}
