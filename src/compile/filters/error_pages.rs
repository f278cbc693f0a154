//! `ErrorPages`: validation of its settings.
//!
//! - `backendRef`: a Service port in the filter's namespace, resolved as `ExternalAuth`'s is
//!   (a reference that does not resolve fails the filter, `RefNotFound`);
//! - `statusCodes`: each within 400–599 (ingress-nginx's `custom-http-errors` accepts those);
//!   duplicates are kept once;
//! - `requestHeaders`: as `RequestHeaderModifier`'s settings.

use super::{EntryContext, FieldError, at, external_auth, header_modifier};
use crate::api::httpfilter::ErrorPagesFilter;
use crate::snapshot::{ErrorPages, HeaderModifier};

/// Compile the settings.
pub(super) fn compile(
    spec: &ErrorPagesFilter,
    ctx: &EntryContext<'_>,
) -> Result<ErrorPages, FieldError> {
    let mut status_codes = Vec::with_capacity(spec.status_codes.len());
    for (i, code) in spec.status_codes.iter().enumerate() {
        let code = u16::try_from(*code)
            .ok()
            .filter(|c| (400..=599).contains(c))
            .ok_or_else(|| {
                FieldError::invalid(
                    at("statusCodes", i),
                    format!("{code} is not within 400-599"),
                )
            })?;
        status_codes.push(code);
    }
    status_codes.sort_unstable();
    status_codes.dedup();
    let request_headers = match &spec.request_headers {
        None => HeaderModifier::default(),
        Some(h) => header_modifier::compile(h).map_err(|e| FieldError {
            field: format!("requestHeaders.{}", e.field),
            ..e
        })?,
    };
    let cluster = external_auth::cluster(&spec.backend_ref, ctx)?;
    Ok(ErrorPages {
        cluster,
        status_codes,
        request_headers,
    })
}
