//! `UrlRewrite`: validation of its settings (to be written for issue 11; until then it refuses).

use super::FieldError;
use crate::api::httpfilter::UrlRewriteFilter;
use crate::snapshot::UrlRewrite;

/// Compile the settings.
pub(super) fn compile(spec: &UrlRewriteFilter) -> Result<UrlRewrite, FieldError> {
    let _ = spec;
    Err(FieldError::invalid("", "not supported yet"))
}
