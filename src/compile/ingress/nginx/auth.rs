//! Authentication annotations:
//! - `auth-type: basic`, `auth-secret` (`name` or `namespace/name`), `auth-secret-type`
//!   (`auth-file`, the default: key `auth` holds htpasswd lines; `auth-map`: one key per user,
//!   its value the hash), `auth-realm` → one `BasicAuth` entry (401 with
//!   `WWW-Authenticate: Basic realm="…"`; without `auth-realm` the realm is empty, as
//!   ingress-nginx's `auth_basic ""`), and a `RequestHeaderModifier` removing `Authorization`
//!   from the upstream request, as ingress-nginx does;
//! - `auth-url` (a URL naming a Service of the Ingress's namespace by its cluster DNS name),
//!   `auth-method`, `auth-response-headers`, `auth-signin`, `auth-signin-redirect-param` →
//!   one `ExternalAuth` entry;
//! - `satisfy`: `all` (the default) is what weir does; `any` marks the allow list's
//!   `IPAccess` entry `satisfyAny` (its clients skip authentication, others authenticate).
//!
//! Everything here decides who gets in, so an unreadable value fails closed, and so does
//! `auth-type: digest` (weir has no digest authentication; serving the routes without it
//! would open them). A Secret in another namespace is refused, as ingress-nginx refuses it
//! without `--allow-cross-namespace-resources` (its default since v1.12): the Ingress's owner
//! may not read another namespace's Secrets through weir.

use super::{Context, Phase, Translation, Verdict};
use crate::api::httpfilter::{
    BackendRef, BasicAuthFilter, BasicAuthSecretType, ExternalAuthFilter, FilterEntry, FilterType,
    HeaderFilter, LocalObjectRef,
};

const TYPE: &str = "auth-type";
const SECRET: &str = "auth-secret";
const SECRET_TYPE: &str = "auth-secret-type";
const REALM: &str = "auth-realm";
const URL: &str = "auth-url";
const METHOD: &str = "auth-method";
const RESPONSE_HEADERS: &str = "auth-response-headers";
const SIGNIN: &str = "auth-signin";
const REDIRECT_PARAM: &str = "auth-signin-redirect-param";
const SATISFY: &str = "satisfy";

const NO_CACHE: &str = "weir asks the auth Service on every request (no answer cache); the \
                        Ingress is served without it";
const POOLED: &str = "connections to the auth Service are pooled by its cluster's settings; the \
                      Ingress is served without it";

/// `auth-*` annotations weir reads but does not serve, and why.
const NOT_SERVED: [(&str, &str); 8] = [
    ("auth-cache-key", NO_CACHE),
    ("auth-cache-duration", NO_CACHE),
    (
        "auth-proxy-set-headers",
        "the headers of the auth subrequest come from a ConfigMap weir does not read; the \
         Ingress is served without it",
    ),
    (
        "auth-request-redirect",
        "weir sends X-Auth-Request-Redirect as the request's path and query; the Ingress is \
         served without it",
    ),
    (
        "auth-always-set-cookie",
        "weir does not copy Set-Cookie from auth answers; the Ingress is served without it",
    ),
    ("auth-keepalive", POOLED),
    ("auth-keepalive-requests", POOLED),
    ("auth-keepalive-timeout", POOLED),
];

/// ingress-nginx's `auth-signin-redirect-param` default.
const DEFAULT_REDIRECT_PARAM: &str = "rd";

/// The methods ingress-nginx's `auth-method` accepts that weir's `ExternalAuth` sends.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
];

/// Read the family's annotations into `t`.
pub(super) fn translate(ctx: &Context<'_>, t: &mut Translation) {
    basic(ctx, t);
    external(ctx, t);
    if let Some(value) = ctx.get(SATISFY) {
        let verdict = match value {
            "" | "all" => Verdict::Translated(
                "all (every access check and authentication must pass)".to_owned(),
            ),
            "any" => satisfy_any(t),
            other => Verdict::Invalid {
                why: format!("{other:?} is not \"all\" or \"any\""),
                fails_closed: true,
            },
        };
        t.found(SATISFY, value, verdict);
    }
    for (name, why) in NOT_SERVED {
        if let Some(value) = ctx.get(name) {
            t.found(name, value, Verdict::Unsupported(why.to_owned()));
        }
    }
}

/// `satisfy: any`: the source allow list (`access.rs`'s `IPAccess` entry, translated before
/// this family) lets its clients skip the authentication entries; other clients must
/// authenticate. Without an allow list or without authentication, `any` is `all`.
fn satisfy_any(t: &mut Translation) -> Verdict {
    let auths = t
        .entries
        .iter()
        .filter(|e| e.entry.basic_auth.is_some() || e.entry.external_auth.is_some())
        .count();
    let access = t
        .entries
        .iter_mut()
        .filter_map(|e| e.entry.ip_access.as_mut())
        .find(|a| !a.allow.is_empty());
    let Some(access) = access.filter(|_| auths > 0) else {
        return Verdict::Translated(
            "the same as all: there is no allow list and authentication to choose between"
                .to_owned(),
        );
    };
    access.satisfy_any = Some(true);
    let to = "IPAccess satisfyAny: allowed addresses skip authentication, others must \
              authenticate"
        .to_owned();
    let mut differs = Vec::new();
    if !access.deny.is_empty() {
        differs.push(
            "a denied address is refused even with valid credentials (ingress-nginx lets \
             credentials in)",
        );
    }
    if auths > 1 {
        differs.push(
            "with both basic and external authentication, weir requires both (ingress-nginx \
             either)",
        );
    }
    if differs.is_empty() {
        Verdict::Translated(to)
    } else {
        Verdict::Partial {
            to,
            differs: differs.join("; "),
        }
    }
}

fn fail(why: impl Into<String>) -> Verdict {
    Verdict::Invalid {
        why: why.into(),
        fails_closed: true,
    }
}

/// `auth-type: basic` and its settings.
fn basic(ctx: &Context<'_>, t: &mut Translation) {
    let ignored = |t: &mut Translation, name: &str, why: &str| {
        if let Some(value) = ctx.get(name) {
            t.found(
                name,
                value,
                Verdict::Invalid {
                    why: why.to_owned(),
                    fails_closed: false,
                },
            );
        }
    };
    let Some(kind) = ctx.get(TYPE) else {
        for name in [SECRET, SECRET_TYPE, REALM] {
            ignored(
                t,
                name,
                "ignored without auth-type: basic (as ingress-nginx does)",
            );
        }
        return;
    };
    match kind {
        "basic" => {}
        "digest" => {
            t.found(
                TYPE,
                kind,
                fail("digest authentication is not supported (use basic, or auth-url)"),
            );
            for name in [SECRET, SECRET_TYPE, REALM] {
                ignored(t, name, "ignored: auth-type digest is not served");
            }
            return;
        }
        other => {
            t.found(
                TYPE,
                kind,
                fail(format!("{other:?} is not basic or digest")),
            );
            for name in [SECRET, SECRET_TYPE, REALM] {
                ignored(t, name, "ignored: auth-type is invalid");
            }
            return;
        }
    }
    let secret_type = match ctx.get(SECRET_TYPE) {
        None | Some("auth-file") => Ok(BasicAuthSecretType::AuthFile),
        Some("auth-map") => Ok(BasicAuthSecretType::AuthMap),
        Some(other) => Err(format!("{other:?} is not auth-file or auth-map")),
    };
    let realm = ctx.get(REALM).unwrap_or_default();
    let realm_ok = !realm.contains(['"', '\\']);
    let secret = match ctx.get(SECRET) {
        None => Err("auth-type basic needs auth-secret".to_owned()),
        Some(value) => secret_name(value, &ctx.key.namespace),
    };
    if let Some(value) = ctx.get(SECRET) {
        let verdict = match &secret {
            Ok(name) => Verdict::Translated(format!("BasicAuth filter (Secret {name}; 401)")),
            Err(why) => fail(why.clone()),
        };
        t.found(SECRET, value, verdict);
    }
    if let Some(value) = ctx.get(SECRET_TYPE) {
        let verdict = match &secret_type {
            Ok(BasicAuthSecretType::AuthFile) => {
                Verdict::Translated("BasicAuth secretType AuthFile (key auth)".to_owned())
            }
            Ok(BasicAuthSecretType::AuthMap) => {
                Verdict::Translated("BasicAuth secretType AuthMap (a key per user)".to_owned())
            }
            Err(why) => fail(why.clone()),
        };
        t.found(SECRET_TYPE, value, verdict);
    }
    if let Some(value) = ctx.get(REALM) {
        let verdict = if realm_ok {
            Verdict::Translated("BasicAuth realm".to_owned())
        } else {
            fail("a realm may not contain '\"' or '\\'")
        };
        t.found(REALM, value, verdict);
    }
    let type_verdict = match &secret {
        Ok(_) => Verdict::Translated("BasicAuth filter (401 without valid credentials)".to_owned()),
        // Said once, on auth-type, when auth-secret is missing.
        Err(why) if ctx.get(SECRET).is_none() => fail(why.clone()),
        Err(_) => Verdict::Translated("BasicAuth filter (its auth-secret is invalid)".to_owned()),
    };
    t.found(TYPE, kind, type_verdict);
    let (Ok(name), Ok(secret_type)) = (secret, secret_type) else {
        return;
    };
    if !realm_ok {
        return;
    }
    // ingress-nginx sends the upstream no `Authorization` (`proxy_set_header Authorization
    // ""`): the password stops at the proxy.
    t.entry(
        vec![TYPE],
        Phase::Upstream,
        FilterEntry {
            request_header_modifier: Some(HeaderFilter {
                remove: vec!["Authorization".to_owned()],
                ..HeaderFilter::default()
            }),
            ..FilterEntry::new(FilterType::RequestHeaderModifier)
        },
    );
    t.entry(
        vec![TYPE, SECRET, SECRET_TYPE, REALM],
        Phase::Auth,
        FilterEntry {
            basic_auth: Some(BasicAuthFilter {
                secret_ref: LocalObjectRef { name },
                realm: Some(realm.to_owned()),
                secret_type: (secret_type == BasicAuthSecretType::AuthMap).then_some(secret_type),
            }),
            ..FilterEntry::new(FilterType::BasicAuth)
        },
    );
}

/// `name` or `namespace/name`, the namespace being the Ingress's.
fn secret_name(value: &str, namespace: &str) -> Result<String, String> {
    let (ns, name) = match value.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (namespace, value),
    };
    if name.is_empty() || name.contains('/') {
        return Err(format!("{value:?} is not a Secret name or namespace/name"));
    }
    if ns != namespace {
        return Err(format!(
            "Secret {value} is in another namespace than the Ingress; cross-namespace Secrets \
             are refused (ingress-nginx's default)"
        ));
    }
    Ok(name.to_owned())
}

/// A Service of the Ingress's namespace named by a URL: what `auth-url` and `mirror-target`
/// may point at, since weir forwards to Services only.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ServiceUrl {
    /// The Service and its port.
    pub(super) backend: BackendRef,
    /// Path and query of the URL (`/` when empty), before any `$request_uri`.
    pub(super) path: String,
    /// Whether the URL ends in nginx's `$request_uri` (the request's own path and query).
    pub(super) request_uri: bool,
    /// The URL's host, lower-cased, without the port.
    pub(super) host: String,
}

/// Why a URL is not a [`ServiceUrl`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum UrlProblem {
    /// Not a URL ingress-nginx would accept.
    Invalid(String),
    /// A URL, but not one weir can reach (not a Service of the namespace).
    Unsupported(String),
}

/// Reads `http://<service>.<namespace>[.svc[.<cluster domain>]][:port]/path[?query]`
/// (port 80 when absent); `$request_uri` may end it (nginx's variable: the request's own
/// path and query). A bare `http://<service>/` is refused: from ingress-nginx it resolves in
/// the controller's namespace, which weir cannot know.
pub(super) fn service_url(value: &str, namespace: &str) -> Result<ServiceUrl, UrlProblem> {
    let (url, request_uri) = match value.strip_suffix("$request_uri") {
        Some(rest) => (rest, true),
        None => (value, false),
    };
    if url.contains('$') {
        return Err(UrlProblem::Unsupported(
            "nginx variables other than a final $request_uri are not supported".to_owned(),
        ));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|_| UrlProblem::Invalid(format!("{value:?} is not a URL")))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(UrlProblem::Invalid(format!(
            "{value:?} is not an absolute http:// URL"
        )));
    };
    match scheme {
        "http" => {}
        "https" => {
            return Err(UrlProblem::Unsupported(
                "an https:// URL: weir reaches Services with their port's own protocol \
                 (appProtocol); write http://"
                    .to_owned(),
            ));
        }
        _ => {
            return Err(UrlProblem::Invalid(format!(
                "{value:?} is not an http:// URL"
            )));
        }
    }
    if authority.as_str().contains('@') {
        return Err(UrlProblem::Invalid(format!(
            "{value:?} holds credentials in the URL"
        )));
    }
    let host = authority.host().to_ascii_lowercase();
    let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    let cluster_name = match labels.as_slice() {
        [svc, ns] => Some((*svc, *ns)),
        [svc, ns, "svc", ..] => Some((*svc, *ns)),
        _ => None,
    };
    let not_a_service = || {
        UrlProblem::Unsupported(format!(
            "{host:?} does not name a Service as <service>.<namespace>[.svc.<cluster domain>]; \
             weir forwards to Services only"
        ))
    };
    let (svc, ns) = cluster_name.ok_or_else(not_a_service)?;
    if host.parse::<std::net::Ipv4Addr>().is_ok() || svc.is_empty() {
        return Err(not_a_service());
    }
    if ns != namespace {
        return Err(UrlProblem::Unsupported(format!(
            "Service {ns}/{svc} is in another namespace than the Ingress ({namespace}); weir's \
             filters reference Services of their own namespace only"
        )));
    }
    let port = authority.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = if path.is_empty() { "/" } else { path };
    Ok(ServiceUrl {
        backend: BackendRef {
            name: svc.to_owned(),
            port: i32::from(port),
        },
        path: path.to_owned(),
        request_uri,
        host,
    })
}

/// `auth-url` and its settings.
fn external(ctx: &Context<'_>, t: &mut Translation) {
    let Some(url) = ctx.get(URL) else {
        for name in [METHOD, RESPONSE_HEADERS, SIGNIN, REDIRECT_PARAM] {
            if let Some(value) = ctx.get(name) {
                t.found(
                    name,
                    value,
                    Verdict::Invalid {
                        why: "ignored without auth-url (as ingress-nginx does)".to_owned(),
                        fails_closed: false,
                    },
                );
            }
        }
        return;
    };
    let mut ok = true;
    let target = match service_url(url, &ctx.key.namespace) {
        Ok(u) if u.request_uri => {
            ok = false;
            t.found(
                URL,
                url,
                fail("$request_uri in auth-url is not supported: the subrequest's path is fixed"),
            );
            Some(u)
        }
        Ok(u) => {
            t.found(
                URL,
                url,
                Verdict::Translated(format!(
                    "ExternalAuth filter (Service {}:{}, path {})",
                    u.backend.name, u.backend.port, u.path
                )),
            );
            Some(u)
        }
        // An auth weir cannot ask must not open the routes.
        Err(UrlProblem::Invalid(why) | UrlProblem::Unsupported(why)) => {
            t.found(URL, url, fail(why));
            None
        }
    };
    let method = ctx.get(METHOD).map(|m| (m, METHODS.contains(&m)));
    if let Some((m, valid)) = method {
        let verdict = if valid {
            Verdict::Translated(format!("ExternalAuth method {m}"))
        } else {
            ok = false;
            fail(format!("{m:?} is not one of {}", METHODS.join(", ")))
        };
        t.found(METHOD, m, verdict);
    }
    let mut headers = Vec::new();
    if let Some(value) = ctx.get(RESPONSE_HEADERS) {
        let mut bad = None;
        for h in value.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                bad = Some(h.to_owned());
            }
            headers.push(h.to_owned());
        }
        let verdict = match bad {
            None => Verdict::Translated(
                "ExternalAuth headersToBackend (copied from a 2xx auth answer; removed when it \
                 has none)"
                    .to_owned(),
            ),
            Some(h) => {
                ok = false;
                fail(format!("{h:?} is not a header name"))
            }
        };
        t.found(RESPONSE_HEADERS, value, verdict);
    }
    let param = ctx.get(REDIRECT_PARAM).unwrap_or(DEFAULT_REDIRECT_PARAM);
    let param_ok = !param.is_empty()
        && param
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if let Some(value) = ctx.get(REDIRECT_PARAM) {
        let verdict = if param_ok {
            Verdict::Translated(format!("the sign-in URL's {param}= parameter"))
        } else {
            Verdict::Invalid {
                why: format!("{value:?} is not a query parameter name; rd is used"),
                fails_closed: false,
            }
        };
        t.found(REDIRECT_PARAM, value, verdict);
    }
    let param = if param_ok {
        param
    } else {
        DEFAULT_REDIRECT_PARAM
    };
    let signin = ctx
        .get(SIGNIN)
        .and_then(|value| match signin_url(value, param) {
            Ok(url) => {
                t.found(
                    SIGNIN,
                    value,
                    Verdict::Translated(format!("ExternalAuth signinURL {url} (302 on a 401)")),
                );
                Some(url)
            }
            Err(why) => {
                // Without it a 401 stays a 401: nothing opens.
                t.found(
                    SIGNIN,
                    value,
                    Verdict::Invalid {
                        why: format!("{why}; a denied request gets the auth answer's 401"),
                        fails_closed: false,
                    },
                );
                None
            }
        });
    let Some(target) = target.filter(|_| ok) else {
        return;
    };
    t.entry(
        vec![URL, METHOD, RESPONSE_HEADERS, SIGNIN, REDIRECT_PARAM],
        Phase::Auth,
        FilterEntry {
            external_auth: Some(ExternalAuthFilter {
                backend_ref: target.backend,
                path: Some(target.path),
                method: method.map(|(m, _)| m.to_owned()),
                headers_to_backend: headers,
                signin_url: signin,
                timeout: None,
            }),
            ..FilterEntry::new(FilterType::ExternalAuth)
        },
    );
}

/// ingress-nginx's `buildAuthSignURL`: the sign-in URL with
/// `<param>=$scheme://$host$escaped_request_uri` appended, unless it already has `<param>`.
fn signin_url(value: &str, param: &str) -> Result<String, String> {
    let known = ["$escaped_request_uri", "$host", "$scheme", "$http_host"];
    let mut rest = value.to_owned();
    for v in known {
        rest = rest.replace(v, "");
    }
    if rest.contains('$') {
        return Err(format!(
            "{value:?} holds nginx variables other than $host, $http_host, $scheme and \
             $escaped_request_uri"
        ));
    }
    // weir's `$host` is the request's Host with its port, as nginx's `$http_host`.
    let value = value.replace("$http_host", "$host");
    let uri: http::Uri = value
        .parse()
        .map_err(|_| format!("{value:?} is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(format!("{value:?} is not an absolute http(s) URL"));
    }
    let query = uri.query().unwrap_or_default();
    let has_param = query
        .split('&')
        .any(|kv| kv.split_once('=').map_or(kv, |(k, _)| k) == param);
    let redirect = format!("{param}=$scheme://$host$escaped_request_uri");
    Ok(if query.is_empty() && !value.contains('?') {
        format!("{value}?{redirect}")
    } else if has_param {
        value
    } else {
        format!("{value}&{redirect}")
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn failed_closed(v: &Verdict) -> bool {
        matches!(
            v,
            Verdict::Invalid {
                fails_closed: true,
                ..
            }
        )
    }

    #[test]
    fn basic_auth_with_a_local_secret_becomes_one_entry() {
        let t = translate_only(&[
            ("auth-type", "basic"),
            ("auth-secret", "default/htpasswd"),
            ("auth-realm", "Authentication Required - foo"),
        ]);
        assert_eq!(t.entries.len(), 2);
        assert_eq!(t.entries[0].phase, Phase::Auth);
        let b = t.entries[0].entry.basic_auth.as_ref().expect("BasicAuth");
        assert_eq!(b.secret_ref.name, "htpasswd");
        let strip = t.entries[1].entry.request_header_modifier.as_ref();
        assert_eq!(
            strip.map(|h| h.remove.as_slice()),
            Some(&["Authorization".to_owned()][..])
        );
        assert_eq!(t.entries[1].phase, Phase::Upstream);
        assert_eq!(b.realm.as_deref(), Some("Authentication Required - foo"));
        assert_eq!(b.secret_type, None);
        assert_eq!(t.entries[0].phase, Phase::Auth);
        for name in ["auth-type", "auth-secret", "auth-realm"] {
            assert!(
                matches!(verdict(&t, name), Verdict::Translated(_)),
                "{name}"
            );
        }
    }

    #[test]
    fn auth_map_and_the_empty_default_realm() {
        let t = translate_only(&[
            ("auth-type", "basic"),
            ("auth-secret", "users"),
            ("auth-secret-type", "auth-map"),
        ]);
        let b = t.entries[0].entry.basic_auth.as_ref().expect("BasicAuth");
        assert_eq!(b.secret_type, Some(BasicAuthSecretType::AuthMap));
        assert_eq!(b.realm.as_deref(), Some(""));
    }

    #[test]
    fn unservable_basic_auth_fails_closed() {
        for annotations in [
            &[("auth-type", "digest"), ("auth-secret", "s")][..],
            &[("auth-type", "basic")],
            &[("auth-type", "basic"), ("auth-secret", "other/s")],
            &[
                ("auth-type", "basic"),
                ("auth-secret", "s"),
                ("auth-secret-type", "ldap"),
            ],
            &[("auth-type", "magic"), ("auth-secret", "s")],
        ] {
            let t = translate_only(annotations);
            assert!(t.entries.is_empty(), "{annotations:?}");
            assert!(
                t.findings.iter().any(|f| failed_closed(&f.verdict)),
                "{annotations:?}: {:?}",
                t.findings
            );
        }
        // Without auth-type, ingress-nginx ignores the secret: a warning, not a failure.
        let t = translate_only(&[("auth-secret", "s")]);
        assert!(matches!(
            verdict(&t, "auth-secret"),
            Verdict::Invalid {
                fails_closed: false,
                ..
            }
        ));
    }

    #[test]
    fn service_urls_name_a_service_of_the_namespace() {
        let ok = |url: &str| service_url(url, "default").expect(url);
        let u = ok("http://auth.default.svc.cluster.local:8080/oauth2/auth?x=1");
        assert_eq!((u.backend.name.as_str(), u.backend.port), ("auth", 8080));
        assert_eq!(u.path, "/oauth2/auth?x=1");
        assert_eq!(ok("http://auth.default/").backend.port, 80);
        assert_eq!(ok("http://auth.default").path, "/");
        assert!(ok("http://shadow.default.svc:81$request_uri").request_uri);
        for url in [
            "http://auth/",
            "http://auth.other.svc.cluster.local/",
            "https://auth.default/",
            "http://example.com.evil/",
            "http://10.0.0.1/",
            "http://auth.default/$host",
        ] {
            assert!(
                matches!(service_url(url, "default"), Err(UrlProblem::Unsupported(_))),
                "{url}"
            );
        }
        assert!(matches!(
            service_url("not a url", "default"),
            Err(UrlProblem::Invalid(_))
        ));
    }

    #[test]
    fn auth_url_becomes_external_auth_with_its_settings() {
        let t = translate_only(&[
            (
                "auth-url",
                "http://oauth2.default.svc.cluster.local:4180/oauth2/auth",
            ),
            ("auth-method", "POST"),
            (
                "auth-response-headers",
                "X-Auth-Request-User, X-Auth-Request-Email",
            ),
            ("auth-signin", "https://auth.example/oauth2/start"),
        ]);
        assert_eq!(t.entries.len(), 1);
        let a = t.entries[0]
            .entry
            .external_auth
            .as_ref()
            .expect("ExternalAuth");
        assert_eq!(a.backend_ref.name, "oauth2");
        assert_eq!(a.backend_ref.port, 4180);
        assert_eq!(a.path.as_deref(), Some("/oauth2/auth"));
        assert_eq!(a.method.as_deref(), Some("POST"));
        assert_eq!(
            a.headers_to_backend,
            ["X-Auth-Request-User", "X-Auth-Request-Email"]
        );
        assert_eq!(
            a.signin_url.as_deref(),
            Some("https://auth.example/oauth2/start?rd=$scheme://$host$escaped_request_uri")
        );
    }

    #[test]
    fn the_signin_url_gets_the_redirect_parameter_as_ingress_nginx_builds_it() {
        let s = |v| signin_url(v, "rd").expect(v);
        assert_eq!(
            s("https://a.example/start?x=1"),
            "https://a.example/start?x=1&rd=$scheme://$host$escaped_request_uri"
        );
        assert_eq!(
            s("https://$host/oauth2/start?rd=$escaped_request_uri"),
            "https://$host/oauth2/start?rd=$escaped_request_uri"
        );
        assert_eq!(
            signin_url("https://a.example/start", "next").expect("valid"),
            "https://a.example/start?next=$scheme://$host$escaped_request_uri"
        );
        assert!(signin_url("https://a.example/?u=$remote_user", "rd").is_err());
    }

    #[test]
    fn unreachable_auth_urls_fail_closed_and_others_are_reported() {
        for url in ["http://auth.other/", "http://auth/", "ftp://x/"] {
            let t = translate_only(&[("auth-url", url)]);
            assert!(t.entries.is_empty());
            assert!(failed_closed(verdict(&t, "auth-url")), "{url}");
        }
        let t = translate_only(&[("auth-url", "http://a.default/"), ("auth-method", "BREW")]);
        assert!(t.entries.is_empty());
        assert!(failed_closed(verdict(&t, "auth-method")));
        let t = translate_only(&[
            ("auth-url", "http://a.default/"),
            ("auth-cache-key", "$remote_user"),
            ("satisfy", "any"),
        ]);
        assert_eq!(t.entries.len(), 1);
        assert!(matches!(
            verdict(&t, "auth-cache-key"),
            Verdict::Unsupported(_)
        ));
        assert!(matches!(verdict(&t, "satisfy"), Verdict::Translated(_)));
    }

    #[test]
    fn satisfy_any_lets_the_allow_list_skip_authentication() {
        let t = translate_only(&[
            ("whitelist-source-range", "10.0.0.0/8"),
            ("auth-url", "http://a.default/"),
            ("satisfy", "any"),
        ]);
        let access = t
            .entries
            .iter()
            .find_map(|e| e.entry.ip_access.as_ref())
            .expect("IPAccess");
        assert_eq!(access.satisfy_any, Some(true));
        assert!(matches!(verdict(&t, "satisfy"), Verdict::Translated(_)));
        let t = translate_only(&[
            ("whitelist-source-range", "10.0.0.0/8"),
            ("denylist-source-range", "10.1.0.0/16"),
            ("auth-url", "http://a.default/"),
            ("satisfy", "any"),
        ]);
        assert!(matches!(verdict(&t, "satisfy"), Verdict::Partial { .. }));
        // No authentication: nothing to choose between, the allow list stays as it is.
        let t = translate_only(&[("whitelist-source-range", "10.0.0.0/8"), ("satisfy", "any")]);
        let access = t.entries[0].entry.ip_access.as_ref().expect("IPAccess");
        assert_eq!(access.satisfy_any, None);
    }
}

#[cfg(test)]
mod one_finding_each {
    use super::super::testing::*;

    /// Every annotation of the families this helper wrote (auth, CORS, limits, headers)
    /// gets exactly one finding, whichever branch reads it.
    #[test]
    fn every_annotation_gets_exactly_one_finding() {
        let all: &[&[(&str, &str)]] = &[
            &[
                ("auth-type", "basic"),
                ("auth-secret", "other/s"),
                ("auth-secret-type", "ldap"),
                ("auth-realm", "a\"b"),
                ("auth-url", "http://a.default/"),
                ("auth-method", "BREW"),
                ("auth-response-headers", "bad header"),
                ("auth-signin", "https://x/?u=$remote_user"),
                ("auth-signin-redirect-param", "r d"),
                ("auth-cache-key", "k"),
                ("satisfy", "any"),
            ],
            &[
                ("auth-type", "digest"),
                ("auth-secret", "s"),
                ("auth-realm", "r"),
            ],
            &[
                ("auth-secret", "s"),
                ("auth-method", "GET"),
                ("auth-signin", "x"),
            ],
            &[
                ("enable-cors", "true"),
                ("cors-allow-origin", ""),
                ("cors-allow-methods", "x;"),
                ("cors-allow-headers", "X-A, X-A"),
                ("cors-expose-headers", "*"),
                ("cors-allow-credentials", "maybe"),
                ("cors-max-age", "0"),
            ],
            &[("enable-cors", "false"), ("cors-max-age", "5")],
            &[
                ("limit-rps", "x"),
                ("limit-rpm", "5"),
                ("limit-burst-multiplier", "y"),
                ("limit-whitelist", "nope"),
                ("limit-connections", "3"),
                ("limit-rate", "100"),
            ],
            &[
                ("mirror-target", "http://s.default/x"),
                ("mirror-request-body", "off"),
                ("mirror-host", "bad host"),
                ("custom-headers", "default/none"),
            ],
            &[("mirror-request-body", "on"), ("mirror-host", "h")],
        ];
        for annotations in all {
            let t = translate_only(annotations);
            let mut names: Vec<&str> = t.findings.iter().map(|f| f.name.as_str()).collect();
            let count = names.len();
            names.dedup();
            assert_eq!(names.len(), count, "{:?}", t.findings);
            assert_eq!(count, annotations.len(), "{:?}", t.findings);
        }
    }
}
