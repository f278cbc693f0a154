//! `affinity: cookie` and its `session-cookie-*` settings, and `upstream-hash-by`: the
//! consistent-hash balancer of the variant (ingress-nginx's `balancer.lua` precedence:
//! affinity, then `upstream-hash-by`; the caller then reads `load-balance`).

use super::super::{Context, Translation, Verdict};
use super::{ignored, positive_seconds};
use crate::api::backendpolicy::{
    ConsistentHashSpec, ConsistentHashType, CookieKey, CookieSameSite, LoadBalancerSpec,
    LoadBalancerType, NamedKey,
};

const HASH_BY: &str = "upstream-hash-by";
const HASH_SUBSET: [&str; 2] = ["upstream-hash-by-subset", "upstream-hash-by-subset-size"];
const AFFINITY: &str = "affinity";
const AFFINITY_MODE: &str = "affinity-mode";
const COOKIE_NAME: &str = "session-cookie-name";
const COOKIE_PATH: &str = "session-cookie-path";
const COOKIE_MAX_AGE: &str = "session-cookie-max-age";
const COOKIE_EXPIRES: &str = "session-cookie-expires";
const CHANGE_ON_FAILURE: &str = "session-cookie-change-on-failure";
const COOKIE_SAMESITE: &str = "session-cookie-samesite";
const COOKIE_SECURE: &str = "session-cookie-secure";
const COOKIE_CONDITIONAL: &str = "session-cookie-conditional-samesite-none";
/// Cookie attributes weir's affinity cookie does not carry.
const COOKIE_UNSERVED: [&str; 1] = ["session-cookie-domain"];

fn ring(key: ConsistentHashSpec) -> LoadBalancerSpec {
    LoadBalancerSpec {
        type_: LoadBalancerType::RingHash,
        consistent_hash: Some(key),
        slow_start: None,
        panic_threshold: None,
        decay: None,
    }
}

fn hash_spec(type_: ConsistentHashType) -> ConsistentHashSpec {
    ConsistentHashSpec {
        type_,
        header: None,
        cookie: None,
        query_parameter: None,
        min_ring_size: None,
    }
}

/// Whether `s` is a cookie name (an RFC 6265 token), as compile checks it.
fn cookie_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

const COOKIE_DIFFERS: &str = "ingress-nginx's cookie names the endpoint, so a session stays \
    on it until that endpoint goes away; weir's cookie is a random key hashed onto a ring of \
    the endpoints (RingHash), so when endpoints are added or removed about 1/N of the \
    sessions move to another endpoint";

/// `affinity` and the cookie annotations: the balancer, when `affinity: cookie`.
pub(super) fn affinity(ctx: &Context<'_>, t: &mut Translation) -> Option<LoadBalancerSpec> {
    let on = match ctx.get(AFFINITY) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("cookie") => true,
        Some(v) => {
            t.found(
                AFFINITY,
                v,
                ignored(format!("{v:?} is not an affinity type (only \"cookie\")")),
            );
            false
        }
    };
    let cookie_names = [
        COOKIE_SAMESITE,
        COOKIE_SECURE,
        COOKIE_CONDITIONAL,
        AFFINITY_MODE,
        COOKIE_NAME,
        COOKIE_PATH,
        COOKIE_MAX_AGE,
        COOKIE_EXPIRES,
        CHANGE_ON_FAILURE,
    ];
    if !on {
        for name in cookie_names.into_iter().chain(COOKIE_UNSERVED) {
            if let Some(v) = ctx.get(name) {
                t.found(
                    name,
                    v,
                    Verdict::Translated(
                        "nothing: there is no cookie affinity without affinity: cookie, as in \
                         ingress-nginx"
                            .to_owned(),
                    ),
                );
            }
        }
        return None;
    }
    let mut cookie = CookieKey {
        name: "INGRESSCOOKIE".to_owned(),
        ttl: None,
        path: None,
        same_site: None,
        secure: None,
    };
    if let Some(v) = ctx.get(COOKIE_NAME) {
        if cookie_token(v) {
            cookie.name = v.to_owned();
            t.found(
                COOKIE_NAME,
                v,
                Verdict::Translated(format!("affinity cookie {v}")),
            );
        } else {
            t.found(
                COOKIE_NAME,
                v,
                ignored(format!(
                    "{v:?} is not a cookie name; the cookie is INGRESSCOOKIE"
                )),
            );
        }
    }
    // ingress-nginx's cookie path is the Ingress path (its `location`) unless set; weir's
    // variant spans the whole Ingress, so one path is used only when the Ingress has one.
    let mut path_differs = None;
    match ctx.get(COOKIE_PATH) {
        Some(v) if v.starts_with('/') && !v.bytes().any(|b| b.is_ascii_control() || b == b';') => {
            cookie.path = Some(v.to_owned());
            t.found(
                COOKIE_PATH,
                v,
                Verdict::Translated(format!("cookie Path={v}")),
            );
        }
        Some(v) => t.found(
            COOKIE_PATH,
            v,
            ignored(format!("{v:?} is not a cookie path (starts with /)")),
        ),
        None => match ingress_paths(ctx).as_slice() {
            // A regex path (use-regex) is no cookie path; ingress-nginx asks for the annotation.
            [one]
                if one
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-._~%".contains(&b)) =>
            {
                cookie.path = Some(one.clone())
            }
            [_] => {
                path_differs = Some(
                    "the Ingress's path is not a plain path (a regex?): weir sets Path=/ (set \
                     session-cookie-path to choose)",
                )
            }
            [] => {}
            _ => {
                path_differs = Some(
                    "the Ingress has several paths: ingress-nginx sets each path's own as the \
                     cookie Path, weir sets Path=/ (set session-cookie-path to choose)",
                )
            }
        },
    }
    let mut lifetime = None;
    for name in [COOKIE_MAX_AGE, COOKIE_EXPIRES] {
        let Some(v) = ctx.get(name) else {
            continue;
        };
        match positive_seconds(v) {
            Ok((n, d)) => {
                let verdict = if name == COOKIE_MAX_AGE {
                    Verdict::Translated(format!("cookie Max-Age={n}"))
                } else if ctx.get(COOKIE_MAX_AGE).is_some() {
                    Verdict::Partial {
                        to: "nothing: session-cookie-max-age sets the lifetime".to_owned(),
                        differs: "ingress-nginx also sets Expires; browsers honour Max-Age \
                                  over Expires, so the lifetime is the same"
                            .to_owned(),
                    }
                } else {
                    Verdict::Partial {
                        to: format!("cookie Max-Age={n}"),
                        differs: format!(
                            "weir sets Max-Age={n} instead of Expires (now + {n}s): the same \
                             lifetime for browsers"
                        ),
                    }
                };
                if lifetime.is_none() {
                    lifetime = Some(d);
                }
                t.found(name, v, verdict);
            }
            Err(why) => t.found(name, v, ignored(why)),
        }
    }
    cookie.ttl = lifetime;
    match ctx.get(AFFINITY_MODE) {
        None => {}
        Some(v) if v == "balanced" => t.found(
            AFFINITY_MODE,
            v,
            Verdict::Translated(
                "cookie-hash RingHash (sessions rebalance when endpoints change)".to_owned(),
            ),
        ),
        Some(v) if v == "persistent" => t.found(
            AFFINITY_MODE,
            v,
            Verdict::Partial {
                to: "cookie-hash RingHash".to_owned(),
                differs: "persistent keeps every session on its endpoint while it exists; \
                          weir's consistent hash moves about 1/N of the sessions when an \
                          endpoint is added"
                    .to_owned(),
            },
        ),
        Some(v) => t.found(
            AFFINITY_MODE,
            v,
            ignored(format!("{v:?} is not \"balanced\" or \"persistent\"")),
        ),
    }
    match ctx.bool(CHANGE_ON_FAILURE) {
        None => {}
        Some(Ok(false)) => t.found(
            CHANGE_ON_FAILURE,
            ctx.get(CHANGE_ON_FAILURE).unwrap_or_default(),
            Verdict::Translated(
                "the cookie is kept when a request is retried on another endpoint".to_owned(),
            ),
        ),
        Some(Ok(true)) => t.found(
            CHANGE_ON_FAILURE,
            ctx.get(CHANGE_ON_FAILURE).unwrap_or_default(),
            Verdict::Unsupported(
                "weir does not set a new cookie when a request is retried on another \
                 endpoint; the session stays hashed to the failed one"
                    .to_owned(),
            ),
        ),
        Some(Err(why)) => t.found(
            CHANGE_ON_FAILURE,
            ctx.get(CHANGE_ON_FAILURE).unwrap_or_default(),
            ignored(why),
        ),
    }
    if let Some(v) = ctx.get(COOKIE_SAMESITE) {
        let same_site = match v.to_ascii_lowercase().as_str() {
            "strict" => Some(CookieSameSite::Strict),
            "lax" => Some(CookieSameSite::Lax),
            "none" => Some(CookieSameSite::None),
            _ => None,
        };
        match same_site {
            Some(s) => {
                cookie.same_site = Some(s);
                t.found(
                    COOKIE_SAMESITE,
                    v,
                    Verdict::Translated(format!("cookie SameSite={s:?}")),
                );
            }
            None => t.found(
                COOKIE_SAMESITE,
                v,
                ignored(format!("{v:?} is not None, Lax or Strict")),
            ),
        }
    }
    match ctx.bool(COOKIE_SECURE) {
        None => {}
        Some(Ok(secure)) => {
            cookie.secure = Some(secure);
            let to = if secure {
                "cookie marked Secure"
            } else {
                "cookie not marked Secure"
            };
            t.found(
                COOKIE_SECURE,
                ctx.get(COOKIE_SECURE).unwrap_or_default(),
                Verdict::Translated(to.to_owned()),
            );
        }
        Some(Err(why)) => t.found(
            COOKIE_SECURE,
            ctx.get(COOKIE_SECURE).unwrap_or_default(),
            ignored(why),
        ),
    }
    if let Some(v) = ctx.get(COOKIE_CONDITIONAL) {
        t.found(
            COOKIE_CONDITIONAL,
            v,
            Verdict::Unsupported(
                "weir sends the same SameSite to every client; it does not omit \
                 SameSite=None for user agents that mishandle it"
                    .to_owned(),
            ),
        );
    }
    for name in COOKIE_UNSERVED {
        if let Some(v) = ctx.get(name) {
            t.found(
                name,
                v,
                Verdict::Unsupported(
                    "weir's affinity cookie has no Domain attribute (it is the request's \
                     host only)"
                        .to_owned(),
                ),
            );
        }
    }
    let shown_path = cookie.path.clone().unwrap_or_else(|| "/".to_owned());
    let mut differs = COOKIE_DIFFERS.to_owned();
    if cookie.secure.is_none() {
        differs.push_str(
            "; ingress-nginx marks the cookie Secure on HTTPS requests, weir only with \
             session-cookie-secure: \"true\"",
        );
    }
    if let Some(d) = path_differs {
        differs.push_str("; ");
        differs.push_str(d);
    }
    t.found(
        AFFINITY,
        ctx.get(AFFINITY).unwrap_or_default(),
        Verdict::Partial {
            to: format!(
                "RingHash on cookie {} (set by weir when absent: Path={shown_path}, HttpOnly)",
                cookie.name
            ),
            differs,
        },
    );
    Some(ring(ConsistentHashSpec {
        cookie: Some(cookie),
        ..hash_spec(ConsistentHashType::Cookie)
    }))
}

/// The distinct paths of the Ingress's rules.
fn ingress_paths(ctx: &Context<'_>) -> Vec<String> {
    let mut paths: Vec<String> = ctx
        .ingress
        .spec
        .iter()
        .flat_map(|s| s.rules.iter().flatten())
        .filter_map(|r| r.http.as_ref())
        .flat_map(|h| h.paths.iter())
        .map(|p| p.path.clone().unwrap_or_else(|| "/".to_owned()))
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

const MISSING_KEY: &str = "a request without the key is balanced at random by weir; nginx \
    hashes the empty value, sending all of them to one endpoint";

/// `upstream-hash-by` (and the subset annotations): the balancer, unless affinity won.
pub(super) fn hash_by(
    ctx: &Context<'_>,
    t: &mut Translation,
    overridden: bool,
) -> Option<LoadBalancerSpec> {
    for name in HASH_SUBSET {
        if let Some(v) = ctx.get(name) {
            t.found(
                name,
                v,
                Verdict::Unsupported(
                    "weir hashes a request to one endpoint, not to a subset of them".to_owned(),
                ),
            );
        }
    }
    let value = ctx.get(HASH_BY)?;
    if overridden {
        t.found(
            HASH_BY,
            value,
            Verdict::Translated(
                "nothing: affinity: cookie takes precedence, as in ingress-nginx".to_owned(),
            ),
        );
        return None;
    }
    let valid = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_${}".contains(&b));
    if value.is_empty() || !valid {
        t.found(
            HASH_BY,
            value,
            ignored(format!(
                "{value:?} is not an nginx variable expression (letters, digits, -_${{}})"
            )),
        );
        return None;
    }
    let variable = value
        .strip_prefix("${")
        .and_then(|v| v.strip_suffix('}'))
        .or_else(|| value.strip_prefix('$'))
        .filter(|v| {
            !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    let Some(variable) = variable else {
        t.found(
            HASH_BY,
            value,
            Verdict::Unsupported(
                "weir hashes one request value (a header, cookie, query parameter, the \
                 request URI or the client address), not combinations of variables and text"
                    .to_owned(),
            ),
        );
        return None;
    };
    let (spec, to, differs) = if let Some(name) = variable.strip_prefix("arg_") {
        (
            ConsistentHashSpec {
                query_parameter: Some(NamedKey {
                    name: name.to_owned(),
                }),
                ..hash_spec(ConsistentHashType::QueryParameter)
            },
            format!("RingHash on query parameter {name}"),
            format!(
                "nginx matches the parameter name case-insensitively, weir exactly; {MISSING_KEY}"
            ),
        )
    } else if let Some(name) = variable.strip_prefix("http_") {
        // nginx's `$http_x_user` is header `X-User` (underscores for dashes, any case).
        let header = name.replace('_', "-").to_ascii_lowercase();
        (
            ConsistentHashSpec {
                header: Some(NamedKey {
                    name: header.clone(),
                }),
                ..hash_spec(ConsistentHashType::Header)
            },
            format!("RingHash on header {header}"),
            MISSING_KEY.to_owned(),
        )
    } else if let Some(name) = variable.strip_prefix("cookie_") {
        if !cookie_token(name) {
            t.found(
                HASH_BY,
                value,
                ignored(format!("{name:?} is not a cookie name")),
            );
            return None;
        }
        (
            ConsistentHashSpec {
                cookie: Some(CookieKey {
                    name: name.to_owned(),
                    ttl: None,
                    path: None,
                    same_site: None,
                    secure: None,
                }),
                ..hash_spec(ConsistentHashType::Cookie)
            },
            format!("RingHash on cookie {name}"),
            "a request without the cookie gets one set by weir (a random session cookie, \
             Path=/), so the client's next requests stick; nginx sets none and hashes the \
             empty value"
                .to_owned(),
        )
    } else if variable == "request_uri" {
        (
            hash_spec(ConsistentHashType::RequestUri),
            "RingHash on the request URI (path and query)".to_owned(),
            "weir hashes the path and query the upstream gets, after the Ingress's URL \
             rewrites; nginx's $request_uri is the client's original"
                .to_owned(),
        )
    } else if variable == "remote_addr" {
        (
            hash_spec(ConsistentHashType::SourceIp),
            "RingHash on the client address".to_owned(),
            "weir hashes the client address it resolved (the peer, or the X-Forwarded-For \
             client when the peer is a trusted proxy), as nginx's $remote_addr with the \
             realip module"
                .to_owned(),
        )
    } else {
        t.found(
            HASH_BY,
            value,
            Verdict::Unsupported(format!(
                "weir cannot hash ${variable}: it hashes $arg_<name>, $http_<name>, \
                 $cookie_<name>, $request_uri or $remote_addr"
            )),
        );
        return None;
    };
    t.found(HASH_BY, value, Verdict::Partial { to, differs });
    Some(ring(spec))
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::*;
    use super::super::testing::*;
    use super::*;
    use crate::snapshot::{HashKey, LbPolicy};

    #[test]
    fn hash_by_variables_become_ring_hash_keys() {
        let key = |v: &str| {
            let t = translate_only(&[("upstream-hash-by", v)]);
            assert!(partial(verdict(&t, "upstream-hash-by")), "{v}");
            match cluster(&t).lb.policy {
                LbPolicy::RingHash { key, .. } => key,
                other => panic!("{v}: {other:?}"),
            }
        };
        assert_eq!(key("$arg_user"), HashKey::QueryParameter("user".into()));
        assert_eq!(key("${arg_user}"), HashKey::QueryParameter("user".into()));
        assert_eq!(
            key("$http_x_user_id"),
            HashKey::Header(http::HeaderName::from_static("x-user-id"))
        );
        assert_eq!(key("$remote_addr"), HashKey::SourceIp);
        assert_eq!(key("$request_uri"), HashKey::RequestUri);
        assert!(matches!(key("$cookie_sid"), HashKey::Cookie { name, .. } if name == "sid"));
        for v in ["$uri", "$request_uri$host", "${request_uri}-text", "$host"] {
            let t = translate_only(&[("upstream-hash-by", v)]);
            assert!(
                matches!(verdict(&t, "upstream-hash-by"), Verdict::Unsupported(_)),
                "{v}"
            );
            assert!(!t.has_variant(), "{v}");
        }
        let t = translate_only(&[("upstream-hash-by", "$arg_a; evil")]);
        assert!(warned(verdict(&t, "upstream-hash-by")));
    }

    #[test]
    fn cookie_affinity_with_defaults_and_settings() {
        let t = translate_only(&[("affinity", "cookie")]);
        match cluster(&t).lb.policy {
            LbPolicy::RingHash {
                key: HashKey::Cookie {
                    name, ttl, path, ..
                },
                ..
            } => {
                assert_eq!(name, "INGRESSCOOKIE");
                assert!(ttl.is_zero(), "a session cookie");
                assert_eq!(path, "/");
            }
            other => panic!("{other:?}"),
        }
        assert!(partial(verdict(&t, "affinity")));
        let t = translate_only(&[
            ("affinity", "cookie"),
            ("affinity-mode", "persistent"),
            ("session-cookie-name", "route"),
            ("session-cookie-path", "/app"),
            ("session-cookie-max-age", "172800"),
            ("session-cookie-samesite", "Lax"),
            ("session-cookie-secure", "true"),
            ("session-cookie-domain", "example.com"),
            ("upstream-hash-by", "$arg_x"),
            ("load-balance", "ewma"),
        ]);
        match cluster(&t).lb.policy {
            LbPolicy::RingHash {
                key:
                    HashKey::Cookie {
                        name,
                        ttl,
                        path,
                        same_site,
                        secure,
                    },
                ..
            } => {
                assert_eq!(same_site, Some("Lax"));
                assert!(secure);
                assert_eq!(name, "route");
                assert_eq!(ttl.as_secs(), 172_800);
                assert_eq!(path, "/app");
            }
            other => panic!("{other:?}"),
        }
        assert!(partial(verdict(&t, "affinity-mode")));
        assert!(matches!(
            verdict(&t, "session-cookie-domain"),
            Verdict::Unsupported(_)
        ));
        // Precedence: affinity, then upstream-hash-by, then load-balance.
        assert!(
            matches!(verdict(&t, "upstream-hash-by"), Verdict::Translated(w) if w.contains("precedence"))
        );
        assert!(
            matches!(verdict(&t, "load-balance"), Verdict::Translated(w) if w.contains("precedence"))
        );
        let t = translate_only(&[("affinity", "cookie"), ("session-cookie-expires", "60")]);
        assert!(matches!(
            cluster(&t).lb.policy,
            LbPolicy::RingHash { key: HashKey::Cookie { ttl, .. }, .. } if ttl.as_secs() == 60
        ));
        let t = translate_only(&[("affinity", "ip"), ("session-cookie-name", "x")]);
        assert!(warned(verdict(&t, "affinity")));
        assert!(!t.has_variant());
        let t = translate_only(&[("affinity", "cookie"), ("session-cookie-name", "a b")]);
        assert!(warned(verdict(&t, "session-cookie-name")));
    }

    #[test]
    fn the_cookie_path_defaults_to_the_ingress_path_when_it_has_one_plain_path() {
        use crate::api::ingress::{
            HTTPIngressPath, HTTPIngressRuleValue, IngressBackend, IngressRule, IngressSpec,
        };
        let path_of = |paths: &[&str]| {
            let mut ing = ingress(&[("affinity", "cookie")]);
            ing.spec = Some(IngressSpec {
                rules: Some(vec![IngressRule {
                    host: None,
                    http: Some(HTTPIngressRuleValue {
                        paths: paths
                            .iter()
                            .map(|p| HTTPIngressPath {
                                path: Some((*p).to_owned()),
                                path_type: "Prefix".to_owned(),
                                backend: IngressBackend::default(),
                            })
                            .collect(),
                    }),
                }]),
                ..IngressSpec::default()
            });
            let key = crate::store::ObjectKey::new("default", "test");
            let objects = crate::store::Objects::default();
            let t = crate::compile::ingress::nginx::translate(&Context {
                annotations: crate::compile::ingress::nginx::Annotations::of(
                    &ing,
                    crate::compile::ingress::nginx::DEFAULT_PREFIX,
                ),
                ingress: &ing,
                key: &key,
                objects: &objects,
            });
            match cluster(&t).lb.policy {
                LbPolicy::RingHash {
                    key: HashKey::Cookie { path, .. },
                    ..
                } => path,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(path_of(&["/app"]), "/app");
        assert_eq!(path_of(&["/app", "/app"]), "/app");
        assert_eq!(path_of(&["/app", "/api"]), "/");
        assert_eq!(path_of(&["/app(/|$)(.*)"]), "/");
    }
}
