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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::httpfilter::{BackendRef, HeaderFilter, HttpHeader};
    use crate::api::reasons;
    use crate::compile::testing::services;
    use crate::snapshot::ClusterKey;
    use crate::store::ObjectKey;

    fn run(name: &str, codes: &[i32], header: Option<&str>) -> Result<ErrorPages, FieldError> {
        let objects = services(&["shop/errors"]);
        let key = ObjectKey::new("shop", "pages");
        let spec = ErrorPagesFilter {
            backend_ref: BackendRef {
                name: name.into(),
                port: 80,
            },
            status_codes: codes.to_vec(),
            request_headers: header.map(|n| HeaderFilter {
                set: vec![HttpHeader {
                    name: n.into(),
                    value: "v".into(),
                }],
                ..HeaderFilter::default()
            }),
        };
        compile(
            &spec,
            &EntryContext {
                key: &key,
                objects: &objects,
            },
        )
    }

    #[test]
    fn codes_are_sorted_once_and_looked_up() {
        let e = run("errors", &[503, 404, 503], Some("X-Ingress-Name")).expect("compiles");
        assert_eq!(e.cluster, ClusterKey::new("shop", "errors", 80));
        assert_eq!(e.status_codes, vec![404, 503]);
        assert!(e.replaces(404) && e.replaces(503));
        assert!(!e.replaces(200) && !e.replaces(500));
        assert_eq!(e.request_headers.set[0].name.as_str(), "x-ingress-name");
        let e = run("errors", &[], None).expect("no codes: only no-endpoint diverts");
        assert!(!e.replaces(404));
    }

    #[test]
    fn bad_codes_headers_and_services_name_their_field() {
        let e = run("errors", &[404, 302], None).expect_err("302");
        assert_eq!(
            (e.field.as_str(), e.reason),
            ("statusCodes[1]", reasons::INVALID_FILTER)
        );
        let e = run("errors", &[600], None).expect_err("600");
        assert_eq!(e.field, "statusCodes[0]");
        let e = run("errors", &[404], Some("bad name")).expect_err("header name");
        assert!(e.field.starts_with("requestHeaders."), "{}", e.field);
        let e = run("gone", &[404], None).expect_err("missing Service");
        assert_eq!(
            (e.field.as_str(), e.reason),
            ("backendRef", reasons::FILTER_REF_NOT_FOUND)
        );
    }
}
