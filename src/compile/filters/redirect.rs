//! `RequestRedirect` (Gateway API `HTTPRequestRedirectFilter`): `scheme` is `http` or
//! `https`, `hostname` a precise DNS name (lower case, no wildcard, no port), `port` 1–65535,
//! `statusCode` 301, 302, 303, 307 or 308 (default 302), and `path` a path modifier whose
//! value is an absolute path (or Envoy Gateway's `ReplaceRegexMatch`: a pattern and a
//! substitution with `$1`…`$9`), and `replaceQuery` (weir's: the `Location`'s query instead
//! of the request's) path characters and `?`. The port defaulting rules (the new scheme's well-known port,
//! else the listener's) are the proxy's (`crate::proxy::redirect`), from the fields left
//! unset here.
//!
//! The path modifier and host name checks are shared with `URLRewrite` (`url_rewrite.rs`).

use super::FieldError;
use crate::api::httpfilter::{PathModifier, PathModifierType, RequestRedirectFilter};
use crate::snapshot::{PathRewrite, Pattern, Redirect, RequestRedirect};

/// The redirect statuses the Gateway API allows.
const STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// Compile the settings.
pub(super) fn compile(spec: &RequestRedirectFilter) -> Result<RequestRedirect, FieldError> {
    let scheme = match spec.scheme.as_deref() {
        None => None,
        Some(s @ ("http" | "https")) => Some(s.to_owned()),
        Some(other) => {
            return Err(FieldError::invalid(
                "scheme",
                format!("{other:?} is not \"http\" or \"https\""),
            ));
        }
    };
    let hostname = spec
        .hostname
        .as_deref()
        .map(|h| precise_hostname(h).map_err(|why| FieldError::invalid("hostname", why)))
        .transpose()?;
    let port = spec
        .port
        .map(|p| {
            u16::try_from(p)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| FieldError::invalid("port", format!("{p} is not in 1-65535")))
        })
        .transpose()?;
    let status = match spec.status_code {
        None => 302,
        Some(code) => u16::try_from(code)
            .ok()
            .filter(|c| STATUSES.contains(c))
            .ok_or_else(|| {
                FieldError::invalid(
                    "statusCode",
                    format!("{code} is not one of 301, 302, 303, 307, 308"),
                )
            })?,
    };
    let path = spec.path.as_ref().map(path_rewrite).transpose()?;
    let query = spec
        .replace_query
        .as_deref()
        .map(|q| {
            check_chars(q, b"/?")
                .map(|()| q.to_owned())
                .map_err(|why| FieldError::invalid("replaceQuery", why))
        })
        .transpose()?;
    Ok(RequestRedirect {
        redirect: Redirect {
            scheme,
            hostname,
            port,
            path,
            query,
            status,
        },
        https_upgrade: false,
    })
}

/// A Gateway API `HTTPPathModifier` (or Envoy Gateway's `ReplaceRegexMatch`): exactly the
/// value of its type, an absolute path (errors are relative to the modifier:
/// `path.replaceFullPath`).
pub(super) fn path_rewrite(m: &PathModifier) -> Result<PathRewrite, FieldError> {
    let set = [
        (
            PathModifierType::ReplaceFullPath,
            "path.replaceFullPath",
            m.replace_full_path.is_some(),
        ),
        (
            PathModifierType::ReplacePrefixMatch,
            "path.replacePrefixMatch",
            m.replace_prefix_match.is_some(),
        ),
        (
            PathModifierType::ReplaceRegexMatch,
            "path.replaceRegexMatch",
            m.replace_regex_match.is_some(),
        ),
    ];
    if let Some((_, other, _)) = set.iter().find(|(t, _, on)| *on && *t != m.type_) {
        return Err(FieldError::invalid(
            *other,
            "must not be set for this path modifier type",
        ));
    }
    let required = |field| FieldError::invalid(field, "required for this type");
    let path = |field: &'static str, value: &Option<String>| {
        let value = value.as_ref().ok_or_else(|| required(field))?;
        check_path(value).map_err(|why| FieldError::invalid(field, why))?;
        Ok::<_, FieldError>(value.clone())
    };
    Ok(match m.type_ {
        PathModifierType::ReplaceFullPath => {
            PathRewrite::ReplaceFullPath(path("path.replaceFullPath", &m.replace_full_path)?)
        }
        PathModifierType::ReplacePrefixMatch => PathRewrite::ReplacePrefixMatch(path(
            "path.replacePrefixMatch",
            &m.replace_prefix_match,
        )?),
        PathModifierType::ReplaceRegexMatch => {
            let r = m
                .replace_regex_match
                .as_ref()
                .ok_or_else(|| required("path.replaceRegexMatch"))?;
            let pattern = Pattern::new(&r.pattern).map_err(|e| {
                FieldError::invalid(
                    "path.replaceRegexMatch.pattern",
                    format!("{:?} is not a valid regular expression: {e}", r.pattern),
                )
            })?;
            PathRewrite::ReplaceRegexMatch {
                pattern,
                substitution: substitution(&r.substitution).map_err(|why| {
                    FieldError::invalid("path.replaceRegexMatch.substitution", why)
                })?,
            }
        }
    })
}

/// A substitution in the manifest's form (`$1`…`$9` capture groups, one digit as nginx
/// reads them; any other `$` literal) → the `regex` crate's expansion syntax (`${1}`, `$$`),
/// checked to hold only path characters.
pub(super) fn substitution(text: &str) -> Result<String, String> {
    check_chars(text, b"/")?;
    if text.len() > 1024 {
        return Err("is longer than 1024 characters".to_owned());
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('$', Some(d)) if d.is_ascii_digit() => {
                out.push_str("${");
                out.push(*d);
                out.push('}');
                chars.next();
            }
            ('$', _) => out.push_str("$$"),
            (c, _) => out.push(c),
        }
    }
    Ok(out)
}

/// An absolute path of at most 1024 characters from the URI path alphabet (RFC 3986
/// `pchar` and `/`, escapes as `%XX`), without dot segments: it goes verbatim into a
/// `Location` or a request target.
fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "{path:?} is not an absolute path (must start with '/')"
        ));
    }
    if path.len() > 1024 {
        return Err("is longer than 1024 characters".to_owned());
    }
    check_chars(path, b"/")?;
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(format!("{path:?} contains a dot segment"));
    }
    Ok(())
}

/// Only RFC 3986 `pchar`s (escapes as `%XX`) and the `extra` characters.
fn check_chars(text: &str, extra: &[u8]) -> Result<(), String> {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ok = b.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:@".contains(&b)
            || extra.contains(&b)
            || (b == b'%'
                && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit));
        if !ok {
            return Err(format!(
                "{text:?} contains {:?}, which it cannot carry unescaped",
                char::from(b)
            ));
        }
    }
    Ok(())
}

/// A Gateway API `PreciseHostname`: a lower-case DNS name of labels `[a-z0-9-]` (at most 63
/// characters, not starting or ending with `-`), at most 253 characters, no wildcard, no port.
pub(super) fn precise_hostname(host: &str) -> Result<String, String> {
    if host.is_empty() || host.len() > 253 {
        return Err(format!("{host:?} is empty or longer than 253 characters"));
    }
    let valid = crate::compile::is_dns_name(host);
    if !valid {
        return Err(format!(
            "{host:?} is not a lower-case DNS name (labels of a-z, 0-9 and '-'; no wildcard, no port)"
        ));
    }
    Ok(host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(p: &str) -> PathModifier {
        PathModifier {
            type_: PathModifierType::ReplaceFullPath,
            replace_full_path: Some(p.into()),
            replace_prefix_match: None,
            replace_regex_match: None,
        }
    }

    #[test]
    fn defaults_to_302_and_keeps_unset_parts_unset() {
        let r = compile(&RequestRedirectFilter {
            scheme: Some("https".into()),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(r.redirect.status, 302);
        assert_eq!(r.redirect.scheme.as_deref(), Some("https"));
        assert_eq!(r.redirect.port, None, "the proxy derives the port");
        assert!(!r.https_upgrade);
    }

    #[test]
    fn every_field_is_validated_with_its_path() {
        let err = |spec: RequestRedirectFilter| compile(&spec).expect_err("invalid").field;
        assert_eq!(
            err(RequestRedirectFilter {
                scheme: Some("ftp".into()),
                ..Default::default()
            }),
            "scheme"
        );
        for bad in ["*.example.com", "A.example.com", "a.example:80", "-a.b", ""] {
            assert_eq!(
                err(RequestRedirectFilter {
                    hostname: Some(bad.into()),
                    ..Default::default()
                }),
                "hostname",
                "{bad}"
            );
        }
        for bad in [0, 65536, -1] {
            assert_eq!(
                err(RequestRedirectFilter {
                    port: Some(bad),
                    ..Default::default()
                }),
                "port"
            );
        }
        for bad in [200, 304, 300] {
            assert_eq!(
                err(RequestRedirectFilter {
                    status_code: Some(bad),
                    ..Default::default()
                }),
                "statusCode"
            );
        }
        for bad in ["relative", "/a b", "/a?q", "/a/../b", "/%zz"] {
            assert_eq!(
                err(RequestRedirectFilter {
                    path: Some(full(bad)),
                    ..Default::default()
                }),
                "path.replaceFullPath",
                "{bad}"
            );
        }
    }

    #[test]
    fn path_modifier_takes_exactly_its_types_value() {
        let wrong = PathModifier {
            type_: PathModifierType::ReplacePrefixMatch,
            replace_full_path: Some("/x".into()),
            replace_prefix_match: Some("/y".into()),
            replace_regex_match: None,
        };
        assert_eq!(
            path_rewrite(&wrong).expect_err("both set").field,
            "path.replaceFullPath"
        );
        let missing = PathModifier {
            type_: PathModifierType::ReplacePrefixMatch,
            replace_full_path: None,
            replace_prefix_match: None,
            replace_regex_match: None,
        };
        assert_eq!(
            path_rewrite(&missing).expect_err("missing").field,
            "path.replacePrefixMatch"
        );
        assert_eq!(
            path_rewrite(&full("/new/%2Fx")),
            Ok(PathRewrite::ReplaceFullPath("/new/%2Fx".into()))
        );
    }

    #[test]
    fn regex_substitutions_take_one_digit_groups_as_nginx_does() {
        assert_eq!(substitution("/$2"), Ok("/${2}".to_owned()));
        assert_eq!(substitution("/$10/x"), Ok("/${1}0/x".to_owned()));
        assert_eq!(substitution("/a$b$"), Ok("/a$$b$$".to_owned()));
        assert!(substitution("/a b").is_err());
        let regex = |pattern: &str, sub: &str| {
            path_rewrite(&PathModifier {
                type_: PathModifierType::ReplaceRegexMatch,
                replace_full_path: None,
                replace_prefix_match: None,
                replace_regex_match: Some(crate::api::httpfilter::RegexMatchReplace {
                    pattern: pattern.into(),
                    substitution: sub.into(),
                }),
            })
        };
        assert!(matches!(
            regex("^/a(.*)", "/b$1"),
            Ok(PathRewrite::ReplaceRegexMatch { substitution, .. }) if substitution == "/b${1}"
        ));
        assert_eq!(
            regex("(", "/").expect_err("bad pattern").field,
            "path.replaceRegexMatch.pattern"
        );
        assert_eq!(
            regex("x", "/?").expect_err("bad substitution").field,
            "path.replaceRegexMatch.substitution"
        );
    }

    #[test]
    fn a_replaced_query_holds_only_query_characters() {
        let q = |v: &str| {
            compile(&RequestRedirectFilter {
                replace_query: Some(v.into()),
                ..Default::default()
            })
        };
        assert_eq!(
            q("a=1&b=/x?").expect("valid").redirect.query.as_deref(),
            Some("a=1&b=/x?")
        );
        assert_eq!(q("").expect("valid").redirect.query.as_deref(), Some(""));
        assert_eq!(q("a#b").expect_err("fragment").field, "replaceQuery");
    }

    #[test]
    fn all_gateway_statuses_are_accepted() {
        for code in STATUSES {
            let r = compile(&RequestRedirectFilter {
                status_code: Some(i32::from(code)),
                port: Some(8443),
                hostname: Some("shop.example.com".into()),
                ..Default::default()
            })
            .expect("valid");
            assert_eq!(r.redirect.status, code);
            assert_eq!(r.redirect.port, Some(8443));
        }
    }
}
