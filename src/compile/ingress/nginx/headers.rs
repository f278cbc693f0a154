//! What the upstream request and the response get beyond routing: mirrors and custom headers.
//! - `mirror-target` (a URL naming a Service of the Ingress's namespace, as `auth-url`)
//!   → a `RequestMirror` entry (every request, the copy's answer dropped), its `Host`
//!   `mirror-host` or else the target's host (as ingress-nginx); `mirror-request-body` is
//!   reported (weir mirrors only requests without a body);
//! - `custom-headers` (`namespace/name` of a ConfigMap whose entries are response headers, set
//!   as ingress-nginx's `more_set_headers` does) → `ResponseHeaderModifier` entries. A
//!   missing ConfigMap, one in another namespace, or an invalid header fails closed:
//!   ingress-nginx denies the location then.
//!
//! A mirror does not decide who gets in, so a target weir cannot reach is reported and the
//! Ingress served without it.

use super::auth::{UrlProblem, service_url};
use super::{Context, Phase, Translation, Verdict};
use crate::api::httpfilter::{
    FilterEntry, FilterType, HeaderFilter, HttpHeader, RequestMirrorFilter,
};
use crate::store::ObjectKey;

const TARGET: &str = "mirror-target";
const BODY: &str = "mirror-request-body";
const HOST: &str = "mirror-host";
const CUSTOM_HEADERS: &str = "custom-headers";

/// Read the family's annotations into `t`.
pub(super) fn translate(ctx: &Context<'_>, t: &mut Translation) {
    mirror(ctx, t);
    if let Some(value) = ctx.get(CUSTOM_HEADERS) {
        match custom_headers(ctx, value) {
            Ok(headers) => {
                let count = headers.len();
                for chunk in headers.chunks(MAX_SET) {
                    t.entry(
                        vec![CUSTOM_HEADERS],
                        Phase::Response,
                        FilterEntry {
                            response_header_modifier: Some(HeaderFilter {
                                set: chunk.to_vec(),
                                ..HeaderFilter::default()
                            }),
                            ..FilterEntry::new(FilterType::ResponseHeaderModifier)
                        },
                    );
                }
                t.found(
                    CUSTOM_HEADERS,
                    value,
                    Verdict::Partial {
                        to: format!("ResponseHeaderModifier filter (sets {count} headers)"),
                        differs: "ingress-nginx sets only headers its controller-wide \
                                  global-allowed-response-headers lists (none by default: it \
                                  denies the location); weir has no such list and sets every \
                                  header of the ConfigMap"
                            .to_owned(),
                    },
                );
            }
            // ingress-nginx denies the location when the ConfigMap is missing or invalid.
            Err(why) => t.found(
                CUSTOM_HEADERS,
                value,
                Verdict::Invalid {
                    why,
                    fails_closed: true,
                },
            ),
        }
    }
}

/// The most `set` entries one `ResponseHeaderModifier` holds (the CRD's limit).
const MAX_SET: usize = 16;

/// The headers of the ConfigMap `custom-headers` names (`namespace/name`, or `name` in the
/// Ingress's namespace), checked as ingress-nginx checks them, in key order.
fn custom_headers(ctx: &Context<'_>, value: &str) -> Result<Vec<HttpHeader>, String> {
    let namespace = &ctx.key.namespace;
    let (ns, name) = value.split_once('/').unwrap_or((namespace, value));
    if name.is_empty() || name.contains('/') {
        return Err(format!("{value:?} is not a ConfigMap namespace/name"));
    }
    if ns != namespace {
        return Err(format!(
            "ConfigMap {value} is in another namespace than the Ingress; weir reads the \
             Ingress's own namespace only"
        ));
    }
    let key = ObjectKey::new(ns, name);
    let map = ctx.objects.config_maps.get(&key).ok_or_else(|| {
        format!(
            "ConfigMap {key} not found, or not a set of headers (weir keeps only ConfigMaps \
                 of at most 64 entries whose keys are header names and values header values; \
                 ingress-nginx denies the location)"
        )
    })?;
    let data = map.data.as_ref().map(|d| d.iter()).into_iter().flatten();
    let mut out = Vec::new();
    for (header, v) in data {
        let name_ok = !header.is_empty()
            && header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(format!("ConfigMap {key}: {header:?} is not a header name"));
        }
        if v.is_empty() || http::HeaderValue::from_str(v).is_err() {
            return Err(format!(
                "ConfigMap {key}: the value of {header} is not a header value"
            ));
        }
        out.push(HttpHeader {
            name: header.clone(),
            value: v.clone(),
        });
    }
    if out.is_empty() {
        return Err(format!("ConfigMap {key} has no headers"));
    }
    Ok(out)
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
    let host = match (ctx.get(HOST), &url) {
        (None, _) => url.as_ref().map(|u| u.host.clone()),
        (Some(value), None) => {
            t.found(
                HOST,
                value,
                Verdict::Translated("nothing: no mirror".to_owned()),
            );
            None
        }
        (Some(value), Some(u)) => {
            let valid = value
                .parse::<http::uri::Authority>()
                .is_ok_and(|a| a.as_str() == value)
                && !value.contains('@');
            if valid {
                t.found(
                    HOST,
                    value,
                    Verdict::Translated("RequestMirror hostname (the copies' Host)".to_owned()),
                );
                Some(value.to_owned())
            } else {
                t.found(
                    HOST,
                    value,
                    Verdict::Invalid {
                        why: format!("{value:?} is not a host; the target's host is used"),
                        fails_closed: false,
                    },
                );
                Some(u.host.clone())
            }
        }
    };
    let Some(url) = url else {
        return;
    };
    // `http://svc.ns` (no path: nginx passes the request's URI) and `…$request_uri` both
    // send the request's own path, as weir's mirror does; a fixed path does not.
    let rest = target.strip_prefix("http://").unwrap_or(target);
    let fixed_path = !url.request_uri && rest.contains(['/', '?']);
    let mut differs = vec![
        "only requests without a body are mirrored (ingress-nginx mirrors bodies too)".to_owned(),
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
                hostname: host,
            }),
            ..FilterEntry::new(FilterType::RequestMirror)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::store::Objects;
    use k8s_openapi::api::core::v1::ConfigMap;

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
        assert!(matches!(verdict(&t, "mirror-host"), Verdict::Translated(_)));
        let hostname = |t: &Translation| {
            let m = t.entries[0].entry.request_mirror.as_ref().expect("mirror");
            m.hostname.clone()
        };
        assert_eq!(hostname(&t).as_deref(), Some("test.env.com"));
        let t = translate_only(&[("mirror-target", "http://Shadow.default:8080/")]);
        assert_eq!(
            hostname(&t).as_deref(),
            Some("shadow.default"),
            "the URL's host"
        );
    }

    #[test]
    fn unreachable_targets_are_reported_and_not_mirrored() {
        let t = translate_only(&[("mirror-target", "https://test.env.com$request_uri")]);
        assert!(t.entries.is_empty());
        assert!(matches!(
            verdict(&t, "mirror-target"),
            Verdict::Unsupported(_)
        ));
    }

    fn config_map(data: &[(&str, &str)]) -> Objects {
        let mut objects = Objects::default();
        objects.config_maps.insert(
            ObjectKey::new("default", "headers"),
            ConfigMap {
                data: Some(
                    data.iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..Default::default()
            }
            .into(),
        );
        objects
    }

    #[test]
    fn custom_headers_set_the_config_maps_entries_on_responses() {
        let objects = config_map(&[("X-Using-Nginx-Controller", "true"), ("X-Frame", "DENY")]);
        let t = translate_with(&objects, &[("custom-headers", "default/headers")]);
        assert_eq!(t.entries.len(), 1);
        assert_eq!(t.entries[0].phase, Phase::Response);
        let set = &t.entries[0]
            .entry
            .response_header_modifier
            .as_ref()
            .expect("ResponseHeaderModifier")
            .set;
        let names: Vec<_> = set.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["X-Frame", "X-Using-Nginx-Controller"]);
        assert!(matches!(
            verdict(&t, "custom-headers"),
            Verdict::Partial { .. }
        ));
        // More than one entry's worth: split, all kept.
        let many: Vec<(String, String)> =
            (0..20).map(|i| (format!("X-H{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let t = translate_with(&config_map(&many), &[("custom-headers", "headers")]);
        assert_eq!(t.entries.len(), 2);
    }

    #[test]
    fn missing_or_invalid_custom_headers_fail_closed() {
        let bad = config_map(&[("Bad Header", "x")]);
        for (objects, value) in [
            (Objects::default(), "default/headers"),
            (config_map(&[("X-A", "b")]), "other/headers"),
            (bad, "default/headers"),
        ] {
            let t = translate_with(&objects, &[("custom-headers", value)]);
            assert!(t.entries.is_empty(), "{value}");
            assert!(matches!(
                verdict(&t, "custom-headers"),
                Verdict::Invalid {
                    fails_closed: true,
                    ..
                }
            ));
        }
    }
}
