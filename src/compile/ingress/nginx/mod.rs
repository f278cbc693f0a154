//! ingress-nginx annotations (`nginx.ingress.kubernetes.io/*`, or `--annotations-prefix`) on
//! the Ingresses weir serves, whatever their class.
//!
//! # One translation, three users
//!
//! [`translate`] reads one Ingress's annotations into a [`Translation`]: weir-native pieces —
//! `HTTPFilter` entries ([`FilterEntry`], the CRD's own type, compiled by the same code as an
//! `HTTPFilter`), `BackendPolicy` settings ([`BackendPolicySpec`], applied by the same code as a
//! `BackendPolicy`), route settings (regex paths, extra hosts, redirects) and canary settings —
//! plus one [`Finding`] per annotation: translated (to what), partially (what differs),
//! unsupported (why), refused (why) or invalid (why). It is pure: the same Ingress gives the
//! same translation in `weir run`, `weir validate` and `weir migrate`, and nothing is ever
//! rendered into text configuration.
//!
//! - compile ([`super::front_end`]) compiles the entries into the Ingress's filter chain
//!   (before its `weir.dev/filters`), gives its backends a cluster *variant* carrying the
//!   policy, and turns the findings into conditions ([`report`]): an invalid value fails
//!   closed (the Ingress's routes answer 500, `InvalidAnnotation` error), anything not fully
//!   translated is a Warning naming the annotation;
//! - `weir migrate` prints the findings, and writes the entries and policy as `HTTPFilter` and
//!   `BackendPolicy` objects.
//!
//! # Families
//!
//! One file per family of annotations, each a `translate(&Context, &mut Translation)` that
//! pushes a finding for every annotation it reads:
//! - `access.rs`: source ranges, `proxy-body-size`.
//! - `auth.rs`: basic auth (`auth-type`, `auth-secret`, `auth-secret-type`, `auth-realm`),
//!   external auth (`auth-url` and its settings), `satisfy`.
//! - `cors.rs`: `enable-cors` and the `cors-*` settings.
//! - `limits.rs`: `limit-rps`, `limit-rpm`, `limit-burst-multiplier`, `limit-connections`,
//!   `limit-whitelist`.
//! - `headers.rs`: `mirror-target` and its settings, `custom-headers`.
//! - `canary.rs`: `canary*` (a canary Ingress joins its main Ingress's routes: header and
//!   cookie routes, weighted backends); runs last, as it rewrites the others' findings.
//! - `upstream/`: balancing, affinity, timeouts, retries, backend protocol (the cluster
//!   variant).
//! - `paths.rs`: regex paths, rewrites, app root, aliases, HTTPS/www/fixed redirects.
//!
//! An annotation under the prefix that no family read gets an "unknown or unsupported"
//! finding; snippets are refused by design (free-text configuration is how CVE-2025-1974,
//! "IngressNightmare", happened), naming the typed alternative.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::api::ingress::Ingress;
use serde::Serialize;

use crate::api::backendpolicy::BackendPolicySpec;
use crate::api::httpfilter::FilterEntry;
use crate::api::{condition_types, reasons};
use crate::compile::filters::{self, EntryContext};
use crate::compile::ir::{Source, Variant};
use crate::compile::policy;
use crate::compile::status::Status;
use crate::snapshot::{Cluster, ClusterKey, DirectResponse, Filter, UpstreamProtocol};
use crate::store::{ObjectKey, Objects};

mod access;
mod auth;
pub mod canary;
mod cors;
mod headers;
mod limits;
pub mod paths;
mod upstream;

/// ingress-nginx's annotation prefix (its `--annotations-prefix` default).
pub const DEFAULT_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// Snippet annotations, with the typed alternative weir offers (if any).
const SNIPPETS: [(&str, &str); 5] = [
    (
        "configuration-snippet",
        "an HTTPFilter (RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestRedirect) attached with weir.dev/filters",
    ),
    (
        "server-snippet",
        "an HTTPFilter attached with weir.dev/filters, or a BackendPolicy for timeouts and retries",
    ),
    ("auth-snippet", "an HTTPFilter of type ExternalAuth"),
    ("stream-snippet", "none: weir proxies HTTP only"),
    ("modsecurity-snippet", "none: weir has no WAF"),
];

/// The annotations of one Ingress under one prefix.
#[derive(Debug, Clone, Copy)]
pub struct Annotations<'a> {
    all: Option<&'a BTreeMap<String, String>>,
    prefix: &'a str,
}

impl<'a> Annotations<'a> {
    /// The annotations of `ingress` under `prefix` (without the trailing `/`).
    pub fn of(ingress: &'a Ingress, prefix: &'a str) -> Self {
        Annotations {
            all: ingress.metadata.annotations.as_ref(),
            prefix: prefix.trim_end_matches('/'),
        }
    }

    /// The value of `<prefix>/<name>`, trimmed.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.all?
            .iter()
            .find(|(k, _)| self.name_of(k) == Some(name))
            .map(|(_, v)| v.trim())
    }

    /// The full key of annotation `name` (for messages).
    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// Every annotation under the prefix: (name without prefix, value), in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.all
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((self.name_of(k)?, v.as_str())))
    }

    /// Whether any annotation is under the prefix.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    fn name_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        Self::name_under(key, self.prefix)
    }

    /// The annotation name of `key` when it is under `prefix` (`<prefix>/<name>`).
    pub fn name_under<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
        key.strip_prefix(prefix.trim_end_matches('/'))?
            .strip_prefix('/')
    }
}

/// What an annotation's reader has to look at besides the annotations.
pub struct Context<'a> {
    /// The Ingress's annotations under the prefix.
    pub annotations: Annotations<'a>,
    /// The Ingress.
    pub ingress: &'a Ingress,
    /// Its namespace and name.
    pub key: &'a ObjectKey,
    /// Every object (Secrets of `auth-secret`, Services of `auth-url`, ConfigMaps).
    pub objects: &'a Objects,
}

impl<'a> Context<'a> {
    /// The value of annotation `name`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.annotations.get(name)
    }

    /// A boolean annotation (`"true"`/`"false"`, as ingress-nginx parses them); `Err` holds
    /// the message of an invalid one.
    pub fn bool(&self, name: &str) -> Option<Result<bool, String>> {
        self.get(name).map(|v| match v {
            "true" | "True" | "TRUE" => Ok(true),
            "false" | "False" | "FALSE" => Ok(false),
            other => Err(format!("{other:?} is not \"true\" or \"false\"")),
        })
    }
}

/// What became of one annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "detail", rename_all = "lowercase")]
pub enum Verdict {
    /// Served with ingress-nginx's semantics, as this weir-native piece (`IPAccess filter`).
    Translated(String),
    /// Served, but not exactly as ingress-nginx does.
    Partial {
        /// What it became.
        to: String,
        /// What differs.
        differs: String,
    },
    /// Not served; the Ingress is served without it.
    Unsupported(String),
    /// Not served by design (snippets); the Ingress is served without it.
    Refused(String),
    /// The value cannot be read: the Ingress's routes answer 500 (fail closed) when the
    /// annotation changes what is allowed, or it is ignored with a warning otherwise.
    Invalid {
        /// Why.
        why: String,
        /// Whether the routes answer 500 for it.
        fails_closed: bool,
    },
}

impl Verdict {
    /// The short word `weir migrate` prints.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Translated(_) => "translated",
            Verdict::Partial { .. } => "partial",
            Verdict::Unsupported(_) => "unsupported",
            Verdict::Refused(_) => "refused",
            Verdict::Invalid { .. } => "invalid",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Translated(to) => write!(f, "→ {to}"),
            Verdict::Partial { to, differs } => write!(f, "→ {to}; differs: {differs}"),
            Verdict::Unsupported(why) | Verdict::Refused(why) => f.write_str(why),
            Verdict::Invalid { why, fails_closed } => {
                f.write_str(why)?;
                if *fails_closed {
                    f.write_str("; the Ingress's routes answer 500")?;
                }
                Ok(())
            }
        }
    }
}

/// One annotation and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The annotation's name without prefix (`rewrite-target`).
    pub name: String,
    /// Its value as written.
    pub value: String,
    /// What became of it.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Where in the chain a filter entry runs: ingress-nginx's phase order (server rewrite
/// phase redirects, then CORS preflight answered in the rewrite phase, `limit_req` in
/// preaccess, `allow`/`deny` and auth in access, then the body limit and the upstream
/// request's rewrites).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Phase {
    /// Redirects (`permanent-redirect`, `temporal-redirect`, `ssl-redirect`).
    Redirect,
    /// CORS (preflights are answered before any access check).
    Cors,
    /// Rate and connection limits.
    Limit,
    /// Source-address allow and deny lists.
    Access,
    /// Basic and external authentication.
    Auth,
    /// Request body size.
    Body,
    /// What the upstream request gets: rewrites, headers, mirrors.
    Upstream,
    /// Response headers.
    Response,
}

/// An `HTTPFilter` entry an Ingress's annotations translate into.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The annotations it comes from (names without prefix), for messages.
    pub from: Vec<&'static str>,
    /// Its place in the chain.
    pub phase: Phase,
    /// The entry, as an `HTTPFilter` would hold it.
    pub entry: FilterEntry,
}

/// Everything one Ingress's annotations translate into.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Translation {
    /// One per annotation under the prefix, in key order once [`translate`] returns.
    pub findings: Vec<Finding>,
    /// Filter entries, in chain order once [`translate`] returns.
    pub entries: Vec<Entry>,
    /// Cluster settings of the Ingress's backends (no `targetRefs`: the variant applies to
    /// this Ingress's backends only, on top of any `BackendPolicy` of their Service).
    pub policy: BackendPolicySpec,
    /// Upstream protocol of the Ingress's backends (`backend-protocol`), over `appProtocol`.
    pub protocol: Option<UpstreamProtocol>,
    /// Whether the Ingress is a canary (`canary: "true"`), and its rules.
    pub canary: Option<canary::Canary>,
    /// What the front end builds per route and host (regex paths, rewrites, aliases,
    /// redirects).
    pub routes: paths::RouteSettings,
}

impl Translation {
    /// Record that annotation `name` (value `value`) became `verdict`.
    pub fn found(&mut self, name: &str, value: &str, verdict: Verdict) {
        self.findings.push(Finding {
            name: name.to_owned(),
            value: value.to_owned(),
            verdict,
        });
    }

    /// Add a filter entry.
    pub fn entry(&mut self, from: Vec<&'static str>, phase: Phase, entry: FilterEntry) {
        self.entries.push(Entry { from, phase, entry });
    }

    /// Whether the translation changes the Ingress's clusters.
    pub fn has_variant(&self) -> bool {
        self.protocol.is_some() || self.policy != BackendPolicySpec::default()
    }

    /// The cluster variant the Ingress's backends use, if its annotations change cluster
    /// settings. Named by content, so Ingresses with the same settings share clusters.
    pub fn variant(&self) -> Option<Arc<Variant>> {
        if !self.has_variant() {
            return None;
        }
        let text = serde_json::to_string(&(&self.policy, &self.protocol)).unwrap_or_default();
        // FNV-1a: the name is in `/config` and goldens, so it must not depend on the toolchain.
        let hash = text.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        Some(Arc::new(Variant {
            name: format!("nginx-{hash:08x}"),
            policy: self.policy.clone(),
            protocol: self.protocol,
        }))
    }
}

/// Translate the annotations of one Ingress (pure; see the module docs).
pub fn translate(ctx: &Context<'_>) -> Translation {
    let mut t = Translation::default();
    if ctx.annotations.is_empty() {
        return t;
    }
    access::translate(ctx, &mut t);
    paths::translate(ctx, &mut t);
    upstream::translate(ctx, &mut t);
    auth::translate(ctx, &mut t);
    cors::translate(ctx, &mut t);
    limits::translate(ctx, &mut t);
    headers::translate(ctx, &mut t);
    canary::translate(ctx, &mut t); // last: it rewrites the other families' findings
    for (name, value) in ctx.annotations.iter() {
        if t.findings.iter().any(|f| f.name == name) {
            continue;
        }
        let verdict = match SNIPPETS.iter().find(|(s, _)| *s == name) {
            Some((_, instead)) => Verdict::Refused(format!(
                "snippets (free-text nginx configuration) are refused by design; the Ingress \
                 is served without it. Instead: {instead}"
            )),
            None => Verdict::Unsupported(
                "unknown or unsupported annotation; the Ingress is served without it".to_owned(),
            ),
        };
        t.found(name, value, verdict);
    }
    t.findings.sort_by(|a, b| a.name.cmp(&b.name));
    t.entries.sort_by_key(|e| e.phase);
    t
}

/// Compile a translation's entries into filters and report its findings on the Ingress:
/// what compile serves. An entry that does not compile (a missing Secret, a bad value the
/// family let through) fails closed like an invalid annotation.
pub(in crate::compile) fn compile(
    t: &Translation,
    ctx: &Context<'_>,
    source: &Source<'_>,
    status: &mut Status,
) -> Vec<Filter> {
    report(t, &ctx.annotations, source, status);
    let fails_closed = t
        .findings
        .iter()
        .filter(|f| {
            matches!(
                f.verdict,
                Verdict::Invalid {
                    fails_closed: true,
                    ..
                }
            )
        })
        .map(|f| ctx.annotations.key(&f.name))
        .collect::<Vec<_>>();
    if !fails_closed.is_empty() {
        return vec![Filter::Deny(DirectResponse {
            status: 500,
            body: format!("annotation {} is invalid\n", fails_closed.join(", ")),
        })];
    }
    // Families write only values they checked; a policy that still does not apply is a bug
    // worth failing closed over, like an entry that does not compile.
    let mut scratch = Cluster::new(ClusterKey::new("", "", 0), "", UpstreamProtocol::Http1);
    if let Err(e) = policy::apply(&t.policy, &mut scratch) {
        let message = format!("annotations: cluster setting {}: {}", e.field, e.message);
        return fail_closed(message, source, status);
    }
    let entry_ctx = EntryContext {
        key: ctx.key,
        objects: ctx.objects,
    };
    let mut out = Vec::with_capacity(t.entries.len());
    for e in &t.entries {
        match filters::compile_entry(&e.entry, &entry_ctx) {
            Ok(filter) => out.push(filter),
            Err(err) => {
                let keys = e
                    .from
                    .iter()
                    .map(|n| ctx.annotations.key(n))
                    .collect::<Vec<_>>()
                    .join(", ");
                let field = if err.field.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", err.field)
                };
                let message = format!("annotation {keys}: {}{field}", err.message);
                return fail_closed(message, source, status);
            }
        }
    }
    out
}

/// The chain of an Ingress whose annotations cannot be served as written: an error on the
/// Ingress, and every request answered 500 with `message`.
fn fail_closed(message: String, source: &Source<'_>, status: &mut Status) -> Vec<Filter> {
    status.error(
        source,
        condition_types::ACCEPTED,
        reasons::INVALID_ANNOTATION,
        format!("{message}; the Ingress's routes answer 500"),
    );
    vec![Filter::Deny(DirectResponse {
        status: 500,
        body: format!("{message}\n"),
    })]
}

/// Conditions for every finding that is not a plain translation, in key order.
fn report(
    t: &Translation,
    annotations: &Annotations<'_>,
    source: &Source<'_>,
    status: &mut Status,
) {
    for f in &t.findings {
        let key = annotations.key(&f.name);
        let (reason, error) = match &f.verdict {
            Verdict::Translated(_) => continue,
            Verdict::Partial { .. } => (reasons::PARTIAL_ANNOTATION, false),
            Verdict::Unsupported(_) => (reasons::UNSUPPORTED_ANNOTATION, false),
            Verdict::Refused(_) => (reasons::SNIPPET_REFUSED, false),
            Verdict::Invalid { fails_closed, .. } => (reasons::INVALID_ANNOTATION, *fails_closed),
        };
        let message = format!("annotation {key}: {}", f.verdict);
        if error {
            status.error(source, condition_types::ACCEPTED, reason, message);
        } else {
            status.warning(source, condition_types::ACCEPTED, reason, message);
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the families' unit tests.
    use super::*;

    /// The translation of an Ingress in namespace `default` with these annotations (names
    /// without prefix), over `objects`.
    pub(crate) fn translate_with(objects: &Objects, annotations: &[(&str, &str)]) -> Translation {
        let ingress = ingress(annotations);
        let key = ObjectKey::new("default", "test");
        translate(&Context {
            annotations: Annotations::of(&ingress, DEFAULT_PREFIX),
            ingress: &ingress,
            key: &key,
            objects,
        })
    }

    /// [`translate_with`] over no objects.
    pub(crate) fn translate_only(annotations: &[(&str, &str)]) -> Translation {
        translate_with(&Objects::default(), annotations)
    }

    /// An Ingress `default/test` with these annotations under the default prefix.
    pub(crate) fn ingress(annotations: &[(&str, &str)]) -> Ingress {
        let mut ingress = Ingress::default();
        ingress.metadata.namespace = Some("default".into());
        ingress.metadata.name = Some("test".into());
        ingress.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (format!("{DEFAULT_PREFIX}/{k}"), (*v).to_owned()))
                .collect(),
        );
        ingress
    }

    /// The verdict of annotation `name`.
    pub(crate) fn verdict<'t>(t: &'t Translation, name: &str) -> &'t Verdict {
        &t.findings
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no finding for {name}: {:?}", t.findings))
            .verdict
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn unknown_annotations_and_snippets_are_reported_in_key_order() {
        let t = translate_only(&[
            ("server-snippet", "return 200;"),
            ("frobnicate", "yes"),
            ("proxy-body-size", "1m"),
        ]);
        let names: Vec<_> = t.findings.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["frobnicate", "proxy-body-size", "server-snippet"]);
        assert!(matches!(verdict(&t, "frobnicate"), Verdict::Unsupported(_)));
        assert!(
            matches!(verdict(&t, "server-snippet"), Verdict::Refused(w) if w.contains("HTTPFilter"))
        );
        assert!(matches!(
            verdict(&t, "proxy-body-size"),
            Verdict::Translated(_)
        ));
    }

    #[test]
    fn another_prefix_reads_only_its_own_annotations() {
        let mut ingress = ingress(&[("proxy-body-size", "1m")]);
        ingress
            .metadata
            .annotations
            .get_or_insert_default()
            .insert("custom.io/proxy-body-size".into(), "2m".into());
        let a = Annotations::of(&ingress, "custom.io");
        assert_eq!(a.get("proxy-body-size"), Some("2m"));
        assert_eq!(a.iter().count(), 1);
        assert_eq!(a.key("x"), "custom.io/x");
    }

    #[test]
    fn variants_are_named_by_content() {
        assert!(Translation::default().variant().is_none());
        let name = |protocol| {
            let t = Translation {
                protocol: Some(protocol),
                ..Translation::default()
            };
            t.variant().expect("a variant").name.clone()
        };
        assert_eq!(name(UpstreamProtocol::H2c), name(UpstreamProtocol::H2c));
        assert_ne!(name(UpstreamProtocol::H2c), name(UpstreamProtocol::Tls));
    }
}
