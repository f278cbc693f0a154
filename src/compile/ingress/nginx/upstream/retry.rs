//! Timeouts (`proxy-connect-timeout`, `proxy-read-timeout`, `proxy-send-timeout`) and
//! retries (`proxy-next-upstream`, `-tries`, `-timeout`) of the variant.

use super::super::{Context, Translation, Verdict};
use super::{ignored, positive_seconds, seconds};
use crate::api::backendpolicy::{
    HttpTimeoutSpec, RetryOnSpec, RetrySpec, RetryTrigger, TcpTimeoutSpec, TimeoutSpec,
};

const CONNECT_TIMEOUT: &str = "proxy-connect-timeout";
const READ_TIMEOUT: &str = "proxy-read-timeout";
const SEND_TIMEOUT: &str = "proxy-send-timeout";
const NEXT_UPSTREAM: &str = "proxy-next-upstream";
const NEXT_TRIES: &str = "proxy-next-upstream-tries";
const NEXT_TIMEOUT: &str = "proxy-next-upstream-timeout";

/// `proxy-connect-timeout`, `proxy-read-timeout`, `proxy-send-timeout`.
pub(super) fn timeouts(ctx: &Context<'_>, t: &mut Translation) {
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
pub(super) fn retries(ctx: &Context<'_>, t: &mut Translation) {
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
    let mut retry_timeout = None;
    if let Some(v) = ctx.get(NEXT_TIMEOUT) {
        let verdict = match seconds(v) {
            Ok(0) => Verdict::Translated("no limit on the time spent retrying".to_owned()),
            Ok(_) if retry.num_retries == Some(0) => {
                Verdict::Translated("nothing: proxy-next-upstream is off".to_owned())
            }
            Ok(n) if n > 0 => {
                retry_timeout = Some(format!("{n}s"));
                Verdict::Translated(format!(
                    "retry.timeout {n}s (no retry starts later than {n}s after the first \
                     attempt)"
                ))
            }
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
    if let Some(timeout) = retry_timeout {
        // Alone, it bounds weir's own retries; with the others, ingress-nginx's.
        t.policy.retry.get_or_insert_default().timeout = Some(timeout);
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

#[cfg(test)]
mod tests {
    use super::super::super::testing::*;
    use super::super::testing::*;
    use super::*;

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
    }

    #[test]
    fn next_upstream_timeout_bounds_when_a_retry_may_start() {
        let t = translate_only(&[("proxy-next-upstream-timeout", "10")]);
        assert!(matches!(
            verdict(&t, "proxy-next-upstream-timeout"),
            Verdict::Translated(_)
        ));
        let c = cluster(&t);
        assert_eq!(c.retry.timeout, Some(std::time::Duration::from_secs(10)));
        // Alone it changes nothing else of weir's retries.
        assert_eq!(c.retry.num_retries, 1);
        let t = translate_only(&[
            ("proxy-next-upstream", "error http_502"),
            ("proxy-next-upstream-timeout", "3"),
        ]);
        let c = cluster(&t);
        assert_eq!(c.retry.timeout, Some(std::time::Duration::from_secs(3)));
        assert_eq!(
            (c.retry.num_retries, &c.retry.statuses[..]),
            (2, &[502][..])
        );
        for (value, limited) in [("0", false), ("-3", false), ("ten", false)] {
            let t = translate_only(&[("proxy-next-upstream-timeout", value)]);
            assert_eq!(t.policy.retry.is_some(), limited, "{value}");
        }
        assert!(warned(verdict(
            &translate_only(&[("proxy-next-upstream-timeout", "-3")]),
            "proxy-next-upstream-timeout"
        )));
        let t = translate_only(&[
            ("proxy-next-upstream", "off"),
            ("proxy-next-upstream-timeout", "3"),
        ]);
        assert_eq!(cluster(&t).retry.timeout, None);
    }
}
