//! `default-backend` and `custom-http-errors` → one `ErrorPages` entry.
//!
//! - `default-backend: <svc>`: a Service in the Ingress's namespace, its first port (as
//!   ingress-nginx takes it); the routes whose Service has no endpoint are forwarded there
//!   (with `X-Code: 503` …), and it answers the intercepted errors;
//! - `custom-http-errors: "404,503"` (each 400–599): upstream answers with these statuses
//!   are replaced by the default backend's answer to `GET /` with `X-Code` …
//!
//! Without `default-backend`, ingress-nginx sends the errors to the controller's default
//! backend; weir does not use its `--default-backend` for that yet (not served).

use super::super::{Context, Phase, Translation, Verdict};
use super::ignored;
use crate::api::httpfilter::{
    BackendRef, ErrorPagesFilter, FilterEntry, FilterType, HeaderFilter, HttpHeader,
};
use crate::store::ObjectKey;

const DEFAULT_BACKEND: &str = "default-backend";
const CUSTOM_HTTP_ERRORS: &str = "custom-http-errors";

/// Read both annotations into `t`.
pub(super) fn translate(ctx: &Context<'_>, t: &mut Translation) {
    let codes = ctx
        .get(CUSTOM_HTTP_ERRORS)
        .and_then(|value| match codes(value) {
            Ok(c) => Some((value, c)),
            Err(why) => {
                t.found(CUSTOM_HTTP_ERRORS, value, ignored(why));
                None
            }
        });
    let backend = ctx
        .get(DEFAULT_BACKEND)
        .and_then(|value| match backend(ctx, value) {
            Ok(b) => Some((value, b)),
            Err(why) => {
                t.found(DEFAULT_BACKEND, value, ignored(why));
                None
            }
        });
    let Some((name, backend)) = backend else {
        if let Some((value, _)) = codes {
            t.found(
                CUSTOM_HTTP_ERRORS,
                value,
                Verdict::Unsupported(
                    "without a usable default-backend annotation ingress-nginx sends these \
                     errors to its controller's default backend, which weir does not use for \
                     error pages; the upstream's response is passed through"
                        .to_owned(),
                ),
            );
        }
        return;
    };
    t.found(
        DEFAULT_BACKEND,
        name,
        Verdict::Translated(format!(
            "ErrorPages filter: Service {}:{} answers for a Service without ready endpoints \
             (X-Code: 503)",
            backend.name, backend.port
        )),
    );
    let status_codes = match codes {
        Some((value, c)) => {
            let list = c.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            t.found(
                CUSTOM_HTTP_ERRORS,
                value,
                Verdict::Partial {
                    to: format!(
                        "ErrorPages statusCodes {list}: Service {}:{} answers instead",
                        backend.name, backend.port
                    ),
                    differs: "weir asks the error Service with GET / (HEAD / for a HEAD) \
                              without the request body, nginx with the client's method and \
                              body; a request already sent to the default backend (no \
                              endpoints) is not intercepted again"
                        .to_owned(),
                },
            );
            c
        }
        None => Vec::new(),
    };
    let ingress = ctx.key.name.clone();
    t.entry(
        vec![DEFAULT_BACKEND, CUSTOM_HTTP_ERRORS],
        Phase::Upstream,
        FilterEntry {
            error_pages: Some(ErrorPagesFilter {
                backend_ref: backend,
                status_codes,
                request_headers: Some(HeaderFilter {
                    set: vec![HttpHeader {
                        name: "X-Ingress-Name".to_owned(),
                        value: ingress,
                    }],
                    ..HeaderFilter::default()
                }),
            }),
            ..FilterEntry::new(FilterType::ErrorPages)
        },
    );
}

/// ingress-nginx's list: comma-separated codes within 400–599, empty items skipped.
fn codes(value: &str) -> Result<Vec<i32>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.parse::<i32>() {
            Ok(c) if item.len() == 3 && (400..=599).contains(&c) => {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            _ => return Err(format!("{item:?} is not an HTTP status within 400-599")),
        }
    }
    if out.is_empty() {
        return Err(format!("{value:?} lists no status"));
    }
    Ok(out)
}

/// The Service (in the Ingress's namespace) and its first port.
fn backend(ctx: &Context<'_>, name: &str) -> Result<BackendRef, String> {
    let key = ObjectKey::new(&ctx.key.namespace, name);
    let service = ctx
        .objects
        .services
        .get(&key)
        .ok_or_else(|| format!("Service {key} not found"))?;
    let port = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .map(|p| p.port)
        .ok_or_else(|| format!("Service {key} has no ports"))?;
    Ok(BackendRef {
        name: name.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::*;
    use super::*;
    use crate::compile::testing::services;

    fn pages(t: &Translation) -> &ErrorPagesFilter {
        t.entries
            .iter()
            .find_map(|e| e.entry.error_pages.as_ref())
            .expect("an ErrorPages entry")
    }

    #[test]
    fn default_backend_with_codes_is_one_entry() {
        let objects = services(&["default/errors"]);
        let t = translate_with(
            &objects,
            &[
                ("default-backend", "errors"),
                ("custom-http-errors", "404, 503,404"),
            ],
        );
        let p = pages(&t);
        assert_eq!(p.backend_ref.name, "errors");
        assert_eq!(p.backend_ref.port, 80);
        assert_eq!(p.status_codes, vec![404, 503]);
        let set = &p.request_headers.as_ref().expect("headers").set;
        assert_eq!(
            (set[0].name.as_str(), set[0].value.as_str()),
            ("X-Ingress-Name", "test")
        );
        assert!(matches!(
            verdict(&t, "default-backend"),
            Verdict::Translated(_)
        ));
        assert!(matches!(
            verdict(&t, "custom-http-errors"),
            Verdict::Partial { .. }
        ));
    }

    #[test]
    fn default_backend_alone_serves_services_without_endpoints() {
        let objects = services(&["default/errors"]);
        let t = translate_with(&objects, &[("default-backend", "errors")]);
        assert!(pages(&t).status_codes.is_empty());
        assert_eq!(t.findings.len(), 1);
    }

    #[test]
    fn codes_without_a_default_backend_are_not_served() {
        let t = translate_only(&[("custom-http-errors", "404")]);
        assert!(matches!(
            verdict(&t, "custom-http-errors"),
            Verdict::Unsupported(_)
        ));
        assert!(t.entries.is_empty());
        // A missing Service is ignored, as ingress-nginx's parser fails on it.
        let t = translate_only(&[("default-backend", "nope"), ("custom-http-errors", "404")]);
        assert!(matches!(
            verdict(&t, "default-backend"),
            Verdict::Invalid {
                fails_closed: false,
                ..
            }
        ));
        assert!(matches!(
            verdict(&t, "custom-http-errors"),
            Verdict::Unsupported(_)
        ));
        assert!(t.entries.is_empty());
    }

    #[test]
    fn bad_codes_are_ignored() {
        let objects = services(&["default/errors"]);
        for bad in ["200", "404,abc", "4040", ","] {
            let t = translate_with(
                &objects,
                &[("default-backend", "errors"), ("custom-http-errors", bad)],
            );
            assert!(
                matches!(
                    verdict(&t, "custom-http-errors"),
                    Verdict::Invalid {
                        fails_closed: false,
                        ..
                    }
                ),
                "{bad}"
            );
            assert!(pages(&t).status_codes.is_empty(), "{bad}");
        }
    }
}
