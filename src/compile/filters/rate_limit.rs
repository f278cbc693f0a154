//! `RateLimit`: a token bucket of `burst` tokens (default: `requests`) refilled at `requests`
//! per `unit`, kept per client address, per value of a header, or once for the route. The
//! header name is parsed here; the buckets themselves are proxy runtime state
//! (`crate::proxy::filter::rate_limit`). `statusCode` is 400-599 (default 429); `exempt`
//! holds CIDRs or addresses, parsed here.

use std::time::Duration;

use http::HeaderName;

use super::FieldError;
use crate::api::httpfilter::{RateLimitFilter, RateLimitKeyType, RateLimitUnit};
use crate::snapshot::{RateLimit, RateLimitKey};

/// Compile the settings.
pub(super) fn compile(spec: &RateLimitFilter) -> Result<RateLimit, FieldError> {
    if spec.requests == 0 {
        return Err(FieldError::invalid("requests", "must be at least 1"));
    }
    let burst = spec.burst.unwrap_or(spec.requests);
    if burst == 0 {
        return Err(FieldError::invalid("burst", "must be at least 1"));
    }
    let period = match spec.unit {
        RateLimitUnit::Second => Duration::from_secs(1),
        RateLimitUnit::Minute => Duration::from_secs(60),
        RateLimitUnit::Hour => Duration::from_secs(3600),
    };
    let key = match &spec.key {
        None => RateLimitKey::ClientIp,
        Some(k) => match (k.type_, &k.header) {
            (RateLimitKeyType::Header, Some(h)) => {
                let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
                    FieldError::invalid(
                        "key.header.name",
                        format!("{:?} is not a header name", h.name),
                    )
                })?;
                RateLimitKey::Header(name)
            }
            (RateLimitKeyType::Header, None) => {
                return Err(FieldError::invalid(
                    "key.header",
                    "required when type is Header",
                ));
            }
            (_, Some(_)) => {
                return Err(FieldError::invalid(
                    "key.header",
                    "must not be set unless type is Header",
                ));
            }
            (RateLimitKeyType::ClientIp, None) => RateLimitKey::ClientIp,
            (RateLimitKeyType::Route, None) => RateLimitKey::Route,
        },
    };
    let status = super::status_code(spec.status_code, 429)?;
    let exempt = super::exempt(&spec.exempt)?;
    Ok(RateLimit {
        requests: spec.requests,
        period,
        burst,
        key,
        status,
        exempt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::httpfilter::{HeaderNameRef, RateLimitKey as KeySpec};

    fn spec(requests: u32, burst: Option<u32>, key: Option<KeySpec>) -> RateLimitFilter {
        RateLimitFilter {
            requests,
            unit: RateLimitUnit::Minute,
            burst,
            key,
            status_code: None,
            exempt: Vec::new(),
        }
    }

    fn header_key(name: &str) -> Option<KeySpec> {
        Some(KeySpec {
            type_: RateLimitKeyType::Header,
            header: Some(HeaderNameRef { name: name.into() }),
        })
    }

    #[test]
    fn burst_defaults_to_requests_and_key_to_client_ip() {
        let rl = compile(&spec(100, None, None)).expect("valid");
        assert_eq!(rl.burst, 100);
        assert_eq!(rl.period, Duration::from_secs(60));
        assert_eq!(rl.key, RateLimitKey::ClientIp);
        let rl = compile(&spec(10, Some(30), header_key("X-Api-Key"))).expect("valid");
        assert_eq!(rl.burst, 30);
        assert_eq!(
            rl.key,
            RateLimitKey::Header(HeaderName::from_static("x-api-key"))
        );
    }

    #[test]
    fn zero_rates_and_bad_keys_are_refused_with_their_field() {
        let field = |s: RateLimitFilter| compile(&s).expect_err("invalid").field;
        assert_eq!(field(spec(0, None, None)), "requests");
        assert_eq!(field(spec(5, Some(0), None)), "burst");
        assert_eq!(
            field(spec(5, None, header_key("bad header"))),
            "key.header.name"
        );
        let no_header = Some(KeySpec {
            type_: RateLimitKeyType::Header,
            header: None,
        });
        assert_eq!(field(spec(5, None, no_header)), "key.header");
        let stray = Some(KeySpec {
            type_: RateLimitKeyType::Route,
            header: Some(HeaderNameRef { name: "x-a".into() }),
        });
        assert_eq!(field(spec(5, None, stray)), "key.header");
        let status = |s| RateLimitFilter {
            status_code: Some(s),
            ..spec(5, None, None)
        };
        assert_eq!(field(status(200)), "statusCode");
        assert_eq!(compile(&status(503)).expect("valid").status, 503);
        let exempt = RateLimitFilter {
            exempt: vec!["10.0.0.0/8".into(), "nope".into()],
            ..spec(5, None, None)
        };
        assert_eq!(field(exempt), "exempt[1]");
    }
}
