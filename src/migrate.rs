//! `weir migrate`: what becomes of every ingress-nginx annotation when weir serves the
//! Ingresses written for ingress-nginx, and the weir-native objects that leave the
//! annotations behind.
//!
//! For every Ingress, each annotation under the prefix is *translated* (to what: a filter, a
//! match, a cluster setting), *partial* (what differs), *unsupported* (why), *refused* (why)
//! or *invalid* (why) — the findings of [`crate::compile::nginx::translate`], the very
//! translation `weir run` serves, plus what compile reports on the Ingress (a missing auth
//! Secret). ingress-nginx's controller ConfigMap keys that change defaults
//! (`use-forwarded-headers`, `ssl-redirect`, `proxy-body-size`,
//! `allow-snippet-annotations`) are reported too. Exit status: 0 when every annotation and
//! key translates exactly, 1 otherwise, 2 when the input cannot be read.
//!
//! `--output manifests` writes, per annotated Ingress, the Ingress without the annotations
//! that have a weir-native form, an `HTTPFilter` (named `<ingress>-nginx`, attached first in
//! `weir.dev/filters`) with their filters, and a `BackendPolicy` (same name) with their
//! cluster settings. Annotations with no weir-native form (regex paths, canaries, extra
//! hosts, the backend protocol) stay on the Ingress — weir serves them as written — and so
//! do those whose filters must run before a kept one's (the chain order is ingress-nginx's).
//! Unsupported and refused annotations are dropped (they do nothing in weir); each
//! Ingress's header comment lists what moved, stayed and was dropped.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::api::backendpolicy::{BackendPolicy, BackendPolicySpec, PolicyTargetRef};
use crate::api::httpfilter::{FilterEntry, HTTPFilter, HTTPFilterSpec};
use crate::api::ingress::Ingress;
use crate::api::{annotations, values};
use crate::compile::nginx::{self, Annotations, Context, Finding, Translation, Verdict};
use crate::compile::{self, CompileConfig, ObjectRef, Severity};
use crate::store::files;
use crate::store::{ObjectKey, Objects};

/// Exit status: every annotation translates exactly.
pub const EXIT_OK: i32 = 0;
/// Exit status: some annotation or key does not translate exactly.
pub const EXIT_DIFFERS: i32 = 1;
/// Exit status: the input cannot be read.
pub const EXIT_UNREADABLE: i32 = 2;

/// ingress-nginx's controller ConfigMap, where its Helm chart puts it.
pub const DEFAULT_NGINX_CONFIGMAP: &str = "ingress-nginx/ingress-nginx-controller";

/// Arguments of `weir migrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// Directory (read recursively) or file of Kubernetes manifests.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "kubeconfig",
        conflicts_with = "kubeconfig"
    )]
    pub manifests: Option<PathBuf>,
    /// Read the objects from the cluster of this kubeconfig instead (list permission on
    /// Ingresses, IngressClasses, Services, Secrets and the ConfigMap).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// With `--kubeconfig`: only this namespace's objects.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Output: a text report, the same as JSON, or weir-native manifests.
    #[arg(long, value_enum, default_value_t = MigrateOutput::Text)]
    pub output: MigrateOutput,
    /// Also serve the Ingresses of this IngressClass name (as `weir run --ingress-class`);
    /// `served` in the report says which Ingresses weir would serve. Repeatable.
    #[arg(long = "ingress-class", value_name = "NAME")]
    pub ingress_classes: Vec<String>,
    /// Prefix of the ingress-nginx annotations.
    #[arg(long, default_value = nginx::DEFAULT_PREFIX)]
    pub annotations_prefix: String,
    /// IngressClass `spec.controller` value that marks weir's classes.
    #[arg(long, default_value = values::DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
    /// ingress-nginx's controller ConfigMap, `NAMESPACE/NAME`.
    #[arg(long, value_name = "NS/NAME", default_value = DEFAULT_NGINX_CONFIGMAP)]
    pub nginx_configmap: String,
}

/// Output format of `weir migrate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MigrateOutput {
    /// A report for people.
    Text,
    /// The report as pretty-printed JSON.
    Json,
    /// Weir-native objects (YAML stream).
    Manifests,
}

/// What `weir migrate` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Every Ingress of the input, by namespace and name.
    pub ingresses: Vec<IngressReport>,
    /// ingress-nginx's controller ConfigMap, when the input has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapReport>,
    /// Counts.
    pub summary: Summary,
}

/// One Ingress.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressReport {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its class (`spec.ingressClassName`, or the legacy annotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Whether weir serves it with these flags (`--ingress-class`, `--controller-name`).
    pub served: bool,
    /// Whether it is a canary of another Ingress (`canary: "true"`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
    /// Every annotation under the prefix, in key order.
    pub annotations: Vec<Finding>,
    /// What else compile rejects on it (a Secret an auth annotation names is missing, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// What else compile warns about (a canary with no main Ingress to join, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// ingress-nginx's controller ConfigMap.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigMapReport {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Every key, in key order.
    pub keys: Vec<Finding>,
}

/// Counts over the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Ingresses in the input.
    pub ingresses: usize,
    /// Of them, with at least one annotation under the prefix.
    pub annotated: usize,
    /// Annotations under the prefix.
    pub annotations: usize,
    /// Translated exactly.
    pub translated: usize,
    /// Translated, with differences.
    pub partial: usize,
    /// Not served.
    pub unsupported: usize,
    /// Refused by design.
    pub refused: usize,
    /// Unreadable values.
    pub invalid: usize,
    /// ConfigMap keys that do not translate exactly.
    pub config_map_keys_differing: usize,
    /// Compile errors on Ingresses besides the annotations' own.
    pub errors: usize,
    /// Compile warnings on Ingresses besides the annotations' own.
    pub warnings: usize,
}

impl Summary {
    fn count(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Translated(_) => self.translated += 1,
            Verdict::Partial { .. } => self.partial += 1,
            Verdict::Unsupported(_) => self.unsupported += 1,
            Verdict::Refused(_) => self.refused += 1,
            Verdict::Invalid { .. } => self.invalid += 1,
        }
    }

    /// `weir migrate`'s exit status for this summary.
    pub fn exit_status(&self) -> i32 {
        if self.annotations == self.translated
            && self.config_map_keys_differing == 0
            && self.errors == 0
            && self.warnings == 0
        {
            EXIT_OK
        } else {
            EXIT_DIFFERS
        }
    }
}

/// The compile configuration of `weir migrate`.
pub fn compile_config(args: &MigrateArgs) -> CompileConfig {
    CompileConfig {
        controller_name: args.controller_name.clone(),
        http_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 8080)),
        https_addr: Some(std::net::SocketAddr::from(([0, 0, 0, 0], 8443))),
        default_backend: None,
        now_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        ingress_classes: args.ingress_classes.clone(),
        annotations_prefix: args.annotations_prefix.clone(),
        gateway: Default::default(),
    }
}

/// The report over `objects`; `config_map` is ingress-nginx's controller ConfigMap (its
/// key and `data`) when the input has it.
pub fn report(
    objects: &Objects,
    config: &CompileConfig,
    config_map: Option<(&ObjectKey, &serde_json::Map<String, Value>)>,
) -> Report {
    let compiled = compile::compile(objects, config);
    let mut summary = Summary::default();
    let mut ingresses = Vec::with_capacity(objects.ingresses.len());
    for (key, ingress) in &objects.ingresses {
        let annotations = Annotations::of(ingress, &config.annotations_prefix);
        let t = nginx::translate(&Context {
            annotations,
            ingress,
            key,
            objects,
        });
        // The annotations' own conditions say what the findings say; keep the rest.
        let own: BTreeSet<String> = t
            .findings
            .iter()
            .map(|f| format!("annotation {}: {}", annotations.key(&f.name), f.verdict))
            .collect();
        let object = ObjectRef {
            kind: "Ingress",
            key: key.clone(),
        };
        let others = |severity: Severity| -> Vec<String> {
            compiled
                .status
                .conditions
                .get(&object)
                .into_iter()
                .flatten()
                .filter(|c| c.severity == severity && !own.contains(&c.message))
                .map(|c| c.message.clone())
                .collect()
        };
        let (errors, warnings) = (others(Severity::Error), others(Severity::Warning));
        summary.ingresses += 1;
        summary.annotated += usize::from(!t.findings.is_empty());
        summary.annotations += t.findings.len();
        summary.errors += errors.len();
        summary.warnings += warnings.len();
        for f in &t.findings {
            summary.count(&f.verdict);
        }
        ingresses.push(IngressReport {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            class: class_of(ingress),
            served: compiled.status.owned_ingresses.contains(key),
            canary: annotations.get("canary") == Some("true"),
            annotations: t.findings,
            errors,
            warnings,
        });
    }
    let config_map = config_map.map(|(key, data)| {
        let keys = config_map_keys(data);
        summary.config_map_keys_differing = keys
            .iter()
            .filter(|k| !matches!(k.verdict, Verdict::Translated(_)))
            .count();
        ConfigMapReport {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            keys,
        }
    });
    Report {
        ingresses,
        config_map,
        summary,
    }
}

fn class_of(ingress: &Ingress) -> Option<String> {
    ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.clone())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()?
                .get(annotations::INGRESS_CLASS)
                .cloned()
        })
}

/// What becomes of ingress-nginx's controller ConfigMap keys.
fn config_map_keys(data: &serde_json::Map<String, Value>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, value) in data {
        let text = match value {
            Value::String(s) => s.trim().to_owned(),
            other => other.to_string(),
        };
        let verdict = match (key.as_str(), text.as_str()) {
            ("use-forwarded-headers", "true") => Verdict::Partial {
                to: "weir run --trusted-proxies <CIDR of your load balancers>".to_owned(),
                differs: "weir trusts X-Forwarded-* only from the networks listed, never from \
                          every client"
                    .to_owned(),
            },
            ("use-forwarded-headers", _) => Verdict::Translated(
                "weir's default: forwarded headers from clients are dropped and rewritten"
                    .to_owned(),
            ),
            ("ssl-redirect", "false") => Verdict::Partial {
                to: "weir.dev/ssl-redirect: \"false\" (or ssl-redirect: \"false\") on each Ingress"
                    .to_owned(),
                differs: "weir has no controller-wide switch: TLS hosts redirect plain HTTP by \
                          default"
                    .to_owned(),
            },
            ("ssl-redirect", _) => Verdict::Translated(
                "weir's default: plain HTTP to TLS hosts is redirected with 308".to_owned(),
            ),
            ("proxy-body-size", v) => Verdict::Partial {
                to: format!("proxy-body-size: {v:?} on each Ingress, or a BodyLimit HTTPFilter"),
                differs: "weir has no controller-wide body limit: an Ingress without one \
                          accepts any body size (ingress-nginx's default is 1m)"
                    .to_owned(),
            },
            ("allow-snippet-annotations", "true") => Verdict::Refused(
                "weir never serves snippet annotations (CVE-2025-1974); use HTTPFilters".to_owned(),
            ),
            ("allow-snippet-annotations", _) => {
                Verdict::Translated("weir's behaviour: snippets are refused".to_owned())
            }
            (k, _) if k.ends_with("-snippet") => Verdict::Refused(
                "free-text nginx configuration: weir never serves it (CVE-2025-1974)".to_owned(),
            ),
            _ => Verdict::Unsupported(
                "a controller-wide ingress-nginx setting weir has no equivalent for".to_owned(),
            ),
        };
        out.push(Finding {
            name: key.clone(),
            value: text,
            verdict,
        });
    }
    out
}

/// The report for people.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let line = |out: &mut String, f: &Finding| {
        let mut value = format!("{:?}", f.value);
        if value.chars().count() > 60 {
            value = value.chars().take(57).collect::<String>() + "...\"";
        }
        let _ = writeln!(
            out,
            "  {:<11}  {}: {value} {}",
            f.verdict.word(),
            f.name,
            f.verdict
        );
    };
    for i in &report.ingresses {
        if i.annotations.is_empty() && i.errors.is_empty() && i.warnings.is_empty() {
            continue;
        }
        let class = i.class.as_deref().unwrap_or("none");
        let served = if i.served { "served" } else { "not served" };
        let canary = if i.canary { ", canary" } else { "" };
        let _ = writeln!(
            out,
            "Ingress {}/{} (class {class}, {served}{canary})",
            i.namespace, i.name
        );
        for f in &i.annotations {
            line(&mut out, f);
        }
        for e in &i.errors {
            let _ = writeln!(out, "  {:<11}  {e}", "error");
        }
        for w in &i.warnings {
            let _ = writeln!(out, "  {:<11}  {w}", "warning");
        }
    }
    if let Some(cm) = &report.config_map {
        let _ = writeln!(out, "ConfigMap {}/{}", cm.namespace, cm.name);
        for f in &cm.keys {
            line(&mut out, f);
        }
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "Summary: {} Ingresses ({} with annotations), {} annotations: {} translated, {} partial, \
         {} unsupported, {} refused, {} invalid; {} ConfigMap keys differ; {} other errors, {} other \
         warnings",
        s.ingresses,
        s.annotated,
        s.annotations,
        s.translated,
        s.partial,
        s.unsupported,
        s.refused,
        s.invalid,
        s.config_map_keys_differing,
        s.errors,
        s.warnings
    );
    out
}

/// How one Ingress's annotations split between weir-native objects and the Ingress.
#[derive(Debug, Default, PartialEq)]
struct Split {
    /// Annotations removed from the Ingress (their effect is in the filter or policy, or
    /// they do nothing in weir).
    moved: BTreeSet<String>,
    /// Unsupported and refused annotations (removed too).
    dropped: BTreeSet<String>,
    /// Entries of the `HTTPFilter`.
    entries: Vec<FilterEntry>,
    /// Settings of the `BackendPolicy`.
    policy: Option<BackendPolicySpec>,
}

/// Everything of a translation but its findings, filter entries and policy: what only the
/// annotations themselves can express.
fn rest(t: &Translation) -> Translation {
    Translation {
        findings: Vec::new(),
        entries: Vec::new(),
        policy: BackendPolicySpec::default(),
        ..t.clone()
    }
}

fn split(ingress: &Ingress, key: &ObjectKey, objects: &Objects, prefix: &str) -> Split {
    let translate = |ingress: &Ingress| {
        nginx::translate(&Context {
            annotations: Annotations::of(ingress, prefix),
            ingress,
            key,
            objects,
        })
    };
    let without = |names: &BTreeSet<String>| {
        let mut ingress = ingress.clone();
        if let Some(a) = ingress.metadata.annotations.as_mut() {
            a.retain(|k, _| !Annotations::name_under(k, prefix).is_some_and(|n| names.contains(n)));
        }
        ingress
    };
    let full = translate(ingress);
    let mut out = Split::default();
    // Candidates: the annotations whose removal changes only filters and policy.
    let mut moved = BTreeSet::new();
    for f in &full.findings {
        match f.verdict {
            Verdict::Translated(_) | Verdict::Partial { .. } => {}
            Verdict::Unsupported(_) | Verdict::Refused(_) => {
                out.dropped.insert(f.name.clone());
                continue;
            }
            Verdict::Invalid { .. } => continue,
        }
        let one = BTreeSet::from([f.name.clone()]);
        if rest(&translate(&without(&one))) == rest(&full) {
            moved.insert(f.name.clone());
        }
    }
    // A candidate set is right when the Ingress without it, plus the filter (its entries
    // after the kept ones', as `weir.dev/filters` runs after the annotations) and policy,
    // is exactly the full translation. Shrink it, one annotation at a time, until it is.
    let check =
        |moved: &BTreeSet<String>| -> Option<(Vec<FilterEntry>, Option<BackendPolicySpec>)> {
            let mut gone = moved.clone();
            gone.extend(out.dropped.iter().cloned());
            let kept = translate(&without(&gone));
            if rest(&kept) != rest(&full) {
                return None;
            }
            let n = kept.entries.len();
            let same_head = full.entries.len() >= n
                && full.entries[..n]
                    .iter()
                    .zip(&kept.entries)
                    .all(|(a, b)| a.entry == b.entry);
            if !same_head {
                return None;
            }
            let policy = if kept.policy == full.policy {
                None
            } else if kept.policy == BackendPolicySpec::default() {
                Some(full.policy.clone())
            } else {
                return None;
            };
            Some((
                full.entries[n..].iter().map(|e| e.entry.clone()).collect(),
                policy,
            ))
        };
    let mut found = None;
    loop {
        if let Some(split) = check(&moved) {
            found = Some(split);
            break;
        }
        let smaller = moved.iter().find_map(|m| {
            let mut fewer = moved.clone();
            fewer.remove(m);
            check(&fewer).map(|_| fewer)
        });
        moved = match smaller {
            Some(fewer) => fewer,
            // No single annotation fixes it: keep them all.
            None if moved.is_empty() => break,
            None => BTreeSet::new(),
        };
    }
    match found {
        Some((entries, policy)) => {
            out.entries = entries;
            out.policy = policy;
            out.moved = moved;
        }
        // Not even dropping what does nothing is exact: write the Ingress as it is.
        None => out.dropped.clear(),
    }
    out
}

/// Weir-native manifests for every annotated Ingress (YAML stream).
pub fn manifests(objects: &Objects, prefix: &str) -> String {
    let mut out = String::new();
    for (key, ingress) in &objects.ingresses {
        let annotations = Annotations::of(ingress, prefix);
        if annotations.is_empty() {
            continue;
        }
        let split = split(ingress, key, objects, prefix);
        let name = format!("{}-nginx", key.name);
        let mut kept: Vec<&str> = annotations
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !split.moved.contains(*n) && !split.dropped.contains(*n))
            .collect();
        kept.sort_unstable();
        let _ = writeln!(out, "# Ingress {key}");
        let list = |set: &mut dyn Iterator<Item = &str>| set.collect::<Vec<_>>().join(", ");
        if !split.moved.is_empty() {
            let _ = writeln!(
                out,
                "#   moved into HTTPFilter/BackendPolicy {name} (or redundant): {}",
                list(&mut split.moved.iter().map(String::as_str))
            );
        }
        if !kept.is_empty() {
            let _ = writeln!(
                out,
                "#   kept on the Ingress (no weir-native form, or invalid: weir serves them as written): {}",
                list(&mut kept.iter().copied())
            );
        }
        if !split.dropped.is_empty() {
            let _ = writeln!(
                out,
                "#   dropped (unsupported or refused; see weir migrate): {}",
                list(&mut split.dropped.iter().map(String::as_str))
            );
        }
        let mut ingress = ingress.clone();
        let meta = &mut ingress.metadata;
        let all = meta.annotations.get_or_insert_default();
        all.retain(|k, _| {
            k != annotations::LAST_APPLIED
                && !Annotations::name_under(k, prefix)
                    .is_some_and(|n| split.moved.contains(n) || split.dropped.contains(n))
        });
        if !split.entries.is_empty() {
            let chain = match all.get(annotations::FILTERS).map(|v| v.trim()) {
                Some(existing) if !existing.is_empty() => format!("{name}, {existing}"),
                _ => name.clone(),
            };
            all.insert(annotations::FILTERS.to_owned(), chain);
        }
        if all.is_empty() {
            meta.annotations = None;
        }
        let ingress = Ingress {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                labels: meta.labels.clone(),
                annotations: meta.annotations.clone(),
                ..Default::default()
            },
            spec: ingress.spec,
            status: None,
        };
        let written = k8s_openapi::api::networking::v1::Ingress::from(ingress.clone());
        document(
            &mut out,
            with_type(&written, "networking.k8s.io/v1", "Ingress"),
        );
        if !split.entries.is_empty() {
            let mut filter = HTTPFilter::new(
                &name,
                HTTPFilterSpec {
                    filters: split.entries,
                },
            );
            filter.metadata.namespace = Some(key.namespace.clone());
            document(&mut out, serde_json::to_value(&filter).unwrap_or_default());
        }
        if let Some(spec) = split.policy {
            let services = backend_services(&ingress);
            let _ = writeln!(
                out,
                "# applies to every route to these Services, not only this Ingress's"
            );
            let mut policy = BackendPolicy::new(
                &name,
                BackendPolicySpec {
                    target_refs: services
                        .into_iter()
                        .map(|s| PolicyTargetRef {
                            group: String::new(),
                            kind: "Service".to_owned(),
                            name: s,
                            section_name: None,
                        })
                        .collect(),
                    ..spec
                },
            );
            policy.metadata.namespace = Some(key.namespace.clone());
            document(&mut out, serde_json::to_value(&policy).unwrap_or_default());
        }
    }
    out
}

/// The Services an Ingress's rules and default backend name, sorted.
fn backend_services(ingress: &Ingress) -> BTreeSet<String> {
    let spec = ingress.spec.as_ref();
    let rules = spec
        .and_then(|s| s.rules.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|r| r.http.as_ref())
        .flat_map(|h| h.paths.iter().map(|p| &p.backend));
    rules
        .chain(spec.and_then(|s| s.default_backend.as_deref()))
        .filter_map(|b| b.service.as_ref().map(|s| s.name.clone()))
        .collect()
}

fn with_type(object: &impl Serialize, api_version: &str, kind: &str) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Value::Object(map) = &mut value {
        let mut typed = serde_json::Map::new();
        typed.insert("apiVersion".into(), api_version.into());
        typed.insert("kind".into(), kind.into());
        typed.append(map);
        *map = typed;
    }
    value
}

fn document(out: &mut String, mut value: Value) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|_, v| !v.is_null());
    }
    if let Some(map) = value.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    out.push_str("---\n");
    out.push_str(&serde_yaml::to_string(&value).unwrap_or_default());
}

/// The `data` of ingress-nginx's ConfigMap `wanted` among the documents the store did not
/// keep.
pub fn find_config_map<'v>(
    others: &'v [Value],
    wanted: &ObjectKey,
) -> Option<&'v serde_json::Map<String, Value>> {
    others.iter().find_map(|v| {
        let meta = v.get("metadata")?;
        let is = v.get("kind")?.as_str()? == "ConfigMap"
            && meta.get("name")?.as_str()? == wanted.name
            && meta
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                == wanted.namespace;
        if !is {
            return None;
        }
        v.get("data")?.as_object()
    })
}

/// Parse `NAMESPACE/NAME`.
pub fn parse_config_map(s: &str) -> Result<ObjectKey, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok(ObjectKey::new(ns, name)),
        _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
    }
}

/// Print what `args.output` asks for over `objects`; the exit status.
pub fn print(
    args: &MigrateArgs,
    objects: &Objects,
    config_map: Option<(&ObjectKey, &serde_json::Map<String, Value>)>,
) -> i32 {
    let config = compile_config(args);
    let report = report(objects, &config, config_map);
    match args.output {
        MigrateOutput::Text => print!("{}", render_text(&report)),
        MigrateOutput::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_UNREADABLE;
            }
        },
        MigrateOutput::Manifests => print!("{}", manifests(objects, &args.annotations_prefix)),
    }
    report.summary.exit_status()
}

/// `weir migrate --manifests DIR`: load, report, print; the exit status.
pub fn run_manifests(args: &MigrateArgs, dir: &std::path::Path) -> i32 {
    let wanted = match parse_config_map(&args.nginx_configmap) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("error: --nginx-configmap {e}");
            return EXIT_UNREADABLE;
        }
    };
    let (objects, diagnostics, others) = match files::load_dir_with_others(dir) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_UNREADABLE;
        }
    };
    for d in &diagnostics {
        eprintln!("warning: {d}");
    }
    let kept = objects.config_maps.get(&wanted).map(|cm| {
        cm.data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<serde_json::Map<_, _>>()
    });
    let config_map = kept
        .as_ref()
        .or_else(|| find_config_map(&others, &wanted))
        .map(|data| (&wanted, data));
    print(args, &objects, config_map)
}

/// The objects `weir migrate --kubeconfig` reads: every kind weir keeps, from `namespace`
/// (cluster-scoped kinds whole), and the `data` of ingress-nginx's ConfigMap `config_map`.
/// A kind that cannot be listed (RBAC) is a warning on stderr: the report is made without it.
pub async fn load_cluster(
    client: &kube::Client,
    namespace: Option<&str>,
    config_map: &ObjectKey,
) -> (Objects, Option<serde_json::Map<String, Value>>) {
    struct ApiOf<'c> {
        client: &'c kube::Client,
        namespace: Option<&'c str>,
    }
    impl crate::store::KindVisitor for ApiOf<'_> {
        type Output = kube::Api<kube::api::DynamicObject>;
        fn visit<K: crate::store::StoreKind>(self) -> Self::Output {
            let ns = if K::NAMESPACED { self.namespace } else { None };
            crate::store::kube::namespaced_api::<K>(self.client, ns)
        }
    }
    let mut objects = Objects::default();
    for kind in crate::store::Kind::ALL {
        let api = kind.visit(ApiOf { client, namespace });
        let list = match api.list(&Default::default()).await {
            Ok(list) => list,
            Err(e) => {
                eprintln!("warning: cannot list {kind}: {e}; the report is made without them");
                continue;
            }
        };
        for item in list.items {
            let mut value = serde_json::to_value(&item).unwrap_or_default();
            if let Value::Object(map) = &mut value {
                map.insert("apiVersion".into(), kind.api_version().into());
                map.insert("kind".into(), kind.as_str().into());
            }
            match crate::store::KubeObject::from_value(*kind, value) {
                Ok(object) => {
                    if let Err(e) = objects.apply(object) {
                        eprintln!("warning: {kind}: {e}");
                    }
                }
                Err(e) => eprintln!("warning: a {kind} does not decode: {e}"),
            }
        }
    }
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), &config_map.namespace);
    let data = match api.get_opt(&config_map.name).await {
        Ok(Some(cm)) => Some(
            cm.data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ),
        Ok(None) => None,
        Err(e) => {
            eprintln!("warning: cannot read ConfigMap {config_map}: {e}");
            None
        }
    };
    (objects, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(yaml: &str) -> Objects {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("m.yaml"), yaml).expect("write");
        files::load_dir(dir.path()).expect("loads").0
    }

    const SHOP: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: 8m
    nginx.ingress.kubernetes.io/whitelist-source-range: 10.0.0.0/8
    nginx.ingress.kubernetes.io/configuration-snippet: "more_set_headers x: y;"
    nginx.ingress.kubernetes.io/frobnicate: "yes"
    weir.dev/filters: mine
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: plain, namespace: default}
spec:
  ingressClassName: nginx
  defaultBackend: {service: {name: web, port: {number: 80}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: mine, namespace: default}
spec:
  filters:
  - type: RequestHeaderModifier
    requestHeaderModifier: {set: [{name: x-mine, value: "1"}]}
"#;

    fn args() -> MigrateArgs {
        MigrateArgs {
            manifests: None,
            kubeconfig: None,
            namespace: None,
            output: MigrateOutput::Text,
            ingress_classes: vec!["nginx".into()],
            annotations_prefix: nginx::DEFAULT_PREFIX.into(),
            controller_name: values::DEFAULT_CONTROLLER_NAME.into(),
            nginx_configmap: DEFAULT_NGINX_CONFIGMAP.into(),
        }
    }

    #[test]
    fn the_report_counts_every_verdict_and_says_what_is_served() {
        let objects = objects(SHOP);
        let report = report(&objects, &compile_config(&args()), None);
        let s = report.summary;
        assert_eq!((s.ingresses, s.annotated, s.annotations), (2, 1, 4));
        assert_eq!(s.errors, 0, "{report:?}");
        assert_eq!(
            (s.translated, s.unsupported, s.refused, s.invalid),
            (2, 1, 1, 0)
        );
        assert_eq!(s.exit_status(), EXIT_DIFFERS);
        assert!(report.ingresses.iter().all(|i| i.served));
        let text = render_text(&report);
        assert!(
            text.contains("Ingress default/shop (class nginx, served)"),
            "{text}"
        );
        assert!(
            text.contains("refused      configuration-snippet"),
            "{text}"
        );
        assert!(
            !text.contains("default/plain"),
            "nothing to say about it: {text}"
        );
        assert!(text.contains("4 annotations: 2 translated, 0 partial, 1 unsupported, 1 refused"));
    }

    #[test]
    fn manifests_move_filters_out_and_drop_what_does_nothing() {
        let objects = objects(SHOP);
        let yaml = manifests(&objects, nginx::DEFAULT_PREFIX);
        let docs: Vec<Value> = yaml
            .split("---\n")
            .filter(|d| {
                !d.trim().is_empty() && !d.trim_start().starts_with('#') || d.contains("kind:")
            })
            .filter_map(|d| serde_yaml::from_str(d).ok())
            .collect();
        assert_eq!(docs.len(), 2, "{yaml}");
        let ingress = &docs[0];
        let annotations = ingress["metadata"]["annotations"]
            .as_object()
            .expect("annotations");
        assert_eq!(annotations.len(), 1, "{yaml}");
        assert_eq!(annotations["weir.dev/filters"], "shop-nginx, mine");
        let filter = &docs[1];
        assert_eq!(filter["kind"], "HTTPFilter");
        assert_eq!(filter["metadata"]["name"], "shop-nginx");
        let types: Vec<_> = filter["spec"]["filters"]
            .as_array()
            .expect("filters")
            .iter()
            .map(|f| f["type"].as_str().expect("type"))
            .collect();
        assert_eq!(types, ["IPAccess", "BodyLimit"]);
        assert!(yaml.contains("dropped (unsupported or refused; see weir migrate): configuration-snippet, frobnicate"), "{yaml}");
        // The written objects load back and compile with weir's own filters only.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("out.yaml"), &yaml).expect("write");
        let (back, diagnostics) = files::load_dir(dir.path()).expect("loads");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(back.http_filters.len(), 1);
        assert_eq!(
            back.ingresses.len(),
            1,
            "only the annotated Ingress is written"
        );
    }

    #[test]
    fn another_annotations_prefix_is_read_instead() {
        let objects = objects(&SHOP.replace(
            "nginx.ingress.kubernetes.io/proxy-body-size",
            "custom.io/proxy-body-size",
        ));
        let mut config = compile_config(&args());
        config.annotations_prefix = "custom.io".into();
        let report = report(&objects, &config, None);
        let shop = &report
            .ingresses
            .iter()
            .find(|i| i.name == "shop")
            .expect("shop")
            .annotations;
        assert_eq!(shop.len(), 1, "only custom.io/*: {shop:?}");
        assert_eq!(shop[0].name, "proxy-body-size");
        // And compile serves it: the route's chain has the body limit.
        let compiled = compile::compile(&objects, &config);
        let json = serde_json::to_string(&compiled.snapshot).expect("snapshot serializes");
        assert!(json.contains("\"max_request_bytes\":8388608"), "{json}");
    }

    #[test]
    fn config_map_keys_that_change_defaults_are_reported() {
        let data = serde_json::json!({
            "use-forwarded-headers": "true",
            "ssl-redirect": "true",
            "proxy-body-size": "20m",
            "allow-snippet-annotations": "false",
            "worker-processes": "4",
        });
        let keys = config_map_keys(data.as_object().expect("map"));
        let words: Vec<_> = keys
            .iter()
            .map(|k| (k.name.as_str(), k.verdict.word()))
            .collect();
        assert_eq!(
            words,
            [
                ("allow-snippet-annotations", "translated"),
                ("proxy-body-size", "partial"),
                ("ssl-redirect", "translated"),
                ("use-forwarded-headers", "partial"),
                ("worker-processes", "unsupported"),
            ]
        );
    }
}
