//! `CORS`: cross-origin resource sharing (the Fetch standard's CORS protocol, with the
//! Gateway API `HTTPCORSFilter`'s rules).
//!
//! - A **preflight** (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
//!   answered here with 204 and never forwarded. An allowed origin gets
//!   `Access-Control-Allow-Origin`, `-Allow-Methods`, `-Allow-Headers`, `-Max-Age`,
//!   `-Expose-Headers` and, when credentials are allowed, `-Allow-Credentials: true`; a
//!   disallowed one gets a 204 without
//!   any of them, which the browser treats as a refusal.
//! - An **actual request** is forwarded as it is; in the response phase an allowed origin
//!   gets `Access-Control-Allow-Origin` (with `Vary: Origin` when it is echoed),
//!   `-Allow-Credentials` and `-Expose-Headers`; a disallowed one gets none.
//! - `*` answers `*`, except with credentials, where browsers refuse `*`: then the origin,
//!   the requested method and the requested headers are echoed instead (the Gateway API's
//!   rule).
//!
//! The request's `Origin` and whether it is a preflight are captured before the request
//! phase ([`super::RequestFacts`]), since the response phase no longer has the request.

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, HeaderMap, VARY,
};
use http::{HeaderValue, StatusCode, request, response};

use super::FilterContext;
use crate::proxy::error::LocalReply;
use crate::snapshot::{Cors, OriginMatch};

static STAR: HeaderValue = HeaderValue::from_static("*");
static TRUE: HeaderValue = HeaderValue::from_static("true");
static ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

/// Request phase: answer a preflight.
pub(crate) fn on_request(
    c: &Cors,
    ctx: &FilterContext<'_>,
    req: &request::Parts,
) -> Result<(), Box<LocalReply>> {
    if !ctx.facts.preflight {
        return Ok(());
    }
    let mut reply = LocalReply::text(StatusCode::NO_CONTENT, Bytes::new());
    reply.headers.remove(CONTENT_TYPE);
    if let Some(origin) = ctx.facts.origin.as_ref()
        && allowed(c, origin)
    {
        let h = &mut reply.headers;
        allow_origin(c, origin, h);
        let methods = if !c.any_method {
            c.allow_methods.clone()
        } else if c.allow_credentials {
            req.headers.get(ACCESS_CONTROL_REQUEST_METHOD).cloned()
        } else {
            Some(STAR.clone())
        };
        if let Some(m) = methods {
            h.insert(ACCESS_CONTROL_ALLOW_METHODS, m);
        }
        let headers = if !c.any_header {
            c.allow_headers.clone()
        } else if c.allow_credentials {
            req.headers.get(ACCESS_CONTROL_REQUEST_HEADERS).cloned()
        } else {
            Some(STAR.clone())
        };
        if let Some(v) = headers {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(c.max_age));
        // Browsers read it from actual responses only; the preflight carries it too, as
        // Envoy's does and the Gateway API conformance suite expects.
        if let Some(expose) = &c.expose_headers {
            h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
    Err(Box::new(reply))
}

/// Response phase: the headers of an actual request's response.
pub(crate) fn on_response(c: &Cors, ctx: &FilterContext<'_>, resp: &mut response::Parts) {
    // A preflight was answered in the request phase (here, or by an earlier filter).
    if ctx.facts.preflight {
        return;
    }
    let Some(origin) = ctx.facts.origin.as_ref() else {
        return;
    };
    if !allowed(c, origin) {
        return;
    }
    allow_origin(c, origin, &mut resp.headers);
    if let Some(expose) = &c.expose_headers {
        resp.headers
            .insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
    }
}

/// `Access-Control-Allow-Origin` (`*`, or the origin echoed with `Vary: Origin`) and
/// `-Allow-Credentials`.
fn allow_origin(c: &Cors, origin: &HeaderValue, h: &mut HeaderMap) {
    let star = !c.allow_credentials && c.allow_origins.contains(&OriginMatch::Any);
    if star {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, STAR.clone());
    } else {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        let varies = h
            .get_all(VARY)
            .iter()
            .any(|v| v.to_str().is_ok_and(varies_on_origin));
        if !varies {
            h.append(VARY, ORIGIN.clone());
        }
    }
    if c.allow_credentials {
        h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
    }
}

fn varies_on_origin(v: &str) -> bool {
    v.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.eq_ignore_ascii_case("origin"))
}

/// Whether `origin` is one of the allowed ones (case-insensitively).
pub(crate) fn allowed(c: &Cors, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    c.allow_origins.iter().any(|m| match m {
        OriginMatch::Any => true,
        OriginMatch::Exact(exact) => origin.eq_ignore_ascii_case(exact),
        OriginMatch::Wildcard { prefix, suffix } => {
            let (p, s) = (prefix.len(), suffix.len());
            origin.len() > p + s
                && origin.is_char_boundary(p)
                && origin.is_char_boundary(origin.len() - s)
                && origin[..p].eq_ignore_ascii_case(prefix)
                && origin[origin.len() - s..].eq_ignore_ascii_case(suffix)
                // The labels in front of the suffix: a host, never a port, path or user.
                && origin[p..origin.len() - s]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: Vec<OriginMatch>) -> Cors {
        Cors {
            allow_origins: origins,
            allow_methods: Some(HeaderValue::from_static("GET, POST")),
            any_method: false,
            allow_headers: None,
            any_header: false,
            expose_headers: None,
            allow_credentials: false,
            max_age: 5,
        }
    }

    #[test]
    fn origins_match_exactly_by_wildcard_suffix_or_any() {
        let c = cors(vec![
            OriginMatch::Exact("https://app.example.com".into()),
            OriginMatch::Wildcard {
                prefix: "https://".into(),
                suffix: ".shop.example".into(),
            },
        ]);
        let ok = |o: &'static str| allowed(&c, &HeaderValue::from_static(o));
        assert!(ok("https://app.example.com"));
        assert!(ok("HTTPS://App.Example.com"));
        assert!(ok("https://a.shop.example"));
        assert!(ok("https://a.b.shop.example"));
        assert!(!ok("http://app.example.com"), "scheme differs");
        assert!(!ok("https://app.example.com:8443"), "port differs");
        assert!(!ok("https://shop.example"), "the wildcard needs a label");
        assert!(
            !ok("https://evil.com:1.shop.example"),
            "no port before the suffix"
        );
        assert!(!ok("https://evil.com/.shop.example"));
        assert!(!ok("http://a.shop.example"));
        assert!(!ok("null"));
        let any = cors(vec![OriginMatch::Any]);
        assert!(allowed(&any, &HeaderValue::from_static("null")));
    }

    #[test]
    fn credentials_echo_the_origin_instead_of_star() {
        let mut h = HeaderMap::new();
        let origin = HeaderValue::from_static("https://a.example");
        allow_origin(&cors(vec![OriginMatch::Any]), &origin, &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(!h.contains_key(VARY));
        let mut h = HeaderMap::new();
        h.insert(VARY, HeaderValue::from_static("accept-encoding"));
        let c = Cors {
            allow_credentials: true,
            ..cors(vec![OriginMatch::Any])
        };
        allow_origin(&c, &origin, &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://a.example");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let vary: Vec<_> = h.get_all(VARY).iter().collect();
        assert_eq!(vary, ["accept-encoding", "Origin"]);
        // Applied twice (two CORS filters, or a backend that already varies): one Vary.
        allow_origin(&c, &origin, &mut h);
        assert_eq!(h.get_all(VARY).iter().count(), 2);
    }
}
