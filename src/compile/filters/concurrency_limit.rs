//! `ConcurrencyLimit`: at most `max` requests of one client address in flight (at least 1);
//! `statusCode` is 400-599 (default 503, ingress-nginx's `limit-conn-status-code`); `exempt`
//! holds CIDRs or addresses, parsed here. The counters are proxy runtime state
//! (`crate::proxy::filter::concurrency_limit`).

use super::FieldError;
use crate::api::httpfilter::ConcurrencyLimitFilter;
use crate::snapshot::ConcurrencyLimit;

/// Compile the settings.
pub(super) fn compile(spec: &ConcurrencyLimitFilter) -> Result<ConcurrencyLimit, FieldError> {
    if spec.max == 0 {
        return Err(FieldError::invalid("max", "must be at least 1"));
    }
    let status = super::status_code(spec.status_code, 503)?;
    let exempt = super::exempt(&spec.exempt)?;
    Ok(ConcurrencyLimit {
        max: spec.max,
        status,
        exempt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max: u32) -> ConcurrencyLimitFilter {
        ConcurrencyLimitFilter {
            max,
            status_code: None,
            exempt: Vec::new(),
        }
    }

    #[test]
    fn status_defaults_to_503_and_bad_fields_are_refused_with_their_name() {
        let c = compile(&spec(3)).expect("valid");
        assert_eq!((c.max, c.status), (3, 503));
        let field = |s: ConcurrencyLimitFilter| compile(&s).expect_err("invalid").field;
        assert_eq!(field(spec(0)), "max");
        assert_eq!(
            field(ConcurrencyLimitFilter {
                status_code: Some(200),
                ..spec(1)
            }),
            "statusCode"
        );
        assert_eq!(
            field(ConcurrencyLimitFilter {
                exempt: vec!["127.0.0.1".into(), "nope".into()],
                ..spec(1)
            }),
            "exempt[1]"
        );
        let c = compile(&ConcurrencyLimitFilter {
            status_code: Some(429),
            exempt: vec!["10.0.0.0/8".into()],
            ..spec(1)
        })
        .expect("valid");
        assert_eq!((c.status, c.exempt.len()), (429, 1));
    }
}
