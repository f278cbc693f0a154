//! Balancing, affinity, timeout, retry and backend annotations: they become the settings of
//! the Ingress's cluster *variant* ([`Translation::policy`], a `BackendPolicySpec` applied on
//! top of the Service port's own `BackendPolicy`, and [`Translation::protocol`]).
//!
//! - `load-balance`: `round_robin` → `RoundRobin`, `ewma` → `PeakEWMA`;
//! - `upstream-hash-by`: one of `$arg_<name>`, `$http_<name>`, `$cookie_<name>`,
//!   `$request_uri`, `$remote_addr` → a `RingHash` key (ingress-nginx's `chash` is a consistent hash ring
//!   too); other variables, combinations and text are not served; `upstream-hash-by-subset`
//!   is not served;
//! - `affinity: cookie` with `session-cookie-name` (default `INGRESSCOOKIE`), `-path`,
//!   `-max-age`, `-expires`, `affinity-mode` → a `RingHash` keyed by that cookie, which weir
//!   sets when the request has none. Precedence as in ingress-nginx's `balancer.lua`:
//!   affinity, then `upstream-hash-by`, then `load-balance`;
//! - `proxy-connect-timeout` → `timeout.tcp.connectTimeout`; `proxy-read-timeout` →
//!   `timeout.http.responseHeadersTimeout`; `proxy-send-timeout` is not served;
//! - `proxy-next-upstream`, `proxy-next-upstream-tries` → `retry` (triggers, statuses,
//!   `numRetries` = tries − 1); `proxy-next-upstream-timeout` is served only as `0`;
//! - `backend-protocol` → the cluster's protocol (`GRPC` → h2c, `HTTPS`/`GRPCS` → TLS);
//! - `service-upstream: "true"` → `forwardToClusterIP` (the Service's ClusterIP and port as
//!   the one endpoint);
//! - `default-backend`, `custom-http-errors`, `proxy-ssl-*`: not served (each finding says
//!   why).
//!
//! None of these change who may access, so an unreadable value is ignored with a warning, as
//! ingress-nginx ignores it (falling back to its default).

use super::{Context, Translation, Verdict};
use crate::api::backendpolicy::{
    ConsistentHashSpec, ConsistentHashType, CookieKey, CookieSameSite, HttpTimeoutSpec,
    LoadBalancerSpec, LoadBalancerType, NamedKey, RetryOnSpec, RetrySpec, RetryTrigger,
    TcpTimeoutSpec, TimeoutSpec,
};
use crate::snapshot::UpstreamProtocol;

const LOAD_BALANCE: &str = "load-balance";
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
const CONNECT_TIMEOUT: &str = "proxy-connect-timeout";
const READ_TIMEOUT: &str = "proxy-read-timeout";
const SEND_TIMEOUT: &str = "proxy-send-timeout";
const NEXT_UPSTREAM: &str = "proxy-next-upstream";
const NEXT_TRIES: &str = "proxy-next-upstream-tries";
const NEXT_TIMEOUT: &str = "proxy-next-upstream-timeout";
const BACKEND_PROTOCOL: &str = "backend-protocol";
/// Annotations not served, with why.
const SERVICE_UPSTREAM: &str = "service-upstream";
const UNSERVED: [(&str, &str); 10] = [
    (
        "default-backend",
        "weir has no fallback Service for a backend without ready endpoints; such requests \
         get 503",
    ),
    (
        "custom-http-errors",
        "weir does not replace upstream error responses with another Service's answer; the \
         upstream's response is passed through",
    ),
    (
        "proxy-ssl-secret",
        "weir does not verify upstream certificates or present a client certificate to \
         upstreams yet (upstream TLS is encrypted but unauthenticated)",
    ),
    (
        "proxy-ssl-verify",
        "weir does not verify upstream certificates yet (upstream TLS is encrypted but \
         unauthenticated)",
    ),
    (
        "proxy-ssl-verify-depth",
        "weir does not verify upstream certificates yet",
    ),
    (
        "proxy-ssl-name",
        "weir sends no SNI name to upstreams (it connects to endpoint addresses)",
    ),
    (
        "proxy-ssl-server-name",
        "weir sends no SNI name to upstreams (it connects to endpoint addresses)",
    ),
    (
        "proxy-ssl-protocols",
        "weir's upstream TLS versions are fixed (TLS 1.2 and 1.3)",
    ),
    (
        "proxy-ssl-ciphers",
        "weir's upstream cipher suites are fixed (rustls defaults)",
    ),
    (
        "affinity-canary-behavior",
        "weir's canary split and cookie affinity are independent",
    ),
];

/// Read the family's annotations into `t`.
pub(super) fn translate(ctx: &Context<'_>, t: &mut Translation) {
    let affinity = affinity(ctx, t);
    let hashed = hash_by(ctx, t, affinity.is_some());
    let chosen = affinity.or(hashed);
    load_balance(ctx, t, chosen.is_some());
    if let Some(lb) = chosen {
        t.policy.load_balancer = Some(lb);
    }
    timeouts(ctx, t);
    retries(ctx, t);
    backend_protocol(ctx, t);
    service_upstream(ctx, t);
    for (name, why) in UNSERVED {
        if let Some(value) = ctx.get(name) {
            t.found(name, value, Verdict::Unsupported(why.to_owned()));
        }
    }
}

fn ignored(why: String) -> Verdict {
    Verdict::Invalid {
        why: format!("{why}; ignored, as ingress-nginx ignores it"),
        fails_closed: false,
    }
}

/// A whole number of seconds, as ingress-nginx's `GetIntAnnotation` reads it.
fn seconds(value: &str) -> Result<i64, String> {
    value
        .parse::<i64>()
        .map_err(|_| format!("{value:?} is not a whole number of seconds"))
}

/// The seconds of a positive timeout, as a Gateway API duration (`5s`, `48h`, `1h1s`).
fn positive_seconds(value: &str) -> Result<(i64, String), String> {
    match seconds(value)? {
        n if n > 0 => Ok((n, gateway_duration(n)?)),
        n => Err(format!("{n} is not a positive number of seconds")),
    }
}

/// `n` seconds (positive) as a Gateway API duration: hours, minutes, seconds of at most five
/// digits each.
fn gateway_duration(n: i64) -> Result<String, String> {
    let (h, m, s) = (n / 3600, n / 60 % 60, n % 60);
    if h > 99_999 {
        return Err(format!(
            "{n} seconds is more than weir's longest duration (99999h)"
        ));
    }
    let mut out = String::new();
    for (v, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    Ok(out)
}

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
fn affinity(ctx: &Context<'_>, t: &mut Translation) -> Option<LoadBalancerSpec> {
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
fn hash_by(ctx: &Context<'_>, t: &mut Translation, overridden: bool) -> Option<LoadBalancerSpec> {
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

/// `load-balance`: the balancer, unless affinity or a hash won.
fn load_balance(ctx: &Context<'_>, t: &mut Translation, overridden: bool) {
    let Some(value) = ctx.get(LOAD_BALANCE) else {
        return;
    };
    let lower = value.to_ascii_lowercase();
    let known = [
        "round_robin",
        "chash",
        "chashsubset",
        "sticky_balanced",
        "sticky_persistent",
        "ewma",
    ];
    if !known.contains(&lower.as_str()) {
        t.found(
            LOAD_BALANCE,
            value,
            ignored(format!(
                "{value:?} is not one of round_robin, ewma (or chash, chashsubset, \
                 sticky_balanced, sticky_persistent)"
            )),
        );
        return;
    }
    if overridden {
        t.found(
            LOAD_BALANCE,
            value,
            Verdict::Translated(
                "nothing: affinity or upstream-hash-by takes precedence, as in ingress-nginx"
                    .to_owned(),
            ),
        );
        return;
    }
    let simple = |type_| LoadBalancerSpec {
        type_,
        consistent_hash: None,
        slow_start: None,
        panic_threshold: None,
        decay: None,
    };
    match lower.as_str() {
        "round_robin" => {
            t.policy.load_balancer = Some(simple(LoadBalancerType::RoundRobin));
            t.found(
                LOAD_BALANCE,
                value,
                Verdict::Translated("RoundRobin load balancer".to_owned()),
            );
        }
        "ewma" => {
            t.policy.load_balancer = Some(simple(LoadBalancerType::PeakEwma));
            t.found(
                LOAD_BALANCE,
                value,
                Verdict::Partial {
                    to: "PeakEWMA load balancer (decay 10s)".to_owned(),
                    differs: "both prefer the endpoints answering fastest by a decaying \
                              average of response time (10s); weir's average jumps to a \
                              latency peak at once and is multiplied by the requests in \
                              flight, so the exact shares differ"
                        .to_owned(),
                },
            );
        }
        _ => t.found(
            LOAD_BALANCE,
            value,
            Verdict::Unsupported(
                "hashing and sticky balancers need their key: use upstream-hash-by or \
                 affinity: cookie"
                    .to_owned(),
            ),
        ),
    }
}

/// `proxy-connect-timeout`, `proxy-read-timeout`, `proxy-send-timeout`.
fn timeouts(ctx: &Context<'_>, t: &mut Translation) {
    let mut timeout = TimeoutSpec::default();
    if let Some(v) = ctx.get(CONNECT_TIMEOUT) {
        match positive_seconds(v) {
            Ok((_, d)) => {
                t.found(
                    CONNECT_TIMEOUT,
                    v,
                    Verdict::Translated(format!(
                        "connect timeout {d} per attempt (TCP and TLS handshake)"
                    )),
                );
                timeout.tcp = Some(TcpTimeoutSpec {
                    connect_timeout: Some(d),
                });
            }
            Err(why) => t.found(CONNECT_TIMEOUT, v, ignored(why)),
        }
    }
    if let Some(v) = ctx.get(READ_TIMEOUT) {
        match positive_seconds(v) {
            Ok((_, d)) => {
                t.found(
                    READ_TIMEOUT,
                    v,
                    Verdict::Partial {
                        to: format!("response headers timeout {d} per attempt"),
                        differs: "nginx's bounds the wait between two reads of the response, \
                                  headers and body; weir's bounds the wait for the response \
                                  headers only, and a body may pause for longer"
                            .to_owned(),
                    },
                );
                timeout.http = Some(HttpTimeoutSpec {
                    response_headers_timeout: Some(d),
                    ..HttpTimeoutSpec::default()
                });
            }
            Err(why) => t.found(READ_TIMEOUT, v, ignored(why)),
        }
    }
    if let Some(v) = ctx.get(SEND_TIMEOUT) {
        t.found(
            SEND_TIMEOUT,
            v,
            Verdict::Unsupported(
                "weir has no timeout between two writes of the request to the upstream".to_owned(),
            ),
        );
    }
    if timeout != TimeoutSpec::default() {
        t.policy.timeout = Some(timeout);
    }
}

/// `proxy-next-upstream`, `proxy-next-upstream-tries`, `proxy-next-upstream-timeout`.
fn retries(ctx: &Context<'_>, t: &mut Translation) {
    let mut retry = RetrySpec::default();
    let mut any = false;
    if let Some(v) = ctx.get(NEXT_UPSTREAM) {
        match next_upstream(v) {
            Ok(None) => {
                retry.num_retries = Some(0);
                any = true;
                t.found(
                    NEXT_UPSTREAM,
                    v,
                    Verdict::Translated("no retries (numRetries 0)".to_owned()),
                );
            }
            Ok(Some((on, differs))) => {
                let to = format!(
                    "retry on {}{}",
                    on.triggers
                        .iter()
                        .map(|t| serde_json::to_string(t)
                            .unwrap_or_default()
                            .replace('"', ""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if on.http_status_codes.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " and status {}",
                            on.http_status_codes
                                .iter()
                                .map(i32::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                );
                t.found(NEXT_UPSTREAM, v, Verdict::Partial { to, differs });
                retry.retry_on = Some(on);
                any = true;
            }
            Err(why) => t.found(NEXT_UPSTREAM, v, ignored(why)),
        }
    }
    if retry.num_retries != Some(0) {
        match ctx.get(NEXT_TRIES) {
            Some(v) => match seconds(v).map_err(|_| format!("{v:?} is not a whole number")) {
                Ok(0) => {
                    retry.num_retries = Some(10);
                    any = true;
                    t.found(
                        NEXT_TRIES,
                        v,
                        Verdict::Partial {
                            to: "numRetries 10".to_owned(),
                            differs: "0 is no limit in nginx; weir retries at most 10 times"
                                .to_owned(),
                        },
                    );
                }
                Ok(n) if (1..=11).contains(&n) => {
                    retry.num_retries = Some(n as i32 - 1);
                    any = true;
                    t.found(
                        NEXT_TRIES,
                        v,
                        Verdict::Translated(format!("numRetries {} ({n} tries in all)", n - 1)),
                    );
                }
                Ok(n) if n > 11 => {
                    retry.num_retries = Some(10);
                    any = true;
                    t.found(
                        NEXT_TRIES,
                        v,
                        Verdict::Partial {
                            to: "numRetries 10".to_owned(),
                            differs: format!("weir tries at most 11 times, not {n}"),
                        },
                    );
                }
                Ok(n) => t.found(NEXT_TRIES, v, ignored(format!("{n} is negative"))),
                Err(why) => t.found(NEXT_TRIES, v, ignored(why)),
            },
            // ingress-nginx's default: 3 tries.
            None if any => retry.num_retries = Some(2),
            None => {}
        }
    } else if let Some(v) = ctx.get(NEXT_TRIES) {
        t.found(
            NEXT_TRIES,
            v,
            Verdict::Translated("nothing: proxy-next-upstream is off".to_owned()),
        );
    }
    if let Some(v) = ctx.get(NEXT_TIMEOUT) {
        let verdict = match seconds(v) {
            Ok(0) => Verdict::Translated("no limit on the time spent retrying".to_owned()),
            Ok(n) if n > 0 => Verdict::Unsupported(
                "weir does not limit the time spent retrying; bound the whole request with a \
                 BackendPolicy timeout.http.requestTimeout"
                    .to_owned(),
            ),
            Ok(n) => ignored(format!("{n} is negative")),
            Err(why) => ignored(why),
        };
        t.found(NEXT_TIMEOUT, v, verdict);
    }
    if any
        && retry.retry_on.is_none()
        && retry.num_retries != Some(0)
        && ctx.get(NEXT_UPSTREAM).is_none()
    {
        // Tries without proxy-next-upstream: ingress-nginx's default `error timeout`.
        retry.retry_on = next_upstream("error timeout")
            .ok()
            .flatten()
            .map(|(on, _)| on);
    }
    if any {
        t.policy.retry = Some(retry);
    }
}

/// The retry triggers of a `proxy-next-upstream` value (`None`: `off`), with what differs.
fn next_upstream(value: &str) -> Result<Option<(RetryOnSpec, String)>, String> {
    let mut on = RetryOnSpec::default();
    let mut add = |t: RetryTrigger| {
        if !on.triggers.contains(&t) {
            on.triggers.push(t);
        }
    };
    let mut statuses = Vec::new();
    let mut off = false;
    let mut differs = vec![
        "a request whose method is not idempotent is retried only when it provably was not \
         processed (connect failure, refused stream); retries that may repeat work are \
         limited to 20% of the Service's active requests (at least 3 at once)"
            .to_owned(),
    ];
    let words: Vec<&str> = value.split_whitespace().collect();
    if words.is_empty() {
        return Err("empty".to_owned());
    }
    for word in words {
        match word {
            "error" => {
                add(RetryTrigger::ConnectFailure);
                add(RetryTrigger::RefusedStream);
                add(RetryTrigger::Reset);
            }
            "timeout" => {
                // A connect timeout is a connect failure to weir.
                add(RetryTrigger::ConnectFailure);
                add(RetryTrigger::Timeout);
            }
            "invalid_header" => {
                add(RetryTrigger::Reset);
                differs.push(
                    "invalid_header: an unreadable response head counts as a reset".to_owned(),
                );
            }
            "non_idempotent" => differs.push(
                "non_idempotent: weir never resends a request that may have been processed \
                 unless its method is idempotent"
                    .to_owned(),
            ),
            "off" => off = true,
            other => match other
                .strip_prefix("http_")
                .and_then(|c| c.parse::<i32>().ok())
                .filter(|c| [500, 502, 503, 504, 403, 404, 429].contains(c))
            {
                Some(code) => statuses.push(code),
                None => {
                    return Err(format!(
                        "{other:?} is not one of error, timeout, invalid_header, http_500, \
                         http_502, http_503, http_504, http_403, http_404, http_429, \
                         non_idempotent, off"
                    ));
                }
            },
        }
    }
    if off {
        return Ok(None);
    }
    statuses.sort_unstable();
    statuses.dedup();
    if !statuses.is_empty() {
        add(RetryTrigger::RetriableStatusCodes);
    }
    on.http_status_codes = statuses;
    if on.triggers.is_empty() {
        // Only `non_idempotent`: nginx retries nothing else either.
        return Ok(None);
    }
    Ok(Some((on, differs.join("; "))))
}

/// `service-upstream`.
fn service_upstream(ctx: &Context<'_>, t: &mut Translation) {
    let Some(value) = ctx.get(SERVICE_UPSTREAM) else {
        return;
    };
    match ctx.bool(SERVICE_UPSTREAM) {
        Some(Ok(true)) => {
            t.policy.forward_to_cluster_ip = Some(true);
            t.found(
                SERVICE_UPSTREAM,
                value,
                Verdict::Translated(
                    "forwardToClusterIP: one endpoint, the Service's ClusterIP and port \
                     (kube-proxy balances per connection; a headless Service answers 503)"
                        .to_owned(),
                ),
            );
        }
        Some(Ok(false)) => t.found(
            SERVICE_UPSTREAM,
            value,
            Verdict::Translated("balanced over the Service's endpoints".to_owned()),
        ),
        Some(Err(why)) => t.found(SERVICE_UPSTREAM, value, ignored(why)),
        None => {}
    }
}

/// `backend-protocol`.
fn backend_protocol(ctx: &Context<'_>, t: &mut Translation) {
    let Some(value) = ctx.get(BACKEND_PROTOCOL) else {
        return;
    };
    let (protocol, verdict) = match value.to_ascii_uppercase().as_str() {
        "HTTP" => (
            Some(UpstreamProtocol::Http1),
            Verdict::Translated("HTTP/1.1 to the endpoints".to_owned()),
        ),
        "HTTPS" => (
            Some(UpstreamProtocol::Tls),
            Verdict::Partial {
                to: "TLS to the endpoints (certificates not verified, as nginx's default)"
                    .to_owned(),
                differs: "weir offers h2 and http/1.1 by ALPN and speaks HTTP/2 when the \
                          backend picks it; nginx speaks HTTP/1.1"
                    .to_owned(),
            },
        ),
        "AUTO_HTTP" => (
            Some(UpstreamProtocol::Http1),
            Verdict::Partial {
                to: "HTTP/1.1 to the endpoints".to_owned(),
                differs: "nginx uses the client's scheme (HTTPS to the backend for HTTPS \
                          clients); weir speaks HTTP/1.1 for every request"
                    .to_owned(),
            },
        ),
        "GRPC" => (
            Some(UpstreamProtocol::H2c),
            Verdict::Translated("HTTP/2 cleartext (h2c) to the endpoints".to_owned()),
        ),
        "GRPCS" => (
            Some(UpstreamProtocol::Tls),
            Verdict::Partial {
                to: "TLS to the endpoints, HTTP/2 by ALPN (certificates not verified)".to_owned(),
                differs: "weir speaks HTTP/2 when the backend's TLS picks h2 by ALPN (gRPC \
                          servers do) and HTTP/1.1 otherwise; nginx always speaks HTTP/2"
                    .to_owned(),
            },
        ),
        "FCGI" | "AJP" => (
            None,
            Verdict::Unsupported(
                "weir proxies HTTP; the Ingress is served over HTTP/1.1".to_owned(),
            ),
        ),
        _ => (
            None,
            ignored(format!(
                "{value:?} is not one of HTTP, HTTPS, AUTO_HTTP, GRPC, GRPCS, FCGI"
            )),
        ),
    };
    t.protocol = protocol;
    t.found(BACKEND_PROTOCOL, value, verdict);
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::compile::policy;
    use crate::snapshot::{Cluster, ClusterKey, HashKey, LbPolicy};

    /// The cluster the translation's policy gives (and that `policy::apply` accepts it).
    fn cluster(t: &Translation) -> Cluster {
        let mut c = Cluster::new(
            ClusterKey::new("ns", "svc", 80),
            "",
            UpstreamProtocol::Http1,
        );
        if let Err(e) = policy::apply(&t.policy, &mut c) {
            panic!("policy rejected: {}: {}", e.field, e.message);
        }
        c
    }

    fn partial(v: &Verdict) -> bool {
        matches!(v, Verdict::Partial { .. })
    }

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
    fn round_robin_and_ewma() {
        let t = translate_only(&[("load-balance", "round_robin")]);
        assert_eq!(cluster(&t).lb.policy, LbPolicy::RoundRobin);
        assert!(matches!(
            verdict(&t, "load-balance"),
            Verdict::Translated(_)
        ));
        let t = translate_only(&[("load-balance", "ewma")]);
        assert!(matches!(cluster(&t).lb.policy, LbPolicy::PeakEwma { .. }));
        assert!(partial(verdict(&t, "load-balance")));
        let t = translate_only(&[("load-balance", "fastest")]);
        assert!(warned(verdict(&t, "load-balance")));
        assert!(!t.has_variant());
        let t = translate_only(&[("load-balance", "chash")]);
        assert!(matches!(
            verdict(&t, "load-balance"),
            Verdict::Unsupported(_)
        ));
    }

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
    fn seconds_become_gateway_durations() {
        assert_eq!(gateway_duration(5).as_deref(), Ok("5s"));
        assert_eq!(gateway_duration(172_800).as_deref(), Ok("48h"));
        assert_eq!(gateway_duration(3661).as_deref(), Ok("1h1m1s"));
        assert!(gateway_duration(100_000 * 3600).is_err());
    }

    #[test]
    fn the_cookie_path_defaults_to_the_ingress_path_when_it_has_one_plain_path() {
        use k8s_openapi::api::networking::v1::{
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
            let t = super::super::translate(&Context {
                annotations: super::super::Annotations::of(&ing, super::super::DEFAULT_PREFIX),
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

    #[test]
    fn timeouts_are_seconds() {
        let t = translate_only(&[
            ("proxy-connect-timeout", "3"),
            ("proxy-read-timeout", "120"),
            ("proxy-send-timeout", "30"),
        ]);
        let c = cluster(&t);
        assert_eq!(c.timeouts.connect.as_secs(), 3);
        assert_eq!(c.timeouts.request.as_secs(), 120);
        assert!(matches!(
            verdict(&t, "proxy-connect-timeout"),
            Verdict::Translated(_)
        ));
        assert!(partial(verdict(&t, "proxy-read-timeout")));
        assert!(matches!(
            verdict(&t, "proxy-send-timeout"),
            Verdict::Unsupported(_)
        ));
        let t = translate_only(&[("proxy-connect-timeout", "5s")]);
        assert!(warned(verdict(&t, "proxy-connect-timeout")));
        assert!(!t.has_variant());
    }

    #[test]
    fn next_upstream_becomes_retry_triggers() {
        let t = translate_only(&[("proxy-next-upstream", "error timeout http_502 http_503")]);
        let c = cluster(&t);
        assert_eq!(c.retry.num_retries, 2, "ingress-nginx's default of 3 tries");
        assert!(c.retry.on.connect_failure && c.retry.on.reset && c.retry.on.timeout);
        assert!(!c.retry.on.server_error);
        assert_eq!(c.retry.statuses, [502, 503]);
        let t = translate_only(&[
            ("proxy-next-upstream", "http_502"),
            ("proxy-next-upstream-tries", "5"),
        ]);
        let c = cluster(&t);
        assert_eq!(c.retry.num_retries, 4);
        assert!(!c.retry.on.connect_failure);
        let t = translate_only(&[
            ("proxy-next-upstream", "off"),
            ("proxy-next-upstream-tries", "5"),
        ]);
        assert_eq!(cluster(&t).retry.num_retries, 0);
        let t = translate_only(&[("proxy-next-upstream-tries", "1")]);
        assert_eq!(cluster(&t).retry.num_retries, 0);
        // Tries alone retry on ingress-nginx's default `error timeout`.
        let t = translate_only(&[("proxy-next-upstream-tries", "4")]);
        let c = cluster(&t);
        assert_eq!(c.retry.num_retries, 3);
        assert!(c.retry.on.connect_failure && c.retry.on.reset && c.retry.on.timeout);
        let t = translate_only(&[("proxy-next-upstream-tries", "0")]);
        assert_eq!(cluster(&t).retry.num_retries, 10);
        assert!(partial(verdict(&t, "proxy-next-upstream-tries")));
        let t = translate_only(&[("proxy-next-upstream", "error http_418")]);
        assert!(warned(verdict(&t, "proxy-next-upstream")));
        assert!(!t.has_variant());
        let t = translate_only(&[("proxy-next-upstream-timeout", "10")]);
        assert!(matches!(
            verdict(&t, "proxy-next-upstream-timeout"),
            Verdict::Unsupported(_)
        ));
    }

    #[test]
    fn backend_protocols() {
        for (v, want) in [
            ("GRPC", Some(UpstreamProtocol::H2c)),
            ("grpcs", Some(UpstreamProtocol::Tls)),
            ("HTTPS", Some(UpstreamProtocol::Tls)),
            ("HTTP", Some(UpstreamProtocol::Http1)),
            ("AUTO_HTTP", Some(UpstreamProtocol::Http1)),
            ("FCGI", None),
            ("SPDY", None),
        ] {
            let t = translate_only(&[("backend-protocol", v)]);
            assert_eq!(t.protocol, want, "{v}");
        }
        let t = translate_only(&[("backend-protocol", "FCGI")]);
        assert!(
            matches!(verdict(&t, "backend-protocol"), Verdict::Unsupported(w) if w.contains("HTTP"))
        );
    }

    #[test]
    fn service_upstream_forwards_to_the_cluster_ip() {
        let t = translate_only(&[("service-upstream", "true")]);
        assert!(cluster(&t).via_cluster_ip);
        let t = translate_only(&[("service-upstream", "false")]);
        assert!(!t.has_variant());
        let t = translate_only(&[("service-upstream", "yes")]);
        assert!(warned(verdict(&t, "service-upstream")));
        assert!(!t.has_variant());
    }

    #[test]
    fn unserved_annotations_say_why() {
        let t = translate_only(&[
            ("default-backend", "fallback"),
            ("custom-http-errors", "404,503"),
            ("proxy-ssl-verify", "on"),
        ]);
        for name in ["default-backend", "custom-http-errors", "proxy-ssl-verify"] {
            assert!(
                matches!(verdict(&t, name), Verdict::Unsupported(_)),
                "{name}"
            );
        }
        assert!(!t.has_variant());
    }
}
