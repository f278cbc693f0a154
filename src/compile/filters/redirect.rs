//! `Redirect`: validation of its settings (to be written for issue 11; until then it refuses).

use super::FieldError;
use crate::api::httpfilter::RequestRedirectFilter;
use crate::snapshot::Redirect;

/// Compile the settings.
pub(super) fn compile(spec: &RequestRedirectFilter) -> Result<Redirect, FieldError> {
    let _ = spec;
    Err(FieldError::invalid("", "not supported yet"))
}
