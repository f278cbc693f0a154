//! The kind table, checked for every kind in it: a new entry is covered by these tests without
//! touching them. Each kind's name and API version round-trip through `Kind::from_type`, a
//! minimal manifest of it loads from a manifests directory, every source has its
//! `weir_watch_*` metric lines, and the shipped RBAC lets weir list and watch it.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

use weir::store::files::load_dir;
use weir::store::{Kind, KindVisitor, ObjectKey, Source, StoreKind, WatchMetrics};

/// What the kind's Rust type says about it, read through the table's dispatch.
struct TypeFacts;

struct Facts {
    kind: Kind,
    name: String,
    api_version: String,
    group: String,
    plural: String,
    namespaced: bool,
    label: &'static str,
}

impl KindVisitor for TypeFacts {
    type Output = Facts;

    fn visit<K: StoreKind>(self) -> Facts {
        Facts {
            kind: K::KIND,
            name: K::kind(&()).into_owned(),
            api_version: K::api_version(&()).into_owned(),
            group: K::group(&()).into_owned(),
            plural: K::plural(&()).into_owned(),
            namespaced: K::NAMESPACED,
            label: K::LABEL,
        }
    }
}

fn facts() -> Vec<Facts> {
    Kind::ALL.iter().map(|kind| kind.visit(TypeFacts)).collect()
}

#[test]
fn every_kind_round_trips_through_its_type() {
    for (index, facts) in facts().iter().enumerate() {
        let kind = facts.kind;
        assert_eq!(
            Kind::ALL[index],
            kind,
            "visit dispatches to {kind}'s own type"
        );
        assert_eq!(kind.index(), index);
        assert_eq!(kind.as_str(), facts.name, "variant name is the kind name");
        assert_eq!(kind.api_version(), facts.api_version);
        assert_eq!(kind.is_namespaced(), facts.namespaced);
        assert_eq!(kind.label(), facts.label);
        assert_eq!(Kind::from_type(&facts.api_version, &facts.name), Some(kind));
        assert_eq!(Kind::from_name(&facts.name), Some(kind));
        assert_eq!(kind.to_string(), facts.name);
    }
    assert_eq!(
        Kind::from_type("networking.k8s.io/v1beta1", "Ingress"),
        None,
        "the API version is part of the type"
    );
    assert_eq!(Kind::from_type("apps/v1", "Deployment"), None);
}

#[test]
fn the_kinds_weir_has_always_kept_keep_their_types() {
    // Manifests and RBAC in the wild name these; the table may grow but not change them.
    let known = [
        (Kind::Ingress, "networking.k8s.io/v1", true),
        (Kind::IngressClass, "networking.k8s.io/v1", false),
        (Kind::Service, "v1", true),
        (Kind::EndpointSlice, "discovery.k8s.io/v1", true),
        (Kind::Secret, "v1", true),
    ];
    for (kind, api_version, namespaced) in known {
        assert_eq!(kind.api_version(), api_version, "{kind}");
        assert_eq!(kind.is_namespaced(), namespaced, "{kind}");
    }
    assert_eq!(
        <k8s_openapi::api::core::v1::Secret as StoreKind>::FIELD_SELECTOR,
        None,
        "every Secret is watched (TLS and `auth` ones are kept, see admit_secret)"
    );
}

/// Fields a minimal manifest of `kind` needs beyond apiVersion, kind, metadata and an empty
/// `spec` (which CustomResource types require and the others ignore or default).
fn required_fields(kind: Kind) -> &'static str {
    match kind {
        // Fields the Gateway API's CRDs require (files bypass the API server's schema).
        Kind::GatewayClass => "spec: {controllerName: example.com/x}\n",
        Kind::Gateway => "spec: {gatewayClassName: x}\n",
        Kind::Secret => "type: kubernetes.io/tls\n", // other Secrets are not kept
        Kind::ConfigMap => "data: {a: b}\n",         // ConfigMaps without data are not kept
        _ => "",
    }
}

#[test]
fn every_kind_loads_from_a_minimal_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    for facts in facts() {
        let manifest = format!(
            "apiVersion: {}\nkind: {}\nmetadata:\n  name: x\n  namespace: apps\n{}{}",
            facts.api_version,
            facts.name,
            if matches!(facts.kind, Kind::GatewayClass | Kind::Gateway) {
                ""
            } else {
                "spec: {}\n"
            },
            required_fields(facts.kind)
        );
        let file = dir.path().join(format!("{}.yaml", facts.label));
        std::fs::write(&file, manifest).expect("write");
    }
    let (objects, diagnostics) = load_dir(dir.path()).expect("loads");
    assert_eq!(diagnostics, vec![]);
    for facts in facts() {
        // Cluster-scoped kinds are stored without their (meaningless) namespace.
        let namespace = if facts.namespaced { "apps" } else { "" };
        let key = ObjectKey::new(namespace, "x");
        let meta = objects
            .meta(facts.kind, &key)
            .unwrap_or_else(|| panic!("{} {key} is stored", facts.name));
        assert_eq!(meta.name.as_deref(), Some("x"));
    }
    assert_eq!(objects.len(), Kind::ALL.len(), "one object per kind");

    let mut objects = objects;
    for kind in Kind::ALL {
        let key = ObjectKey::new(if kind.is_namespaced() { "apps" } else { "" }, "x");
        assert!(objects.delete(*kind, &key), "{kind} deleted");
    }
    assert!(objects.is_empty());
}

#[test]
fn every_source_has_its_metric_lines() {
    let labels: Vec<&str> = Source::all().map(Source::label).collect();
    let unique: BTreeSet<&str> = labels.iter().copied().collect();
    assert_eq!(unique.len(), labels.len(), "labels are unique: {labels:?}");
    assert_eq!(labels.len(), Source::COUNT);
    for (index, source) in Source::all().enumerate() {
        assert_eq!(source.index(), index, "{source:?}");
    }
    // The labels dashboards and the e2e tests already use.
    for label in [
        "ingress",
        "ingressclass",
        "service",
        "endpointslice",
        "secret",
        "publish_service",
        "manifests",
    ] {
        assert!(unique.contains(label), "{label} missing from {labels:?}");
    }

    let metrics = WatchMetrics::default();
    for source in Source::all() {
        metrics.watch_error(source);
    }
    metrics.skipped_object(Source::Kind(Kind::Secret));
    metrics.set_synced(Source::Manifests);
    let mut out = String::new();
    metrics.render_metrics(&mut out);
    let lines: BTreeSet<&str> = out.lines().collect();
    for source in Source::all() {
        let label = source.label();
        let skipped = u8::from(source == Source::Kind(Kind::Secret));
        let synced = u8::from(source == Source::Manifests);
        for line in [
            format!("weir_watch_errors_total{{kind=\"{label}\"}} 1"),
            format!("weir_watch_skipped_objects_total{{kind=\"{label}\"}} {skipped}"),
            format!("weir_watch_synced{{kind=\"{label}\"}} {synced}"),
        ] {
            assert!(lines.contains(line.as_str()), "{line} missing from\n{out}");
        }
    }
}

/// The ClusterRole rules of a YAML stream (Helm expressions replaced by a placeholder).
fn cluster_role_rules(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read RBAC");
    let helm = regex::Regex::new(r"\{\{[^}]*\}\}").expect("regex");
    let text = helm.replace_all(&text, "placeholder");
    let mut rules = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let document = <Value as serde::Deserialize>::deserialize(document).expect("YAML");
        if document["kind"].as_str() == Some("ClusterRole") {
            rules.extend(document["rules"].as_sequence().cloned().unwrap_or_default());
        }
    }
    assert!(!rules.is_empty(), "{} has a ClusterRole", path.display());
    rules
}

fn names(rule: &Value, field: &str) -> Vec<String> {
    rule[field]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_shipped_rbac_lets_weir_list_and_watch_every_kind() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["docs/rbac.yaml", "helm/weir/templates/rbac.yaml"] {
        let rules = cluster_role_rules(&root.join(file));
        for facts in facts() {
            let allows = |verb: &str| {
                rules.iter().any(|rule| {
                    names(rule, "apiGroups").contains(&facts.group)
                        && names(rule, "resources").contains(&facts.plural)
                        && names(rule, "verbs").iter().any(|v| v == verb)
                        && rule.get("resourceNames").is_none()
                })
            };
            for verb in ["list", "watch"] {
                assert!(
                    allows(verb),
                    "{file}: ClusterRole must allow {verb} on {} in API group {:?} ({})",
                    facts.plural,
                    facts.group,
                    facts.name
                );
            }
        }
    }
}
