//! `BasicAuth`: validation of its settings (to be written for issue 11; until then it refuses).

use super::{EntryContext, FieldError};
use crate::api::httpfilter::BasicAuthFilter;
use crate::snapshot::BasicAuth;

/// Compile the settings.
pub(super) fn compile(
    spec: &BasicAuthFilter,
    ctx: &EntryContext<'_>,
) -> Result<BasicAuth, FieldError> {
    let _ = (spec, ctx);
    Err(FieldError::invalid("", "not supported yet"))
}
