//! Balancing, affinity, timeout, retry and backend annotations: they become the settings of
//! the Ingress's cluster *variant* ([`Translation::policy`], a `BackendPolicySpec` applied on
//! top of the Service port's own `BackendPolicy`, and [`Translation::protocol`]).
//!
//! - `load-balance`: `round_robin` → `RoundRobin`, `ewma` → `PeakEWMA`;
//! - `upstream-hash-by`: one of `$arg_<name>`, `$http_<name>`, `$cookie_<name>`,
//!   `$request_uri`, `$remote_addr` → a `RingHash` key (ingress-nginx's `chash` is a
//!   consistent hash ring too); other variables, combinations and text are not served; `upstream-hash-by-subset`
//!   is not served;
//! - `affinity: cookie` with `session-cookie-name` (default `INGRESSCOOKIE`), `-path`,
//!   `-max-age`, `-expires`, `affinity-mode` → a `RingHash` keyed by that cookie, which weir
//!   sets when the request has none. Precedence as in ingress-nginx's `balancer.lua`:
//!   affinity, then `upstream-hash-by`, then `load-balance`;
//! - `proxy-connect-timeout` → `timeout.tcp.connectTimeout`; `proxy-read-timeout` →
//!   `timeout.http.responseHeadersTimeout`; `proxy-send-timeout` is not served;
//! - `proxy-next-upstream`, `proxy-next-upstream-tries` → `retry` (triggers, statuses,
//!   `numRetries` = tries − 1); `proxy-next-upstream-timeout` → `retry.timeout` (no retry
//!   starts later than that after the first attempt);
//! - `backend-protocol` → the cluster's protocol (`GRPC` → h2c, `HTTPS`/`GRPCS` → TLS);
//! - `service-upstream: "true"` → `forwardToClusterIP` (the Service's ClusterIP and port as
//!   the one endpoint);
//! - `default-backend` (a Service of the namespace, its first port), `custom-http-errors` →
//!   one `ErrorPages` entry (`errors.rs`): the Service answers for route Services without
//!   endpoints and instead of the listed upstream statuses;
//! - `proxy-ssl-secret`, `-verify`, `-verify-depth`, `-name`, `-server-name` → `tls`
//!   (the Secret's CA verifies the backend, its certificate is presented; see `tls.rs`);
//! - `proxy-ssl-protocols`, `proxy-ssl-ciphers`: not served (each finding says why).
//!
//! None of these change who may access, so an unreadable value is ignored with a warning, as
//! ingress-nginx ignores it (falling back to its default).
//!
//! Files: `affinity.rs` (`affinity`, cookies, `upstream-hash-by`), `retry.rs` (timeouts and
//! `proxy-next-upstream*`), `tls.rs` (`proxy-ssl-*`); this file has the rest and the order
//! they are read in.

use super::{Context, Translation, Verdict};
use crate::api::backendpolicy::{LoadBalancerSpec, LoadBalancerType};
use crate::snapshot::UpstreamProtocol;

mod affinity;
mod errors;
mod retry;
mod tls;

const LOAD_BALANCE: &str = "load-balance";
const BACKEND_PROTOCOL: &str = "backend-protocol";
const SERVICE_UPSTREAM: &str = "service-upstream";
/// Annotations not served, with why.
const UNSERVED: [(&str, &str); 3] = [
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
    let affinity = affinity::affinity(ctx, t);
    let hashed = affinity::hash_by(ctx, t, affinity.is_some());
    let chosen = affinity.or(hashed);
    load_balance(ctx, t, chosen.is_some());
    if let Some(lb) = chosen {
        t.policy.load_balancer = Some(lb);
    }
    retry::timeouts(ctx, t);
    retry::retries(ctx, t);
    backend_protocol(ctx, t);
    service_upstream(ctx, t);
    errors::translate(ctx, t);
    tls::translate(ctx, t);
    for (name, why) in UNSERVED {
        if let Some(value) = ctx.get(name) {
            t.found(name, value, Verdict::Unsupported(why.to_owned()));
        }
    }
}

pub(super) fn ignored(why: String) -> Verdict {
    Verdict::Invalid {
        why: format!("{why}; ignored, as ingress-nginx ignores it"),
        fails_closed: false,
    }
}

/// A whole number of seconds, as ingress-nginx's `GetIntAnnotation` reads it.
pub(super) fn seconds(value: &str) -> Result<i64, String> {
    value
        .parse::<i64>()
        .map_err(|_| format!("{value:?} is not a whole number of seconds"))
}

/// The seconds of a positive timeout, as a Gateway API duration (`5s`, `48h`, `1h1s`).
pub(super) fn positive_seconds(value: &str) -> Result<(i64, String), String> {
    match seconds(value)? {
        n if n > 0 => Ok((n, gateway_duration(n)?)),
        n => Err(format!("{n} is not a positive number of seconds")),
    }
}

/// `n` seconds (positive) as a Gateway API duration: hours, minutes, seconds of at most five
/// digits each.
pub(super) fn gateway_duration(n: i64) -> Result<String, String> {
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
                to: "TLS to the endpoints (certificates verified only with proxy-ssl-verify: on, as nginx)"
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
                to: "TLS to the endpoints, HTTP/2 by ALPN (certificates verified only with proxy-ssl-verify: on)".to_owned(),
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
pub(super) mod testing {
    //! Helpers for the family's unit tests.
    use super::*;
    use crate::compile::policy;
    use crate::snapshot::{Cluster, ClusterKey};

    /// The cluster the translation's policy gives (and that `policy::apply` accepts it).
    pub(super) fn cluster(t: &Translation) -> Cluster {
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

    pub(super) fn partial(v: &Verdict) -> bool {
        matches!(v, Verdict::Partial { .. })
    }

    pub(super) fn warned(v: &Verdict) -> bool {
        matches!(
            v,
            Verdict::Invalid {
                fails_closed: false,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::testing::*;
    use super::*;
    use crate::snapshot::LbPolicy;

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
    fn seconds_become_gateway_durations() {
        assert_eq!(gateway_duration(5).as_deref(), Ok("5s"));
        assert_eq!(gateway_duration(172_800).as_deref(), Ok("48h"));
        assert_eq!(gateway_duration(3661).as_deref(), Ok("1h1m1s"));
        assert!(gateway_duration(100_000 * 3600).is_err());
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
            ("proxy-ssl-ciphers", "HIGH"),
            ("proxy-ssl-protocols", "TLSv1.2"),
        ]);
        for name in ["proxy-ssl-ciphers", "proxy-ssl-protocols"] {
            assert!(
                matches!(verdict(&t, name), Verdict::Unsupported(_)),
                "{name}"
            );
        }
        assert!(!t.has_variant());
    }
}
