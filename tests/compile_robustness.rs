//! Malformed and random manifests never make load or compile panic, and the valid objects in
//! the same directory still compile into a working route.
//!
//! Each proptest case writes 1–6 generated documents (random bytes, truncated manifests,
//! manifests with a value replaced by a wrong type / huge number / random text, random JSON
//! values of weir's kinds) into files of a temporary directory, next to one valid
//! IngressClass + Service + EndpointSlice + Ingress; then loads, compiles, builds endpoints
//! and renders the `weir validate` report. Bounded to 200 cases.

mod fixtures;

use proptest::prelude::*;
use weir::compile::compile;
use weir::endpoints;
use weir::store::files::load_dir;
use weir::validate::Report;

const VALID: &str = r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: weir}
spec: {controller: weir.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: keep-web, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: keep-web-1, namespace: default, labels: {kubernetes.io/service-name: keep-web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: keep, namespace: default, creationTimestamp: "2000-01-01T00:00:00Z"}
spec:
  ingressClassName: weir
  rules:
  - host: keep.example
    http:
      paths:
      - {path: /keep, pathType: Exact, backend: {service: {name: keep-web, port: {number: 80}}}}
"#;

/// Manifests the generator truncates and mutates (names never clash with VALID's).
const TEMPLATES: &[&str] = &[
    r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: fuzz, namespace: fz, annotations: {kubernetes.io/ingress.class: weir}}
spec:
  defaultBackend: {service: {name: fuzz-svc, port: {name: http}}}
  tls: [{hosts: ["fuzz.example", "*.fuzz.example"], secretName: fuzz-tls}]
  rules:
  - host: fuzz.example
    http:
      paths:
      - {path: /a, pathType: Prefix, backend: {service: {name: fuzz-svc, port: {number: 80}}}}
      - {path: /b, pathType: Exact, backend: {resource: {kind: Bucket, name: b}}}
"#,
    r#"apiVersion: v1
kind: Service
metadata: {name: fuzz-svc, namespace: fz}
spec: {type: ClusterIP, ports: [{name: http, port: 80, appProtocol: kubernetes.io/h2c}]}
"#,
    r#"apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: fuzz-1, namespace: fz, labels: {kubernetes.io/service-name: fuzz-svc}}
addressType: IPv6
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: ["fd00::1"], conditions: {ready: false, serving: true, terminating: true}}]
"#,
    r#"apiVersion: v1
kind: Secret
metadata: {name: fuzz-tls, namespace: fz}
type: kubernetes.io/tls
data: {tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==, tls.key: eHl6}
"#,
    r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: fuzz-class, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
spec: {controller: weir.dev/ingress-controller}
"#,
    r#"apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: fuzz-listed, namespace: fz}, spec: {ports: [{port: 81}]}}
"#,
];

/// Replacement values for mutated scalars.
const NASTY: &[&str] = &[
    "99999999999999999999999",
    "-1",
    "0",
    "1e400",
    "[]",
    "{}",
    "null",
    "~",
    "\"\"",
    "\"*\"",
    "!!binary aGk=",
    "&a [*a]",
    "\"/../..\"",
    "\"\\u0000\"",
    "65536",
];

#[derive(Debug, Clone)]
enum Doc {
    Bytes(Vec<u8>),
    Truncated(usize, usize),
    Mutated(usize, usize, String),
    Json(usize, serde_json::Value),
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-z/*.:-]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_owned()),
                    Just("spec".to_owned()),
                    Just("rules".to_owned()),
                    Just("ports".to_owned()),
                    Just("endpoints".to_owned()),
                    Just("name".to_owned()),
                    "[a-z]{1,8}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn doc() -> impl Strategy<Value = Doc> {
    let templates = TEMPLATES.len();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Doc::Bytes),
        (0..templates, any::<usize>()).prop_map(|(t, cut)| Doc::Truncated(t, cut)),
        (
            0..templates,
            any::<usize>(),
            prop_oneof![
                prop::sample::select(NASTY).prop_map(str::to_owned),
                "[ -~]{0,16}",
            ]
        )
            .prop_map(|(t, at, value)| Doc::Mutated(t, at, value)),
        (0..5usize, json_value()).prop_map(|(k, v)| Doc::Json(k, v)),
    ]
}

fn render(doc: &Doc) -> Vec<u8> {
    match doc {
        Doc::Bytes(bytes) => bytes.clone(),
        Doc::Truncated(t, cut) => {
            let text = TEMPLATES[*t];
            text.as_bytes()[..cut % (text.len() + 1)].to_vec()
        }
        Doc::Mutated(t, at, value) => {
            // Replace the value after the n-th `: ` with the nasty one.
            let text = TEMPLATES[*t];
            let spots: Vec<usize> = text.match_indices(": ").map(|(i, _)| i + 2).collect();
            let start = spots[at % spots.len()];
            let end = text[start..]
                .find([',', '}', '\n'])
                .map_or(text.len(), |e| start + e);
            format!("{}{value}{}", &text[..start], &text[end..]).into_bytes()
        }
        Doc::Json(kind, value) => {
            let (api_version, kind) = [
                ("networking.k8s.io/v1", "Ingress"),
                ("networking.k8s.io/v1", "IngressClass"),
                ("v1", "Service"),
                ("discovery.k8s.io/v1", "EndpointSlice"),
                ("v1", "Secret"),
            ][*kind];
            let mut value = value.clone();
            if let Some(map) = value.as_object_mut() {
                map.insert("apiVersion".into(), api_version.into());
                map.insert("kind".into(), kind.into());
            }
            serde_json::to_vec(&value).expect("JSON value serializes")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_manifests_never_panic_and_valid_objects_still_compile(
        docs in prop::collection::vec((doc(), 0..3usize), 1..6)
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("valid.yaml"), VALID).expect("write");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        // Some documents share a multi-document file, others get their own (.json too).
        let mut shared = Vec::new();
        for (i, (doc, placement)) in docs.iter().enumerate() {
            let bytes = render(doc);
            match placement {
                0 => {
                    shared.extend_from_slice(b"---\n");
                    shared.extend_from_slice(&bytes);
                    shared.push(b'\n');
                }
                1 => std::fs::write(dir.path().join(format!("sub/{i}.json")), &bytes)
                    .expect("write"),
                _ => std::fs::write(dir.path().join(format!("{i}.yml")), &bytes).expect("write"),
            }
        }
        std::fs::write(dir.path().join("shared.yaml"), &shared).expect("write");

        let (objects, diagnostics) = load_dir(dir.path()).expect("directory is readable");
        let compiled = compile(&objects, &fixtures::config());
        let sets = endpoints::build(&objects, &compiled.snapshot.clusters, None);
        let report = Report::new(dir.path(), &objects, &diagnostics, &compiled);
        let first = serde_yaml::to_string(&report).expect("report serializes");
        let again = compile(&objects, &fixtures::config());
        let second = serde_yaml::to_string(&Report::new(dir.path(), &objects, &diagnostics, &again))
            .expect("report serializes");
        prop_assert_eq!(first, second);

        let route = fixtures::route(&compiled.snapshot, "keep.example", "/keep");
        let Some(route) = route else {
            return Err(TestCaseError::fail(format!("valid route lost; diagnostics: {diagnostics:?}")));
        };
        prop_assert_eq!(route.name.as_str(), "default/keep/0/0");
        let Some(cluster) = fixtures::forwarded_cluster(route) else {
            return Err(TestCaseError::fail(format!("valid route not forwarded: {:?}", route.action)));
        };
        prop_assert_eq!(cluster.to_string(), "default/keep-web:80");
        prop_assert_eq!(sets[cluster].endpoints.len(), 1);
    }
}
