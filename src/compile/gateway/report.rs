//! The Gateway API's structured status as compile computes it: one condition per type for
//! each of weir's GatewayClasses, Gateways (and each listener) and each HTTPRoute parent weir
//! manages. It sits beside the flat report (every diagnostic, for `weir validate`, logs and
//! Events); the status writer (`crate::status`) turns it into patches, keeping transition
//! times of conditions that did not change.

use std::collections::BTreeMap;

use serde::Serialize;

use super::super::{Condition, ConditionStatus, ObjectRef, Severity, StatusReport};
use crate::api::gateway::{GatewayAddress, ParentReference, RouteGroupKind};
use crate::api::{condition_types, reasons};
use crate::store::ObjectKey;

/// The features weir's GatewayClasses list in `status.supportedFeatures`: the ones the
/// conformance suite (`e2e/gateway`) passes.
pub const SUPPORTED_FEATURES: &[&str] = &[
    "Gateway",
    "HTTPRoute",
    "ReferenceGrant",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRoutePortRedirect",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteParentRefPort",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteCORS",
    "GRPCRoute",
    "GRPCRouteNamedRouteRule",
    "GatewayPort8080",
];

/// The Gateway API status compile computed.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiReport {
    /// `--gateway-controller-name`: the `controllerName` of weir's route parent entries.
    #[serde(skip)]
    pub controller_name: String,
    /// weir's GatewayClasses by name, with their generation (each one is Accepted).
    pub classes: BTreeMap<String, Option<i64>>,
    /// Every Gateway of weir's classes.
    #[serde(serialize_with = "by_name")]
    pub gateways: BTreeMap<ObjectKey, GatewayReport>,
    /// Every HTTPRoute and GRPCRoute with a parentRef to one of those Gateways.
    #[serde(serialize_with = "by_object")]
    pub routes: BTreeMap<ObjectRef, RouteReport>,
}

impl GatewayApiReport {
    /// Whether there is nothing to report (no class of weir's).
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
}

/// A map by object, keyed `Kind namespace/name`.
fn by_object<V: Serialize, S: serde::Serializer>(
    map: &BTreeMap<ObjectRef, V>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(
        map.iter()
            .map(|(k, v)| (format!("{} {}", k.kind, k.key), v)),
    )
}

/// A map by object, keyed `namespace/name`.
fn by_name<V: Serialize, S: serde::Serializer>(
    map: &BTreeMap<ObjectKey, V>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(map.iter().map(|(k, v)| (k.to_string(), v)))
}

/// One Gateway's status.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayReport {
    /// Its `metadata.generation`.
    pub generation: Option<i64>,
    /// The address it got from `--gateway-address-pool`; `None`: weir's published addresses
    /// (`--publish-service` / `--publish-address`), which only the status writer knows.
    pub addresses: Option<Vec<GatewayAddress>>,
    /// `Accepted` and `Programmed`.
    pub conditions: Vec<Condition>,
    /// One per listener, in spec order.
    pub listeners: Vec<ListenerReport>,
}

/// One listener's status.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerReport {
    /// The listener's name.
    pub name: String,
    /// The route kinds it admits that weir serves.
    pub supported_kinds: Vec<RouteGroupKind>,
    /// How many routes attached to it.
    pub attached_routes: i32,
    /// `Accepted`, `Conflicted`, `Programmed`, `ResolvedRefs`.
    pub conditions: Vec<Condition>,
}

/// One HTTPRoute's parent entries (weir's only).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteReport {
    /// One per distinct parentRef naming a Gateway of weir's classes, in spec order.
    pub parents: Vec<RouteParent>,
}

/// One route parent entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParent {
    /// The parentRef as the route spells it.
    pub parent_ref: ParentReference,
    /// `Accepted` and `ResolvedRefs`.
    pub conditions: Vec<Condition>,
}

/// A condition of the structured status.
pub(super) fn condition(
    type_: &'static str,
    ok: bool,
    reason: &'static str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_,
        status: if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        severity: if ok {
            Severity::Warning
        } else {
            Severity::Error
        },
        reason,
        message: message.into(),
        observed_generation: generation,
    }
}

/// What one listener's checks found: the first problem of each condition type.
#[derive(Debug, Default)]
pub(super) struct ListenerCheck {
    /// Why it is not accepted.
    pub(super) refused: Option<(&'static str, String)>,
    /// Why a reference does not resolve.
    pub(super) unresolved: Option<(&'static str, String)>,
    /// Why it conflicts with another listener.
    pub(super) conflicted: Option<(&'static str, String)>,
    /// Whether it serves nothing although accepted (an HTTPS listener without a usable
    /// certificate).
    pub(super) unserved: bool,
}

impl ListenerCheck {
    /// Whether the listener is served.
    pub(super) fn serves(&self) -> bool {
        self.refused.is_none() && self.conflicted.is_none() && !self.unserved
    }

    /// The listener's conditions.
    pub(super) fn conditions(&self, generation: Option<i64>) -> Vec<Condition> {
        let g = generation;
        let programmed =
            (!self.serves()).then(|| (reasons::INVALID, "listener not served".to_owned()));
        let mut conflicted = verdict(
            condition_types::CONFLICTED,
            self.conflicted.as_ref(),
            (reasons::NO_CONFLICTS, "no conflicts"),
            g,
        );
        // Conflicted is the one condition whose bad state is True.
        conflicted.status = match conflicted.status {
            ConditionStatus::True => ConditionStatus::False,
            _ => ConditionStatus::True,
        };
        vec![
            verdict(
                condition_types::ACCEPTED,
                self.refused.as_ref(),
                (reasons::ACCEPTED, "listener accepted"),
                g,
            ),
            conflicted,
            verdict(
                condition_types::PROGRAMMED,
                programmed.as_ref(),
                (reasons::PROGRAMMED, "listener served"),
                g,
            ),
            verdict(
                condition_types::RESOLVED_REFS,
                self.unresolved.as_ref(),
                (reasons::RESOLVED_REFS, "every reference resolved"),
                g,
            ),
        ]
    }
}

/// A condition that is `False` with the problem's reason and message when there is one, else
/// `True` with `ok`.
fn verdict(
    type_: &'static str,
    problem: Option<&(&'static str, String)>,
    ok: (&'static str, &str),
    generation: Option<i64>,
) -> Condition {
    match problem {
        Some((reason, message)) => condition(type_, false, reason, message.clone(), generation),
        None => condition(type_, true, ok.0, ok.1, generation),
    }
}

/// Complete the route parents with `ResolvedRefs`, from the route's diagnostics of that type
/// in the flat report (the shared backends pass writes them), in the Gateway API's reasons.
pub(in crate::compile) fn finish(report: &mut StatusReport) {
    let mut routes = std::mem::take(&mut report.gateway_api.routes);
    for (object, route) in &mut routes {
        let summary = report.summary(object);
        let resolved = summary.iter().find(|c| {
            c.type_ == condition_types::RESOLVED_REFS && c.status != ConditionStatus::True
        });
        for parent in &mut route.parents {
            let generation = parent
                .conditions
                .first()
                .and_then(|c| c.observed_generation);
            let problem = resolved.map(|c| (route_reason(c.reason), c.message.clone()));
            parent.conditions.push(verdict(
                condition_types::RESOLVED_REFS,
                problem.as_ref(),
                (reasons::RESOLVED_REFS, "every reference resolved"),
                generation,
            ));
        }
    }
    report.gateway_api.routes = routes;
}

/// A flat `ResolvedRefs` reason as a route's: the Gateway API knows `BackendNotFound` for
/// every way a Service reference fails.
fn route_reason(reason: &'static str) -> &'static str {
    match reason {
        reasons::SERVICE_NOT_FOUND
        | reasons::SERVICE_PORT_NOT_FOUND
        | reasons::EXTERNAL_NAME_NOT_SUPPORTED
        | reasons::NO_CLUSTER_IP
        | reasons::INVALID_BACKEND => reasons::BACKEND_NOT_FOUND,
        other => other,
    }
}
