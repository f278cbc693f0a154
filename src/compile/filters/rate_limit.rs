//! `RateLimit`: validation of its settings (to be written for issue 11; until then it refuses).

use super::FieldError;
use crate::api::httpfilter::RateLimitFilter;
use crate::snapshot::RateLimit;

/// Compile the settings.
pub(super) fn compile(spec: &RateLimitFilter) -> Result<RateLimit, FieldError> {
    let _ = spec;
    Err(FieldError::invalid("", "not supported yet"))
}
