//! Canary annotations (`canary`, `canary-by-header`, `canary-by-header-value`,
//! `canary-by-header-pattern`, `canary-by-cookie`, `canary-weight`, `canary-weight-total`).
//!
//! An Ingress with `canary: "true"` is not served on its own (ingress-nginx merges it into
//! the main Ingress as an *alternative backend*): each (host, path) of its rules joins the
//! route of the **main** Ingress with the same host and the same path (same path type), and
//! requests of that route go to the canary's backend when, in ingress-nginx's order
//! (`balancer.lua`, `route_to_alternative_balancer`):
//!
//! 1. the `canary-by-header` request header says `always` (`never`: the main backend); with
//!    `canary-by-header-value` the header must equal it, with `canary-by-header-pattern`
//!    match it (then there is no `never`); any other value falls through;
//! 2. the `canary-by-cookie` cookie says `always` (`never`: main); any other value falls
//!    through;
//! 3. else at random with probability `canary-weight` / total, the total being
//!    `canary-weight-total` when above 100 and 100 otherwise (`balancer.lua` uses
//!    `math.random(total) <= weight`: 0 or less never, the total or more always).
//!
//! It compiles into weir's own pieces ([`join`]): the main route keeps its match and gets
//! two weighted backends (main `total - weight`, canary `weight`), and routes with header
//! matches are added next to it, all with the main route's path, filters and source order:
//! one per header outcome and per cookie outcome (a cookie is a `Cookie` header regex; a
//! request may carry several `cookie` headers over HTTP/2, and a header match holds when any
//! of a repeated header's values does), plus one per (header, cookie) outcome pair, carrying
//! both matches and the header's outcome. The router tries more header matches first
//! ([`crate::snapshot::RouteMatch::precedence`]), so when a header route and a cookie route
//! both match, the pair route — with the header's outcome — has already answered: the
//! precedence header → cookie → weight is in the matches themselves and does not depend on
//! how routes of equal precedence are ordered. The derived matches differ from each other
//! and from every route an Ingress writes (those have no header matches), so the conflicts
//! pass never flags them.
//!
//! A canary Ingress's other annotations are ignored by ingress-nginx (the main Ingress's
//! apply), except `load-balance`, `upstream-hash-by` and session affinity, which shape the
//! canary's own backend: its filter entries are dropped and their findings say so; its
//! cluster settings stay on its backend's variant.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::ingress::{Ingress, IngressSpec};
use http::HeaderName;
use serde::Serialize;

use super::{Context, Translation, Verdict};
use crate::api::{annotations, condition_types, reasons};
use crate::compile::ir::{
    BackendRef, FieldPath, HostMatch, IrAction, IrForward, IrRoute, IrRouteTable, Source, SourceId,
    SourceOrder, Variant,
};
use crate::compile::status::Status;
use crate::snapshot::{HeaderMatch, Pattern, RouteMatch, StringMatch};

const CANARY: &str = "canary";
const BY_HEADER: &str = "canary-by-header";
const BY_HEADER_VALUE: &str = "canary-by-header-value";
const BY_HEADER_PATTERN: &str = "canary-by-header-pattern";
const BY_COOKIE: &str = "canary-by-cookie";
const WEIGHT: &str = "canary-weight";
const WEIGHT_TOTAL: &str = "canary-weight-total";
/// Every annotation of the family but `canary`, in the order they are read.
const RULES: [&str; 6] = [
    BY_HEADER,
    BY_HEADER_VALUE,
    BY_HEADER_PATTERN,
    BY_COOKIE,
    WEIGHT,
    WEIGHT_TOTAL,
];

/// Annotations ingress-nginx keeps on a canary Ingress (they shape the canary's backend);
/// a name ending in `-` is a prefix.
const KEPT_ON_CANARY: [&str; 7] = [
    "load-balance",
    "upstream-hash-by",
    "upstream-hash-by-subset",
    "upstream-hash-by-subset-size",
    "affinity",
    "affinity-",
    "session-cookie-",
];

/// What an Ingress's canary annotations make of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Canary {
    /// A canary whose rules join its main Ingress's routes.
    Rules(Box<Rules>),
    /// A canary with an invalid value: not used at all (the main Ingress serves as if it
    /// had no canary).
    Unusable,
}

/// When a request of a main route goes to the canary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rules {
    /// `canary-by-header` (with its value or pattern).
    pub header: Option<Rule>,
    /// `canary-by-cookie`.
    pub cookie: Option<Rule>,
    /// Canary share of the remaining requests: `weight` out of `total`, `weight` already
    /// clamped to `0..=total`.
    pub weight: u32,
    /// The total the weight is out of (100, or `canary-weight-total` above 100).
    pub total: u32,
}

/// A header rule: the match that sends a request to the canary, and the one that keeps it
/// on the main backend (`never`), if any. Any other request falls through to the next rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Matches → canary.
    pub canary: HeaderMatch,
    /// Matches → main backend.
    pub main: Option<HeaderMatch>,
}

impl Rule {
    /// The rule's outcomes: (match, whether it goes to the canary).
    fn outcomes(&self) -> impl Iterator<Item = (&HeaderMatch, bool)> {
        std::iter::once((&self.canary, true)).chain(self.main.iter().map(|m| (m, false)))
    }
}

/// Read the family's annotations into `t`. Runs after the other families: on a canary
/// Ingress it rewrites their findings (ingress-nginx ignores most of them there) and drops
/// their filter entries.
pub(super) fn translate(ctx: &Context<'_>, t: &mut Translation) {
    let enabled = match ctx.get(CANARY) {
        None => false,
        Some(value) => match ctx.bool(CANARY) {
            Some(Ok(on)) => {
                let to = if on {
                    "canary of the main Ingress with the same host and path (by header, cookie, weight)"
                } else {
                    "not a canary"
                };
                t.found(CANARY, value, Verdict::Translated(to.to_owned()));
                on
            }
            _ => {
                t.found(
                    CANARY,
                    value,
                    Verdict::Invalid {
                        why: format!(
                            "{value:?} is not \"true\" or \"false\"; served as an ordinary \
                             Ingress, as ingress-nginx does"
                        ),
                        fails_closed: false,
                    },
                );
                false
            }
        },
    };
    if !enabled {
        for name in RULES {
            if let Some(value) = ctx.get(name) {
                t.found(
                    name,
                    value,
                    Verdict::Invalid {
                        why: format!(
                            "{} is not \"true\"; ignored (ingress-nginx: configured but not \
                             enabled)",
                            ctx.annotations.key(CANARY)
                        ),
                        fails_closed: false,
                    },
                );
            }
        }
        return;
    }
    let mut usable = true;
    let mut invalid = |t: &mut Translation, name: &str, value: &str, why: String| {
        usable = false;
        t.found(
            name,
            value,
            Verdict::Invalid {
                why: format!(
                    "{why}; the canary Ingress is not used (its main Ingress serves alone)"
                ),
                fails_closed: false,
            },
        );
    };

    let mut header = None;
    let header_name = ctx.get(BY_HEADER);
    if let Some(value) = header_name {
        match header_name_of(value) {
            Ok(name) => header = Some(name),
            Err(why) => invalid(t, BY_HEADER, value, why),
        }
    }
    let exact = ctx.get(BY_HEADER_VALUE).filter(|v| !v.is_empty());
    let mut header_rule = None;
    if let Some(value) = ctx.get(BY_HEADER_VALUE) {
        if let Some(why) = no_effect(value, header_name.is_some()) {
            t.found(BY_HEADER_VALUE, value, Verdict::Unsupported(why.to_owned()));
        } else if !basic_chars(&value.replace(' ', "")) {
            invalid(
                t,
                BY_HEADER_VALUE,
                value,
                format!("{value:?} has characters other than a-z, A-Z, 0-9 and -._~/:"),
            );
        } else if let Some(name) = &header {
            t.found(
                BY_HEADER_VALUE,
                value,
                Verdict::Translated(format!("route matching header {name} = {value:?} → canary")),
            );
            header_rule = Some(Rule {
                canary: HeaderMatch {
                    name: name.clone(),
                    value: StringMatch::Exact(value.to_owned()),
                },
                main: None,
            });
        } else {
            t.found(BY_HEADER_VALUE, value, unused_without_header());
        }
    }
    if let Some(value) = ctx.get(BY_HEADER_PATTERN) {
        if let Some(why) = no_effect(value, header_name.is_some()) {
            t.found(
                BY_HEADER_PATTERN,
                value,
                Verdict::Unsupported(why.to_owned()),
            );
        } else if exact.is_some() {
            t.found(
                BY_HEADER_PATTERN,
                value,
                Verdict::Unsupported(
                    "ignored: canary-by-header-value is set and wins (as in ingress-nginx)"
                        .to_owned(),
                ),
            );
        } else {
            match Pattern::new(value) {
                Err(e) => invalid(
                    t,
                    BY_HEADER_PATTERN,
                    value,
                    format!("{value:?} is not a regular expression weir accepts: {e}"),
                ),
                Ok(regex) => {
                    if let Some(name) = &header {
                        t.found(
                            BY_HEADER_PATTERN,
                            value,
                            Verdict::Partial {
                                to: format!(
                                    "route matching header {name} against {value:?} (anywhere \
                                     in the value) → canary"
                                ),
                                differs: "the pattern is the regex crate's syntax, not PCRE: \
                                          look-around and back-references are not accepted"
                                    .to_owned(),
                            },
                        );
                        header_rule = Some(Rule {
                            canary: HeaderMatch {
                                name: name.clone(),
                                value: StringMatch::Regex(regex),
                            },
                            main: None,
                        });
                    } else {
                        t.found(BY_HEADER_PATTERN, value, unused_without_header());
                    }
                }
            }
        }
    }
    if let (Some(name), Some(value)) = (&header, header_name) {
        let rule = header_rule.get_or_insert_with(|| Rule {
            canary: HeaderMatch {
                name: name.clone(),
                value: StringMatch::Exact("always".to_owned()),
            },
            main: Some(HeaderMatch {
                name: name.clone(),
                value: StringMatch::Exact("never".to_owned()),
            }),
        });
        let to = match &rule.main {
            Some(_) => format!("routes by header {name}: always → canary, never → main"),
            None => format!("routes by header {name} (its value or pattern → canary)"),
        };
        t.found(BY_HEADER, value, Verdict::Translated(to));
    }

    let mut cookie = None;
    if let Some(value) = ctx.get(BY_COOKIE) {
        if value.is_empty() || !basic_chars(value) {
            invalid(
                t,
                BY_COOKIE,
                value,
                format!("{value:?} is not a cookie name of a-z, A-Z, 0-9 and -._~/:"),
            );
        } else {
            t.found(
                BY_COOKIE,
                value,
                Verdict::Translated(format!(
                    "routes by cookie {value}: always → canary, never → main"
                )),
            );
            cookie = Some(Rule {
                canary: cookie_match(value, "always"),
                main: Some(cookie_match(value, "never")),
            });
        }
    }

    let mut total = 100_i64;
    if let Some(value) = ctx.get(WEIGHT_TOTAL) {
        match atoi(value) {
            Some(n) => {
                total = if n > 100 { n } else { 100 };
                let to = if n > 100 {
                    format!("weights out of {n}")
                } else {
                    format!(
                        "weights out of 100 (ingress-nginx's balancer uses 100 for totals up to 100, {n} included)"
                    )
                };
                t.found(WEIGHT_TOTAL, value, Verdict::Translated(to));
            }
            None => invalid(
                t,
                WEIGHT_TOTAL,
                value,
                format!("{value:?} is not an integer"),
            ),
        }
    }
    let total = u32::try_from(total).unwrap_or(u32::MAX);
    let mut weight = 0_u32;
    if let Some(value) = ctx.get(WEIGHT) {
        match atoi(value) {
            Some(n) => {
                weight = u32::try_from(n.clamp(0, i64::from(total))).unwrap_or(total);
                t.found(
                    WEIGHT,
                    value,
                    Verdict::Translated(format!(
                        "weighted backends: canary {weight}, main {} (out of {total})",
                        total - weight
                    )),
                );
            }
            None => invalid(t, WEIGHT, value, format!("{value:?} is not an integer")),
        }
    }

    ignore_the_rest(t);
    t.canary = Some(if usable {
        Canary::Rules(Box::new(Rules {
            header: header_rule,
            cookie,
            weight,
            total,
        }))
    } else {
        Canary::Unusable
    });
}

/// On a canary Ingress: the other families' filter entries are dropped and their findings
/// say why; cluster settings other than balancing and affinity stay on the canary's backend,
/// which ingress-nginx does not do.
fn ignore_the_rest(t: &mut Translation) {
    let in_entries: Vec<&str> = t.entries.iter().flat_map(|e| e.from.clone()).collect();
    for f in &mut t.findings {
        let kept = KEPT_ON_CANARY.iter().any(|k| match k.strip_suffix('-') {
            Some(_) => f.name.starts_with(k),
            None => f.name == *k,
        });
        if f.name.starts_with("canary") || kept {
            continue;
        }
        // An unreadable value is ignored too: it must not fail the canary's routes closed,
        // since it has none of its own.
        if in_entries.contains(&f.name.as_str()) || matches!(f.verdict, Verdict::Invalid { .. }) {
            f.verdict = Verdict::Unsupported(
                "ignored on a canary Ingress, as ingress-nginx does: requests of the main \
                 Ingress's routes get the main Ingress's filters"
                    .to_owned(),
            );
        } else if let Verdict::Translated(to) | Verdict::Partial { to, .. } = &f.verdict {
            f.verdict = Verdict::Partial {
                to: format!("{to}, on the canary's backend only"),
                differs: "ingress-nginx ignores it on a canary Ingress (only load-balance, \
                          upstream-hash-by and session affinity shape the canary's backend)"
                    .to_owned(),
            };
        }
    }
    t.entries.clear();
}

/// Why a `canary-by-header-value` or `-pattern` has no effect, if it has none: empty
/// (balancer.lua tests `#headerValue > 0`, the same for the pattern), or without
/// `canary-by-header`.
fn no_effect(value: &str, has_header: bool) -> Option<&'static str> {
    if value.is_empty() {
        Some("empty: no effect (as in ingress-nginx)")
    } else if !has_header {
        Some("has no effect without canary-by-header (as in ingress-nginx); ignored")
    } else {
        None
    }
}

/// The verdict of a header value or pattern whose `canary-by-header` is invalid.
fn unused_without_header() -> Verdict {
    Verdict::Unsupported("not used: canary-by-header is invalid".to_owned())
}

/// `strconv.Atoi`: an optional sign and decimal digits.
fn atoi(value: &str) -> Option<i64> {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// ingress-nginx's `BasicCharsRegex`: letters, digits and `-._~/:`.
fn basic_chars(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/:".contains(&b))
}

/// The header name of `canary-by-header`: ingress-nginx's character set (spaces removed),
/// and a valid HTTP header name.
fn header_name_of(value: &str) -> Result<HeaderName, String> {
    let name = value.replace(' ', "");
    if name.is_empty() || !basic_chars(&name) {
        return Err(format!(
            "{value:?} is not a header name of a-z, A-Z, 0-9 and -._~"
        ));
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{value:?} is not a header name"))
}

/// A `Cookie` header that carries `name=value` (the name compared case-insensitively, as
/// nginx's `$cookie_` variables do; the value exactly, as `balancer.lua` does).
fn cookie_match(name: &str, value: &str) -> HeaderMatch {
    let source = format!(
        r"(?:^|;)[ \t]*(?i:{})=(?-i:{})[ \t]*(?:;|$)",
        regex::escape(name),
        regex::escape(value)
    );
    HeaderMatch {
        name: http::header::COOKIE,
        value: StringMatch::Regex(
            Pattern::new(&source).expect("invariant: escaped cookie patterns compile"),
        ),
    }
}

/// A canary Ingress waiting for the main routes to exist.
pub(in crate::compile::ingress) struct Pending<'a> {
    ingress: Source<'a>,
    source: SourceId,
    spec: Option<&'a IngressSpec>,
    rules: Rules,
    variant: Option<Arc<Variant>>,
    /// Whether it names `weir.dev/filters` (not used: the main Ingress's filters apply).
    filters: bool,
}

/// If `t` makes its Ingress a canary, keep it for [`join`] (a usable one) and say so: the
/// front end serves nothing of it on its own (routes, default backend, TLS).
pub(in crate::compile::ingress) fn defer<'a>(
    t: &Translation,
    ingress: &'a Ingress,
    source: (Source<'a>, SourceId),
    variant: Option<&Arc<Variant>>,
    pending: &mut Vec<Pending<'a>>,
) -> bool {
    match &t.canary {
        None => false,
        Some(Canary::Unusable) => true,
        Some(Canary::Rules(rules)) => {
            pending.push(Pending {
                ingress: source.0,
                source: source.1,
                spec: ingress.spec.as_ref(),
                rules: (**rules).clone(),
                variant: variant.cloned(),
                filters: ingress
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(annotations::FILTERS)),
            });
            true
        }
    }
}

/// Join every canary's (host, path) pairs to the main route with the same host and path:
/// weighted backends on it and header-matched routes next to it (see the module docs). The
/// main route is the first in source order among the identical matches (the one the
/// conflicts pass keeps unless its backends do not resolve); one canary per main route, the
/// first in source order, as ingress-nginx applies one. A pair without a main route, or
/// whose main route already has a canary, is not served (Warning on the canary Ingress).
pub(in crate::compile::ingress) fn join<'a>(
    pending: &[Pending<'a>],
    table: &mut IrRouteTable<'a>,
    status: &mut Status,
) {
    // (host, main route name) → the canary that took it.
    let mut taken: BTreeMap<(HostMatch, String), String> = BTreeMap::new();
    for canary in pending {
        let ingress = &canary.ingress;
        let unused = [
            (
                canary.filters,
                "annotation weir.dev/filters is not used on a canary Ingress: requests of the \
                 main Ingress's routes get the main Ingress's filters",
            ),
            (
                canary.spec.is_some_and(|s| s.default_backend.is_some()),
                "spec.defaultBackend of a canary Ingress is not served (ingress-nginx makes it \
                 an alternative of the main default backend; weir does not)",
            ),
        ];
        for (_, message) in unused.into_iter().filter(|(set, _)| *set) {
            status.warning(
                ingress,
                condition_types::ACCEPTED,
                reasons::CANARY_NOT_APPLIED,
                message.to_owned(),
            );
        }
        let rules = canary
            .spec
            .and_then(|s| s.rules.as_deref())
            .unwrap_or_default();
        for (rule_index, rule) in rules.iter().enumerate() {
            let host = match rule.host.as_deref() {
                None | Some("") => HostMatch::Any,
                Some(host) => match super::super::parse_host(host) {
                    Ok(host) => host,
                    Err(why) => {
                        status.error(
                            ingress,
                            condition_types::ACCEPTED,
                            reasons::INVALID_HOST,
                            format!("spec.rules[{rule_index}].host {host:?} {why}; rule skipped"),
                        );
                        continue;
                    }
                },
            };
            for (path_index, path) in rule.http.iter().flat_map(|h| &h.paths).enumerate() {
                let field =
                    FieldPath::indexed("spec.rules[{}].http.paths[{}]", [rule_index, path_index]);
                let path_match = match super::super::parse_path(
                    path.path.as_deref().unwrap_or(""),
                    &path.path_type,
                ) {
                    Ok(m) => m,
                    Err((reason, why)) => {
                        let message = format!("{field}: {why}; path skipped");
                        status.error(ingress, condition_types::ACCEPTED, reason, message);
                        continue;
                    }
                };
                let backends = match super::super::action(
                    &ingress.key.namespace,
                    &path.backend,
                    canary.variant.as_ref(),
                    field,
                ) {
                    IrAction::Forward(f) => f.backends,
                    IrAction::Reject(r) => {
                        status.error(ingress, r.type_, r.reason, r.message);
                        continue;
                    }
                };
                let wanted = RouteMatch::path(path_match);
                let described = format!(
                    "host {} path {} {:?}",
                    host.display(),
                    wanted.path.kind(),
                    wanted.path.as_str()
                );
                let Some(routes) = table.hosts.get_mut(&host) else {
                    not_applied(
                        status,
                        ingress,
                        field,
                        &described,
                        "no main Ingress serves it",
                    );
                    continue;
                };
                let main = routes
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        r.matches == wanted
                            && r.order.source != canary.source
                            && matches!(r.action, IrAction::Forward(_))
                    })
                    .min_by_key(|(_, r)| r.order)
                    .map(|(i, _)| i);
                let Some(main) = main else {
                    not_applied(
                        status,
                        ingress,
                        field,
                        &described,
                        "no main Ingress serves it",
                    );
                    continue;
                };
                let key = (host.clone(), routes[main].name.clone());
                if let Some(other) = taken.get(&key) {
                    let why = format!(
                        "Ingress {other} is already its canary (ingress-nginx applies one \
                         canary per path)"
                    );
                    not_applied(status, ingress, field, &described, &why);
                    continue;
                }
                taken.insert(key, ingress.key.to_string());
                let derived = apply(&mut routes[main], &canary.rules, backends);
                routes.extend(derived);
            }
        }
    }
}

fn not_applied(status: &mut Status, ingress: &Source<'_>, field: FieldPath, what: &str, why: &str) {
    status.warning(
        ingress,
        condition_types::ACCEPTED,
        reasons::CANARY_NOT_APPLIED,
        format!("{field}: canary for {what}: {why}; not served"),
    );
}

/// Give `main` the weighted canary backends and return the header-matched routes derived
/// from it, in the order they are tried (the router's precedence decides anyway).
fn apply<'a>(
    main: &mut IrRoute<'a>,
    rules: &Rules,
    canary: Vec<BackendRef<'a>>,
) -> Vec<IrRoute<'a>> {
    let IrAction::Forward(forward) = &mut main.action else {
        return Vec::new();
    };
    let main_backends: Vec<BackendRef<'a>> = forward.backends.iter().map(copy).collect();
    let unresolved = forward.unresolved;
    let to = |to_canary: bool| -> Vec<BackendRef<'a>> {
        if to_canary {
            canary.iter().map(copy).collect()
        } else {
            main_backends.iter().map(copy).collect()
        }
    };
    let route = |suffix: String, headers: Vec<HeaderMatch>, backends| IrRoute {
        name: format!("{}/canary-{suffix}", main.name),
        matches: main.matches.with_headers(headers),
        filters: main.filters.clone(),
        action: IrAction::Forward(IrForward {
            backends,
            unresolved,
            timeouts: Default::default(),
        }),
        field: main.field,
        order: SourceOrder { ..main.order },
    };
    let word = |c: bool| if c { "canary" } else { "main" };
    let mut derived = Vec::new();
    if let (Some(header), Some(cookie)) = (&rules.header, &rules.cookie) {
        for (h, h_canary) in header.outcomes() {
            for (c, c_canary) in cookie.outcomes() {
                derived.push(route(
                    format!("header-{}-cookie-{}", word(h_canary), word(c_canary)),
                    vec![h.clone(), c.clone()],
                    to(h_canary),
                ));
            }
        }
    }
    for (kind, rule) in [("header", &rules.header), ("cookie", &rules.cookie)] {
        for (m, to_canary) in rule.iter().flat_map(|r| r.outcomes()) {
            derived.push(route(
                format!("{kind}-{}", word(to_canary)),
                vec![m.clone()],
                to(to_canary),
            ));
        }
    }
    if rules.weight > 0 {
        let main_total: u32 = main_backends.iter().map(|b| b.weight).sum();
        let canary_total: u32 = canary.iter().map(|b| b.weight).sum();
        // Shares: main weight × (total − w), canary weight × w, each scaled by the other
        // side's sum so that the canary side gets exactly w / total of the requests.
        let mut backends = Vec::with_capacity(main_backends.len() + canary.len());
        for b in &main_backends {
            let mut b = copy(b);
            b.weight = b
                .weight
                .saturating_mul(rules.total - rules.weight)
                .saturating_mul(canary_total.max(1));
            backends.push(b);
        }
        for b in &canary {
            let mut b = copy(b);
            b.weight = b
                .weight
                .saturating_mul(rules.weight)
                .saturating_mul(main_total.max(1));
            backends.push(b);
        }
        if let IrAction::Forward(forward) = &mut main.action {
            forward.backends = backends;
        }
    }
    derived
}

/// A fresh copy of a backend reference (unresolved: the backends pass resolves each).
fn copy<'a>(b: &BackendRef<'a>) -> BackendRef<'a> {
    let mut out = BackendRef::new(b.namespace, b.service, b.port);
    out.weight = b.weight;
    out.filters = b.filters.clone();
    out.variant = b.variant.clone();
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn rules(t: &Translation) -> &Rules {
        match &t.canary {
            Some(Canary::Rules(r)) => r,
            other => panic!("not a usable canary: {other:?}"),
        }
    }

    #[test]
    fn an_ingress_without_canary_true_is_not_a_canary() {
        assert_eq!(translate_only(&[("proxy-body-size", "1m")]).canary, None);
        let t = translate_only(&[("canary", "false"), ("canary-weight", "10")]);
        assert_eq!(t.canary, None);
        assert!(matches!(
            verdict(&t, "canary-weight"),
            Verdict::Invalid { fails_closed: false, why } if why.contains("not enabled")
        ));
        let t = translate_only(&[("canary", "yes")]);
        assert_eq!(t.canary, None);
        assert!(matches!(verdict(&t, "canary"), Verdict::Invalid { .. }));
    }

    #[test]
    fn header_alone_means_always_and_never() {
        let t = translate_only(&[("canary", "true"), ("canary-by-header", "X-Canary")]);
        let header = rules(&t).header.as_ref().expect("header rule");
        assert_eq!(header.canary.name, "x-canary");
        assert_eq!(header.canary.value, StringMatch::Exact("always".into()));
        let main = header.main.as_ref().expect("never");
        assert_eq!(main.value, StringMatch::Exact("never".into()));
        assert_eq!(rules(&t).weight, 0);
        assert_eq!(rules(&t).total, 100);

        // An empty value or pattern is no value (balancer.lua: `#headerValue > 0`).
        let t = translate_only(&[
            ("canary", "true"),
            ("canary-by-header", "X-Canary"),
            ("canary-by-header-value", ""),
            ("canary-by-header-pattern", ""),
        ]);
        let header = rules(&t).header.as_ref().expect("header rule");
        assert_eq!(header.canary.value, StringMatch::Exact("always".into()));
        assert!(header.main.is_some());
    }

    #[test]
    fn header_value_wins_over_pattern_and_has_no_never() {
        let t = translate_only(&[
            ("canary", "true"),
            ("canary-by-header", "X-Region"),
            ("canary-by-header-value", "us-east"),
            ("canary-by-header-pattern", "^eu"),
        ]);
        let header = rules(&t).header.as_ref().expect("header rule");
        assert_eq!(header.canary.value, StringMatch::Exact("us-east".into()));
        assert!(header.main.is_none());
        assert!(matches!(
            verdict(&t, "canary-by-header-pattern"),
            Verdict::Unsupported(w) if w.contains("wins")
        ));

        let t = translate_only(&[
            ("canary", "true"),
            ("canary-by-header", "X-Region"),
            ("canary-by-header-pattern", "^eu-"),
        ]);
        let header = rules(&t).header.as_ref().expect("header rule");
        assert!(
            matches!(&header.canary.value, StringMatch::Regex(p) if p.is_match("eu-west") && !p.is_match("us-eu-"))
        );
        assert!(header.main.is_none());
    }

    #[test]
    fn cookie_matches_its_name_with_always_or_never_in_any_position() {
        let t = translate_only(&[("canary", "true"), ("canary-by-cookie", "use.canary")]);
        let cookie = rules(&t).cookie.as_ref().expect("cookie rule");
        assert_eq!(cookie.canary.name, http::header::COOKIE);
        let StringMatch::Regex(always) = &cookie.canary.value else {
            panic!("a regex")
        };
        for yes in [
            "use.canary=always",
            "a=1; use.canary=always",
            "use.canary=always; b=2",
            "USE.CANARY=always",
        ] {
            assert!(always.is_match(yes), "{yes}");
        }
        for no in [
            "use.canary=never",
            "use.canary=alwaysx",
            "xuse.canary=always",
            "usexcanary=always",
            "use.canary=ALWAYS",
            "other=use.canary=always",
        ] {
            assert!(!always.is_match(no), "{no}");
        }
        let Some(HeaderMatch {
            value: StringMatch::Regex(never),
            ..
        }) = &cookie.main
        else {
            panic!("a never regex")
        };
        assert!(never.is_match("a=b; use.canary=never"));
    }

    #[test]
    fn weights_are_clamped_and_totals_below_100_are_100() {
        for (weight, total, want) in [
            ("30", None, (30, 100)),
            ("0", None, (0, 100)),
            ("-5", None, (0, 100)),
            ("150", None, (100, 100)),
            ("30", Some("1000"), (30, 1000)),
            ("30", Some("50"), (30, 100)),
            ("+7", None, (7, 100)),
        ] {
            let mut a = vec![("canary", "true"), ("canary-weight", weight)];
            if let Some(total) = total {
                a.push(("canary-weight-total", total));
            }
            let t = translate_only(&a);
            assert_eq!(
                (rules(&t).weight, rules(&t).total),
                want,
                "{weight} {total:?}"
            );
        }
    }

    #[test]
    fn invalid_values_make_the_canary_unusable() {
        for (name, value) in [
            ("canary-weight", "ten"),
            ("canary-weight", "1.5"),
            ("canary-weight-total", "x"),
            ("canary-by-header", "X Bad;"),
            ("canary-by-header-pattern", "(unclosed"),
            ("canary-by-cookie", "a=b"),
        ] {
            let mut a = vec![("canary", "true"), (name, value)];
            if name == "canary-by-header-pattern" {
                a.push(("canary-by-header", "X-Canary"));
            }
            let t = translate_only(&a);
            assert_eq!(t.canary, Some(Canary::Unusable), "{name}={value}");
            assert!(
                matches!(verdict(&t, name), Verdict::Invalid { fails_closed: false, why } if why.contains("not used")),
                "{name}={value}: {:?}",
                verdict(&t, name)
            );
        }
    }

    #[test]
    fn value_without_header_has_no_effect() {
        let t = translate_only(&[("canary", "true"), ("canary-by-header-value", "x")]);
        assert!(rules(&t).header.is_none());
        assert!(matches!(
            verdict(&t, "canary-by-header-value"),
            Verdict::Unsupported(_)
        ));
    }

    #[test]
    fn other_annotations_of_a_canary_are_ignored_but_balancing_stays() {
        let t = translate_only(&[
            ("canary", "true"),
            ("canary-weight", "10"),
            ("whitelist-source-range", "10.0.0.0/8"),
            ("proxy-body-size", "8mb"),
        ]);
        assert!(t.entries.is_empty(), "the canary's filters are dropped");
        for name in ["whitelist-source-range", "proxy-body-size"] {
            assert!(
                matches!(verdict(&t, name), Verdict::Unsupported(w) if w.contains("canary")),
                "{name}: {:?}",
                verdict(&t, name)
            );
        }
        assert!(matches!(
            verdict(&t, "canary-weight"),
            Verdict::Translated(_)
        ));
    }

    /// Route sets, through the whole compile: Services `main` and `canary` in `default`,
    /// Ingress `default/main` (host `a.example`, `/` Prefix → main) and a canary Ingress
    /// `default/canary` (named so that it sorts first: the join must not depend on it).
    mod routes {
        use super::*;
        use crate::compile::{CompileConfig, Compiled, ObjectRef, compile};
        use crate::snapshot::{BackendTarget, RouteAction};
        use crate::store::{KubeObject, ObjectKey, Objects};

        fn ingress(name: &str, annotations: &[(&str, &str)], paths: serde_json::Value) -> Ingress {
            let annotations: BTreeMap<String, String> = annotations
                .iter()
                .map(|(k, v)| {
                    (
                        format!("{}/{k}", super::super::super::DEFAULT_PREFIX),
                        (*v).to_owned(),
                    )
                })
                .collect();
            serde_json::from_value(serde_json::json!({
                "metadata": {"namespace": "default", "name": name, "annotations": annotations},
                "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example", "http": {"paths": paths}}]}
            }))
            .expect("ingress")
        }

        fn path(path: &str, kind: &str, service: &str) -> serde_json::Value {
            serde_json::json!({"path": path, "pathType": kind,
                "backend": {"service": {"name": service, "port": {"number": 80}}}})
        }

        fn run(canary: &[(&str, &str)], canary_paths: serde_json::Value) -> Compiled {
            run_with(canary, canary_paths, Vec::new())
        }

        fn run_with(
            canary: &[(&str, &str)],
            canary_paths: serde_json::Value,
            more: Vec<Ingress>,
        ) -> Compiled {
            let mut objects: Objects =
                crate::compile::testing::services(&["default/main", "default/canary"]);
            let main = ingress(
                "main",
                &[],
                serde_json::json!([path("/", "Prefix", "main")]),
            );
            let mut a = vec![("canary", "true")];
            a.extend_from_slice(canary);
            let canary = ingress("canary", &a, canary_paths);
            for i in [main, canary].into_iter().chain(more) {
                objects.apply(KubeObject::Ingress(i)).expect("named");
            }
            compile(
                &objects,
                &CompileConfig {
                    controller_name: "weir.dev/ingress-controller".to_owned(),
                    http_addr: "127.0.0.1:8080".parse().expect("addr"),
                    https_addr: None,
                    default_backend: None,
                    now_unix: 0,
                    ingress_classes: vec!["nginx".to_owned()],
                    annotations_prefix: super::super::super::DEFAULT_PREFIX.to_owned(),
                    gateway: Default::default(),
                },
            )
        }

        /// Routes of `a.example` in the order the router tries them: (name suffix after
        /// `default/main/0/0`, header matches as `name=value`, backends as `service×weight`).
        fn served(c: &Compiled) -> Vec<(String, Vec<String>, Vec<String>)> {
            let table = c.snapshot.route_tables.values().next().expect("a table");
            table.virtual_hosts.exact["a.example"]
                .routes
                .iter()
                .map(|r| {
                    let headers = r
                        .matches
                        .headers()
                        .iter()
                        .map(|h| match &h.value {
                            StringMatch::Exact(v) => format!("{}={v}", h.name),
                            StringMatch::Regex(p) => format!("{}~{}", h.name, p.as_str()),
                        })
                        .collect();
                    let RouteAction::Forward(f) = &r.action else {
                        panic!("forward")
                    };
                    let backends = f
                        .backends
                        .iter()
                        .map(|b| match &b.target {
                            BackendTarget::Cluster(k) => format!("{}×{}", k.service(), b.weight),
                            BackendTarget::Respond(d) => format!("{}×{}", d.status, b.weight),
                        })
                        .collect();
                    let name = r
                        .name
                        .strip_prefix("default/main/0/0")
                        .expect("derived from main");
                    (name.to_owned(), headers, backends)
                })
                .collect()
        }

        fn reasons_of(c: &Compiled, name: &str) -> Vec<&'static str> {
            let object = ObjectRef {
                kind: "Ingress",
                key: ObjectKey::new("default", name),
            };
            c.status
                .conditions
                .get(&object)
                .map(|cs| cs.iter().map(|c| c.reason).collect())
                .unwrap_or_default()
        }

        #[test]
        fn header_cookie_and_weight_make_pair_routes_first_then_single_then_weighted_main() {
            let c = run(
                &[
                    ("canary-by-header", "X-Canary"),
                    ("canary-by-cookie", "tester"),
                    ("canary-weight", "30"),
                ],
                serde_json::json!([path("/", "Prefix", "canary")]),
            );
            let routes = served(&c);
            let cookie =
                |v: &str| format!("cookie~(?:^|;)[ \\t]*(?i:tester)=(?-i:{v})[ \\t]*(?:;|$)");
            let h = |v: &str| format!("x-canary={v}");
            let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
            assert_eq!(
                routes,
                vec![
                    (
                        "/canary-header-canary-cookie-canary".into(),
                        vec![h("always"), cookie("always")],
                        s(&["canary×1"])
                    ),
                    (
                        "/canary-header-canary-cookie-main".into(),
                        vec![h("always"), cookie("never")],
                        s(&["canary×1"])
                    ),
                    (
                        "/canary-header-main-cookie-canary".into(),
                        vec![h("never"), cookie("always")],
                        s(&["main×1"])
                    ),
                    (
                        "/canary-header-main-cookie-main".into(),
                        vec![h("never"), cookie("never")],
                        s(&["main×1"])
                    ),
                    (
                        "/canary-header-canary".into(),
                        vec![h("always")],
                        s(&["canary×1"])
                    ),
                    (
                        "/canary-header-main".into(),
                        vec![h("never")],
                        s(&["main×1"])
                    ),
                    (
                        "/canary-cookie-canary".into(),
                        vec![cookie("always")],
                        s(&["canary×1"])
                    ),
                    (
                        "/canary-cookie-main".into(),
                        vec![cookie("never")],
                        s(&["main×1"])
                    ),
                    ("".into(), vec![], s(&["main×70", "canary×30"])),
                ]
            );
            assert!(
                reasons_of(&c, "main").is_empty(),
                "{:?}",
                c.status.conditions
            );
            assert!(
                reasons_of(&c, "canary").is_empty(),
                "{:?}",
                c.status.conditions
            );
        }

        #[test]
        fn a_header_value_has_one_route_and_weight_zero_leaves_the_main_route_alone() {
            let c = run(
                &[
                    ("canary-by-header", "X-Region"),
                    ("canary-by-header-value", "eu"),
                ],
                serde_json::json!([path("/", "Prefix", "canary")]),
            );
            let routes = served(&c);
            assert_eq!(routes.len(), 2, "{routes:?}");
            assert_eq!(routes[0].1, ["x-region=eu"]);
            assert_eq!(routes[0].2, ["canary×1"]);
            assert_eq!(routes[1], ("".into(), vec![], vec!["main×1".to_owned()]));
        }

        #[test]
        fn weight_total_is_the_full_share() {
            let c = run(
                &[("canary-weight", "1000"), ("canary-weight-total", "1000")],
                serde_json::json!([path("/", "Prefix", "canary")]),
            );
            assert_eq!(
                served(&c),
                vec![(
                    "".into(),
                    vec![],
                    vec!["main×0".to_owned(), "canary×1000".to_owned()]
                )]
            );
        }

        #[test]
        fn a_canary_without_a_main_route_is_not_served_and_warned() {
            // Same path, other type: not the main route's path.
            let c = run(
                &[("canary-weight", "50")],
                serde_json::json!([
                    path("/", "Exact", "canary"),
                    path("/other", "Prefix", "canary")
                ]),
            );
            assert_eq!(
                served(&c),
                vec![("".into(), vec![], vec!["main×1".to_owned()])]
            );
            assert_eq!(reasons_of(&c, "canary"), [reasons::CANARY_NOT_APPLIED; 2]);
        }

        #[test]
        fn a_real_conflict_flags_only_the_younger_main_route_and_a_second_canary_is_warned() {
            // `zz-main` sorts after `main` (no creation timestamps: namespace/name order):
            // it loses `/` to `main`; the canary joins `main` only; `zz-canary` finds `main`
            // taken.
            let more = vec![
                ingress(
                    "zz-main",
                    &[],
                    serde_json::json!([path("/", "Prefix", "main")]),
                ),
                ingress(
                    "zz-canary",
                    &[("canary", "true"), ("canary-weight", "100")],
                    serde_json::json!([path("/", "Prefix", "canary")]),
                ),
            ];
            let c = run_with(
                &[("canary-by-header", "X-Canary")],
                serde_json::json!([path("/", "Prefix", "canary")]),
                more,
            );
            let names: Vec<_> = served(&c).into_iter().map(|r| r.0).collect();
            assert_eq!(names, ["/canary-header-canary", "/canary-header-main", ""]);
            assert!(
                reasons_of(&c, "main").is_empty(),
                "{:?}",
                c.status.conditions
            );
            assert_eq!(reasons_of(&c, "zz-main"), [reasons::PATH_CONFLICT]);
            assert!(
                reasons_of(&c, "canary").is_empty(),
                "{:?}",
                c.status.conditions
            );
            assert_eq!(reasons_of(&c, "zz-canary"), [reasons::CANARY_NOT_APPLIED]);
        }

        #[test]
        fn a_canarys_filters_and_default_backend_are_warned_about() {
            let mut canary = ingress(
                "other-canary",
                &[("canary", "true")],
                serde_json::json!([path("/", "Prefix", "canary")]),
            );
            canary
                .metadata
                .annotations
                .get_or_insert_default()
                .insert(annotations::FILTERS.to_owned(), "stamp".to_owned());
            canary.spec.get_or_insert_default().default_backend = serde_json::from_value(
                serde_json::json!({"service": {"name": "canary", "port": {"number": 80}}}),
            )
            .expect("backend");
            let c = run_with(
                &[("canary-weight", "10")],
                serde_json::json!([path("/", "Prefix", "canary")]),
                vec![canary],
            );
            // Two warnings, then its path finds `main` taken by `default/canary`.
            assert_eq!(
                reasons_of(&c, "other-canary"),
                [reasons::CANARY_NOT_APPLIED; 3]
            );
            assert!(
                c.snapshot
                    .route_tables
                    .values()
                    .all(|t| t.default_route.is_none())
            );
        }

        #[test]
        fn an_unusable_canary_leaves_the_main_route_alone() {
            let c = run(
                &[("canary-weight", "ten")],
                serde_json::json!([path("/", "Prefix", "canary")]),
            );
            assert_eq!(
                served(&c),
                vec![("".into(), vec![], vec!["main×1".to_owned()])]
            );
            assert_eq!(reasons_of(&c, "canary"), [reasons::INVALID_ANNOTATION]);
        }
    }
}
