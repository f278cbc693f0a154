//! `CORS` (Gateway API `HTTPCORSFilter` fields):
//!
//! - `allowOrigins`: `*`, or `scheme://host[:port]` with scheme `http` or `https` and a host
//!   that is a DNS name or IPv4 address, or `*.` and a DNS name (any host ending in that
//!   suffix, one label or more); lower-cased, since origins compare case-insensitively;
//! - `allowMethods`: method tokens, or `*` alone (empty: `GET, HEAD, POST`, the methods a
//!   browser sends without a preflight anyway);
//! - `allowHeaders`, `exposeHeaders`: header names, or `*` alone;
//! - `maxAge`: at least 1 second (default 5, the Gateway API's).
//!
//! The header values the proxy sends are joined here once, so the request path only copies
//! them.

use http::{HeaderName, HeaderValue, Method};

use super::{FieldError, at};
use crate::api::httpfilter::CorsFilter;
use crate::snapshot::{Cors, OriginMatch};

/// `maxAge` when unset (the Gateway API's default).
const DEFAULT_MAX_AGE: u32 = 5;

/// Compile the settings.
pub(super) fn compile(spec: &CorsFilter) -> Result<Cors, FieldError> {
    let allow_origins = spec
        .allow_origins
        .iter()
        .enumerate()
        .map(|(i, o)| origin(o).map_err(|why| FieldError::invalid(at("allowOrigins", i), why)))
        .collect::<Result<Vec<_>, _>>()?;

    let (any_method, methods) = list(&spec.allow_methods, "allowMethods", |m| {
        Method::from_bytes(m.as_bytes())
            .map(|m| m.as_str().to_owned())
            .map_err(|_| format!("{m:?} is not a method"))
    })?;
    let allow_methods = if any_method {
        None
    } else if methods.is_empty() {
        Some(HeaderValue::from_static("GET, HEAD, POST"))
    } else {
        Some(joined(&methods, "allowMethods")?)
    };

    let header = |h: &str| {
        HeaderName::from_bytes(h.as_bytes())
            .map(|n| n.as_str().to_owned())
            .map_err(|_| format!("{h:?} is not a header name"))
    };
    let (any_header, headers) = list(&spec.allow_headers, "allowHeaders", header)?;
    let allow_headers = if headers.is_empty() {
        None
    } else {
        Some(joined(&headers, "allowHeaders")?)
    };
    let (any_expose, expose) = list(&spec.expose_headers, "exposeHeaders", header)?;
    let expose_headers = if any_expose {
        Some(HeaderValue::from_static("*"))
    } else if expose.is_empty() {
        None
    } else {
        Some(joined(&expose, "exposeHeaders")?)
    };

    let max_age = match spec.max_age {
        None => DEFAULT_MAX_AGE,
        Some(s) => u32::try_from(s)
            .ok()
            .filter(|s| *s >= 1)
            .ok_or_else(|| FieldError::invalid("maxAge", format!("{s} is not at least 1")))?,
    };
    Ok(Cors {
        allow_origins,
        allow_methods,
        any_method,
        allow_headers,
        any_header,
        expose_headers,
        allow_credentials: spec.allow_credentials.unwrap_or(false),
        max_age,
    })
}

/// A list of tokens where `*` stands alone for "any": whether it is `*`, else the checked,
/// deduplicated entries.
fn list(
    entries: &[String],
    field: &str,
    check: impl Fn(&str) -> Result<String, String>,
) -> Result<(bool, Vec<String>), FieldError> {
    if entries.iter().any(|e| e == "*") {
        if entries.len() > 1 {
            return Err(FieldError::invalid(
                field,
                "\"*\" must be the only entry when present",
            ));
        }
        return Ok((true, Vec::new()));
    }
    let mut out: Vec<String> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let checked = check(e).map_err(|why| FieldError::invalid(at(field, i), why))?;
        if out.iter().any(|o| o.eq_ignore_ascii_case(&checked)) {
            return Err(FieldError::invalid(
                at(field, i),
                format!("{e:?} appears more than once"),
            ));
        }
        out.push(checked);
    }
    Ok((false, out))
}

fn joined(items: &[String], field: &str) -> Result<HeaderValue, FieldError> {
    HeaderValue::try_from(items.join(", "))
        .map_err(|_| FieldError::invalid(field, "does not make a valid header value"))
}

/// One `allowOrigins` entry.
fn origin(o: &str) -> Result<OriginMatch, String> {
    if o == "*" {
        return Ok(OriginMatch::Any);
    }
    let lower = o.to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return Err(format!("{o:?} is not \"*\" or scheme://host[:port]"));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("{o:?}: the scheme must be http or https"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    if let Some(port) = port
        && !port
            .parse::<u16>()
            .is_ok_and(|p| p != 0 && !port.starts_with('0'))
    {
        return Err(format!("{o:?}: {port:?} is not a port (1-65535)"));
    }
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host),
    };
    let dns = crate::compile::is_dns_name(name);
    if !dns {
        return Err(format!(
            "{o:?}: the host must be a DNS name, an IPv4 address, or \"*.\" and a DNS name \
             (no path, no trailing slash)"
        ));
    }
    let port_part = port.map(|p| format!(":{p}")).unwrap_or_default();
    Ok(if wildcard {
        OriginMatch::Wildcard {
            prefix: format!("{scheme}://"),
            suffix: format!(".{name}{port_part}"),
        }
    } else {
        OriginMatch::Exact(lower)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(origins: &[&str]) -> CorsFilter {
        CorsFilter {
            allow_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn origins_compile_to_exact_wildcard_and_any() {
        let c = compile(&spec(&[
            "https://App.Example.com",
            "https://*.example.com:8443",
            "*",
        ]))
        .expect("valid");
        assert_eq!(
            c.allow_origins,
            vec![
                OriginMatch::Exact("https://app.example.com".into()),
                OriginMatch::Wildcard {
                    prefix: "https://".into(),
                    suffix: ".example.com:8443".into()
                },
                OriginMatch::Any,
            ]
        );
        assert_eq!(c.max_age, 5);
        assert_eq!(
            c.allow_methods,
            Some(HeaderValue::from_static("GET, HEAD, POST"))
        );
        assert!(!c.allow_credentials);
    }

    #[test]
    fn bad_origins_name_their_index() {
        for bad in [
            "app.example.com",
            "ftp://a.example",
            "https://a.example/",
            "https://a.*.example",
            "https://a.example:0",
            "https://a.example:99999",
            "https://",
            "https://a b",
        ] {
            let e = compile(&spec(&["https://ok.example", bad])).expect_err(bad);
            assert_eq!(e.field, "allowOrigins[1]", "{bad}");
        }
    }

    #[test]
    fn lists_join_once_and_star_stands_alone() {
        let c = compile(&CorsFilter {
            allow_methods: vec!["GET".into(), "PATCH".into()],
            allow_headers: vec!["X-Token".into(), "content-type".into()],
            expose_headers: vec!["X-Trace".into()],
            allow_credentials: Some(true),
            max_age: Some(600),
            ..spec(&["https://a.example"])
        })
        .expect("valid");
        assert_eq!(
            c.allow_methods,
            Some(HeaderValue::from_static("GET, PATCH"))
        );
        assert_eq!(
            c.allow_headers,
            Some(HeaderValue::from_static("x-token, content-type"))
        );
        assert_eq!(c.expose_headers, Some(HeaderValue::from_static("x-trace")));
        assert_eq!((c.allow_credentials, c.max_age), (true, 600));

        let any = compile(&CorsFilter {
            allow_methods: vec!["*".into()],
            allow_headers: vec!["*".into()],
            ..spec(&["*"])
        })
        .expect("valid");
        assert!(any.any_method && any.any_header);
        assert_eq!((any.allow_methods, any.allow_headers), (None, None));

        let mixed = compile(&CorsFilter {
            allow_headers: vec!["x-a".into(), "*".into()],
            ..spec(&["*"])
        });
        assert_eq!(mixed.expect_err("star with others").field, "allowHeaders");
        let bad_method = compile(&CorsFilter {
            allow_methods: vec!["GET".into(), "G E T".into()],
            ..spec(&["*"])
        });
        assert_eq!(bad_method.expect_err("bad").field, "allowMethods[1]");
        let repeated = compile(&CorsFilter {
            expose_headers: vec!["x-a".into(), "X-A".into()],
            ..spec(&["*"])
        });
        assert_eq!(repeated.expect_err("repeat").field, "exposeHeaders[1]");
        let age = compile(&CorsFilter {
            max_age: Some(0),
            ..spec(&["*"])
        });
        assert_eq!(age.expect_err("zero").field, "maxAge");
    }
}
