//! `RequestMirror`: validation of its settings.
//!
//! - `backendRef`: a Service port in the filter's namespace, resolved as `ExternalAuth`'s is
//!   (a reference that does not resolve fails the filter, `RefNotFound`). The compiled filter
//!   holds the cluster's key; a Gateway API `RequestMirror` compiles to the same form.
//! - `percent`: 0 to 100 (default 100); 0 mirrors nothing.
//! - `hostname`: a host, optionally with a port (`shadow.example`, `10.0.0.1:8080`).

use super::{EntryContext, FieldError, external_auth};
use crate::api::httpfilter::RequestMirrorFilter;
use crate::snapshot::RequestMirror;

/// Compile the settings.
pub(super) fn compile(
    spec: &RequestMirrorFilter,
    ctx: &EntryContext<'_>,
) -> Result<RequestMirror, FieldError> {
    let percent = match spec.percent {
        None => 100,
        Some(p) => u32::try_from(p)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| FieldError::invalid("percent", format!("{p} is not within 0-100")))?,
    };
    let hostname = spec
        .hostname
        .as_deref()
        .map(|h| {
            let authority = h.parse::<http::uri::Authority>().ok();
            authority
                .filter(|a| a.as_str() == h && !h.contains('@'))
                .and_then(|_| http::HeaderValue::from_str(h).ok())
                .ok_or_else(|| FieldError::invalid("hostname", format!("{h:?} is not a host")))
        })
        .transpose()?;
    let cluster = external_auth::cluster(&spec.backend_ref, ctx)?;
    Ok(RequestMirror {
        cluster,
        percent,
        hostname,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::httpfilter::BackendRef;
    use crate::api::reasons;
    use crate::compile::testing::services;
    use crate::snapshot::ClusterKey;
    use crate::store::ObjectKey;

    fn run(name: &str, port: i32, percent: Option<i32>) -> Result<RequestMirror, FieldError> {
        let objects = services(&["shop/shadow"]);
        let key = ObjectKey::new("shop", "mirror");
        let spec = RequestMirrorFilter {
            backend_ref: BackendRef {
                name: name.into(),
                port,
            },
            percent,
            hostname: None,
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
    fn a_service_port_becomes_its_cluster_with_the_percentage() {
        let m = run("shadow", 80, Some(10)).expect("compiles");
        assert_eq!(m.cluster, ClusterKey::new("shop", "shadow", 80));
        assert_eq!(m.percent, 10);
        assert_eq!(run("shadow", 80, None).expect("compiles").percent, 100);
    }

    #[test]
    fn bad_values_and_missing_services_name_their_field() {
        let e = run("shadow", 80, Some(101)).expect_err("over 100");
        assert_eq!(
            (e.field.as_str(), e.reason),
            ("percent", reasons::INVALID_FILTER)
        );
        let e = run("shadow", 80, Some(-1)).expect_err("negative");
        assert_eq!(e.field, "percent");
        let e = run("gone", 80, None).expect_err("missing Service");
        assert_eq!(
            (e.field.as_str(), e.reason),
            ("backendRef", reasons::FILTER_REF_NOT_FOUND)
        );
        assert!(e.message.contains("shop/gone"), "{}", e.message);
        let e = run("shadow", 81, None).expect_err("missing port");
        assert_eq!(e.field, "backendRef");
    }

    #[test]
    fn a_hostname_is_a_host() {
        let objects = services(&["shop/shadow"]);
        let key = ObjectKey::new("shop", "mirror");
        let ctx = EntryContext {
            key: &key,
            objects: &objects,
        };
        let spec = |h: &str| RequestMirrorFilter {
            backend_ref: BackendRef {
                name: "shadow".into(),
                port: 80,
            },
            percent: None,
            hostname: Some(h.into()),
        };
        let m = compile(&spec("test.env.com"), &ctx).expect("a host");
        assert_eq!(m.hostname.expect("set"), "test.env.com");
        for bad in ["a b", "x/y", "u@h", ""] {
            assert_eq!(compile(&spec(bad), &ctx).expect_err(bad).field, "hostname");
        }
    }
}
