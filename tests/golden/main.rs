//! Golden tests for load + compile: each folder `tests/golden/<case>/` holds `input/`
//! (manifests) and `expected.yaml` (the report `weir validate --output yaml` prints, built
//! here through the library). An optional `default-backend` file holds a
//! `--default-backend` value, an optional `ingress-classes` file `--ingress-class` names (one
//! per line). `tests/golden/certs/` holds the test certificates (generated once, committed)
//! that the TLS cases embed in their Secrets.
//!
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the expected files; review the diff.

use std::path::{Path, PathBuf};

use weir::compile::compile;
use weir::store::files::load_dir;
use weir::validate::{CompileArgs, Report, compile_config, parse_default_backend};

/// "Now" of every case: 2030-01-01T00:00:00Z (the `expired` certificate ended in 2026, the
/// others last until 2126).
const NOW_UNIX: i64 = 1_893_456_000;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/golden is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.join("input").is_dir())
        .collect();
    cases.sort();
    cases
}

fn render(case: &Path) -> String {
    let input = case.join("input");
    let default_backend = std::fs::read_to_string(case.join("default-backend"))
        .ok()
        .map(|s| parse_default_backend(s.trim()).expect("valid default-backend file"));
    let args = CompileArgs {
        default_backend,
        // An optional `ingress-classes` file: one `--ingress-class` name per line.
        ingress_classes: std::fs::read_to_string(case.join("ingress-classes"))
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default(),
        ..CompileArgs::default()
    };
    let (objects, diagnostics) = load_dir(&input).expect("input is readable");
    let compiled = compile(&objects, &compile_config(&args, NOW_UNIX));
    let report = Report::new(&input, &objects, &diagnostics, &compiled);
    serde_yaml::to_string(&report).expect("report serializes")
}

#[test]
fn golden() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v != "0");
    let cases = cases();
    assert!(cases.len() >= 10, "golden cases missing: {cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let actual = render(case);
        // Deterministic: the same input renders byte-identically.
        assert_eq!(
            actual,
            render(case),
            "{} renders differently twice",
            case.display()
        );
        let expected_path = case.join("expected.yaml");
        if update {
            std::fs::write(&expected_path, &actual).expect("write expected.yaml");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            let line = expected
                .lines()
                .zip(actual.lines())
                .position(|(e, a)| e != a)
                .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
            failures.push(format!(
                "{}: differs from line {}:\n  expected: {:?}\n  actual:   {:?}",
                case.display(),
                line + 1,
                expected.lines().nth(line).unwrap_or("<end>"),
                actual.lines().nth(line).unwrap_or("<end>")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatches (run UPDATE_GOLDEN=1 cargo test --test golden and review the diff):\n{}",
        failures.join("\n")
    );
}
