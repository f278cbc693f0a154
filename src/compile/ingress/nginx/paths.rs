//! Paths, rewrites and redirects (ingress-nginx's `rewrite`, `redirect`, `alias`,
//! `xforwardedprefix` and `upstreamvhost` annotation groups):
//! - `use-regex` → the Ingress's paths become regular expressions, matched as ingress-nginx's
//!   `location ~* "^<path>"` does: case-insensitive, anchored at the start only (the `regex`
//!   crate: linear time; no look-around, no backreferences);
//! - `rewrite-target` → per path, a `URLRewrite` entry of type `ReplaceRegexMatch` (nginx's
//!   `rewrite "(?i)<path>" <target> break;`: the whole path replaced by the target, `$1`…`$9`
//!   substituted, the query kept); it implies regex paths, as in ingress-nginx;
//! - `x-forwarded-prefix` → `RequestHeaderModifier` (`X-Forwarded-Prefix`), only with a
//!   rewrite, as ingress-nginx sets it;
//! - `upstream-vhost` → `URLRewrite` (`hostname`: the `Host` sent upstream);
//! - `app-root` → per host, a route `Exact /` answering 302 to the root;
//! - `server-alias` → the Ingress's routes again under each alias host;
//! - `ssl-redirect`, `force-ssl-redirect` → the front end's HTTPS redirect (308), off, or on
//!   for every host of the Ingress;
//! - `permanent-redirect`(`-code`), `temporal-redirect`(`-code`) → a `RequestRedirect`
//!   entry answering every request with exactly that URL;
//! - `from-to-www-redirect` → routes under `www.<host>` (or `<host>` for a `www.` host)
//!   answering 308 to the other.
//!
//! Entries that do not depend on a route are pushed into the translation; what the front end
//! builds per route or per host is [`RouteSettings`]. None of these changes who may access,
//! so an unreadable value is ignored with a warning, as ingress-nginx ignores it.

use serde::Serialize;

use super::{Context, Phase, Translation, Verdict};
use crate::api::httpfilter::{
    FilterEntry, FilterType, HeaderFilter, HttpHeader, PathModifier, PathModifierType,
    RegexMatchReplace, RequestRedirectFilter, UrlRewriteFilter,
};
use crate::snapshot::{PathMatch, Pattern};

const USE_REGEX: &str = "use-regex";
const REWRITE_TARGET: &str = "rewrite-target";
const X_FORWARDED_PREFIX: &str = "x-forwarded-prefix";
const UPSTREAM_VHOST: &str = "upstream-vhost";
const APP_ROOT: &str = "app-root";
const SERVER_ALIAS: &str = "server-alias";
const SSL_REDIRECT: &str = "ssl-redirect";
const FORCE_SSL_REDIRECT: &str = "force-ssl-redirect";
const PERMANENT: &str = "permanent-redirect";
const PERMANENT_CODE: &str = "permanent-redirect-code";
const TEMPORAL: &str = "temporal-redirect";
const TEMPORAL_CODE: &str = "temporal-redirect-code";
const FROM_TO_WWW: &str = "from-to-www-redirect";

/// What the regex crate does not do that PCRE (nginx) does.
const REGEX_DIFFERS: &str = "patterns use the Rust regex crate (linear time): no look-around \
    and no backreferences, such a path is rejected; ingress-nginx makes every path of the host \
    a regular expression once any Ingress of that host uses one, weir only this Ingress's paths";

/// The trailing slash difference of ingress-nginx's HTTPS redirect.
const SLASH_DIFFERS: &str = "the path's trailing slash is kept (ingress-nginx strips one \
    unless preserve-trailing-slash is true)";

/// Route-level settings the front end applies to the Ingress's routes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouteSettings {
    /// The paths are regular expressions (`use-regex`, or implied by `rewrite-target`).
    pub regex: bool,
    /// `rewrite-target`: the new path, with nginx's `$1`…`$9`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite_target: Option<String>,
    /// `server-alias`: more hosts (lower-cased) served by the Ingress's rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// `app-root`: where requests for `/` are sent (302).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_root: Option<String>,
    /// `from-to-www-redirect`.
    pub from_to_www: bool,
    /// `ssl-redirect`: `Some(false)` turns the HTTPS redirect of TLS hosts off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_redirect: Option<bool>,
    /// `force-ssl-redirect`: every host of the Ingress redirects plain HTTP, TLS or not.
    pub force_ssl_redirect: bool,
    /// Every request is answered by a redirect entry (`permanent-redirect`,
    /// `temporal-redirect`): nginx's `return` runs before its HTTPS redirect, so weir adds
    /// none in front of it.
    pub redirects_all: bool,
}

impl RouteSettings {
    /// A route's path match: a regular expression as ingress-nginx's `location ~* "^<path>"`
    /// when the Ingress's paths are regular expressions (`None`: they are not).
    pub fn regex_path(&self, path: &str) -> Option<Result<PathMatch, String>> {
        if !self.regex {
            return None;
        }
        let path = if path.is_empty() { "/" } else { path };
        Some(if !path.starts_with('/') {
            Err(format!(
                "path {path:?} is not absolute (must start with '/')"
            ))
        } else if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            Err(format!(
                "path {path:?} contains a space or control character"
            ))
        } else {
            Pattern::new(&format!("(?i)^{path}"))
                .map(|p| PathMatch::Regex(Box::new(p)))
                .map_err(|e| {
                    format!("path {path:?} is not a regular expression weir can match: {e}")
                })
        })
    }

    /// The `URLRewrite` entry of the route of `path` (nginx's `rewrite "(?i)<path>" <target>
    /// break;`): none without `rewrite-target`, or when the target is the path itself.
    pub fn rewrite_entry(&self, path: &str) -> Option<FilterEntry> {
        let target = self.rewrite_target.as_ref()?;
        if target == path {
            return None;
        }
        Some(FilterEntry {
            url_rewrite: Some(UrlRewriteFilter {
                hostname: None,
                path: Some(PathModifier {
                    type_: PathModifierType::ReplaceRegexMatch,
                    replace_full_path: None,
                    replace_prefix_match: None,
                    replace_regex_match: Some(RegexMatchReplace {
                        // The location matched at the start, so nginx's unanchored rewrite
                        // matches there too; `.*` makes the target replace the whole path.
                        pattern: format!("(?i)^(?:{path}).*"),
                        substitution: target.clone(),
                    }),
                }),
            }),
            ..FilterEntry::new(FilterType::UrlRewrite)
        })
    }

    /// The `RequestRedirect` entry of the `Exact /` route of `app-root` (nginx's `return 302
    /// $scheme://$http_host<root>`: no query).
    pub fn app_root_entry(&self) -> Option<FilterEntry> {
        let root = self.app_root.as_ref()?;
        Some(redirect_entry(RequestRedirectFilter {
            path: Some(full_path(root)),
            replace_query: Some(String::new()),
            status_code: Some(302),
            ..RequestRedirectFilter::default()
        }))
    }

    /// The `RequestRedirect` entry of the routes under the other host of
    /// `from-to-www-redirect`, to `host` (308, ingress-nginx's `http-redirect-code`).
    pub fn www_entry(host: &str) -> FilterEntry {
        redirect_entry(RequestRedirectFilter {
            hostname: Some(host.to_owned()),
            status_code: Some(308),
            ..RequestRedirectFilter::default()
        })
    }
}

/// The host `from-to-www-redirect` adds for rule host `host`, and where it redirects to:
/// `www.a.example` ← for `a.example`, `a.example` ← for `www.a.example`.
pub fn www_pair(host: &str) -> (String, String) {
    match host.strip_prefix("www.") {
        Some(bare) => (bare.to_owned(), host.to_owned()),
        None => (format!("www.{host}"), host.to_owned()),
    }
}

fn redirect_entry(r: RequestRedirectFilter) -> FilterEntry {
    FilterEntry {
        request_redirect: Some(r),
        ..FilterEntry::new(FilterType::RequestRedirect)
    }
}

fn full_path(path: &str) -> PathModifier {
    PathModifier {
        type_: PathModifierType::ReplaceFullPath,
        replace_full_path: Some(path.to_owned()),
        replace_prefix_match: None,
        replace_regex_match: None,
    }
}

/// Read the family's annotations into `t`.
pub(super) fn translate(ctx: &Context<'_>, t: &mut Translation) {
    let ignored = |why: String| Verdict::Invalid {
        why: format!("{why}; ignored"),
        fails_closed: false,
    };
    let mut s = RouteSettings::default();
    if let Some(value) = ctx.get(USE_REGEX) {
        let verdict = match boolean(ctx, USE_REGEX) {
            Ok(true) => {
                s.regex = true;
                Verdict::Partial {
                    to: "the Ingress's paths as case-insensitive regular expressions anchored \
                         at the start (nginx `location ~* \"^<path>\"`)"
                        .to_owned(),
                    differs: REGEX_DIFFERS.to_owned(),
                }
            }
            Ok(false) => Verdict::Translated("paths matched by their pathType".to_owned()),
            Err(why) => ignored(why),
        };
        t.found(USE_REGEX, value, verdict);
    }
    if let Some(value) = ctx.get(REWRITE_TARGET) {
        match rewrite_target(value) {
            Ok(()) => {
                // ingress-nginx makes paths regular expressions where a location rewrites,
                // i.e. where its path is not the target itself.
                s.regex |= paths(ctx).any(|p| p != value);
                s.rewrite_target = Some(value.to_owned());
                t.found(
                    REWRITE_TARGET,
                    value,
                    Verdict::Partial {
                        to: "a URLRewrite filter per path (ReplaceRegexMatch: the whole path \
                             replaced by the target, $1-$9 substituted, the query kept); the \
                             paths become regular expressions unless each is the target"
                            .to_owned(),
                        differs: REGEX_DIFFERS.to_owned(),
                    },
                );
            }
            Err(why) => t.found(REWRITE_TARGET, value, ignored(why)),
        }
    }
    if let Some(value) = ctx.get(X_FORWARDED_PREFIX) {
        let verdict = if s.rewrite_target.is_none() {
            ignored(
                "has an effect only with rewrite-target (ingress-nginx sets the header only \
                 where it rewrites)"
                    .to_owned(),
            )
        } else if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
            ignored(format!(
                "{value:?} is not a header value of visible characters"
            ))
        } else {
            t.entry(
                vec![X_FORWARDED_PREFIX],
                Phase::Upstream,
                FilterEntry {
                    request_header_modifier: Some(HeaderFilter {
                        set: vec![HttpHeader {
                            name: "X-Forwarded-Prefix".to_owned(),
                            value: value.to_owned(),
                        }],
                        ..HeaderFilter::default()
                    }),
                    ..FilterEntry::new(FilterType::RequestHeaderModifier)
                },
            );
            Verdict::Translated(format!(
                "RequestHeaderModifier filter (X-Forwarded-Prefix: {value})"
            ))
        };
        t.found(X_FORWARDED_PREFIX, value, verdict);
    }
    if let Some(value) = ctx.get(UPSTREAM_VHOST) {
        let host = value.to_ascii_lowercase();
        let verdict = if crate::compile::is_dns_name(&host) && host.len() <= 253 {
            t.entry(
                vec![UPSTREAM_VHOST],
                Phase::Upstream,
                FilterEntry {
                    url_rewrite: Some(UrlRewriteFilter {
                        hostname: Some(host.clone()),
                        path: None,
                    }),
                    ..FilterEntry::new(FilterType::UrlRewrite)
                },
            );
            Verdict::Translated(format!("URLRewrite filter (hostname: {host})"))
        } else {
            ignored(format!(
                "{value:?} is not a DNS name (weir sends no port or variable in Host)"
            ))
        };
        t.found(UPSTREAM_VHOST, value, verdict);
    }
    if let Some(value) = ctx.get(APP_ROOT) {
        let verdict = if value.starts_with('/') && value.len() > 1 && rewrite_chars(value) {
            s.app_root = Some(value.to_owned());
            Verdict::Partial {
                to: format!("a route Exact / per host answering 302 to {value} (query dropped)"),
                differs: "the Location carries weir's listener port when it is not 80/443 \
                          (nginx writes the client's Host header as sent)"
                    .to_owned(),
            }
        } else {
            ignored(format!(
                "{value:?} is not an absolute path other than / of letters, digits and -._~/:"
            ))
        };
        t.found(APP_ROOT, value, verdict);
    }
    if let Some(value) = ctx.get(SERVER_ALIAS) {
        let (good, bad): (Vec<_>, Vec<_>) = value
            .split(',')
            .map(|a| a.trim().to_ascii_lowercase())
            .filter(|a| !a.is_empty())
            .partition(|a| {
                let name = a.strip_prefix("*.").unwrap_or(a);
                a.len() <= 253
                    && crate::compile::is_dns_name(name)
                    && name.parse::<std::net::IpAddr>().is_err()
            });
        let verdict = if bad.is_empty() {
            Verdict::Partial {
                to: format!(
                    "the Ingress's routes also under host(s) {}",
                    good.join(", ")
                ),
                differs: "an alias that another Ingress has as a rule host is not ignored \
                          (ingress-nginx ignores it): its routes join that host's, and for an \
                          identical path the older Ingress wins"
                    .to_owned(),
            }
        } else {
            ignored(format!(
                "{} is not a DNS name (the other aliases are served)",
                bad.join(", ")
            ))
        };
        let mut aliases = good;
        aliases.sort();
        aliases.dedup();
        s.aliases = aliases;
        t.found(SERVER_ALIAS, value, verdict);
    }
    if let Some(value) = ctx.get(SSL_REDIRECT) {
        let verdict = match boolean(ctx, SSL_REDIRECT) {
            Ok(true) => {
                s.ssl_redirect = Some(true);
                Verdict::Partial {
                    to: "plain HTTP to the Ingress's TLS hosts redirected to https (308)"
                        .to_owned(),
                    differs: SLASH_DIFFERS.to_owned(),
                }
            }
            Ok(false) => {
                s.ssl_redirect = Some(false);
                Verdict::Translated("no HTTPS redirect for the Ingress's routes".to_owned())
            }
            Err(why) => ignored(why),
        };
        t.found(SSL_REDIRECT, value, verdict);
    }
    if let Some(value) = ctx.get(FORCE_SSL_REDIRECT) {
        let verdict = match boolean(ctx, FORCE_SSL_REDIRECT) {
            Ok(true) => {
                s.force_ssl_redirect = true;
                Verdict::Partial {
                    to: "plain HTTP to every host of the Ingress redirected to https (308), \
                         TLS or not (X-Forwarded-Proto: https from a trusted proxy counts as \
                         HTTPS)"
                        .to_owned(),
                    differs: SLASH_DIFFERS.to_owned(),
                }
            }
            Ok(false) => Verdict::Translated("no forced HTTPS redirect".to_owned()),
            Err(why) => ignored(why),
        };
        t.found(FORCE_SSL_REDIRECT, value, verdict);
    }
    fixed_redirects(ctx, t, &mut s);
    if let Some(value) = ctx.get(FROM_TO_WWW) {
        let verdict = match boolean(ctx, FROM_TO_WWW) {
            Ok(true) => {
                s.from_to_www = true;
                Verdict::Partial {
                    to: "routes under www.<host> (or <host> for a www. host) answering 308 to \
                         the other, unless that host has routes of its own"
                        .to_owned(),
                    differs: "the Location keeps the path as it is and writes the listener \
                              port only when it is not 80/443 (ingress-nginx always writes \
                              the port and strips a trailing slash)"
                        .to_owned(),
                }
            }
            Ok(false) => Verdict::Translated("no www redirect".to_owned()),
            Err(why) => ignored(why),
        };
        t.found(FROM_TO_WWW, value, verdict);
    }
    t.routes = s;
}

/// `temporal-redirect` (takes precedence, as in ingress-nginx) and `permanent-redirect`,
/// with their codes.
fn fixed_redirects(ctx: &Context<'_>, t: &mut Translation, s: &mut RouteSettings) {
    let ignored = |why: String| Verdict::Invalid {
        why: format!("{why}; ignored"),
        fails_closed: false,
    };
    let mut chosen = false;
    // (annotation, code annotation, default code, highest code ingress-nginx accepts)
    for (name, code_name, default, highest) in [
        (TEMPORAL, TEMPORAL_CODE, 302, 307),
        (PERMANENT, PERMANENT_CODE, 301, 308),
    ] {
        let value = ctx.get(name).filter(|v| !v.is_empty());
        let mut code = default;
        if let Some(code_value) = ctx.get(code_name) {
            let verdict = match code_value.parse::<i32>() {
                Ok(c) if [301, 302, 303, 307, 308].contains(&c) && c <= highest => {
                    code = c;
                    Verdict::Translated(format!("redirect status {c}"))
                }
                Ok(c) if (300..=highest).contains(&c) => Verdict::Partial {
                    to: format!("redirect status {default}"),
                    differs: format!(
                        "weir redirects with 301, 302, 303, 307 or 308 only; ingress-nginx \
                         answers {c}"
                    ),
                },
                _ => ignored(format!(
                    "{code_value:?} is not a status in 300-{highest}; {default} is used, as \
                     ingress-nginx does"
                )),
            };
            let verdict = if value.is_none() || chosen {
                ignored(format!("has an effect only with {name}"))
            } else {
                verdict
            };
            t.found(code_name, code_value, verdict);
        }
        let Some(url) = value else {
            if let Some(v) = ctx.get(name) {
                t.found(name, v, ignored("is empty".to_owned()));
            }
            continue;
        };
        if chosen {
            t.found(
                name,
                url,
                ignored(format!("{TEMPORAL} is set and takes precedence")),
            );
            continue;
        }
        match parse_url(url) {
            Ok(mut r) => {
                r.status_code = Some(code);
                t.entry(vec![name], Phase::Redirect, redirect_entry(r));
                t.found(
                    name,
                    url,
                    Verdict::Translated(format!(
                        "RequestRedirect filter (every request answered {code} to exactly {url})"
                    )),
                );
                s.redirects_all = true;
                chosen = true;
            }
            Err(why) => t.found(name, url, ignored(why)),
        }
    }
}

/// An absolute `http`/`https` URL of ingress-nginx's allowed characters (letters, digits,
/// `-._~/:,?&=`), split into the redirect's parts (the query replacing the request's).
fn parse_url(url: &str) -> Result<RequestRedirectFilter, String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~/:,?&=".contains(&b);
    if !url.bytes().all(allowed) {
        return Err(format!(
            "{url:?} holds characters other than letters, digits and -._~/:,?&="
        ));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not an absolute URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("{url:?}: only http and https URLs"));
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_query) = rest.split_at(end);
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path_query, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{url:?}: {p:?} is not a port"))?;
            (h, Some(i32::from(port)))
        }
        None => (authority, None),
    };
    let host = host.to_ascii_lowercase();
    if !crate::compile::is_dns_name(&host)
        || host.len() > 253
        || host.parse::<std::net::IpAddr>().is_ok()
    {
        return Err(format!(
            "{url:?}: {host:?} is not a DNS name (a redirect to an IP address is not served)"
        ));
    }
    Ok(RequestRedirectFilter {
        scheme: Some(scheme),
        hostname: Some(host),
        port,
        path: Some(full_path(if path.is_empty() { "/" } else { path })),
        replace_query: Some(query.to_owned()),
        status_code: None,
    })
}

/// ingress-nginx's `RegexPathWithCapture` characters: letters, digits, `-._~/:$`.
fn rewrite_chars(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/:$".contains(&b))
}

/// A `rewrite-target` weir can serve: an absolute path of ingress-nginx's characters whose
/// every `$` is a capture group (`$1`…`$9`), not an nginx variable.
fn rewrite_target(value: &str) -> Result<(), String> {
    if !value.starts_with('/') {
        return Err(format!(
            "{value:?} is not an absolute path (a target URL or a relative one is not served)"
        ));
    }
    if !rewrite_chars(value) {
        return Err(format!(
            "{value:?} holds characters other than letters, digits and -._~/:$"
        ));
    }
    let b = value.as_bytes();
    if let Some(i) =
        (0..b.len()).find(|&i| b[i] == b'$' && !b.get(i + 1).is_some_and(u8::is_ascii_digit))
    {
        return Err(format!(
            "{value:?}: `{}` is an nginx variable, which weir cannot substitute (only $1-$9)",
            &value[i..]
        ));
    }
    Ok(())
}

/// The Ingress's paths as written (an empty one is `/`).
fn paths<'a>(ctx: &Context<'a>) -> impl Iterator<Item = &'a str> {
    ctx.ingress
        .spec
        .iter()
        .flat_map(|spec| spec.rules.iter().flatten())
        .flat_map(|rule| rule.http.iter().flat_map(|http| http.paths.iter()))
        .map(|p| p.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/"))
}

/// A boolean annotation that is present.
fn boolean(ctx: &Context<'_>, name: &str) -> Result<bool, String> {
    ctx.bool(name).unwrap_or(Ok(false))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::snapshot::PathMatch;

    fn warned(v: &Verdict) -> bool {
        matches!(
            v,
            Verdict::Invalid {
                fails_closed: false,
                ..
            }
        )
    }

    #[test]
    fn use_regex_matches_case_insensitively_anchored_at_the_start() {
        let t = translate_only(&[(USE_REGEX, "true")]);
        assert!(matches!(verdict(&t, USE_REGEX), Verdict::Partial { .. }));
        let m = t
            .routes
            .regex_path("/api/v[0-9]+")
            .expect("regex")
            .expect("valid");
        for (path, want) in [
            ("/api/v2", true),
            ("/API/V2/users", true),
            ("/x/api/v2", false),
            ("/api/vx", false),
        ] {
            assert_eq!(m.matches(path), want, "{path}");
        }
        assert!(t.routes.regex_path("/(a").expect("regex").is_err());
        assert!(
            t.routes.regex_path("/(?=a)").expect("regex").is_err(),
            "no look-ahead"
        );
        let off = translate_only(&[(USE_REGEX, "false")]);
        assert!(off.routes.regex_path("/a").is_none());
        assert!(warned(verdict(
            &translate_only(&[(USE_REGEX, "yes")]),
            USE_REGEX
        )));
    }

    /// The translation of an Ingress with these annotations and paths.
    fn translate_paths(annotations: &[(&str, &str)], paths: &[&str]) -> Translation {
        let mut ingress = ingress(annotations);
        let paths: Vec<_> = paths
            .iter()
            .map(|p| {
                serde_json::json!({"path": p, "pathType": "ImplementationSpecific",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}})
            })
            .collect();
        ingress.spec = Some(
            serde_json::from_value(serde_json::json!({"rules": [{"http": {"paths": paths}}]}))
                .expect("spec"),
        );
        let key = crate::store::ObjectKey::new("default", "test");
        let objects = crate::store::Objects::default();
        super::super::translate(&Context {
            annotations: super::super::Annotations::of(&ingress, super::super::DEFAULT_PREFIX),
            ingress: &ingress,
            key: &key,
            objects: &objects,
        })
    }

    #[test]
    fn a_target_that_is_the_path_itself_needs_no_regex() {
        let t = translate_paths(&[(REWRITE_TARGET, "/")], &["/"]);
        assert!(!t.routes.regex);
        assert!(t.routes.rewrite_entry("/").is_none());
        let t = translate_paths(&[(REWRITE_TARGET, "/")], &["/", "/app"]);
        assert!(t.routes.regex, "a location that rewrites makes them regex");
    }

    #[test]
    fn rewrite_target_implies_regex_and_replaces_the_whole_path() {
        let t = translate_paths(&[(REWRITE_TARGET, "/$2")], &["/something(/|$)(.*)"]);
        assert!(t.routes.regex);
        let entry = t
            .routes
            .rewrite_entry("/something(/|$)(.*)")
            .expect("a rewrite");
        let regex = entry
            .url_rewrite
            .and_then(|u| u.path)
            .and_then(|p| p.replace_regex_match)
            .expect("ReplaceRegexMatch");
        assert_eq!(regex.pattern, "(?i)^(?:/something(/|$)(.*)).*");
        assert_eq!(regex.substitution, "/$2");
        assert!(t.routes.rewrite_entry("/$2").is_none(), "target = path");
        for bad in ["$1", "/$host/x", "http://a.example/", "/a b"] {
            let t = translate_only(&[(REWRITE_TARGET, bad)]);
            assert!(warned(verdict(&t, REWRITE_TARGET)), "{bad}");
            assert!(!t.routes.regex, "{bad}");
        }
    }

    #[test]
    fn x_forwarded_prefix_goes_with_a_rewrite_only() {
        let t = translate_only(&[(REWRITE_TARGET, "/$1"), (X_FORWARDED_PREFIX, "/app")]);
        let header = t.entries[0]
            .entry
            .request_header_modifier
            .as_ref()
            .expect("header modifier");
        assert_eq!(header.set[0].value, "/app");
        let alone = translate_only(&[(X_FORWARDED_PREFIX, "/app")]);
        assert!(warned(verdict(&alone, X_FORWARDED_PREFIX)));
        assert!(alone.entries.is_empty());
    }

    #[test]
    fn upstream_vhost_rewrites_the_host() {
        let t = translate_only(&[(UPSTREAM_VHOST, "Internal.Example")]);
        assert_eq!(
            t.entries[0]
                .entry
                .url_rewrite
                .as_ref()
                .and_then(|u| u.hostname.as_deref()),
            Some("internal.example")
        );
        assert!(warned(verdict(
            &translate_only(&[(UPSTREAM_VHOST, "a.example:8080")]),
            UPSTREAM_VHOST
        )));
    }

    #[test]
    fn app_root_redirects_slash_with_302_and_no_query() {
        let t = translate_only(&[(APP_ROOT, "/app1")]);
        let r = t
            .routes
            .app_root_entry()
            .and_then(|e| e.request_redirect)
            .expect("redirect");
        assert_eq!(r.status_code, Some(302));
        assert_eq!(r.replace_query.as_deref(), Some(""));
        assert_eq!(
            r.path.and_then(|p| p.replace_full_path).as_deref(),
            Some("/app1")
        );
        for bad in ["app1", "/", "/a?b"] {
            assert!(warned(verdict(
                &translate_only(&[(APP_ROOT, bad)]),
                APP_ROOT
            )));
        }
    }

    #[test]
    fn server_aliases_keep_the_good_names() {
        let t = translate_only(&[(SERVER_ALIAS, "B.example, a.example,, *.w.example, bad_name")]);
        assert_eq!(t.routes.aliases, ["*.w.example", "a.example", "b.example"]);
        assert!(warned(verdict(&t, SERVER_ALIAS)));
    }

    #[test]
    fn ssl_redirect_settings() {
        let t = translate_only(&[(SSL_REDIRECT, "false"), (FORCE_SSL_REDIRECT, "true")]);
        assert_eq!(t.routes.ssl_redirect, Some(false));
        assert!(t.routes.force_ssl_redirect);
        let bad = translate_only(&[(SSL_REDIRECT, "off")]);
        assert_eq!(bad.routes.ssl_redirect, None, "the default stays");
        assert!(warned(verdict(&bad, SSL_REDIRECT)));
    }

    #[test]
    fn fixed_redirects_answer_exactly_their_url() {
        let t = translate_only(&[(PERMANENT, "https://www.google.com")]);
        let r = t.entries[0]
            .entry
            .request_redirect
            .as_ref()
            .expect("redirect");
        assert_eq!(t.entries[0].phase, Phase::Redirect);
        assert_eq!(r.status_code, Some(301));
        assert_eq!(r.scheme.as_deref(), Some("https"));
        assert_eq!(r.hostname.as_deref(), Some("www.google.com"));
        assert_eq!(r.port, None);
        assert_eq!(r.replace_query.as_deref(), Some(""));
        assert!(t.routes.redirects_all);

        let t = translate_only(&[
            (PERMANENT, "http://a.example:8080/x?y=1"),
            (PERMANENT_CODE, "308"),
        ]);
        let r = t.entries[0]
            .entry
            .request_redirect
            .as_ref()
            .expect("redirect");
        assert_eq!((r.status_code, r.port), (Some(308), Some(8080)));
        assert_eq!(r.replace_query.as_deref(), Some("y=1"));

        // Temporal wins; its code is limited to 300-307 as in ingress-nginx.
        let t = translate_only(&[
            (TEMPORAL, "https://t.example/"),
            (TEMPORAL_CODE, "308"),
            (PERMANENT, "https://p.example/"),
        ]);
        assert_eq!(t.entries.len(), 1);
        let r = t.entries[0]
            .entry
            .request_redirect
            .as_ref()
            .expect("redirect");
        assert_eq!(r.hostname.as_deref(), Some("t.example"));
        assert_eq!(r.status_code, Some(302));
        assert!(warned(verdict(&t, TEMPORAL_CODE)));
        assert!(warned(verdict(&t, PERMANENT)));

        for bad in [
            "ftp://a.example/",
            "/relative",
            "https://a.example/$uri",
            "https://10.0.0.1/",
        ] {
            let t = translate_only(&[(PERMANENT, bad)]);
            assert!(warned(verdict(&t, PERMANENT)), "{bad}");
            assert!(t.entries.is_empty());
        }
    }

    #[test]
    fn www_pairs_go_both_ways() {
        assert_eq!(
            www_pair("a.example"),
            ("www.a.example".to_owned(), "a.example".to_owned())
        );
        assert_eq!(
            www_pair("www.a.example"),
            ("a.example".to_owned(), "www.a.example".to_owned())
        );
        let t = translate_only(&[(FROM_TO_WWW, "true")]);
        assert!(t.routes.from_to_www);
        assert!(matches!(verdict(&t, FROM_TO_WWW), Verdict::Partial { .. }));
    }

    #[test]
    fn exact_paths_become_regex_too_as_in_ingress_nginx() {
        let t = translate_only(&[(USE_REGEX, "true")]);
        let m = t
            .routes
            .regex_path("/exact")
            .expect("regex")
            .expect("valid");
        assert!(matches!(m, PathMatch::Regex(_)));
        assert!(m.matches("/exact/more"));
    }
}
