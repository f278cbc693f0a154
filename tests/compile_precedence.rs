//! Precedence and fallback rules that need compile (merging Ingresses, conflicts, classes,
//! backends, default backends), checked by routing requests through the compiled snapshot.
//! Pure router rules (host order, path order, trailing slash, query, port, case) are unit
//! tests in `src/snapshot/router.rs`.

mod fixtures;

use fixtures::{class, compile, config, ingress, objects, service, weir_class};
use weir::api::reasons;
use weir::compile::{ObjectRef, Severity};
use weir::snapshot::RouteAction;
use weir::store::{KubeObject, ObjectKey};

fn route_name(compiled: &weir::compile::Compiled, host: &str, path: &str) -> Option<String> {
    fixtures::route(&compiled.snapshot, host, path).map(|m| m.name.to_owned())
}

fn reasons_of(compiled: &weir::compile::Compiled, key: &str) -> Vec<&'static str> {
    let (namespace, name) = key.split_once('/').expect("namespace/name");
    let object = ObjectRef {
        kind: "Ingress",
        key: ObjectKey::new(namespace, name),
    };
    compiled
        .status
        .conditions
        .get(&object)
        .map(|cs| cs.iter().map(|c| c.reason).collect())
        .unwrap_or_default()
}

fn web() -> KubeObject {
    service("default/web").port("http", 80).into()
}

#[test]
fn rules_of_all_ingresses_are_merged_and_longest_path_wins() {
    let compiled = compile([
        weir_class("weir", false),
        web(),
        ingress("default/short")
            .host("a.example.com")
            .prefix("/", "web", 80)
            .into(),
        ingress("default/long")
            .host("a.example.com")
            .prefix("/api/v1", "web", 80)
            .into(),
        ingress("default/mid")
            .host("a.example.com")
            .prefix("/api", "web", 80)
            .into(),
    ]);
    assert_eq!(
        route_name(&compiled, "a.example.com", "/api/v1/x").as_deref(),
        Some("default/long/0/0")
    );
    assert_eq!(
        route_name(&compiled, "a.example.com", "/api/v2").as_deref(),
        Some("default/mid/0/0")
    );
    assert_eq!(
        route_name(&compiled, "a.example.com", "/").as_deref(),
        Some("default/short/0/0")
    );
}

#[test]
fn conflict_oldest_ingress_wins_and_loser_gets_condition() {
    // "a-new" sorts first by name but is newer: the timestamp decides.
    let compiled = compile([
        weir_class("weir", false),
        web(),
        ingress("default/a-new")
            .created(2_000)
            .host("h.example")
            .exact("/x", "web", 80)
            .into(),
        ingress("default/z-old")
            .created(1_000)
            .host("h.example")
            .exact("/x", "web", 80)
            .into(),
    ]);
    assert_eq!(
        route_name(&compiled, "h.example", "/x").as_deref(),
        Some("default/z-old/0/0")
    );
    assert_eq!(
        reasons_of(&compiled, "default/a-new"),
        [reasons::PATH_CONFLICT]
    );
    assert!(reasons_of(&compiled, "default/z-old").is_empty());
}

#[test]
fn conflict_resolved_backend_beats_older_invalid_backend() {
    // The older Ingress's backend does not resolve (missing Service, missing port,
    // ExternalName: a 503 route): it must not hide the younger Ingress's working route.
    for (backend, port, why) in [
        ("missing", 80, reasons::SERVICE_NOT_FOUND),
        ("web", 81, reasons::SERVICE_PORT_NOT_FOUND),
        ("ext", 80, reasons::EXTERNAL_NAME_NOT_SUPPORTED),
    ] {
        let compiled = compile([
            weir_class("weir", false),
            web(),
            service("default/ext")
                .external_name("example.org")
                .port("http", 80)
                .into(),
            ingress("default/old")
                .created(1_000)
                .host("h.example")
                .prefix("/x", backend, port)
                .into(),
            ingress("default/young")
                .created(2_000)
                .host("h.example")
                .prefix("/x", "web", 80)
                .into(),
        ]);
        let m = fixtures::route(&compiled.snapshot, "h.example", "/x").expect("route");
        assert_eq!(m.name, "default/young/0/0", "{why}");
        assert!(fixtures::forwarded_cluster(m).is_some_and(|c| c.service() == "web"));
        // The loser reports the conflict (saying why it lost), not the backend it never serves.
        assert_eq!(
            reasons_of(&compiled, "default/old"),
            [reasons::PATH_CONFLICT],
            "{why}"
        );
        assert!(reasons_of(&compiled, "default/young").is_empty());
        assert_eq!(compiled.snapshot.clusters.len(), 1, "{why}");
    }
}

#[test]
fn conflict_equal_age_namespace_name_order_wins() {
    let compiled = compile([
        weir_class("weir", false),
        web(),
        service("other/web").port("http", 80).into(),
        ingress("other/a")
            .host("h.example")
            .prefix("/x", "web", 80)
            .into(),
        ingress("default/b")
            .host("h.example")
            .prefix("/x/", "web", 80)
            .into(),
    ]);
    assert_eq!(
        route_name(&compiled, "h.example", "/x").as_deref(),
        Some("default/b/0/0")
    );
    assert_eq!(reasons_of(&compiled, "other/a"), [reasons::PATH_CONFLICT]);
}

#[test]
fn same_path_different_type_is_not_a_conflict() {
    let compiled = compile([
        weir_class("weir", false),
        web(),
        ingress("default/a").prefix("/x", "web", 80).into(),
        ingress("default/b").exact("/x", "web", 80).into(),
    ]);
    assert!(compiled.status.conditions.is_empty());
    assert_eq!(
        route_name(&compiled, "h", "/x").as_deref(),
        Some("default/b/0/0")
    );
    assert_eq!(
        route_name(&compiled, "h", "/x/y").as_deref(),
        Some("default/a/0/0")
    );
}

#[test]
fn exact_host_beats_wildcard_beats_no_host_across_ingresses() {
    let compiled = compile([
        weir_class("weir", false),
        web(),
        ingress("default/any")
            .any_host()
            .prefix("/", "web", 80)
            .into(),
        ingress("default/wild")
            .host("*.example.com")
            .prefix("/", "web", 80)
            .into(),
        ingress("default/exact")
            .host("a.example.com")
            .prefix("/", "web", 80)
            .into(),
    ]);
    assert_eq!(
        route_name(&compiled, "A.example.com:80", "/").as_deref(),
        Some("default/exact/0/0")
    );
    assert_eq!(
        route_name(&compiled, "b.example.com", "/").as_deref(),
        Some("default/wild/0/0")
    );
    assert_eq!(
        route_name(&compiled, "x.b.example.com", "/").as_deref(),
        Some("default/any/0/0")
    );
}

#[test]
fn implementation_specific_is_prefix() {
    let compiled = compile([
        weir_class("weir", false),
        web(),
        ingress("default/a")
            .path("ImplementationSpecific", "/foo", "web", 80)
            .into(),
    ]);
    assert_eq!(
        route_name(&compiled, "h", "/foo/bar").as_deref(),
        Some("default/a/0/0")
    );
    assert_eq!(route_name(&compiled, "h", "/foobar"), None);
}

#[test]
fn missing_service_answers_503_not_default_backend() {
    let compiled = compile([
        weir_class("weir", false),
        web(),
        ingress("default/a")
            .prefix("/gone", "missing", 80)
            .default_backend("web", 80)
            .into(),
    ]);
    let m = fixtures::route(&compiled.snapshot, "h", "/gone/x").expect("route");
    assert_eq!(m.name, "default/a/0/0");
    assert!(matches!(&m.action, RouteAction::Respond(r) if r.status == 503));
    assert_eq!(
        reasons_of(&compiled, "default/a"),
        [reasons::SERVICE_NOT_FOUND]
    );
    assert!(compiled.status.has_rejections());
}

#[test]
fn ingress_default_backend_serves_unmatched_and_oldest_wins() {
    let compiled = compile([
        weir_class("weir", false),
        web(),
        service("default/other").port("http", 80).into(),
        ingress("default/new")
            .created(20)
            .default_backend("other", "http")
            .into(),
        ingress("default/old")
            .created(10)
            .host("h")
            .exact("/x", "web", 80)
            .default_backend("web", "http")
            .into(),
    ]);
    let m = fixtures::route(&compiled.snapshot, "h", "/nothing").expect("default backend");
    assert_eq!(m.name, "default-backend");
    assert!(fixtures::forwarded_cluster(m).is_some_and(|c| c.service() == "web"));
    assert_eq!(
        reasons_of(&compiled, "default/new"),
        [reasons::DEFAULT_BACKEND_CONFLICT]
    );
}

#[test]
fn controller_default_backend_used_without_ingress_default() {
    let mut config = config();
    config.default_backend = weir::validate::parse_default_backend("default/web:http").ok();
    let objects = objects([weir_class("weir", false), web()]);
    let compiled = weir::compile::compile(&objects, &config);
    let m = fixtures::route(&compiled.snapshot, "h", "/").expect("default backend");
    assert!(fixtures::forwarded_cluster(m).is_some_and(|c| c.port() == 80));
    // Without the flag: 404.
    let compiled = weir::compile::compile(&objects, &fixtures::config());
    assert_eq!(fixtures::route(&compiled.snapshot, "h", "/"), None);
}

#[test]
fn class_selection() {
    let legacy = "kubernetes.io/ingress.class";
    let compiled = compile([
        weir_class("weir", true),
        class("nginx", "k8s.io/ingress-nginx", false),
        web(),
        ingress("default/by-name").into(),
        ingress("default/by-default").class(None).into(),
        ingress("default/by-annotation")
            .class(None)
            .annotation(legacy, "weir")
            .into(),
        ingress("default/other-annotation")
            .class(None)
            .annotation(legacy, "nginx")
            .into(),
        ingress("default/other-class").class(Some("nginx")).into(),
        ingress("default/unknown-class").class(Some("nope")).into(),
    ]);
    let owned: Vec<String> = compiled
        .status
        .owned_ingresses
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        owned,
        [
            "default/by-annotation",
            "default/by-default",
            "default/by-name"
        ]
    );
}

#[test]
fn ingress_class_flag_takes_over_another_controllers_class() {
    let legacy = "kubernetes.io/ingress.class";
    let objects = objects([
        weir_class("weir", false),
        class("nginx", "k8s.io/ingress-nginx", false),
        web(),
        ingress("default/mine").into(),
        ingress("default/nginx-by-name").class(Some("nginx")).into(),
        // No IngressClass object for the legacy name is needed.
        ingress("default/nginx-legacy")
            .class(None)
            .annotation(legacy, "nginx")
            .into(),
        ingress("default/traefik").class(Some("traefik")).into(),
    ]);
    let owned = |config: &weir::compile::CompileConfig| -> Vec<String> {
        weir::compile::compile(&objects, config)
            .status
            .owned_ingresses
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(owned(&config()), ["default/mine"]);
    let mut taking_over = config();
    taking_over.ingress_classes = vec!["nginx".to_owned()];
    assert_eq!(
        owned(&taking_over),
        [
            "default/mine",
            "default/nginx-by-name",
            "default/nginx-legacy"
        ]
    );
}

#[test]
fn without_default_class_classless_ingresses_are_not_weirs() {
    let compiled = compile([
        weir_class("weir", false),
        ingress("default/x").class(None).into(),
    ]);
    assert!(compiled.status.owned_ingresses.is_empty());
}

#[test]
fn other_controllers_rules_are_ignored_entirely() {
    let compiled = compile([
        weir_class("weir", false),
        class("nginx", "k8s.io/ingress-nginx", false),
        ingress("default/theirs")
            .class(Some("nginx"))
            .prefix("/", "missing", 80)
            .into(),
    ]);
    assert_eq!(fixtures::route(&compiled.snapshot, "h", "/"), None);
    assert!(compiled.status.conditions.is_empty());
}

#[test]
fn bad_rule_skips_only_that_path() {
    let compiled = compile([
        weir_class("weir", false),
        web(),
        ingress("default/a")
            .host("h")
            .path("Regex", "/x", "web", 80)
            .prefix("relative", "web", 80)
            .prefix("/ok", "web", 80)
            .host("bad host")
            .prefix("/", "web", 80)
            .into(),
    ]);
    assert_eq!(
        reasons_of(&compiled, "default/a"),
        [
            reasons::INVALID_PATH_TYPE,
            reasons::INVALID_PATH,
            reasons::INVALID_HOST
        ]
    );
    assert_eq!(
        route_name(&compiled, "h", "/ok").as_deref(),
        Some("default/a/0/2")
    );
    let severities: Vec<_> = compiled
        .status
        .conditions
        .values()
        .flatten()
        .map(|c| c.severity)
        .collect();
    assert!(severities.iter().all(|s| *s == Severity::Error));
}
