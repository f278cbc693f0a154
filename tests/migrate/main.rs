//! Golden tests for `weir migrate`: each folder `tests/migrate/<case>/` holds `manifests/`
//! (a directory written for ingress-nginx) and the three outputs of
//! `weir migrate --manifests <case>/manifests --ingress-class nginx`: `expected.txt`
//! (`--output text`), `expected.json` (`--output json`) and `expected-manifests.yaml`
//! (`--output manifests`), with the exit status in `expected-exit`. The written manifests
//! must load and compile back.
//!
//! `UPDATE_GOLDEN=1 cargo test --test migrate` rewrites the expected files; review the diff.

use std::path::{Path, PathBuf};
use std::process::Command;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/migrate");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/migrate is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.join("manifests").is_dir())
        .collect();
    cases.sort();
    cases
}

/// Stdout and exit status of `weir migrate` over the case.
fn migrate(case: &Path, output: &str) -> (String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "migrate",
            "--ingress-class",
            "nginx",
            "--output",
            output,
            "--manifests",
        ])
        .arg(case.join("manifests"))
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{}: stderr: {stderr}", case.display());
    (
        String::from_utf8(out.stdout).expect("UTF-8"),
        out.status.code().expect("exit status"),
    )
}

#[test]
fn migrate_reports_match_their_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for case in cases() {
        let mut exit = None;
        for (output, file) in [
            ("text", "expected.txt"),
            ("json", "expected.json"),
            ("manifests", "expected-manifests.yaml"),
        ] {
            let (actual, status) = migrate(&case, output);
            assert_eq!(
                *exit.get_or_insert(status),
                status,
                "one exit status per case"
            );
            let path = case.join(file);
            if update {
                std::fs::write(&path, &actual).expect("write golden");
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(actual.as_str()) {
                mismatches.push(path.display().to_string());
            }
        }
        let exit = exit.expect("ran").to_string();
        let path = case.join("expected-exit");
        if update {
            std::fs::write(&path, format!("{exit}\n")).expect("write golden");
        } else if std::fs::read_to_string(&path)
            .ok()
            .as_deref()
            .map(str::trim)
            != Some(&exit)
        {
            mismatches.push(path.display().to_string());
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden mismatches (run UPDATE_GOLDEN=1 cargo test --test migrate and review the diff): {mismatches:#?}"
    );
}

#[test]
fn written_manifests_load_and_compile_without_ingress_nginx_filters_lost() {
    for case in cases() {
        let (yaml, _) = migrate(&case, "manifests");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("weir.yaml"), &yaml).expect("write");
        let (objects, diagnostics) = weir::store::files::load_dir(dir.path()).expect("loads");
        assert!(
            diagnostics.is_empty(),
            "{}: {diagnostics:?}",
            case.display()
        );
        assert!(!objects.ingresses.is_empty(), "{}", case.display());
        // Every HTTPFilter written is one some written Ingress attaches.
        for key in objects.http_filters.keys() {
            let attached = objects.ingresses.values().any(|i| {
                i.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("weir.dev/filters"))
                    .is_some_and(|f| f.split(',').any(|n| n.trim() == key.name))
            });
            assert!(attached, "{}: {key} attached", case.display());
        }
    }
}
