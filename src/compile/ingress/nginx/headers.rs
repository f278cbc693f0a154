//! What the upstream request and the response get beyond routing: mirrors and custom headers.
//! - `mirror-target` (a URL naming a Service of the Ingress's namespace, as `auth-url`)
//!   → a `RequestMirror` entry (every request, the copy's answer dropped); `mirror-request-body`
//!   and `mirror-host` are read and reported;
//! - `custom-headers` (a ConfigMap of response headers) is not served yet.
//!
//! A mirror does not decide who gets in, so a target weir cannot reach is reported and the
//! Ingress served without it.

use super::auth::{UrlProblem, service_url};
use super::{Context, Phase, Translation, Verdict};
use crate::api::httpfilter::{FilterEntry, FilterType, RequestMirrorFilter};

const TARGET: &str = "mirror-target";
const BODY: &str = "mirror-request-body";
const HOST: &str = "mirror-host";
const CUSTOM_HEADERS: &str = "custom-headers";

/// Read the family's annotations into `t`.
pub(super) fn translate(ctx: &Context<'_>, t: &mut Translation) {
    mirror(ctx, t);
    if let Some(value) = ctx.get(CUSTOM_HEADERS) {
        t.found(
            CUSTOM_HEADERS,
            value,
            Verdict::Unsupported(
                "weir does not read ConfigMaps yet; the Ingress is served without these \
                 response headers (write them as a ResponseHeaderModifier HTTPFilter attached \
                 with weir.dev/filters)"
                    .to_owned(),
            ),
        );
    }
}

fn mirror(ctx: &Context<'_>, t: &mut Translation) {
    let Some(target) = ctx.get(TARGET) else {
        for name in [BODY, HOST] {
            if let Some(value) = ctx.get(name) {
                t.found(
                    name,
                    value,
                    Verdict::Translated("nothing: no mirror-target".to_owned()),
                );
            }
        }
        return;
    };
    let url = match service_url(target, &ctx.key.namespace) {
        Ok(url) => Some(url),
        Err(UrlProblem::Unsupported(why)) => {
            t.found(
                TARGET,
                target,
                Verdict::Unsupported(format!("{why}; the Ingress is served without a mirror")),
            );
            None
        }
        Err(UrlProblem::Invalid(why)) => {
            t.found(
                TARGET,
                target,
                Verdict::Invalid {
                    why: format!("{why}; ignored, as ingress-nginx does"),
                    fails_closed: false,
                },
            );
            None
        }
    };
    if let Some(value) = ctx.get(BODY) {
        let verdict = match url {
            None => Verdict::Translated("nothing: no mirror".to_owned()),
            Some(_) if value == "off" => Verdict::Partial {
                to: "RequestMirror (requests with a body are not mirrored)".to_owned(),
                differs: "ingress-nginx mirrors such a request without its body; weir skips it"
                    .to_owned(),
            },
            Some(_) => Verdict::Partial {
                to: "RequestMirror (requests with a body are not mirrored)".to_owned(),
                differs: "ingress-nginx mirrors request bodies; weir mirrors only requests \
                          without one"
                    .to_owned(),
            },
        };
        t.found(BODY, value, verdict);
    }
    if let Some(value) = ctx.get(HOST) {
        let verdict = match url {
            None => Verdict::Translated("nothing: no mirror".to_owned()),
            Some(_) => Verdict::Unsupported(
                "the copy keeps the request's Host; the mirror is served without it".to_owned(),
            ),
        };
        t.found(HOST, value, verdict);
    }
    let Some(url) = url else {
        return;
    };
    // `http://svc.ns` (no path: nginx passes the request's URI) and `…$request_uri` both
    // send the request's own path, as weir's mirror does; a fixed path does not.
    let rest = target.strip_prefix("http://").unwrap_or(target);
    let fixed_path = !url.request_uri && rest.contains(['/', '?']);
    let mut differs = vec![
        "only requests without a body are mirrored (ingress-nginx mirrors bodies too)".to_owned(),
        format!(
            "the copy keeps the request's Host (ingress-nginx sends {:?}, or mirror-host)",
            url.backend.name
        ),
    ];
    if fixed_path {
        differs.push(format!(
            "the copy goes to the request's own path, not {}",
            url.path
        ));
    }
    t.found(
        TARGET,
        target,
        Verdict::Partial {
            to: format!(
                "RequestMirror filter (Service {}:{})",
                url.backend.name, url.backend.port
            ),
            differs: differs.join("; "),
        },
    );
    t.entry(
        vec![TARGET],
        Phase::Upstream,
        FilterEntry {
            request_mirror: Some(RequestMirrorFilter {
                backend_ref: url.backend,
                percent: None,
            }),
            ..FilterEntry::new(FilterType::RequestMirror)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn a_mirror_target_becomes_a_request_mirror_with_its_differences() {
        let t = translate_only(&[(
            "mirror-target",
            "http://shadow.default.svc.cluster.local:8080$request_uri",
        )]);
        let m = t.entries[0]
            .entry
            .request_mirror
            .as_ref()
            .expect("RequestMirror");
        assert_eq!(
            (m.backend_ref.name.as_str(), m.backend_ref.port),
            ("shadow", 8080)
        );
        assert_eq!(t.entries[0].phase, Phase::Upstream);
        let Verdict::Partial { differs, .. } = verdict(&t, "mirror-target") else {
            panic!("partial")
        };
        assert!(differs.contains("body"), "{differs}");
        assert!(!differs.contains("own path"), "{differs}");
        let t = translate_only(&[
            ("mirror-target", "http://shadow.default/fixed"),
            ("mirror-request-body", "off"),
            ("mirror-host", "test.env.com"),
        ]);
        let Verdict::Partial { differs, .. } = verdict(&t, "mirror-target") else {
            panic!("partial")
        };
        assert!(differs.contains("own path, not /fixed"), "{differs}");
        assert!(matches!(
            verdict(&t, "mirror-request-body"),
            Verdict::Partial { .. }
        ));
        assert!(matches!(
            verdict(&t, "mirror-host"),
            Verdict::Unsupported(_)
        ));
    }

    #[test]
    fn unreachable_targets_are_reported_and_not_mirrored() {
        let t = translate_only(&[("mirror-target", "https://test.env.com$request_uri")]);
        assert!(t.entries.is_empty());
        assert!(matches!(
            verdict(&t, "mirror-target"),
            Verdict::Unsupported(_)
        ));
        let t = translate_only(&[("custom-headers", "default/headers")]);
        assert!(matches!(
            verdict(&t, "custom-headers"),
            Verdict::Unsupported(_)
        ));
    }
}
