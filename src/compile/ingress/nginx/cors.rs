//! CORS annotations: `enable-cors: "true"` and its `cors-*` settings → one `CORS` entry,
//! answered before the limits and authentication (ingress-nginx answers preflights in the
//! rewrite phase). Unset settings take ingress-nginx's defaults: every origin (`*`), methods
//! `GET, PUT, POST, DELETE, PATCH, OPTIONS`, its list of request headers, credentials
//! allowed, max age 1728000 s (20 days). A value ingress-nginx would not accept is ignored with
//! a warning and the default used, as ingress-nginx does; in `cors-allow-origin` only the
//! entries it would skip are dropped.
//!
//! Without `enable-cors: "true"`, ingress-nginx ignores the `cors-*` annotations: so does weir.

use super::{Context, Phase, Translation, Verdict};
use crate::api::httpfilter::{CorsFilter, FilterEntry, FilterType};
use crate::compile::filters::{self, EntryContext};
use crate::store::Objects;

const ENABLE: &str = "enable-cors";
const ORIGIN: &str = "cors-allow-origin";
const METHODS: &str = "cors-allow-methods";
const HEADERS: &str = "cors-allow-headers";
const EXPOSE: &str = "cors-expose-headers";
const CREDENTIALS: &str = "cors-allow-credentials";
const MAX_AGE: &str = "cors-max-age";

/// ingress-nginx's defaults.
const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
const DEFAULT_HEADERS: &str = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,\
                               Cache-Control,Content-Type,Range,Authorization";
const DEFAULT_MAX_AGE: i32 = 1_728_000;

/// What differs from ingress-nginx's CORS, said on `enable-cors`.
const DIFFERS: &str = "a preflight is an OPTIONS request with Origin and \
    Access-Control-Request-Method (ingress-nginx answers any OPTIONS with an allowed Origin); \
    a preflight from an origin not allowed gets 204 without CORS headers (ingress-nginx \
    forwards it); actual responses carry Allow-Origin, Allow-Credentials and Expose-Headers \
    but not Allow-Methods, Allow-Headers or Max-Age; with origin * and credentials the \
    request's Origin is echoed (ingress-nginx sends *, which browsers refuse with credentials)";

/// Read the family's annotations into `t`.
pub(super) fn translate(ctx: &Context<'_>, t: &mut Translation) {
    let settings = [ORIGIN, METHODS, HEADERS, EXPOSE, CREDENTIALS, MAX_AGE];
    let enabled = match ctx.bool(ENABLE) {
        None => false,
        Some(Ok(on)) => {
            let verdict = if on {
                Verdict::Partial {
                    to: "CORS filter (preflights answered with 204 before limits and auth)"
                        .to_owned(),
                    differs: DIFFERS.to_owned(),
                }
            } else {
                Verdict::Translated("no CORS".to_owned())
            };
            t.found(ENABLE, ctx.get(ENABLE).unwrap_or_default(), verdict);
            on
        }
        Some(Err(why)) => {
            t.found(
                ENABLE,
                ctx.get(ENABLE).unwrap_or_default(),
                warn(why, "no CORS"),
            );
            false
        }
    };
    if !enabled {
        for name in settings {
            if let Some(value) = ctx.get(name) {
                t.found(
                    name,
                    value,
                    Verdict::Translated("nothing: enable-cors is not \"true\"".to_owned()),
                );
            }
        }
        return;
    }
    let mut cors = CorsFilter {
        allow_origins: vec!["*".to_owned()],
        allow_methods: split(DEFAULT_METHODS),
        allow_headers: split(DEFAULT_HEADERS),
        expose_headers: Vec::new(),
        allow_credentials: Some(true),
        max_age: Some(DEFAULT_MAX_AGE),
    };
    // An empty value is no value to ingress-nginx: every origin.
    if let Some(value) = ctx.get(ORIGIN).filter(|v| !v.is_empty()) {
        let (origins, skipped) = origins(value);
        let verdict = if skipped.is_empty() {
            Verdict::Translated("CORS allowOrigins".to_owned())
        } else {
            warn(
                format!(
                    "skipped origins ingress-nginx would skip too: {}",
                    skipped.join(", ")
                ),
                "the other origins",
            )
        };
        t.found(ORIGIN, value, verdict);
        cors.allow_origins = origins;
    }
    if let Some(value) = ctx.get(ORIGIN).filter(|v| v.is_empty()) {
        t.found(
            ORIGIN,
            value,
            Verdict::Translated("CORS allowOrigins * (empty: the default)".to_owned()),
        );
    }
    if let Some(value) = ctx.get(METHODS) {
        if is_method_list(value) {
            cors.allow_methods = split(value)
                .into_iter()
                .map(|m| m.to_ascii_uppercase())
                .collect();
            t.found(
                METHODS,
                value,
                Verdict::Translated("CORS allowMethods".to_owned()),
            );
        } else {
            t.found(
                METHODS,
                value,
                warn(
                    format!("{value:?} is not a list of methods"),
                    DEFAULT_METHODS,
                ),
            );
        }
    }
    if let Some(value) = ctx.get(HEADERS) {
        if is_header_list(value, false) {
            cors.allow_headers = split(value);
            t.found(
                HEADERS,
                value,
                Verdict::Translated("CORS allowHeaders".to_owned()),
            );
        } else {
            t.found(
                HEADERS,
                value,
                warn(
                    format!("{value:?} is not a list of header names"),
                    "ingress-nginx's default headers",
                ),
            );
        }
    }
    if let Some(value) = ctx.get(EXPOSE) {
        let names = split(value);
        if is_header_list(value, true) && names.len() > 1 && names.iter().any(|n| n == "*") {
            cors.expose_headers = vec!["*".to_owned()];
            t.found(
                EXPOSE,
                value,
                Verdict::Partial {
                    to: "CORS exposeHeaders *".to_owned(),
                    differs: "weir sends * alone; ingress-nginx sends the list as written \
                              (with credentials, browsers read * there as a name)"
                        .to_owned(),
                },
            );
        } else if is_header_list(value, true) {
            cors.expose_headers = names;
            t.found(
                EXPOSE,
                value,
                Verdict::Translated("CORS exposeHeaders".to_owned()),
            );
        } else {
            t.found(
                EXPOSE,
                value,
                warn(format!("{value:?} is not a list of header names"), "none"),
            );
        }
    }
    if let Some(parsed) = ctx.bool(CREDENTIALS) {
        let value = ctx.get(CREDENTIALS).unwrap_or_default();
        match parsed {
            Ok(on) => {
                cors.allow_credentials = Some(on);
                t.found(
                    CREDENTIALS,
                    value,
                    Verdict::Translated("CORS allowCredentials".to_owned()),
                );
            }
            Err(why) => t.found(CREDENTIALS, value, warn(why, "true")),
        }
    }
    if let Some(value) = ctx.get(MAX_AGE) {
        match value.parse::<i32>() {
            Ok(n) if n >= 1 => {
                cors.max_age = Some(n);
                t.found(
                    MAX_AGE,
                    value,
                    Verdict::Translated("CORS maxAge".to_owned()),
                );
            }
            _ => t.found(
                MAX_AGE,
                value,
                warn(
                    format!("{value:?} is not a positive number of seconds"),
                    "1728000",
                ),
            ),
        }
    }
    // Drop origins weir's CORS would refuse (one at a time, so one cannot spoil the others).
    let objects = Objects::default();
    let entry_ctx = EntryContext {
        key: ctx.key,
        objects: &objects,
    };
    let compiles = |c: &CorsFilter| {
        let entry = FilterEntry {
            cors: Some(c.clone()),
            ..FilterEntry::new(FilterType::Cors)
        };
        filters::compile_entry(&entry, &entry_ctx).is_ok()
    };
    let base = CorsFilter {
        allow_origins: Vec::new(),
        ..cors.clone()
    };
    cors.allow_origins.retain(|o| {
        compiles(&CorsFilter {
            allow_origins: vec![o.clone()],
            ..base.clone()
        })
    });
    if !compiles(&cors) {
        // The settings were checked one by one; only a combination (a header listed twice)
        // could fail here.
        if let Some(f) = t.findings.iter_mut().find(|f| f.name == ENABLE) {
            f.verdict = warn(
                "the cors-* settings do not make a valid CORS policy (a name listed twice?)",
                "no CORS",
            );
        }
        return;
    }
    t.entry(
        vec![
            ENABLE,
            ORIGIN,
            METHODS,
            HEADERS,
            EXPOSE,
            CREDENTIALS,
            MAX_AGE,
        ],
        Phase::Cors,
        FilterEntry {
            cors: Some(cors),
            ..FilterEntry::new(FilterType::Cors)
        },
    );
}

fn warn(why: impl Into<String>, instead: &str) -> Verdict {
    Verdict::Invalid {
        why: format!(
            "{}; ignored, as ingress-nginx does ({instead} is used)",
            why.into()
        ),
        fails_closed: false,
    }
}

fn split(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The origins ingress-nginx keeps (`*` alone wins), and those it skips: an origin must be
/// `scheme://[*.]host[:port]` (its `corsOriginRegex`); `null` is skipped here too, since weir's
/// CORS matches hosts only.
fn origins(value: &str) -> (Vec<String>, Vec<String>) {
    let (mut keep, mut skip) = (Vec::new(), Vec::new());
    for o in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if o == "*" {
            return (vec!["*".to_owned()], skip);
        }
        if is_origin(o) {
            keep.push(o.to_owned());
        } else {
            skip.push(o.to_owned());
        }
    }
    (keep, skip)
}

/// `^[a-z]+://(\*\.)?[A-Za-z0-9\-.]*(:\d+)?$` (ingress-nginx's `corsOriginRegex`, less the
/// `null` and empty cases).
fn is_origin(o: &str) -> bool {
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_lowercase()) {
        return false;
    }
    let rest = rest.strip_prefix("*.").unwrap_or(rest);
    let (host, port) = match rest.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `^([A-Za-z]+,?\s?)+$` (ingress-nginx's `corsMethodsRegex`).
fn is_method_list(v: &str) -> bool {
    !split(v).is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b',' || b == b' ')
}

/// Header names separated by commas (and `*` when `star`).
fn is_header_list(v: &str, star: bool) -> bool {
    let names = split(v);
    !names.is_empty()
        && names.iter().all(|h| {
            (star && h == "*")
                || h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn cors(t: &Translation) -> &CorsFilter {
        t.entries
            .iter()
            .find_map(|e| e.entry.cors.as_ref())
            .expect("a CORS entry")
    }

    #[test]
    fn enable_cors_alone_takes_ingress_nginx_defaults() {
        let t = translate_only(&[("enable-cors", "true")]);
        let c = cors(&t);
        assert_eq!(c.allow_origins, ["*"]);
        assert_eq!(
            c.allow_methods,
            ["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]
        );
        assert_eq!(c.allow_headers.len(), 9);
        assert!(c.allow_headers.contains(&"Authorization".to_owned()));
        assert_eq!(c.allow_credentials, Some(true));
        assert_eq!(c.max_age, Some(1_728_000));
        assert!(c.expose_headers.is_empty());
        assert_eq!(t.entries[0].phase, Phase::Cors);
        assert!(matches!(
            verdict(&t, "enable-cors"),
            Verdict::Partial { .. }
        ));
    }

    #[test]
    fn settings_are_read_and_bad_ones_fall_back_to_the_defaults() {
        let t = translate_only(&[
            ("enable-cors", "true"),
            (
                "cors-allow-origin",
                "https://origin-site.com:4443, http://*.example.com, null, bad origin",
            ),
            ("cors-allow-methods", "PUT, GET, POST"),
            ("cors-allow-headers", "X-Forwarded-For, X-app123-XPTO"),
            ("cors-expose-headers", "*, X-CustomResponseHeader"),
            ("cors-allow-credentials", "false"),
            ("cors-max-age", "600"),
        ]);
        let c = cors(&t);
        assert_eq!(
            c.allow_origins,
            ["https://origin-site.com:4443", "http://*.example.com"]
        );
        assert_eq!(c.allow_methods, ["PUT", "GET", "POST"]);
        assert_eq!(c.allow_headers, ["X-Forwarded-For", "X-app123-XPTO"]);
        assert_eq!(c.allow_credentials, Some(false));
        assert_eq!(c.max_age, Some(600));
        assert_eq!(c.expose_headers, ["*"]);
        assert!(matches!(
            verdict(&t, "cors-allow-origin"),
            Verdict::Invalid {
                fails_closed: false,
                ..
            }
        ));
        let t = translate_only(&[
            ("enable-cors", "true"),
            ("cors-allow-methods", "GET;DROP"),
            ("cors-max-age", "soon"),
        ]);
        let c = cors(&t);
        assert_eq!(c.allow_methods.len(), 6);
        assert_eq!(c.max_age, Some(1_728_000));
    }

    #[test]
    fn without_enable_cors_the_settings_do_nothing() {
        let t = translate_only(&[("cors-allow-origin", "https://a.example")]);
        assert!(t.entries.is_empty());
        assert!(matches!(
            verdict(&t, "cors-allow-origin"),
            Verdict::Translated(_)
        ));
        let t = translate_only(&[("enable-cors", "yes")]);
        assert!(t.entries.is_empty());
    }
}
