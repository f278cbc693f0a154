//! `HTTPFilter` attachment through the Ingress front end: `weir.dev/filters` names filters of
//! the Ingress's namespace in chain order; a missing or invalid one fails closed (`Deny`,
//! 500) with conditions on both objects; `usedBy` lists the users.

mod fixtures;

use fixtures::{compile, http_filter, ingress, route, service, weir_class};
use weir::api::{annotations, condition_types, reasons};
use weir::compile::{ConditionStatus, ObjectRef};
use weir::snapshot::Filter;
use weir::store::ObjectKey;

const STAMP: &str = r#"
filters:
- type: ResponseHeaderModifier
  responseHeaderModifier: {set: [{name: X-Stamp, value: v1}]}
"#;
const ENV: &str = r#"
filters:
- type: RequestHeaderModifier
  requestHeaderModifier: {set: [{name: X-Env, value: prod}], remove: [X-Debug]}
"#;

fn object(kind: &'static str, key: &str) -> ObjectRef {
    let (namespace, name) = key.split_once('/').expect("namespace/name");
    ObjectRef {
        kind,
        key: ObjectKey::new(namespace, name),
    }
}

fn kinds(filters: &[Filter]) -> Vec<&'static str> {
    filters
        .iter()
        .map(|f| match f {
            Filter::RequestHeaderModifier(_) => "RequestHeaderModifier",
            Filter::ResponseHeaderModifier(_) => "ResponseHeaderModifier",
            Filter::Deny(_) => "Deny",
            _ => "other",
        })
        .collect()
}

#[test]
fn the_annotation_attaches_filters_in_chain_order_to_every_route() {
    let compiled = compile([
        weir_class("weir", false),
        service("shop/web").port("http", 80).into(),
        http_filter("shop/stamp", STAMP),
        http_filter("shop/env", ENV),
        ingress("shop/app")
            .annotation(annotations::FILTERS, " env, stamp ")
            .host("a.example")
            .prefix("/api", "web", 80)
            .prefix("/", "web", 80)
            .into(),
        ingress("shop/plain")
            .host("b.example")
            .prefix("/", "web", 80)
            .into(),
    ]);
    for path in ["/api/x", "/"] {
        let r = route(&compiled.snapshot, "a.example", path).expect("route");
        assert_eq!(
            kinds(&r.filters),
            ["RequestHeaderModifier", "ResponseHeaderModifier"]
        );
    }
    let plain = route(&compiled.snapshot, "b.example", "/").expect("route");
    assert!(
        plain.filters.is_empty(),
        "an Ingress without the annotation runs none"
    );
    assert!(
        !compiled.status.has_rejections(),
        "{:?}",
        compiled.status.conditions
    );
    assert_eq!(
        compiled.status.filter_users[&ObjectKey::new("shop", "env")],
        [object("Ingress", "shop/app")]
    );
}

#[test]
fn a_missing_filter_fails_closed_and_is_reported_on_the_ingress() {
    let compiled = compile([
        weir_class("weir", false),
        service("shop/web").port("http", 80).into(),
        http_filter("shop/stamp", STAMP),
        // A filter of another namespace is not found from `shop`.
        http_filter("other/guard", ENV),
        ingress("shop/app")
            .annotation(annotations::FILTERS, "stamp,guard")
            .host("a.example")
            .prefix("/", "web", 80)
            .into(),
    ]);
    let r = route(&compiled.snapshot, "a.example", "/").expect("route");
    assert_eq!(kinds(&r.filters), ["ResponseHeaderModifier", "Deny"]);
    let Filter::Deny(deny) = &r.filters[1] else {
        unreachable!()
    };
    assert_eq!(deny.status, 500);
    assert!(deny.body.contains("shop/guard"), "{}", deny.body);
    let app = &compiled.status.conditions[&object("Ingress", "shop/app")];
    assert_eq!(app[0].type_, condition_types::RESOLVED_REFS);
    assert_eq!(app[0].reason, reasons::FILTER_NOT_FOUND);
    assert_eq!(app[0].status, ConditionStatus::False);
}

#[test]
fn an_invalid_filter_names_its_field_and_its_users_fail_closed() {
    let compiled = compile([
        weir_class("weir", false),
        service("shop/web").port("http", 80).into(),
        http_filter(
            "shop/bad",
            r#"
filters:
- type: ResponseHeaderModifier
  responseHeaderModifier: {set: [{name: X-Ok, value: v}]}
- type: RequestHeaderModifier
  requestHeaderModifier: {add: [{name: "X Bad", value: v}]}
"#,
        ),
        ingress("shop/app")
            .annotation(annotations::FILTERS, "bad")
            .host("a.example")
            .prefix("/", "web", 80)
            .into(),
    ]);
    let r = route(&compiled.snapshot, "a.example", "/").expect("route");
    assert_eq!(kinds(&r.filters), ["Deny"], "no half of a filter runs");
    let bad = &compiled.status.conditions[&object("HTTPFilter", "shop/bad")];
    assert_eq!(bad[0].type_, condition_types::ACCEPTED);
    assert_eq!(bad[0].reason, reasons::INVALID_FILTER);
    assert_eq!(bad[0].observed_generation, Some(3));
    assert!(
        bad[0]
            .message
            .starts_with("spec.filters[1].requestHeaderModifier.add[0].name:"),
        "{}",
        bad[0].message
    );
}

#[test]
fn an_entry_with_the_wrong_settings_field_is_refused_without_an_api_server() {
    let compiled = compile([
        weir_class("weir", false),
        http_filter(
            "shop/mixed",
            r#"
filters:
- type: RequestHeaderModifier
  responseHeaderModifier: {set: [{name: X-Ok, value: v}]}
"#,
        ),
    ]);
    let bad = &compiled.status.conditions[&object("HTTPFilter", "shop/mixed")];
    assert_eq!(
        bad[0].message,
        "spec.filters[0].responseHeaderModifier: must not be set when type is \
         RequestHeaderModifier"
    );
    assert!(compiled.status.filter_users[&ObjectKey::new("shop", "mixed")].is_empty());
}
