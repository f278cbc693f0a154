//! `RequestMirror`: validation of its settings (to be written for issue 11; until then it refuses).

use super::{EntryContext, FieldError};
use crate::api::httpfilter::RequestMirrorFilter;
use crate::snapshot::RequestMirror;

/// Compile the settings.
pub(super) fn compile(
    spec: &RequestMirrorFilter,
    ctx: &EntryContext<'_>,
) -> Result<RequestMirror, FieldError> {
    let _ = (spec, ctx);
    Err(FieldError::invalid("", "not supported yet"))
}
