//! `BodyLimit`: validation of its settings (to be written for issue 11; until then it refuses).

use super::FieldError;
use crate::api::httpfilter::BodyLimitFilter;
use crate::snapshot::BodyLimit;

/// Compile the settings.
pub(super) fn compile(spec: &BodyLimitFilter) -> Result<BodyLimit, FieldError> {
    let _ = spec;
    Err(FieldError::invalid("", "not supported yet"))
}
