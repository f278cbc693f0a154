//! The Gateway API's status, planned from compile's [`GatewayApiReport`]: GatewayClass
//! `Accepted` and `supportedFeatures`, Gateway `addresses`, conditions and listeners, and
//! weir's entries of HTTPRoute and GRPCRoute `status.parents` (other controllers' entries
//! are kept as they are).

use k8s_openapi::api::networking::v1::IngressLoadBalancerIngress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{PlannedCondition, StatusBody, StatusPatch, truncate};
use crate::api::gateway::{
    GatewayAddress, GatewayClassStatus, GatewayStatus, ListenerStatus, ParentReference,
    RouteGroupKind, RouteParentStatus, RouteStatus, SupportedFeature,
};
use crate::api::{condition_types, reasons};
use crate::compile::gateway::{GatewayApiReport, SUPPORTED_FEATURES};
use crate::compile::{self, ConditionStatus, ObjectRef};
use crate::store::{ObjectKey, Objects};

/// A GatewayClass's, Gateway's or HTTPRoute's status to write.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayApiBody {
    /// A GatewayClass: `Accepted`, and the features weir supports.
    GatewayClass(Vec<PlannedCondition>),
    /// A Gateway.
    Gateway(GatewayBody),
    /// An HTTPRoute's or GRPCRoute's parents: the other controllers' entries as they are,
    /// then weir's.
    Route {
        /// A GRPCRoute (else an HTTPRoute).
        grpc: bool,
        /// Entries other controllers wrote.
        theirs: Vec<RouteParentStatus>,
        /// weir's entries.
        ours: Vec<(ParentReference, Vec<PlannedCondition>)>,
        /// weir's `controllerName`.
        controller_name: String,
    },
}

/// A Gateway's status to write.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayBody {
    /// `status.addresses`.
    pub addresses: Vec<GatewayAddress>,
    /// `Accepted`, `Programmed`.
    pub conditions: Vec<PlannedCondition>,
    /// Per listener: name, supported kinds, attached routes, conditions.
    pub listeners: Vec<(String, Vec<RouteGroupKind>, i32, Vec<PlannedCondition>)>,
}

/// Plan the conditions `drafts` against the `current` ones (keeping the transition time of
/// a condition whose status did not change).
fn planned(drafts: &[compile::Condition], current: &[Condition]) -> Vec<PlannedCondition> {
    drafts
        .iter()
        .map(|d| {
            let status = match d.status {
                ConditionStatus::True => "True",
                ConditionStatus::False => "False",
                ConditionStatus::Unknown => "Unknown",
            };
            PlannedCondition {
                type_: d.type_,
                status,
                reason: d.reason.to_owned(),
                message: truncate(&d.message, 1000),
                observed_generation: d.observed_generation,
                since: current
                    .iter()
                    .find(|c| c.type_ == d.type_ && c.status == status)
                    .map(|c| c.last_transition_time.clone()),
            }
        })
        .collect()
}

/// Whether `current` says what `planned` says, in the same order (transition times aside).
fn same(planned: &[PlannedCondition], current: &[Condition]) -> bool {
    planned.len() == current.len() && planned.iter().zip(current).all(|(p, c)| p.matches(c))
}

fn now_conditions(planned: &[PlannedCondition], now: &Time) -> Vec<Condition> {
    planned.iter().map(|c| c.to_condition(now)).collect()
}

/// A published address as a Gateway address.
fn gateway_address(a: &IngressLoadBalancerIngress) -> Option<GatewayAddress> {
    match (&a.ip, &a.hostname) {
        (Some(ip), _) => Some(GatewayAddress {
            type_: Some("IPAddress".to_owned()),
            value: ip.clone(),
        }),
        (None, Some(host)) => Some(GatewayAddress {
            type_: Some("Hostname".to_owned()),
            value: host.clone(),
        }),
        (None, None) => None,
    }
}

/// The Gateway API status patches for `objects`. `published` is weir's published address
/// list (`None` while unknown): the addresses of Gateways without a pool address.
pub(super) fn plan(
    objects: &Objects,
    report: &GatewayApiReport,
    published: Option<&[IngressLoadBalancerIngress]>,
    out: &mut Vec<StatusPatch>,
) {
    let features: Vec<SupportedFeature> = SUPPORTED_FEATURES
        .iter()
        .map(|f| SupportedFeature {
            name: (*f).to_owned(),
        })
        .collect();
    for (name, generation) in &report.classes {
        let key = ObjectKey::new("", name);
        let Some(class) = objects.gateway_classes.get(&key) else {
            continue;
        };
        let current = class.status.clone().unwrap_or_default();
        let drafts = [crate::compile::Condition {
            type_: condition_types::ACCEPTED,
            status: ConditionStatus::True,
            severity: compile::Severity::Warning,
            reason: reasons::ACCEPTED,
            message: "weir serves this class".to_owned(),
            observed_generation: *generation,
        }];
        let conditions = planned(&drafts, &current.conditions);
        if !same(&conditions, &current.conditions) || current.supported_features != features {
            out.push(StatusPatch {
                object: ObjectRef {
                    kind: "GatewayClass",
                    key,
                },
                resource_version: class.metadata.resource_version.clone(),
                body: StatusBody::GatewayApi(GatewayApiBody::GatewayClass(conditions)),
            });
        }
    }
    for (key, gateway) in &report.gateways {
        let Some(object) = objects.gateways.get(key) else {
            continue;
        };
        let addresses = match (&gateway.addresses, published) {
            (Some(pool), _) => pool.clone(),
            (None, Some(published)) => published.iter().filter_map(gateway_address).collect(),
            (None, None) => continue, // not known yet
        };
        let current = object.status.clone().unwrap_or_default();
        let mut drafts = gateway.conditions.clone();
        if addresses.is_empty()
            && let Some(programmed) = drafts
                .iter_mut()
                .find(|c| c.type_ == condition_types::PROGRAMMED)
        {
            programmed.status = ConditionStatus::False;
            programmed.reason = reasons::ADDRESS_NOT_ASSIGNED;
            programmed.message =
                "weir has no address to publish (--publish-service, --publish-address or \
                 --gateway-address-pool)"
                    .to_owned();
        }
        let body = GatewayBody {
            addresses,
            conditions: planned(&drafts, &current.conditions),
            listeners: gateway
                .listeners
                .iter()
                .map(|l| {
                    let current = current
                        .listeners
                        .iter()
                        .find(|c| c.name == l.name)
                        .map(|c| c.conditions.as_slice())
                        .unwrap_or_default();
                    (
                        l.name.clone(),
                        l.supported_kinds.clone(),
                        l.attached_routes,
                        planned(&l.conditions, current),
                    )
                })
                .collect(),
        };
        let unchanged = body.addresses == current.addresses
            && same(&body.conditions, &current.conditions)
            && body.listeners.len() == current.listeners.len()
            && body.listeners.iter().zip(&current.listeners).all(
                |((name, kinds, attached, conditions), c)| {
                    *name == c.name
                        && *kinds == c.supported_kinds
                        && *attached == c.attached_routes
                        && same(conditions, &c.conditions)
                },
            );
        if !unchanged {
            out.push(StatusPatch {
                object: ObjectRef {
                    kind: "Gateway",
                    key: key.clone(),
                },
                resource_version: object.metadata.resource_version.clone(),
                body: StatusBody::GatewayApi(GatewayApiBody::Gateway(body)),
            });
        }
    }
    let controller = &report.controller_name;
    let routes = objects
        .http_routes
        .iter()
        .map(|(key, r)| ("HTTPRoute", key, &r.metadata, &r.status))
        .chain(
            objects
                .grpc_routes
                .iter()
                .map(|(key, r)| ("GRPCRoute", key, &r.metadata, &r.status)),
        );
    for (kind, key, metadata, status) in routes {
        let object = ObjectRef {
            kind,
            key: key.clone(),
        };
        let current = status.clone().unwrap_or_default();
        let (mine, theirs): (Vec<_>, Vec<_>) = current
            .parents
            .into_iter()
            .partition(|p| p.controller_name == *controller);
        let ours: Vec<(ParentReference, Vec<PlannedCondition>)> = report
            .routes
            .get(&object)
            .into_iter()
            .flat_map(|r| &r.parents)
            .map(|p| {
                let current = mine
                    .iter()
                    .find(|m| m.parent_ref == p.parent_ref)
                    .map(|m| m.conditions.as_slice())
                    .unwrap_or_default();
                (p.parent_ref.clone(), planned(&p.conditions, current))
            })
            .collect();
        let unchanged = mine.len() == ours.len()
            && mine.iter().zip(&ours).all(|(m, (parent, conditions))| {
                m.parent_ref == *parent && same(conditions, &m.conditions)
            });
        if !unchanged {
            out.push(StatusPatch {
                object,
                resource_version: metadata.resource_version.clone(),
                body: StatusBody::GatewayApi(GatewayApiBody::Route {
                    grpc: kind == "GRPCRoute",
                    theirs,
                    ours,
                    controller_name: controller.clone(),
                }),
            });
        }
    }
}

impl GatewayApiBody {
    /// The JSON merge patch of the status subresource (lists are replaced whole).
    pub(super) fn merge_patch(&self) -> serde_json::Value {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let status = match self {
            GatewayApiBody::GatewayClass(conditions) => serde_json::to_value(GatewayClassStatus {
                conditions: now_conditions(conditions, &now),
                supported_features: SUPPORTED_FEATURES
                    .iter()
                    .map(|f| SupportedFeature {
                        name: (*f).to_owned(),
                    })
                    .collect(),
            }),
            GatewayApiBody::Gateway(body) => {
                let status = GatewayStatus {
                    addresses: body.addresses.clone(),
                    conditions: now_conditions(&body.conditions, &now),
                    listeners: body
                        .listeners
                        .iter()
                        .map(|(name, kinds, attached, conditions)| ListenerStatus {
                            name: name.clone(),
                            supported_kinds: kinds.clone(),
                            attached_routes: *attached,
                            conditions: now_conditions(conditions, &now),
                        })
                        .collect(),
                };
                // Empty lists are left out when serialized: send them, so that a merge
                // patch clears what was there.
                serde_json::to_value(status).map(|mut v| {
                    if let Some(map) = v.as_object_mut() {
                        for field in ["addresses", "conditions", "listeners"] {
                            map.entry(field).or_insert(serde_json::json!([]));
                        }
                    }
                    v
                })
            }
            GatewayApiBody::Route {
                theirs,
                ours,
                controller_name,
                ..
            } => serde_json::to_value(RouteStatus {
                parents: theirs
                    .iter()
                    .cloned()
                    .chain(ours.iter().map(|(parent, conditions)| RouteParentStatus {
                        parent_ref: parent.clone(),
                        controller_name: controller_name.clone(),
                        conditions: now_conditions(conditions, &now),
                    }))
                    .collect(),
            }),
        };
        serde_json::json!({ "status": status.unwrap_or(serde_json::Value::Null) })
    }

    /// The API resource the patch is sent to.
    pub(super) fn api_resource(&self) -> ::kube::api::ApiResource {
        use crate::api::gateway::{GRPCRoute, Gateway, GatewayClass, HTTPRoute};
        match self {
            GatewayApiBody::GatewayClass(_) => ::kube::api::ApiResource::erase::<GatewayClass>(&()),
            GatewayApiBody::Gateway(_) => ::kube::api::ApiResource::erase::<Gateway>(&()),
            GatewayApiBody::Route { grpc: false, .. } => {
                ::kube::api::ApiResource::erase::<HTTPRoute>(&())
            }
            GatewayApiBody::Route { grpc: true, .. } => {
                ::kube::api::ApiResource::erase::<GRPCRoute>(&())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::api::gateway::{Gateway, GatewayClass, HTTPRoute};
    use crate::compile::{CompileConfig, compile};
    use crate::status::StatusPlan;

    fn config() -> CompileConfig {
        let mut config = crate::compile::testing::config();
        config.gateway.address_pool = Some("10.0.0.0/30".parse().expect("cidr"));
        config
    }

    fn objects() -> Objects {
        let mut objects = Objects::default();
        let class: GatewayClass = serde_yaml::from_str(
            "metadata: {name: weir, generation: 1}\n\
             spec: {controllerName: weir.dev/gateway-controller}",
        )
        .expect("class");
        objects
            .gateway_classes
            .insert(ObjectKey::new("", "weir"), class.into());
        for name in ["a", "b"] {
            let gateway: Gateway = serde_yaml::from_str(&format!(
                "metadata: {{name: {name}, namespace: infra, generation: 2}}\n\
                 spec: {{gatewayClassName: weir, listeners: [{{name: web, port: 80, protocol: HTTP}}]}}"
            ))
            .expect("gateway");
            objects
                .gateways
                .insert(ObjectKey::new("infra", name), gateway.into());
        }
        let route: HTTPRoute = serde_yaml::from_str(
            "metadata: {name: r, namespace: infra, generation: 3}\n\
             spec:\n  parentRefs: [{name: a}, {name: elsewhere}]\n  \
             rules: [{backendRefs: [{name: missing, port: 80}]}]\n\
             status:\n  parents:\n  - parentRef: {name: elsewhere}\n    \
             controllerName: example.com/other\n    conditions: []",
        )
        .expect("route");
        objects
            .http_routes
            .insert(ObjectKey::new("infra", "r"), route.into());
        objects
    }

    fn plan_of(objects: &Objects) -> StatusPlan {
        let compiled = compile(objects, &config());
        crate::status::plan(objects, &compiled.status, None, &mut BTreeSet::new())
    }

    /// What the API server holds after the writer applied `plan`.
    fn apply(objects: &mut Objects, plan: &StatusPlan) {
        for patch in &plan.patches {
            let status = patch.body.merge_patch()["status"].clone();
            let key = &patch.object.key;
            match patch.object.kind {
                "GatewayClass" => {
                    objects.gateway_classes.get_mut(key).expect("class").status =
                        Some(serde_json::from_value(status).expect("class status"));
                }
                "Gateway" => {
                    objects.gateways.get_mut(key).expect("gateway").status =
                        Some(serde_json::from_value(status).expect("gateway status"));
                }
                "HTTPRoute" => {
                    objects.http_routes.get_mut(key).expect("route").status =
                        Some(serde_json::from_value(status).expect("route status"));
                }
                other => panic!("unexpected patch of a {other}"),
            }
        }
    }

    #[test]
    fn gateway_api_status_is_written_once_and_keeps_other_controllers_entries() {
        let mut objects = objects();
        let plan = plan_of(&objects);
        let kinds: Vec<_> = plan
            .patches
            .iter()
            .map(|p| format!("{} {}", p.object.kind, p.object.key))
            .collect();
        assert_eq!(
            kinds,
            [
                "GatewayClass weir",
                "Gateway infra/a",
                "Gateway infra/b",
                "HTTPRoute infra/r"
            ]
        );
        apply(&mut objects, &plan);

        let class = objects.gateway_classes[&ObjectKey::new("", "weir")]
            .status
            .clone()
            .expect("class status");
        assert_eq!(class.conditions[0].type_, "Accepted");
        assert_eq!(class.conditions[0].status, "True");
        assert_eq!(class.conditions[0].observed_generation, Some(1));
        assert!(
            class
                .supported_features
                .iter()
                .any(|f| f.name == "HTTPRoute")
        );

        // Each Gateway has an address of its own from the pool.
        let address = |objects: &Objects, name: &str| -> Vec<String> {
            objects.gateways[&ObjectKey::new("infra", name)]
                .status
                .iter()
                .flat_map(|s| &s.addresses)
                .map(|a| a.value.clone())
                .collect()
        };
        assert_eq!(address(&objects, "a"), ["10.0.0.1"]);
        assert_eq!(address(&objects, "b"), ["10.0.0.2"]);
        let a = objects.gateways[&ObjectKey::new("infra", "a")]
            .status
            .clone()
            .expect("status");
        assert_eq!(a.listeners[0].attached_routes, 1);
        assert_eq!(a.conditions[1].type_, "Programmed");
        assert_eq!(a.conditions[1].status, "True");

        // The other controller's parent entry stays; weir's says what compile found.
        let parents = objects.http_routes[&ObjectKey::new("infra", "r")]
            .status
            .clone()
            .expect("route status")
            .parents;
        assert_eq!(parents.len(), 2);
        assert_eq!(parents[0].controller_name, "example.com/other");
        assert_eq!(parents[1].controller_name, "weir.dev/gateway-controller");
        assert_eq!(parents[1].parent_ref.name, "a");
        let brief: Vec<_> = parents[1]
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            brief,
            [
                ("Accepted", "True", "Accepted"),
                ("ResolvedRefs", "False", "BackendNotFound")
            ]
        );
        assert_eq!(parents[1].conditions[0].observed_generation, Some(3));

        // Once written, the same objects plan no further write.
        assert_eq!(plan_of(&objects).patches, []);

        // Addresses stay put when an older Gateway goes.
        objects.gateways.remove(&ObjectKey::new("infra", "a"));
        let plan = plan_of(&objects);
        apply(&mut objects, &plan);
        assert_eq!(address(&objects, "b"), ["10.0.0.2"]);
        // The route's parent is gone: weir's entry says so, the other one stays.
        let parents = &objects.http_routes[&ObjectKey::new("infra", "r")]
            .status
            .as_ref()
            .expect("route status")
            .parents;
        assert_eq!(parents.len(), 1, "{parents:?}");
        assert_eq!(parents[0].controller_name, "example.com/other");
    }

    #[test]
    fn an_exhausted_pool_leaves_the_gateway_unprogrammed() {
        let mut objects = objects();
        for name in ["c", "d"] {
            let mut gateway = objects.gateways[&ObjectKey::new("infra", "a")].clone();
            gateway.metadata.name = Some(name.to_owned());
            objects
                .gateways
                .insert(ObjectKey::new("infra", name), gateway);
        }
        let compiled = compile(&objects, &config());
        let c = &compiled.status.gateway_api.gateways[&ObjectKey::new("infra", "c")];
        assert_eq!(c.addresses, None);
        assert_eq!(c.conditions[0].reason, reasons::ADDRESS_NOT_ASSIGNED);
        assert_eq!(c.conditions[1].status, ConditionStatus::False);
        assert!(c.listeners.iter().all(|l| l.attached_routes == 0));
    }
}
