//! ingress-nginx annotations (`nginx.ingress.kubernetes.io/*`) on the Ingresses weir serves.
//!
//! None is translated yet: each one gets a Warning condition naming it, so `weir validate
//! --ingress-class nginx` lists, before a migration, every annotation that would stop
//! working. Snippets (`configuration-snippet`, `server-snippet`, …) are refused by design —
//! free-text configuration is how CVE-2025-1974 ("IngressNightmare") happened — and the
//! warning names the typed alternative where one exists.

use k8s_openapi::api::networking::v1::Ingress;

use crate::api::{annotations, condition_types, reasons};
use crate::compile::ir::Source;
use crate::compile::status::Status;

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

/// Reports every ingress-nginx annotation of `ingress`, in key order.
pub(super) fn report(ingress: &Ingress, source: &Source<'_>, status: &mut Status) {
    let Some(all) = ingress.metadata.annotations.as_ref() else {
        return;
    };
    for key in all.keys() {
        let Some(name) = key.strip_prefix(annotations::NGINX_PREFIX) else {
            continue;
        };
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
