//! `Cors`: validation of its settings (to be written for issue 11; until then it refuses).

use super::FieldError;
use crate::api::httpfilter::CorsFilter;
use crate::snapshot::Cors;

/// Compile the settings.
pub(super) fn compile(spec: &CorsFilter) -> Result<Cors, FieldError> {
    let _ = spec;
    Err(FieldError::invalid("", "not supported yet"))
}
