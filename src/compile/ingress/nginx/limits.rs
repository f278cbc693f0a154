//! Rate limits: `limit-rps` and `limit-rpm` (requests per second / minute per client
//! address), `limit-burst-multiplier` (default 5) and `limit-whitelist` (CIDRs not limited)
//! → one `RateLimit` entry per rate, answering **503** (ingress-nginx's
//! `limit-req-status-code` default).
//!
//! ingress-nginx writes `limit_req zone=… burst=<rate × multiplier> nodelay`: nginx lets a
//! client `burst + 1` requests through at once (the first, then `burst` in excess), then one
//! per `1/rate`. weir's token bucket of `rate × multiplier + 1` tokens refilled at `rate`
//! answers the same requests. The client is the connection's peer, as ingress-nginx's
//! `$binary_remote_addr` without `use-forwarded-headers`.
//!
//! `limit-connections` (nginx's `limit_conn` on `$binary_remote_addr`, 503) → a
//! `ConcurrencyLimit` entry, placed before the rates as ingress-nginx applies it first. nginx
//! counts a connection only while a request of it is being processed, and every HTTP/2
//! stream on its own, so its limit is one on the requests of an address in flight — what the
//! filter counts. `limit-whitelist` exempts from it too.
//!
//! A limit that cannot be read fails closed (a limit must not be lifted by a typo), as does a
//! `limit-whitelist` that cannot be read.

use super::access::cidrs;
use super::{Context, Phase, Translation, Verdict};
use crate::api::httpfilter::{
    ConcurrencyLimitFilter, FilterEntry, FilterType, RateLimitFilter, RateLimitUnit,
};

const RPS: &str = "limit-rps";
const RPM: &str = "limit-rpm";
const MULTIPLIER: &str = "limit-burst-multiplier";
const WHITELIST: &str = "limit-whitelist";
const CONNECTIONS: &str = "limit-connections";

/// ingress-nginx's `limit-burst-multiplier` default.
const DEFAULT_MULTIPLIER: u32 = 5;

/// ingress-nginx's `limit-req-status-code` default.
const STATUS: i32 = 503;

/// ingress-nginx's `limit-conn-status-code` default.
const CONN_STATUS: i32 = 503;

/// What a client's bucket or count is kept per, when the Ingress has several routes.
const PER_ROUTE: &str = "weir keeps a client's bucket per path of the Ingress; ingress-nginx \
                         keeps one per Ingress, shared by its paths";

/// Annotations read but not served, and why.
const NOT_SERVED: [(&str, &str); 2] = [
    (
        "limit-rate",
        "weir does not throttle response bandwidth; the Ingress is served without it",
    ),
    (
        "limit-rate-after",
        "weir does not throttle response bandwidth; the Ingress is served without it",
    ),
];

/// Read the family's annotations into `t`.
pub(super) fn translate(ctx: &Context<'_>, t: &mut Translation) {
    let rates: Vec<(&'static str, &str, Result<u32, String>)> = [RPS, RPM]
        .into_iter()
        .filter_map(|name| {
            let value = ctx.get(name)?;
            let parsed = value
                .parse::<u32>()
                .map_err(|_| format!("{value:?} is not a whole number of requests"));
            Some((name, value, parsed))
        })
        .collect();
    let connections = ctx.get(CONNECTIONS).map(|value| {
        let parsed = value
            .parse::<u32>()
            .map_err(|_| format!("{value:?} is not a whole number of connections"));
        (value, parsed)
    });
    let rate_limited = rates.iter().any(|(_, _, r)| matches!(r, Ok(n) if *n > 0));
    let limited = rate_limited || matches!(connections, Some((_, Ok(n))) if n > 0);
    let multiplier = match ctx.get(MULTIPLIER) {
        None => DEFAULT_MULTIPLIER,
        Some(value) => match value.parse::<u32>() {
            Ok(m) => {
                let verdict = if rate_limited {
                    Verdict::Translated(format!("RateLimit burst = rate × {m} + 1"))
                } else {
                    Verdict::Translated("nothing: no limit-rps or limit-rpm".to_owned())
                };
                t.found(MULTIPLIER, value, verdict);
                m
            }
            Err(_) => {
                // ingress-nginx falls back to its default on an unreadable multiplier.
                t.found(
                    MULTIPLIER,
                    value,
                    Verdict::Invalid {
                        why: format!(
                            "{value:?} is not a whole number; ignored, as ingress-nginx does \
                             (the default {DEFAULT_MULTIPLIER} is used)"
                        ),
                        fails_closed: false,
                    },
                );
                DEFAULT_MULTIPLIER
            }
        },
    };
    let exempt = match ctx.get(WHITELIST) {
        None => Ok(Vec::new()),
        Some(value) => {
            let parsed = cidrs(value);
            let verdict = match &parsed {
                Err(why) => Verdict::Invalid {
                    why: why.clone(),
                    fails_closed: true,
                },
                Ok(_) if !limited => Verdict::Translated(
                    "nothing: no limit-rps, limit-rpm or limit-connections".to_owned(),
                ),
                Ok(_) => Verdict::Translated("exempt addresses of the limits".to_owned()),
            };
            t.found(WHITELIST, value, verdict);
            parsed
        }
    };
    let several_routes = route_count(ctx) > 1;
    let per_ingress = |to: String| {
        if several_routes {
            Verdict::Partial {
                to,
                differs: PER_ROUTE.replace("bucket", "count"),
            }
        } else {
            Verdict::Translated(to)
        }
    };
    match connections {
        None => {}
        Some((value, Ok(0))) => {
            t.found(
                CONNECTIONS,
                value,
                Verdict::Translated("no limit (0)".to_owned()),
            );
        }
        Some((value, Err(why))) => t.found(
            CONNECTIONS,
            value,
            Verdict::Invalid {
                why,
                fails_closed: true,
            },
        ),
        Some((value, Ok(n))) => {
            let to = format!(
                "ConcurrencyLimit filter ({n} requests in flight per client address; \
                 {CONN_STATUS})"
            );
            t.found(CONNECTIONS, value, per_ingress(to));
            if let Ok(exempt) = &exempt {
                t.entry(
                    vec![CONNECTIONS, WHITELIST],
                    Phase::Limit,
                    FilterEntry {
                        concurrency_limit: Some(ConcurrencyLimitFilter {
                            max: n,
                            status_code: Some(CONN_STATUS),
                            exempt: exempt.clone(),
                        }),
                        ..FilterEntry::new(FilterType::ConcurrencyLimit)
                    },
                );
            }
        }
    }
    for (name, value, parsed) in rates {
        let n = match parsed {
            Ok(0) => {
                t.found(name, value, Verdict::Translated("no limit (0)".to_owned()));
                continue;
            }
            Ok(n) => n,
            Err(why) => {
                t.found(
                    name,
                    value,
                    Verdict::Invalid {
                        why,
                        fails_closed: true,
                    },
                );
                continue;
            }
        };
        let burst = n.saturating_mul(multiplier).saturating_add(1);
        let (unit, per) = if name == RPS {
            (RateLimitUnit::Second, "second")
        } else {
            (RateLimitUnit::Minute, "minute")
        };
        let to =
            format!("RateLimit filter ({n} per {per} per client address, burst {burst}; {STATUS})");
        let verdict = match per_ingress(to) {
            Verdict::Partial { to, .. } => Verdict::Partial {
                to,
                differs: PER_ROUTE.to_owned(),
            },
            v => v,
        };
        t.found(name, value, verdict);
        let Ok(exempt) = &exempt else {
            continue;
        };
        t.entry(
            vec![name, MULTIPLIER, WHITELIST],
            Phase::Limit,
            FilterEntry {
                rate_limit: Some(RateLimitFilter {
                    requests: n,
                    unit,
                    burst: Some(burst),
                    key: None,
                    status_code: Some(STATUS),
                    exempt: exempt.clone(),
                }),
                ..FilterEntry::new(FilterType::RateLimit)
            },
        );
    }
    for (name, why) in NOT_SERVED {
        if let Some(value) = ctx.get(name) {
            t.found(name, value, Verdict::Unsupported(why.to_owned()));
        }
    }
}

/// How many routes the Ingress makes (its paths, and its default backend).
fn route_count(ctx: &Context<'_>) -> usize {
    let Some(spec) = ctx.ingress.spec.as_ref() else {
        return 0;
    };
    let paths: usize = spec
        .rules
        .iter()
        .flatten()
        .filter_map(|r| r.http.as_ref())
        .map(|h| h.paths.len())
        .sum();
    paths + usize::from(spec.default_backend.is_some())
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn limits(t: &Translation) -> Vec<&RateLimitFilter> {
        t.entries
            .iter()
            .filter_map(|e| e.entry.rate_limit.as_ref())
            .collect()
    }

    #[test]
    fn rps_and_rpm_become_buckets_of_rate_times_multiplier_plus_one() {
        let t = translate_only(&[("limit-rps", "2"), ("limit-rpm", "30")]);
        let l = limits(&t);
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[0].requests, l[0].unit, l[0].burst),
            (2, RateLimitUnit::Second, Some(11))
        );
        assert_eq!(
            (l[1].requests, l[1].unit, l[1].burst),
            (30, RateLimitUnit::Minute, Some(151))
        );
        assert!(
            l.iter()
                .all(|l| l.status_code == Some(503) && l.key.is_none())
        );
        assert!(t.entries.iter().all(|e| e.phase == Phase::Limit));
    }

    #[test]
    fn the_multiplier_and_the_whitelist_apply_to_every_rate() {
        let t = translate_only(&[
            ("limit-rps", "1"),
            ("limit-burst-multiplier", "3"),
            ("limit-whitelist", "10.0.0.0/8, 127.0.0.1"),
        ]);
        let l = limits(&t);
        assert_eq!(l[0].burst, Some(4));
        assert_eq!(l[0].exempt, ["10.0.0.0/8", "127.0.0.1"]);
        let t = translate_only(&[("limit-rps", "1"), ("limit-burst-multiplier", "x")]);
        assert_eq!(limits(&t)[0].burst, Some(6));
        assert!(matches!(
            verdict(&t, "limit-burst-multiplier"),
            Verdict::Invalid {
                fails_closed: false,
                ..
            }
        ));
    }

    #[test]
    fn unreadable_limits_fail_closed_and_zero_is_no_limit() {
        for annotations in [
            &[("limit-rps", "ten")][..],
            &[("limit-rpm", "-1")],
            &[("limit-rps", "5"), ("limit-whitelist", "10.0.0.0/40")],
        ] {
            let t = translate_only(annotations);
            assert!(
                t.findings.iter().any(|f| matches!(
                    f.verdict,
                    Verdict::Invalid {
                        fails_closed: true,
                        ..
                    }
                )),
                "{annotations:?}"
            );
            assert!(limits(&t).is_empty(), "{annotations:?}");
        }
        let t = translate_only(&[("limit-rps", "0"), ("limit-connections", "0")]);
        assert!(t.entries.is_empty());
        assert!(matches!(
            verdict(&t, "limit-connections"),
            Verdict::Translated(_)
        ));
        let t = translate_only(&[("limit-connections", "many")]);
        assert!(t.entries.is_empty());
        assert!(matches!(
            verdict(&t, "limit-connections"),
            Verdict::Invalid {
                fails_closed: true,
                ..
            }
        ));
    }

    #[test]
    fn connections_become_a_concurrency_limit_before_the_rates_with_the_whitelist() {
        let t = translate_only(&[
            ("limit-rps", "5"),
            ("limit-connections", "2"),
            ("limit-whitelist", "127.0.0.1"),
        ]);
        assert!(matches!(
            verdict(&t, "limit-connections"),
            Verdict::Translated(_)
        ));
        let first = t.entries[0]
            .entry
            .concurrency_limit
            .as_ref()
            .expect("limit-connections is applied first");
        assert_eq!(
            (first.max, first.status_code, &first.exempt[..]),
            (2, Some(503), &["127.0.0.1".to_owned()][..])
        );
        assert_eq!(t.entries[0].phase, Phase::Limit);
        assert_eq!(limits(&t).len(), 1);
        // A whitelist that cannot be read leaves no limit open: no entry, the finding fails
        // closed.
        let t = translate_only(&[("limit-connections", "2"), ("limit-whitelist", "x/99")]);
        assert!(t.entries.is_empty());
        assert!(matches!(
            verdict(&t, "limit-whitelist"),
            Verdict::Invalid {
                fails_closed: true,
                ..
            }
        ));
    }
}
