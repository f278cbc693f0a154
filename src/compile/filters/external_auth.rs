//! `ExternalAuth` (ingress-nginx `auth-url` / oauth2-proxy): validation of its settings.
//!
//! - `backendRef`: a Service port in the filter's namespace, resolved under the same rules as
//!   a route's backend ([`service_cluster`]); when it does not resolve the filter fails
//!   (`RefNotFound`), and so, closed, do its routes (500). The compiled filter holds the
//!   cluster's key; assemble keeps the cluster in the snapshot for the routes that use it.
//! - `path`: an origin-form target (`/oauth2/auth`, query allowed; default `/`).
//! - `method`: one of the standard methods, upper case (default `GET`).
//! - `headersToBackend`: header names; not the framing or routing ones (`host`,
//!   `content-length`, `transfer-encoding`, `connection`), which a subrequest answer must not
//!   change on the forwarded request.
//! - `signinURL`: an absolute `http(s)` URL; `$escaped_request_uri` (the original request's
//!   path and query, percent-encoded), `$host` and `$scheme` are replaced per request, as
//!   ingress-nginx's `auth-signin` does; no other `$` variable is known.
//! - `timeout`: a Gateway API duration (`2s`, `500ms`, `1m30s`), 1 ms to 60 s (default 2 s).

use std::time::Duration;

use http::{HeaderName, Method};

use super::super::backends::service_cluster;
use super::{EntryContext, FieldError, at};
use crate::api::httpfilter::{BackendRef, ExternalAuthFilter};
use crate::compile::parse_duration;
use crate::snapshot::{ClusterKey, ExternalAuth};

/// The subrequest's timeout when none is set (ingress-nginx's `proxy_connect_timeout` for
/// auth, and oauth2-proxy answers in milliseconds).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest timeout accepted: the client waits this long before its request even starts.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// The variables a `signinURL` may hold.
pub(crate) const SIGNIN_VARIABLES: [&str; 3] = ["$escaped_request_uri", "$host", "$scheme"];

/// Headers an auth answer may not set on the forwarded request.
const RESERVED: [HeaderName; 4] = [
    http::header::HOST,
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::header::CONNECTION,
];

/// Compile the settings.
pub(super) fn compile(
    spec: &ExternalAuthFilter,
    ctx: &EntryContext<'_>,
) -> Result<ExternalAuth, FieldError> {
    let cluster = cluster(&spec.backend_ref, ctx)?;
    let path = match spec.path.as_deref() {
        None => "/".to_owned(),
        Some(p) => {
            let parsed = p.parse::<http::uri::PathAndQuery>().ok();
            if !p.starts_with('/') || parsed.is_none() || p.contains('#') {
                return Err(FieldError::invalid(
                    "path",
                    format!("{p:?} is not a path (it must start with / and hold no fragment)"),
                ));
            }
            p.to_owned()
        }
    };
    let method = match spec.method.as_deref() {
        None => Method::GET,
        Some(m) => standard_method(m).ok_or_else(|| {
            FieldError::invalid(
                "method",
                format!("{m:?} is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"),
            )
        })?,
    };
    let headers_to_backend = spec
        .headers_to_backend
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let field = at("headersToBackend", i);
            let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                FieldError::invalid(&field, format!("{name:?} is not a header name"))
            })?;
            if RESERVED.contains(&parsed) {
                return Err(FieldError::invalid(
                    field,
                    format!("{name:?} frames or routes the request; an auth answer cannot set it"),
                ));
            }
            Ok(parsed)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signin_url = spec
        .signin_url
        .as_deref()
        .map(|url| signin(url).map(|()| url.to_owned()))
        .transpose()?;
    let timeout = match spec.timeout.as_deref() {
        None => DEFAULT_TIMEOUT,
        Some(t) => match parse_duration(t) {
            Some(d) if !d.is_zero() && d <= MAX_TIMEOUT => d,
            Some(_) => {
                return Err(FieldError::invalid(
                    "timeout",
                    format!("{t:?} must be between 1ms and 60s"),
                ));
            }
            None => {
                return Err(FieldError::invalid(
                    "timeout",
                    format!("{t:?} is not a duration (like 2s, 500ms or 1m30s)"),
                ));
            }
        },
    };
    Ok(ExternalAuth {
        cluster,
        path,
        method,
        headers_to_backend,
        signin_url,
        timeout,
    })
}

/// The cluster of a filter's `backendRef` (a Service port in the filter's namespace), or the
/// error under `backendRef`: invalid values, or a reference that does not resolve.
pub(super) fn cluster(r: &BackendRef, ctx: &EntryContext<'_>) -> Result<ClusterKey, FieldError> {
    if !is_dns_label(&r.name) {
        return Err(FieldError::invalid(
            "backendRef.name",
            format!("{:?} is not a Service name (a DNS label)", r.name),
        ));
    }
    let port = u16::try_from(r.port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            FieldError::invalid(
                "backendRef.port",
                format!("{} is not a port number (1-65535)", r.port),
            )
        })?;
    service_cluster(ctx.objects, &ctx.key.namespace, &r.name, port)
        .map_err(|(_, message)| FieldError::missing_ref("backendRef", message))
}

/// A DNS-1035 label, as Service names are.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn standard_method(m: &str) -> Option<Method> {
    const STANDARD: [Method; 8] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
    ];
    STANDARD.into_iter().find(|s| s.as_str() == m)
}

/// Checks a `signinURL`: with its variables filled in, an absolute `http(s)` URL that is a
/// valid `Location` value.
fn signin(url: &str) -> Result<(), FieldError> {
    let mut filled = url.to_owned();
    for v in SIGNIN_VARIABLES {
        filled = filled.replace(v, "x");
    }
    let bad = |why: &str| FieldError::invalid("signinURL", format!("{url:?}: {why}"));
    if filled.contains('$') {
        return Err(bad(
            "the only variables replaced are $escaped_request_uri, $host and $scheme",
        ));
    }
    let uri: http::Uri = filled.parse().map_err(|_| bad("not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(bad("must be an absolute http or https URL"));
    }
    if http::HeaderValue::from_str(&filled).is_err() {
        return Err(bad("not a valid Location header value"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::reasons;
    use crate::compile::testing::services;
    use crate::store::ObjectKey;

    fn spec() -> ExternalAuthFilter {
        ExternalAuthFilter {
            backend_ref: BackendRef {
                name: "oauth2-proxy".into(),
                port: 80,
            },
            path: None,
            method: None,
            headers_to_backend: Vec::new(),
            signin_url: None,
            timeout: None,
        }
    }

    fn run(spec: &ExternalAuthFilter) -> Result<ExternalAuth, FieldError> {
        let objects = services(&["shop/oauth2-proxy"]);
        let key = ObjectKey::new("shop", "guard");
        compile(
            spec,
            &EntryContext {
                key: &key,
                objects: &objects,
            },
        )
    }

    fn error(spec: &ExternalAuthFilter) -> (String, &'static str) {
        let e = run(spec).expect_err("does not compile");
        (e.field, e.reason)
    }

    #[test]
    fn defaults_are_get_slash_and_two_seconds_to_the_service_port_cluster() {
        let auth = run(&spec()).expect("compiles");
        assert_eq!(auth.cluster, ClusterKey::new("shop", "oauth2-proxy", 80));
        assert_eq!(
            (auth.method, auth.path.as_str(), auth.timeout),
            (Method::GET, "/", Duration::from_secs(2))
        );
    }

    #[test]
    fn every_setting_is_kept_validated() {
        let mut s = spec();
        s.path = Some("/oauth2/auth?allowed_groups=admin".into());
        s.method = Some("POST".into());
        s.headers_to_backend = vec!["X-Auth-Request-User".into(), "x-auth-request-email".into()];
        s.signin_url = Some("https://$host/oauth2/start?rd=$escaped_request_uri".into());
        s.timeout = Some("1s500ms".into());
        let auth = run(&s).expect("compiles");
        assert_eq!(auth.path, "/oauth2/auth?allowed_groups=admin");
        assert_eq!(auth.method, Method::POST);
        assert_eq!(
            auth.headers_to_backend,
            [
                HeaderName::from_static("x-auth-request-user"),
                HeaderName::from_static("x-auth-request-email")
            ]
        );
        assert_eq!(auth.timeout, Duration::from_millis(1500));
        assert!(auth.signin_url.is_some());
    }

    #[test]
    fn a_missing_service_or_port_fails_the_filter_as_a_missing_reference() {
        let mut s = spec();
        s.backend_ref.name = "gone".into();
        assert_eq!(
            error(&s),
            ("backendRef".into(), reasons::FILTER_REF_NOT_FOUND)
        );
        let mut s = spec();
        s.backend_ref.port = 4180;
        assert_eq!(
            error(&s),
            ("backendRef".into(), reasons::FILTER_REF_NOT_FOUND)
        );
    }

    #[test]
    fn invalid_values_name_their_field() {
        type Change = fn(&mut ExternalAuthFilter);
        let cases: [(Change, &str); 10] = [
            (
                |s| s.backend_ref.name = "Not_A_Name".into(),
                "backendRef.name",
            ),
            (|s| s.backend_ref.port = 0, "backendRef.port"),
            (|s| s.path = Some("oauth2/auth".into()), "path"),
            (|s| s.path = Some("/a b".into()), "path"),
            (|s| s.method = Some("get".into()), "method"),
            (
                |s| s.headers_to_backend = vec!["x-ok".into(), "bad header".into()],
                "headersToBackend[1]",
            ),
            (
                |s| s.headers_to_backend = vec!["Content-Length".into()],
                "headersToBackend[0]",
            ),
            (|s| s.signin_url = Some("/oauth2/start".into()), "signinURL"),
            (
                |s| s.signin_url = Some("https://a.example/?rd=$request_uri".into()),
                "signinURL",
            ),
            (|s| s.timeout = Some("2 seconds".into()), "timeout"),
        ];
        for (change, field) in cases {
            let mut s = spec();
            change(&mut s);
            assert_eq!(error(&s), (field.into(), reasons::INVALID_FILTER), "{s:?}");
        }
        for t in ["0s", "61s", "2h"] {
            let mut s = spec();
            s.timeout = Some(t.into());
            assert_eq!(error(&s).0, "timeout", "{t}");
        }
    }

    #[test]
    fn durations_follow_the_gateway_api_format() {
        let ok = [
            ("2s", 2_000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("1h", 3_600_000),
            ("1s500ms", 1_500),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Some(Duration::from_millis(ms)), "{s}");
        }
        for s in ["", "2", "s", "1.5s", "123456s", "1h1m1s1ms1h", "-1s", "2S"] {
            assert_eq!(parse_duration(s), None, "{s:?}");
        }
    }
}
