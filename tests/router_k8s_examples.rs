//! The path-matching examples table of the Kubernetes Ingress documentation
//! (<https://kubernetes.io/docs/concepts/services-networking/ingress/#examples>), compiled from
//! fixture Ingresses and routed through `Snapshot::route`.

mod fixtures;

use fixtures::{compile, ingress, service, weir_class};
use weir::snapshot::router::DEFAULT_BACKEND_ROUTE;
use weir::store::KubeObject;

/// One row: the Ingress's paths (type, path), the request path, and which of the Ingress's
/// paths serves it (`None`: no rule matches, the default backend serves it).
struct Row {
    paths: &'static [(&'static str, &'static str)],
    request: &'static str,
    expected: Option<usize>,
}

const fn row(
    paths: &'static [(&'static str, &'static str)],
    request: &'static str,
    expected: Option<usize>,
) -> Row {
    Row {
        paths,
        request,
        expected,
    }
}

const TABLE: &[Row] = &[
    // Prefix | / | (all paths) | Yes
    row(&[("Prefix", "/")], "/", Some(0)),
    row(&[("Prefix", "/")], "/anything/at/all", Some(0)),
    // Exact | /foo | /foo | Yes
    row(&[("Exact", "/foo")], "/foo", Some(0)),
    // Exact | /foo | /bar | No
    row(&[("Exact", "/foo")], "/bar", None),
    // Exact | /foo | /foo/ | No
    row(&[("Exact", "/foo")], "/foo/", None),
    // Exact | /foo/ | /foo | No
    row(&[("Exact", "/foo/")], "/foo", None),
    // Prefix | /foo | /foo, /foo/ | Yes
    row(&[("Prefix", "/foo")], "/foo", Some(0)),
    row(&[("Prefix", "/foo")], "/foo/", Some(0)),
    // Prefix | /foo/ | /foo, /foo/ | Yes
    row(&[("Prefix", "/foo/")], "/foo", Some(0)),
    row(&[("Prefix", "/foo/")], "/foo/", Some(0)),
    // Prefix | /aaa/bb | /aaa/bbb | No
    row(&[("Prefix", "/aaa/bb")], "/aaa/bbb", None),
    // Prefix | /aaa/bbb | /aaa/bbb | Yes
    row(&[("Prefix", "/aaa/bbb")], "/aaa/bbb", Some(0)),
    // Prefix | /aaa/bbb/ | /aaa/bbb | Yes, ignores trailing slash
    row(&[("Prefix", "/aaa/bbb/")], "/aaa/bbb", Some(0)),
    // Prefix | /aaa/bbb | /aaa/bbb/ | Yes, matches trailing slash
    row(&[("Prefix", "/aaa/bbb")], "/aaa/bbb/", Some(0)),
    // Prefix | /aaa/bbb | /aaa/bbb/ccc | Yes, matches subpath
    row(&[("Prefix", "/aaa/bbb")], "/aaa/bbb/ccc", Some(0)),
    // Prefix | /aaa/bbb | /aaa/bbbxyz | No, does not match string prefix
    row(&[("Prefix", "/aaa/bbb")], "/aaa/bbbxyz", None),
    // Prefix | /, /aaa | /aaa/ccc | Yes, matches /aaa prefix
    row(&[("Prefix", "/"), ("Prefix", "/aaa")], "/aaa/ccc", Some(1)),
    // Prefix | /, /aaa, /aaa/bbb | /aaa/bbb | Yes, matches /aaa/bbb prefix
    row(
        &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
        "/aaa/bbb",
        Some(2),
    ),
    // Prefix | /, /aaa, /aaa/bbb | /ccc | Yes, matches / prefix
    row(
        &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
        "/ccc",
        Some(0),
    ),
    // Prefix | /aaa | /ccc | No, uses default backend
    row(&[("Prefix", "/aaa")], "/ccc", None),
    // Mixed | /foo (Prefix), /foo (Exact) | /foo | Yes, prefers Exact
    row(&[("Prefix", "/foo"), ("Exact", "/foo")], "/foo", Some(1)),
];

fn run(paths: &[(&str, &str)], request: &str, host: Option<&str>) -> Option<String> {
    let mut builder = ingress("default/table").default_backend("fallback", 80);
    builder = match host {
        Some(host) => builder.host(host),
        None => builder.any_host(),
    };
    for (i, (path_type, path)) in paths.iter().enumerate() {
        builder = builder.path(path_type, path, &format!("svc-{i}"), 80);
    }
    let mut objects: Vec<KubeObject> = vec![weir_class("weir", false), builder.into()];
    objects.push(service("default/fallback").port("http", 80).into());
    for i in 0..paths.len() {
        objects.push(service(&format!("default/svc-{i}")).port("http", 80).into());
    }
    let compiled = compile(objects);
    assert!(
        !compiled.status.has_rejections(),
        "{:?}",
        compiled.status.conditions
    );
    let request_host = host.unwrap_or("anything.example");
    fixtures::route(&compiled.snapshot, request_host, request).map(|m| m.name.to_owned())
}

#[test]
fn kubernetes_path_matching_examples() {
    for host in [None, Some("table.example.com")] {
        for row in TABLE {
            let expected = match row.expected {
                Some(i) => format!("default/table/0/{i}"),
                None => DEFAULT_BACKEND_ROUTE.to_owned(),
            };
            assert_eq!(
                run(row.paths, row.request, host).as_deref(),
                Some(expected.as_str()),
                "paths {:?}, request {} (host {host:?})",
                row.paths,
                row.request
            );
        }
    }
}

#[test]
fn path_order_in_the_ingress_does_not_matter() {
    // The table's multi-path rows, with the paths reversed.
    for row in TABLE.iter().filter(|r| r.paths.len() > 1) {
        let reversed: Vec<_> = row.paths.iter().rev().copied().collect();
        let expected = match row.expected {
            Some(i) => format!("default/table/0/{}", row.paths.len() - 1 - i),
            None => DEFAULT_BACKEND_ROUTE.to_owned(),
        };
        assert_eq!(
            run(&reversed, row.request, None).as_deref(),
            Some(expected.as_str()),
            "paths {reversed:?}, request {}",
            row.request
        );
    }
}
