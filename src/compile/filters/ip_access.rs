//! `IpAccess`: validation of its settings (to be written for issue 11; until then it refuses).

use super::FieldError;
use crate::api::httpfilter::IpAccessFilter;
use crate::snapshot::IpAccess;

/// Compile the settings.
pub(super) fn compile(spec: &IpAccessFilter) -> Result<IpAccess, FieldError> {
    let _ = spec;
    Err(FieldError::invalid("", "not supported yet"))
}
