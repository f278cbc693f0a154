//! Which Ingresses are weir's, in precedence order (the Ingress front end's first step).
//!
//! An Ingress is weir's when `spec.ingressClassName` names an IngressClass whose
//! `spec.controller` is weir's controller name; or, when it has no class name, when its legacy
//! `kubernetes.io/ingress.class` annotation names such a class; or, when it has neither, when
//! a weir class is annotated `ingressclass.kubernetes.io/is-default-class: "true"`.
//! `spec.ingressClassName` wins over the annotation (the API server refuses both set).
//! Class names given with `--ingress-class` are weir's too, whatever their controller (an
//! IngressClass object need not exist: legacy `kubernetes.io/ingress.class: nginx` Ingresses
//! often have none).
//!
//! Precedence between weir's Ingresses (for path, TLS-host and default-backend conflicts):
//! oldest `creationTimestamp` first, an Ingress without one after every Ingress with one,
//! then namespace/name order.

use std::collections::BTreeSet;

use crate::api::ingress::Ingress;
use k8s_openapi::jiff::Timestamp;

use crate::api::annotations;
use crate::compile::CompileConfig;
use crate::compile::status::Status;
use crate::store::{ObjectKey, Objects};

/// An Ingress of weir's class.
#[derive(Debug, Clone, Copy)]
pub(super) struct OwnedIngress<'a> {
    /// Its key.
    pub(super) key: &'a ObjectKey,
    /// The object.
    pub(super) ingress: &'a Ingress,
}

/// Weir's Ingresses, oldest first; records them in `status.owned_ingresses`.
pub(super) fn owned_ingresses<'a>(
    objects: &'a Objects,
    config: &CompileConfig,
    status: &mut Status,
) -> Vec<OwnedIngress<'a>> {
    let mut weir_classes: BTreeSet<&str> =
        config.ingress_classes.iter().map(String::as_str).collect();
    let mut weir_default = false;
    for (key, class) in &objects.ingress_classes {
        let controller = class.spec.as_ref().and_then(|s| s.controller.as_deref());
        if controller != Some(config.controller_name.as_str()) {
            continue;
        }
        weir_classes.insert(key.name.as_str());
        let is_default = class
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotations::IS_DEFAULT_CLASS))
            .is_some_and(|v| v == "true");
        weir_default |= is_default;
    }
    let mut owned: Vec<(Option<Timestamp>, OwnedIngress<'a>)> = objects
        .ingresses
        .iter()
        .filter(|(_, ingress)| {
            let class_name = ingress
                .spec
                .as_ref()
                .and_then(|s| s.ingress_class_name.as_deref());
            let legacy = ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(annotations::INGRESS_CLASS))
                .map(String::as_str);
            match class_name.or(legacy) {
                Some(class) => weir_classes.contains(class),
                None => weir_default,
            }
        })
        .map(|(key, ingress)| {
            let created = ingress.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (created, OwnedIngress { key, ingress })
        })
        .collect();
    // Stable sort: equal timestamps keep the map's namespace/name order.
    owned.sort_by_key(|(created, _)| (created.is_none(), *created));
    status
        .report
        .owned_ingresses
        .extend(owned.iter().map(|(_, o)| o.key.clone()));
    owned.into_iter().map(|(_, o)| o).collect()
}
