//! `ExternalAuth`: validation of its settings (to be written for issue 11; until then it refuses).

use super::{EntryContext, FieldError};
use crate::api::httpfilter::ExternalAuthFilter;
use crate::snapshot::ExternalAuth;

/// Compile the settings.
pub(super) fn compile(
    spec: &ExternalAuthFilter,
    ctx: &EntryContext<'_>,
) -> Result<ExternalAuth, FieldError> {
    let _ = (spec, ctx);
    Err(FieldError::invalid("", "not supported yet"))
}
