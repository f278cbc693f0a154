//! The CRDs in `crds/` and in the chart (`helm/weir/crds/`) are exactly what the Rust types
//! generate (`weir crds --write crds helm/weir/crds` regenerates both).

use std::collections::BTreeMap;
use std::path::Path;

/// The served version of weir's CRD of `kind`, after the checks every CRD passes: group
/// `weir.dev`, version `v1alpha1`, a status subresource, these printer columns, and no
/// unsigned integer format (the API server warns about formats it does not know).
fn checked_version(
    kind: &str,
    columns: &[&str],
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion{
    let crd = weir::api::crds::definitions()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} CRD"));
    assert_eq!(crd.spec.group, "weir.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = crd.spec.versions[0].clone();
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let got: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(got, columns);
    let schema = serde_json::to_string(&version.schema).expect("json");
    assert!(
        !schema.contains(r#""format":"uint"#),
        "unsigned formats in the schema"
    );
    version
}

fn files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read_to_string(&path).expect("read"))
        })
        .collect()
}

#[test]
fn crds_in_the_repository_and_the_chart_match_the_types() {
    let generated: BTreeMap<String, String> = weir::api::crds::all().into_iter().collect();
    assert!(generated.contains_key("httpfilters.weir.dev.yaml"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["crds", "helm/weir/crds"] {
        assert_eq!(
            files(&root.join(dir)),
            generated,
            "{dir} differs from the types: run `cargo run -- crds --write crds helm/weir/crds`"
        );
    }
}

#[test]
fn the_httpfilter_crd_has_its_schema_rules_and_columns() {
    let version = checked_version("HTTPFilter", &["Filters", "Accepted", "Reason", "Age"]);
    let schema = serde_json::to_string(&version.schema).expect("json");
    // "Exactly one settings field, the one `type` names": a CEL rule per filter type, per
    // path-modifier type (three types; two places use them) and for the rate-limit key.
    assert_eq!(
        schema.matches("must be set exactly when type is").count(),
        13 + 2 * 3 + 1
    );
}

#[test]
fn the_backendpolicy_crd_has_its_schema_rules_and_columns() {
    let version = checked_version(
        "BackendPolicy",
        &["Targets", "LB", "Accepted", "Reason", "Age"],
    );
    let schema = serde_json::to_string(&version.schema).expect("json");
    // The issue's field names (Envoy Gateway's BackendTrafficPolicy where one exists).
    for field in [
        "targetRefs",
        "sectionName",
        "consistentHash",
        "slowStart",
        "expectedStatuses",
        "healthyThreshold",
        "consecutive5XxErrors",
        "consecutiveGatewayErrors",
        "baseEjectionTime",
        "maxEjectionPercent",
        "numRetries",
        "httpStatusCodes",
        "backOff",
        "budgetPercent",
        "maxParallelRetries",
        "connectTimeout",
        "connectionIdleTimeout",
    ] {
        assert!(schema.contains(&format!("\"{field}\"")), "{field} missing");
    }
    // CEL: consistentHash iff a hashing type; one key field per hash type; http iff HTTP.
    assert_eq!(
        schema.matches("must be set exactly when type is").count(),
        1 + 3 + 1
    );
}
