//! `weir validate` as a user runs it: exit status 0 / 1 / 2 like `nginx -t`, YAML and JSON
//! output, and the `--default-backend` and `--controller-name` flags.

use std::path::Path;
use std::process::{Command, Output};

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .output()
        .expect("weir binary runs")
}

fn dir(relative: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(relative)
        .display()
        .to_string()
}

#[test]
fn valid_directory_exits_0_and_prints_routes() {
    let out = weir(&["validate", "--manifests", &dir("examples/demo")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(stdout.contains("host: demo.localhost"), "{stdout}");
    assert!(stdout.contains("127.0.0.1:18104"), "{stdout}");
    assert!(stdout.contains("diagnostics: []"), "{stdout}");
}

#[test]
fn rejections_exit_1_and_are_listed_as_json() {
    let out = weir(&[
        "validate",
        "--manifests",
        &dir("tests/golden/backends/input"),
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let reasons: Vec<&str> = report["diagnostics"]
        .as_array()
        .expect("diagnostics list")
        .iter()
        .filter_map(|d| d["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"ServiceNotFound"), "{reasons:?}");
    assert!(reasons.contains(&"ExternalNameNotSupported"), "{reasons:?}");
}

#[test]
fn unreadable_directory_exits_2() {
    let out = weir(&["validate", "--manifests", "/nonexistent/weir-manifests"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn flags_change_class_and_default_backend() {
    let demo = dir("examples/demo");
    let out = weir(&[
        "validate",
        "--manifests",
        &demo,
        "--controller-name",
        "example.com/other",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(stdout.contains("owned_ingresses: []"), "{stdout}");

    let out = weir(&[
        "validate",
        "--manifests",
        &demo,
        "--default-backend",
        "default/echo-b:http",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        stdout.contains("default_route:\n    name: default-backend\n    match:\n      path:\n        type: Prefix\n        value: /\n    action:\n      type: Forward\n      backends:\n      - cluster: default/echo-b:80\n        weight: 1\n"),
        "{stdout}"
    );

    let out = weir(&[
        "validate",
        "--manifests",
        &demo,
        "--default-backend",
        "no-slash",
    ]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "a usage error has its own status"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-slash"));

    let help = weir(&["validate", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    for line in [
        "0   nothing was rejected",
        "2   the manifests cannot be read",
        "64  the command line is wrong",
    ] {
        assert!(help.contains(line), "{help}");
    }
}
