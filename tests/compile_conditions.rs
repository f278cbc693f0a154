//! The shape of compile's conditions: what a status writer publishes (status, reason,
//! message, observedGeneration, one summary per type) for objects compiled through the
//! Ingress front end.

mod fixtures;

use fixtures::{compile, ingress, service, weir_class};
use weir::api::{condition_types, reasons};
use weir::compile::{ConditionStatus, ObjectRef, Severity};
use weir::store::ObjectKey;

fn object(kind: &'static str, key: &str) -> ObjectRef {
    let (namespace, name) = key.split_once('/').expect("namespace/name");
    ObjectRef {
        kind,
        key: ObjectKey::new(namespace, name),
    }
}

#[test]
fn conditions_carry_the_generation_of_their_object() {
    let compiled = compile([
        weir_class("weir", false),
        service("default/web")
            .generation(4)
            .port_with("http", 80, Some("gopher"))
            .into(),
        ingress("default/app")
            .generation(7)
            .host("a.example")
            .prefix("/gone", "missing", 80)
            .prefix("/web", "web", 80)
            .into(),
        ingress("default/files")
            .prefix("/gone", "missing", 80)
            .into(),
    ]);
    let conditions = &compiled.status.conditions;
    let app = &conditions[&object("Ingress", "default/app")];
    assert_eq!(app.len(), 1);
    assert_eq!(app[0].observed_generation, Some(7));
    assert_eq!(app[0].status, ConditionStatus::False);
    let web = &conditions[&object("Service", "default/web")];
    assert_eq!(web[0].reason, reasons::UNKNOWN_APP_PROTOCOL);
    assert_eq!(web[0].observed_generation, Some(4));
    assert_eq!(
        web[0].status,
        ConditionStatus::True,
        "accepted with a caveat"
    );
    // Objects from manifest files often have no generation: none is invented.
    let files = &conditions[&object("Ingress", "default/files")];
    assert_eq!(files[0].observed_generation, None);
}

#[test]
fn the_summary_has_one_condition_per_type_and_the_worst_status() {
    let compiled = compile([
        weir_class("weir", false),
        service("default/web").port("http", 80).into(),
        ingress("default/app")
            .generation(2)
            .host("a.example")
            .prefix("/a", "missing", 80)
            .prefix("/b", "web", 81)
            .prefix("relative", "web", 80)
            .into(),
    ]);
    let app = object("Ingress", "default/app");
    assert_eq!(
        compiled.status.conditions[&app].len(),
        3,
        "every diagnostic is kept"
    );
    let summary = compiled.status.summary(&app);
    let types: Vec<&str> = summary.iter().map(|c| c.type_).collect();
    assert_eq!(
        types,
        [condition_types::ACCEPTED, condition_types::RESOLVED_REFS]
    );
    let resolved_refs = &summary[1];
    assert_eq!(resolved_refs.status, ConditionStatus::False);
    assert_eq!(resolved_refs.severity, Severity::Error);
    assert_eq!(resolved_refs.observed_generation, Some(2));
    // The first diagnostic in route order (longest path first: "/b" and "/a" tie on length,
    // "/a" sorts first) gives the reason; the message counts the other.
    assert_eq!(resolved_refs.reason, reasons::SERVICE_NOT_FOUND);
    assert!(
        resolved_refs
            .message
            .ends_with("(and 1 more ResolvedRefs diagnostic)"),
        "{}",
        resolved_refs.message
    );
    assert_eq!(summary[0].reason, reasons::INVALID_PATH);
    assert!(
        compiled
            .status
            .summary(&object("Ingress", "default/none"))
            .is_empty()
    );
}
