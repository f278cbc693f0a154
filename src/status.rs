//! Object status and Kubernetes Events, written only by the elected leader.
//!
//! The reconcile loop, which owns the objects, computes a [`StatusPlan`] after each compile
//! (and whenever an Ingress status or the published address changes): a list of
//! [`StatusPatch`]es, one per object whose status must change, each with a per-kind
//! [`StatusBody`] (which Ingresses need `status.loadBalancer.ingress` set or cleared; the
//! conditions of weir's CRDs; the Gateway API's GatewayClass, Gateway and HTTPRoute status), and
//! which rejections deserve an Event. The plan is computed against the statuses in the store,
//! so an object whose status already matches is never patched. [`run_writer`] applies the latest plan while this replica holds
//! the Lease, checking leadership before every single write.
//!
//! Clearing is careful: weir clears the status of an Ingress that left its class only if weir
//! owned it earlier in this process's life or its status holds exactly weir's published
//! addresses, so weir never clears another controller's status.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::kube::Client;
use ::kube::api::{Api, Patch, PatchParams};
use ::kube::runtime::events::{Event, EventType, Recorder, Reporter};
use k8s_openapi::api::core::v1::ObjectReference;

use crate::api::service::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::backendpolicy::{BackendPolicy, BackendPolicyStatus};
use crate::api::httpfilter::{HTTPFilter, HTTPFilterStatus, UsedBy};
use crate::api::{condition_types, reasons};
use crate::compile::{ConditionStatus, ObjectRef, Severity, StatusReport};
use crate::lease::Leadership;
use crate::store::{Kind, ObjectKey, Objects};

mod gateway_api;

pub use gateway_api::{GatewayApiBody, GatewayBody};

/// Minimum time between two Events for the same object and reason.
pub const EVENT_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Kind name of `HTTPFilter` in conditions.
const HTTP_FILTER: &str = "HTTPFilter";
/// Kind name of `BackendPolicy` in conditions.
const BACKEND_POLICY: &str = "BackendPolicy";

/// Field manager name for status patches.
const FIELD_MANAGER: &str = "weir";

/// The status writer's metrics. Put it in an `Arc` shared by the writer and the admin page.
#[derive(Debug, Default)]
pub struct StatusMetrics {
    status_writes: AtomicU64,
    events_published: AtomicU64,
}

impl StatusMetrics {
    /// Count a status patch that the API server accepted.
    pub fn status_written(&self) {
        self.status_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a Kubernetes Event that was published.
    pub fn event_published(&self) {
        self.events_published.fetch_add(1, Ordering::Relaxed);
    }

    /// Append the metrics in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        for (name, help, value) in [
            (
                "weir_status_writes_total",
                "Status patches accepted by the API server.",
                &self.status_writes,
            ),
            (
                "weir_events_total",
                "Kubernetes Events published.",
                &self.events_published,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
    }
}

/// Where the addresses written into Ingress status come from.
#[derive(Debug, Clone, Default)]
pub struct PublishSource {
    /// `--publish-service`: that Service's load-balancer IPs/hostnames.
    pub service: Option<ObjectKey>,
    /// `--publish-address`: fixed IPs or hostnames (used when no Service is given).
    pub addresses: Vec<String>,
}

impl PublishSource {
    /// The addresses to publish, sorted; `None` while they are unknown (publish Service not
    /// listed yet), in which case no status is written at all.
    pub fn resolve(
        &self,
        service: Option<&Option<Service>>,
    ) -> Option<Vec<IngressLoadBalancerIngress>> {
        match (&self.service, service) {
            (Some(_), None) => None, // not listed yet
            (Some(_), Some(svc)) => Some(service_addresses(svc.as_ref())),
            (None, _) => Some(sorted(self.addresses.iter().map(|a| address(a)).collect())),
        }
    }
}

fn address(a: &str) -> IngressLoadBalancerIngress {
    if a.parse::<std::net::IpAddr>().is_ok() {
        IngressLoadBalancerIngress {
            ip: Some(a.to_owned()),
            ..IngressLoadBalancerIngress::default()
        }
    } else {
        IngressLoadBalancerIngress {
            hostname: Some(a.to_owned()),
            ..IngressLoadBalancerIngress::default()
        }
    }
}

fn sorted(mut v: Vec<IngressLoadBalancerIngress>) -> Vec<IngressLoadBalancerIngress> {
    v.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
    v.dedup();
    v
}

/// Addresses of the publish Service, as ingress-nginx takes them: its load-balancer ingress
/// (IP or hostname); else its external IPs; else an ExternalName; else its cluster IP.
pub fn service_addresses(svc: Option<&Service>) -> Vec<IngressLoadBalancerIngress> {
    let Some(svc) = svc else { return Vec::new() };
    let lb: Vec<_> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref().or(i.hostname.as_deref()))
        .map(address)
        .collect();
    if !lb.is_empty() {
        return sorted(lb);
    }
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    if let Some(ips) = spec.external_ips.as_ref().filter(|ips| !ips.is_empty()) {
        return sorted(ips.iter().map(|a| address(a)).collect());
    }
    if let Some(name) = &spec.external_name {
        return vec![address(name)];
    }
    match spec.cluster_ip.as_deref() {
        Some(ip) if !ip.is_empty() && ip != "None" => vec![address(ip)],
        _ => Vec::new(),
    }
}

/// One status write: an object, the resourceVersion the plan saw, and what to set. Every
/// kind weir writes status for is one [`StatusBody`] variant; the writer handles them all
/// the same way (a merge patch of the status subresource).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPatch {
    /// The object.
    pub object: ObjectRef,
    /// The resourceVersion the plan was computed against (dedupes repeated writes).
    pub resource_version: Option<String>,
    /// What to write.
    pub body: StatusBody,
}

/// The status one [`StatusPatch`] sets, per kind.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusBody {
    /// An Ingress's `status.loadBalancer.ingress`; empty clears it.
    IngressLoadBalancer(Vec<IngressLoadBalancerIngress>),
    /// An `HTTPFilter`'s `status`: conditions and users.
    HttpFilter(CrdStatus),
    /// A `BackendPolicy`'s `status`: conditions.
    BackendPolicy(CrdStatus),
    /// A GatewayClass's, Gateway's or HTTPRoute's `status`.
    GatewayApi(GatewayApiBody),
}

/// The `status` of one of weir's CRDs: one condition per type, and who uses the object.
#[derive(Debug, Clone, PartialEq)]
pub struct CrdStatus {
    /// The conditions, by type.
    pub conditions: Vec<PlannedCondition>,
    /// The objects whose routes use it.
    pub used_by: Vec<UsedBy>,
}

/// A condition to write. Its `lastTransitionTime` is kept from the current status when the
/// condition's status did not change (`since`), else the writer stamps the time of the write,
/// so a plan stays a pure function of its inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCondition {
    /// `Accepted`, `ResolvedRefs`.
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// The generation it was computed from.
    pub observed_generation: Option<i64>,
    /// The current status's transition time, when the status is unchanged.
    pub since: Option<Time>,
}

impl CrdStatus {
    /// The conditions to write now (a changed condition is stamped with the current time).
    fn conditions_now(&self) -> Vec<Condition> {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        self.conditions
            .iter()
            .map(|c| c.to_condition(&now))
            .collect()
    }

    /// Whether the object's current status says the same (transition times aside).
    fn same_as(&self, conditions: &[Condition], used_by: &[UsedBy]) -> bool {
        self.conditions.len() == conditions.len()
            && self
                .conditions
                .iter()
                .zip(conditions)
                .all(|(d, c)| d.matches(c))
            && self.used_by == used_by
    }
}

impl PlannedCondition {
    fn to_condition(&self, now: &Time) -> Condition {
        Condition {
            type_: self.type_.to_owned(),
            status: self.status.to_owned(),
            reason: self.reason.clone(),
            message: self.message.clone(),
            observed_generation: self.observed_generation,
            last_transition_time: self.since.clone().unwrap_or_else(|| now.clone()),
        }
    }

    /// Whether `current` says the same (its time aside).
    fn matches(&self, current: &Condition) -> bool {
        current.type_ == self.type_
            && current.status == self.status
            && current.reason == self.reason
            && current.message == self.message
            && current.observed_generation == self.observed_generation
    }
}

impl StatusBody {
    /// The JSON merge patch for the object's status subresource.
    pub fn merge_patch(&self) -> serde_json::Value {
        match self {
            StatusBody::IngressLoadBalancer(addresses) => {
                let ingress = if addresses.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::to_value(addresses).unwrap_or(serde_json::Value::Null)
                };
                serde_json::json!({ "status": { "loadBalancer": { "ingress": ingress } } })
            }
            StatusBody::HttpFilter(status) => {
                let body = HTTPFilterStatus {
                    conditions: status.conditions_now(),
                    used_by: status.used_by.clone(),
                };
                // `usedBy: null` when empty, so a merge patch removes the old list.
                let mut value = serde_json::to_value(body).unwrap_or(serde_json::Value::Null);
                if let Some(map) = value.as_object_mut() {
                    map.entry("usedBy").or_insert(serde_json::Value::Null);
                }
                serde_json::json!({ "status": value })
            }
            StatusBody::BackendPolicy(status) => {
                let body = BackendPolicyStatus {
                    conditions: status.conditions_now(),
                };
                serde_json::json!({ "status": body })
            }
            StatusBody::GatewayApi(body) => body.merge_patch(),
        }
    }

    /// The API resource the patch is sent to.
    fn api_resource(&self) -> ::kube::api::ApiResource {
        match self {
            StatusBody::IngressLoadBalancer(_) => ::kube::api::ApiResource::erase::<Ingress>(&()),
            StatusBody::HttpFilter(_) => ::kube::api::ApiResource::erase::<HTTPFilter>(&()),
            StatusBody::BackendPolicy(_) => ::kube::api::ApiResource::erase::<BackendPolicy>(&()),
            StatusBody::GatewayApi(body) => body.api_resource(),
        }
    }
}

/// One Event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct EventNote {
    /// The object the Event is about.
    pub reference: ObjectReference,
    /// CamelCase reason from compile.
    pub reason: String,
    /// The compile message.
    pub message: String,
}

/// What the leader should write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusPlan {
    /// Status writes, in object order.
    pub patches: Vec<StatusPatch>,
    /// Events for rejected objects.
    pub events: Vec<EventNote>,
}

/// Compute the status writes and Events for the current objects and compile report.
///
/// `ours` remembers the Ingresses weir owned in this process: an Ingress leaves it once its
/// status has been cleared (or it is deleted).
pub fn plan(
    objects: &Objects,
    report: &StatusReport,
    addresses: Option<&[IngressLoadBalancerIngress]>,
    ours: &mut BTreeSet<ObjectKey>,
) -> StatusPlan {
    let mut out = StatusPlan::default();
    ours.retain(|k| objects.ingresses.contains_key(k));
    if let Some(addresses) = addresses {
        for (key, ingress) in &objects.ingresses {
            let current: &[IngressLoadBalancerIngress] = ingress
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_deref())
                .unwrap_or(&[]);
            let desired: &[IngressLoadBalancerIngress] = if report.owned_ingresses.contains(key) {
                ours.insert(key.clone());
                addresses
            } else if current.is_empty() {
                ours.remove(key);
                continue;
            } else if ours.contains(key) || (!addresses.is_empty() && current == addresses) {
                &[] // left weir's class: clear what weir wrote
            } else {
                continue; // another controller's status
            };
            if current != desired {
                out.patches.push(StatusPatch {
                    object: ObjectRef {
                        kind: "Ingress",
                        key: key.clone(),
                    },
                    resource_version: ingress.metadata.resource_version.clone(),
                    body: StatusBody::IngressLoadBalancer(desired.to_vec()),
                });
            }
        }
    }
    for (key, filter) in &objects.http_filters {
        let object = ObjectRef {
            kind: HTTP_FILTER,
            key: key.clone(),
        };
        let current = filter.status.clone().unwrap_or_default();
        let users = report
            .filter_users
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let desired = crd_status(
            report,
            &object,
            filter.metadata.generation,
            &current.conditions,
            users,
            "every filter compiled",
        );
        if !desired.same_as(&current.conditions, &current.used_by) {
            out.patches.push(StatusPatch {
                object,
                resource_version: filter.metadata.resource_version.clone(),
                body: StatusBody::HttpFilter(desired),
            });
        }
    }
    for (key, policy) in &objects.backend_policies {
        let object = ObjectRef {
            kind: BACKEND_POLICY,
            key: key.clone(),
        };
        let current = policy.status.clone().unwrap_or_default();
        let desired = crd_status(
            report,
            &object,
            policy.metadata.generation,
            &current.conditions,
            &[],
            "the policy applies to its targets",
        );
        if !desired.same_as(&current.conditions, &[]) {
            out.patches.push(StatusPatch {
                object,
                resource_version: policy.metadata.resource_version.clone(),
                body: StatusBody::BackendPolicy(desired),
            });
        }
    }
    gateway_api::plan(objects, &report.gateway_api, addresses, &mut out.patches);
    for (object, conditions) in &report.conditions {
        let Some(reference) = reference(objects, object) else {
            continue;
        };
        // One Event per reason and object (they are rate-limited by that pair), naming
        // every piece: an Ingress with three unsupported annotations gets one Event that
        // lists the three.
        let first = out.events.len();
        for c in conditions.iter().filter(|c| deserves_event(c)) {
            match out.events[first..]
                .iter_mut()
                .find(|n| n.reason == c.reason)
            {
                Some(note) => {
                    note.message.push_str("; ");
                    note.message.push_str(&c.message);
                }
                None => out.events.push(EventNote {
                    reference: reference.clone(),
                    reason: c.reason.to_owned(),
                    message: c.message.clone(),
                }),
            }
        }
    }
    out
}

/// Whether a condition is published as an Event: every rejection, and the warnings about
/// ingress-nginx annotations weir does not serve as written (an Ingress has no conditions
/// in its status, so an Event is where `kubectl describe ingress` shows them).
fn deserves_event(c: &crate::compile::Condition) -> bool {
    c.severity == Severity::Error
        || matches!(
            c.reason,
            reasons::SNIPPET_REFUSED
                | reasons::UNSUPPORTED_ANNOTATION
                | reasons::PARTIAL_ANNOTATION
                | reasons::INVALID_ANNOTATION
        )
}

/// The condition types every CRD status carries, in order.
const CRD_CONDITION_TYPES: [&str; 2] = [condition_types::ACCEPTED, condition_types::RESOLVED_REFS];

/// The status of one CRD object: one condition per type from compile's summary (a type
/// without diagnostics is `True`), and its users.
fn crd_status(
    report: &StatusReport,
    object: &ObjectRef,
    generation: Option<i64>,
    current: &[Condition],
    users: &[ObjectRef],
    accepted: &str,
) -> CrdStatus {
    let summary = report.summary(object);
    let conditions = CRD_CONDITION_TYPES
        .iter()
        .map(|&type_| {
            let (status, reason, message) = match summary.iter().find(|c| c.type_ == type_) {
                Some(c) if c.status == ConditionStatus::False => {
                    ("False", c.reason.to_owned(), c.message.clone())
                }
                Some(c) if c.status == ConditionStatus::Unknown => {
                    ("Unknown", c.reason.to_owned(), c.message.clone())
                }
                _ => match type_ {
                    condition_types::ACCEPTED => {
                        ("True", reasons::ACCEPTED.to_owned(), accepted.to_owned())
                    }
                    _ => (
                        "True",
                        reasons::RESOLVED_REFS.to_owned(),
                        "every reference resolved".to_owned(),
                    ),
                },
            };
            let since = current
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map(|c| c.last_transition_time.clone());
            PlannedCondition {
                type_,
                status,
                reason,
                message: truncate(&message, 1000),
                observed_generation: generation,
                since,
            }
        })
        .collect();
    CrdStatus {
        conditions,
        used_by: users
            .iter()
            .map(|u| UsedBy {
                kind: u.kind.to_owned(),
                namespace: u.key.namespace.clone(),
                name: u.key.name.clone(),
            })
            .collect(),
    }
}

/// An ObjectReference for an object in the store (with its uid, so `kubectl describe` finds
/// the Event); `None` when the object is not in the store.
fn reference(objects: &Objects, object: &ObjectRef) -> Option<ObjectReference> {
    let kind = Kind::from_name(object.kind)?;
    let meta = objects.meta(kind, &object.key)?;
    Some(ObjectReference {
        api_version: Some(kind.api_version().into_owned()),
        kind: Some(object.kind.to_owned()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        ..ObjectReference::default()
    })
}

/// Apply the latest plan whenever it changes or leadership is gained, only while leader.
/// Failed writes are retried every `retry` (the plan stays the same until the store sees
/// the write).
pub async fn run_writer(
    client: Client,
    mut plans: watch::Receiver<Arc<StatusPlan>>,
    mut leadership: Leadership,
    reporter: Reporter,
    metrics: Arc<StatusMetrics>,
    retry: Duration,
) {
    let recorder = Recorder::new(client.clone(), reporter);
    // (object, resourceVersion it was computed against, what we wrote): dedupes a write the
    // store has not seen yet without hiding a later change by someone else.
    let mut written: HashMap<ObjectRef, (Option<String>, StatusBody)> = HashMap::new();
    let mut last_event: HashMap<EventKey, Instant> = HashMap::new();
    let mut was_leader = false;
    loop {
        tokio::select! {
            changed = plans.changed() => if changed.is_err() { return },
            _ = leadership.changed() => {},
            _ = tokio::time::sleep(retry) => {},
        }
        let leader = leadership.is_leader();
        if leader && !was_leader {
            written.clear(); // someone else may have written meanwhile
        }
        was_leader = leader;
        if !leader {
            continue;
        }
        let plan = plans.borrow_and_update().clone();
        for patch in &plan.patches {
            let stamp = (patch.resource_version.clone(), patch.body.clone());
            if written.get(&patch.object) == Some(&stamp) {
                continue;
            }
            if !leadership.is_leader() {
                break;
            }
            let object = &patch.object;
            let resource = patch.body.api_resource();
            let api: Api<::kube::api::DynamicObject> = if object.key.namespace.is_empty() {
                Api::all_with(client.clone(), &resource)
            } else {
                Api::namespaced_with(client.clone(), &object.key.namespace, &resource)
            };
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            let body = patch.body.merge_patch();
            match api
                .patch_status(&object.key.name, &params, &Patch::Merge(&body))
                .await
            {
                Ok(_) => {
                    metrics.status_written();
                    tracing::info!(kind = object.kind, object = %object.key, "wrote status");
                    written.insert(object.clone(), stamp);
                }
                Err(::kube::Error::Api(status)) if status.is_not_found() => {}
                Err(error) => {
                    tracing::warn!(%error, kind = object.kind, object = %object.key, "writing status failed; will retry");
                }
            }
        }
        let now = Instant::now();
        last_event.retain(|_, at| now.duration_since(*at) < EVENT_INTERVAL);
        for note in &plan.events {
            let key = EventKey::of(note);
            if last_event.contains_key(&key) || !leadership.is_leader() {
                continue;
            }
            let event = Event {
                type_: EventType::Warning,
                reason: note.reason.clone(),
                note: Some(truncate(&note.message, 1000)),
                action: "Compile".to_owned(),
                secondary: None,
            };
            match recorder.publish(&event, &note.reference).await {
                Ok(()) => {
                    metrics.event_published();
                    last_event.insert(key, now);
                }
                Err(error) => {
                    tracing::warn!(%error, reason = %note.reason, "publishing an event failed");
                }
            }
        }
    }
}

/// Rate-limit key of an Event: the object and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventKey {
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    reason: String,
}

impl EventKey {
    fn of(note: &EventNote) -> Self {
        EventKey {
            kind: note.reference.kind.clone(),
            namespace: note.reference.namespace.clone(),
            name: note.reference.name.clone(),
            uid: note.reference.uid.clone(),
            reason: note.reason.clone(),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use crate::api::ingress::{Ingress, IngressStatus};
    use k8s_openapi::api::networking::v1::IngressLoadBalancerStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn ingress_with(ips: &[&str]) -> Ingress {
        Ingress {
            metadata: ObjectMeta {
                namespace: Some("default".to_owned()),
                name: Some("web".to_owned()),
                resource_version: Some("7".to_owned()),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(ips.iter().map(|ip| address(ip)).collect()),
                }),
            }),
        }
    }

    fn objects(ingress: Ingress) -> Objects {
        let mut objects = Objects::default();
        objects
            .ingresses
            .insert(ObjectKey::new("default", "web"), ingress.into());
        objects
    }

    fn owned() -> StatusReport {
        let mut report = StatusReport::default();
        report
            .owned_ingresses
            .insert(ObjectKey::new("default", "web"));
        report
    }

    fn ours() -> Vec<IngressLoadBalancerIngress> {
        PublishSource {
            service: None,
            addresses: vec!["127.0.0.1".to_owned()],
        }
        .resolve(None)
        .expect("fixed addresses")
    }

    #[test]
    fn an_owned_ingress_gets_the_published_address() {
        let plan = plan(
            &objects(ingress_with(&[])),
            &owned(),
            Some(&ours()),
            &mut BTreeSet::new(),
        );
        assert_eq!(plan.patches.len(), 1);
        assert_eq!(
            plan.patches[0].body,
            StatusBody::IngressLoadBalancer(ours())
        );
        assert_eq!(plan.patches[0].object.kind, "Ingress");
        assert_eq!(plan.patches[0].resource_version.as_deref(), Some("7"));
    }

    #[test]
    fn a_status_that_already_matches_is_not_patched() {
        let plan = plan(
            &objects(ingress_with(&["127.0.0.1"])),
            &owned(),
            Some(&ours()),
            &mut BTreeSet::new(),
        );
        assert!(plan.patches.is_empty());
    }

    #[test]
    fn an_ingress_that_left_the_class_is_cleared() {
        let mut remembered = BTreeSet::new();
        let objects = objects(ingress_with(&["127.0.0.1"]));
        let _ = plan(&objects, &owned(), Some(&ours()), &mut remembered);
        let plan = plan(
            &objects,
            &StatusReport::default(),
            Some(&ours()),
            &mut remembered,
        );
        assert_eq!(plan.patches.len(), 1);
        assert_eq!(
            plan.patches[0].body,
            StatusBody::IngressLoadBalancer(Vec::new()),
            "cleared"
        );
    }

    #[test]
    fn after_a_restart_our_own_address_is_still_cleared() {
        let plan = plan(
            &objects(ingress_with(&["127.0.0.1"])),
            &StatusReport::default(),
            Some(&ours()),
            &mut BTreeSet::new(),
        );
        assert_eq!(plan.patches.len(), 1);
        assert_eq!(
            plan.patches[0].body,
            StatusBody::IngressLoadBalancer(Vec::new())
        );
    }

    #[test]
    fn another_controllers_status_is_left_alone() {
        let plan = plan(
            &objects(ingress_with(&["10.0.0.9"])),
            &StatusReport::default(),
            Some(&ours()),
            &mut BTreeSet::new(),
        );
        assert!(plan.patches.is_empty());
    }

    #[test]
    fn nothing_is_written_before_the_publish_service_has_listed() {
        let source = PublishSource {
            service: Some(ObjectKey::new("weir", "weir")),
            addresses: Vec::new(),
        };
        let addresses = source.resolve(None);
        assert_eq!(addresses, None);
        let plan = plan(
            &objects(ingress_with(&["127.0.0.1"])),
            &owned(),
            addresses.as_deref(),
            &mut BTreeSet::new(),
        );
        assert!(
            plan.patches.is_empty(),
            "an unknown address must not clear anything"
        );
    }

    #[test]
    fn ingress_patches_set_or_clear_the_load_balancer() {
        let set = StatusBody::IngressLoadBalancer(ours()).merge_patch();
        assert_eq!(
            set,
            serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}})
        );
        let clear = StatusBody::IngressLoadBalancer(Vec::new()).merge_patch();
        assert_eq!(
            clear,
            serde_json::json!({"status": {"loadBalancer": {"ingress": null}}})
        );
    }

    #[test]
    fn the_publish_service_load_balancer_wins_over_its_cluster_ip() {
        use crate::api::service::{ServiceSpec, ServiceStatus};
        use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus};
        let mut svc = Service {
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.10".to_owned()),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        assert_eq!(service_addresses(Some(&svc)), vec![address("10.96.0.10")]);
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    hostname: Some("lb.example.com".to_owned()),
                    ..LoadBalancerIngress::default()
                }]),
            }),
        });
        assert_eq!(
            service_addresses(Some(&svc)),
            vec![address("lb.example.com")]
        );
    }

    #[test]
    fn an_event_names_the_api_version_of_every_kind() {
        for kind in Kind::ALL {
            let mut objects = Objects::default();
            let manifest = serde_json::json!({
                "apiVersion": kind.api_version(),
                "kind": kind.as_str(),
                "metadata": {"namespace": "default", "name": "x", "uid": "u-1"},
                // CustomResource types require a spec; Secrets are kept only with this type,
                // ConfigMaps only with data (valid base64, so a Secret decodes it too); the
                // other kinds ignore or default these fields (the two spec fields are what
                // GatewayClass and Gateway require).
                "spec": {"controllerName": "x", "gatewayClassName": "x"},
                "type": "kubernetes.io/tls",
                "data": {"a": "YQ=="},
            });
            let object = crate::store::KubeObject::from_value(*kind, manifest).expect("decodes");
            let crate::store::Applied::Stored { key, .. } = objects.apply(object).expect("valid")
            else {
                panic!("{kind} stored");
            };
            let object = ObjectRef {
                kind: kind.as_str(),
                key,
            };
            let reference = reference(&objects, &object).expect("in the store");
            assert_eq!(reference.api_version, Some(kind.api_version().into_owned()));
            assert_eq!(reference.kind.as_deref(), Some(kind.as_str()));
            assert_eq!(reference.uid.as_deref(), Some("u-1"));
        }
    }

    #[test]
    fn annotation_warnings_are_events_one_per_reason() {
        let warning = |reason, message: &str| crate::compile::Condition {
            type_: condition_types::ACCEPTED,
            status: ConditionStatus::True,
            severity: Severity::Warning,
            reason,
            message: message.to_owned(),
            observed_generation: None,
        };
        let mut report = owned();
        report.conditions.insert(
            ObjectRef {
                kind: "Ingress",
                key: ObjectKey::new("default", "web"),
            },
            vec![
                warning(reasons::UNSUPPORTED_ANNOTATION, "annotation a"),
                warning(reasons::SNIPPET_REFUSED, "annotation s"),
                warning(reasons::UNSUPPORTED_ANNOTATION, "annotation b"),
                // Other warnings stay conditions only.
                warning(reasons::UNKNOWN_APP_PROTOCOL, "not an event"),
            ],
        );
        let plan = plan(
            &objects(ingress_with(&[])),
            &report,
            None,
            &mut BTreeSet::new(),
        );
        let events: Vec<_> = plan
            .events
            .iter()
            .map(|e| (e.reason.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            events,
            [
                ("UnsupportedAnnotation", "annotation a; annotation b"),
                ("SnippetRefused", "annotation s"),
            ]
        );
    }

    fn http_filter(status: Option<HTTPFilterStatus>) -> Objects {
        let mut filter = HTTPFilter::new(
            "guard",
            crate::api::httpfilter::HTTPFilterSpec {
                filters: Vec::new(),
            },
        );
        filter.metadata.namespace = Some("shop".to_owned());
        filter.metadata.generation = Some(2);
        filter.status = status;
        let mut objects = Objects::default();
        objects
            .http_filters
            .insert(ObjectKey::new("shop", "guard"), filter.into());
        objects
    }

    #[test]
    fn an_http_filter_gets_one_condition_per_type_and_its_users() {
        let objects = http_filter(None);
        let mut report = StatusReport::default();
        report.filter_users.insert(
            ObjectKey::new("shop", "guard"),
            vec![ObjectRef {
                kind: "Ingress",
                key: ObjectKey::new("shop", "app"),
            }],
        );
        let plan = plan(&objects, &report, None, &mut BTreeSet::new());
        assert_eq!(plan.patches.len(), 1);
        let body = plan.patches[0].body.merge_patch();
        let conditions = &body["status"]["conditions"];
        assert_eq!(conditions[0]["type"], "Accepted");
        assert_eq!(conditions[0]["status"], "True");
        assert_eq!(conditions[0]["observedGeneration"], 2);
        assert_eq!(conditions[1]["type"], "ResolvedRefs");
        assert!(conditions[0]["lastTransitionTime"].is_string());
        assert_eq!(body["status"]["usedBy"][0]["name"], "app");

        // Once the store holds what was written, nothing more is written.
        let written: HTTPFilterStatus =
            serde_json::from_value(body["status"].clone()).expect("status decodes");
        let objects = http_filter(Some(written));
        let again = super::plan(&objects, &report, None, &mut BTreeSet::new());
        assert!(again.patches.is_empty(), "{:?}", again.patches);
    }

    fn backend_policy(status: Option<BackendPolicyStatus>) -> Objects {
        let mut policy = BackendPolicy::new("web", Default::default());
        policy.metadata.namespace = Some("shop".to_owned());
        policy.metadata.generation = Some(3);
        policy.status = status;
        let mut objects = Objects::default();
        objects
            .backend_policies
            .insert(ObjectKey::new("shop", "web"), policy.into());
        objects
    }

    #[test]
    fn a_backend_policy_gets_its_conditions_once() {
        let object = ObjectRef {
            kind: BACKEND_POLICY,
            key: ObjectKey::new("shop", "web"),
        };
        let mut report = StatusReport::default();
        report.conditions.insert(
            object,
            vec![crate::compile::Condition {
                type_: condition_types::ACCEPTED,
                status: ConditionStatus::False,
                severity: Severity::Error,
                reason: reasons::POLICY_CONFLICTED,
                message: "older policy wins".to_owned(),
                observed_generation: Some(3),
            }],
        );
        let plan = plan(&backend_policy(None), &report, None, &mut BTreeSet::new());
        assert_eq!(plan.patches.len(), 1);
        let body = plan.patches[0].body.merge_patch();
        let conditions = &body["status"]["conditions"];
        assert_eq!(conditions[0]["type"], "Accepted");
        assert_eq!(conditions[0]["status"], "False");
        assert_eq!(conditions[0]["reason"], "Conflicted");
        assert_eq!(conditions[1]["type"], "ResolvedRefs");
        assert_eq!(conditions[1]["status"], "True");
        assert_eq!(plan.events.len(), 1, "the rejection is an Event too");
        let written: BackendPolicyStatus =
            serde_json::from_value(body["status"].clone()).expect("status decodes");
        let again = super::plan(
            &backend_policy(Some(written)),
            &report,
            None,
            &mut BTreeSet::new(),
        );
        assert!(again.patches.is_empty(), "{:?}", again.patches);
    }
}
