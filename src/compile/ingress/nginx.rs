//! ingress-nginx annotations (`nginx.ingress.kubernetes.io/*`) on the Ingresses weir serves.
//!
//! The ones translated compile into weir's own filters, with ingress-nginx's semantics, put
//! before the `weir.dev/filters` chain on every route of the Ingress:
//! - `whitelist-source-range` / `allowlist-source-range` (allowed CIDRs, comma-separated) and
//!   `denylist-source-range` → `IPAccess` (403; the client is the connection's peer, as
//!   ingress-nginx without `use-forwarded-headers`);
//! - `proxy-body-size` (nginx sizes: `8m`, `512k`, `1g`, bytes; `0` = no limit) → `BodyLimit`
//!   (413).
//!
//! A value that cannot be read fails closed, as an invalid filter does: the Ingress's routes
//! answer 500 and it gets an `InvalidAnnotation` error. Every other annotation gets a Warning
//! condition naming it, so `weir validate --ingress-class nginx` lists, before a migration,
//! every annotation that would stop working. Snippets (`configuration-snippet`,
//! `server-snippet`, …) are refused by design — free-text configuration is how CVE-2025-1974
//! ("IngressNightmare") happened — and the warning names the typed alternative where one
//! exists.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;

use crate::api::{annotations, condition_types, reasons};
use crate::compile::ir::Source;
use crate::compile::status::Status;
use crate::net::Cidr;
use crate::snapshot::{BodyLimit, DirectResponse, Filter, IpAccess};

/// Allow-list annotations (ingress-nginx renamed `whitelist` to `allowlist`; both work).
const ALLOW: [&str; 2] = ["whitelist-source-range", "allowlist-source-range"];
const DENY: &str = "denylist-source-range";
const BODY_SIZE: &str = "proxy-body-size";

/// Snippet annotations, with the typed alternative weir offers (if any).
const SNIPPETS: [(&str, &str); 5] = [
    (
        "configuration-snippet",
        "an HTTPFilter (RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestRedirect) attached with weir.dev/filters",
    ),
    (
        "server-snippet",
        "an HTTPFilter attached with weir.dev/filters, or a BackendPolicy for timeouts and retries",
    ),
    ("auth-snippet", "an HTTPFilter of type ExternalAuth"),
    ("stream-snippet", "none: weir proxies HTTP only"),
    ("modsecurity-snippet", "none: weir has no WAF"),
];

/// The filters ingress-nginx annotations of `ingress` compile into (in the order ingress-nginx
/// applies them: access, then the body limit); reports every other one, in key order.
pub(super) fn translate(
    ingress: &Ingress,
    source: &Source<'_>,
    status: &mut Status,
) -> Vec<Filter> {
    let Some(all) = ingress.metadata.annotations.as_ref() else {
        return Vec::new();
    };
    let value = |name: &str| all.get(&format!("{}{name}", annotations::NGINX_PREFIX));
    let mut filters = Vec::new();
    let fail = |name: &str, message: String, status: &mut Status| {
        let key = format!("{}{name}", annotations::NGINX_PREFIX);
        status.error(
            source,
            condition_types::ACCEPTED,
            reasons::INVALID_ANNOTATION,
            format!("annotation {key}: {message}; the Ingress's routes answer 500"),
        );
        Filter::Deny(DirectResponse {
            status: 500,
            body: format!("annotation {key} is invalid: {message}\n"),
        })
    };
    let (mut allow, mut deny) = (Vec::new(), Vec::new());
    let mut invalid = None;
    for name in ALLOW.into_iter().chain([DENY]) {
        if let Some(v) = value(name) {
            match cidrs(v) {
                Ok(c) if name == DENY => deny.extend(c),
                Ok(c) => allow.extend(c),
                Err(e) => invalid = Some(fail(name, e, status)),
            }
        }
    }
    filters.extend(invalid);
    if !allow.is_empty() || !deny.is_empty() {
        filters.push(Filter::IpAccess(Arc::new(IpAccess {
            allow,
            deny,
            trusted_hops: 0,
        })));
    }
    if let Some(v) = value(BODY_SIZE) {
        match nginx_size(v) {
            Some(0) => {}
            Some(max_request_bytes) => {
                filters.push(Filter::BodyLimit(BodyLimit { max_request_bytes }))
            }
            None => filters.push(fail(
                BODY_SIZE,
                format!("{v:?} is not an nginx size (e.g. 8m, 512k, 1g, 1024; 0 = no limit)"),
                status,
            )),
        }
    }
    report(all, source, status);
    filters
}

/// CIDRs (or bare addresses) separated by commas.
fn cidrs(value: &str) -> Result<Vec<Cidr>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<Cidr>().map_err(|e| format!("{s:?}: {e}")))
        .collect()
}

/// An nginx size: bytes, or a number with `k`, `m` or `g` (either case), powers of 1024.
fn nginx_size(value: &str) -> Option<u64> {
    let v = value.trim();
    let (digits, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_lowercase()),
        _ => (v, 'b'),
    };
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit {
        'b' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Reports every ingress-nginx annotation not translated, in key order.
fn report(
    all: &std::collections::BTreeMap<String, String>,
    source: &Source<'_>,
    status: &mut Status,
) {
    for key in all.keys() {
        let Some(name) = key.strip_prefix(annotations::NGINX_PREFIX) else {
            continue;
        };
        if ALLOW.contains(&name) || name == DENY || name == BODY_SIZE {
            continue;
        }
        match SNIPPETS.iter().find(|(s, _)| *s == name) {
            Some((_, instead)) => status.warning(
                source,
                condition_types::ACCEPTED,
                reasons::SNIPPET_REFUSED,
                format!(
                    "annotation {key}: snippets (free-text nginx configuration) are refused by \
                     design; the Ingress is served without it. Instead: {instead}"
                ),
            ),
            None => status.warning(
                source,
                condition_types::ACCEPTED,
                reasons::UNSUPPORTED_ANNOTATION,
                format!(
                    "annotation {key} is not supported (yet); the Ingress is served without it"
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_sizes_are_powers_of_1024() {
        for (v, n) in [
            ("1024", 1024),
            ("8m", 8 << 20),
            ("512K", 512 << 10),
            ("1g", 1 << 30),
            ("0", 0),
        ] {
            assert_eq!(nginx_size(v), Some(n), "{v}");
        }
        for v in ["", "m", "8x", "-1", "1.5m", "8mb"] {
            assert_eq!(nginx_size(v), None, "{v:?}");
        }
    }

    #[test]
    fn source_ranges_are_cidrs_or_addresses() {
        assert_eq!(cidrs("10.0.0.0/8, 192.168.1.7 ,").map(|c| c.len()), Ok(2));
        assert!(cidrs("10.0.0.0/33").is_err());
    }
}
