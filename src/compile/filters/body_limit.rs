//! `BodyLimit`: `maxRequestBytes` must be 0 or more (0 admits only empty bodies).

use super::FieldError;
use crate::api::httpfilter::BodyLimitFilter;
use crate::snapshot::BodyLimit;

/// Compile the settings.
pub(super) fn compile(spec: &BodyLimitFilter) -> Result<BodyLimit, FieldError> {
    let max_request_bytes = u64::try_from(spec.max_request_bytes).map_err(|_| {
        FieldError::invalid(
            "maxRequestBytes",
            format!("{} is negative", spec.max_request_bytes),
        )
    })?;
    Ok(BodyLimit { max_request_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_must_not_be_negative() {
        let ok = compile(&BodyLimitFilter {
            max_request_bytes: 1 << 20,
        });
        assert_eq!(ok.expect("valid").max_request_bytes, 1 << 20);
        let bad = compile(&BodyLimitFilter {
            max_request_bytes: -1,
        });
        assert_eq!(bad.expect_err("negative").field, "maxRequestBytes");
    }
}
